// Small panel constructors for the netstat_exporter dashboard (no grafonnet dependency: the
// mixin renders with any jsonnet implementation and nothing to vendor).
//
// Every panel and query uses the templated data source ${datasource}; refIds are assigned
// A, B, C... in order; gridPos is [x, y, w, h].
{
  local ds = { type: 'prometheus', uid: '${datasource}' },
  datasource:: ds,

  local gridPos(g) = { x: g[0], y: g[1], w: g[2], h: g[3] },
  local withRefIds(targets) = std.mapWithIndex(function(i, t) t { refId: std.char(65 + i) }, targets),

  // A range query (time series panels).
  target(expr, legendFormat='__auto'):: {
    datasource: ds,
    expr: expr,
    legendFormat: legendFormat,
    range: true,
    instant: false,
    format: 'time_series',
    editorMode: 'code',
  },

  // An instant query in table format (table panels, merged on their labels).
  tableTarget(expr, legendFormat='__auto'):: self.target(expr, legendFormat) {
    range: false,
    instant: true,
    format: 'table',
  },

  row(title, pos):: {
    type: 'row',
    title: title,
    collapsed: false,
    gridPos: gridPos(pos),
    panels: [],
  },

  // A single number with background colour by thresholds (steps: Grafana threshold steps).
  stat(title, description, expr, steps, pos, unit='short'):: {
    type: 'stat',
    title: title,
    description: description,
    datasource: ds,
    gridPos: gridPos(pos),
    targets: withRefIds([$.target(expr) { range: false, instant: true }]),
    fieldConfig: {
      defaults: {
        unit: unit,
        thresholds: { mode: 'absolute', steps: steps },
      },
      overrides: [],
    },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'background',
      graphMode: 'area',
      textMode: 'auto',
    },
  },

  timeseries(title, description, unit, targets, pos):: {
    type: 'timeseries',
    title: title,
    description: description,
    datasource: ds,
    gridPos: gridPos(pos),
    targets: withRefIds(targets),
    fieldConfig: {
      defaults: {
        unit: unit,
        custom: {
          drawStyle: 'line',
          lineWidth: 1,
          fillOpacity: 10,
          showPoints: 'never',
          spanNulls: false,
        },
      },
      overrides: [],
    },
    options: {
      legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull', 'max'] },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  },

  // A table of instant queries merged on their labels; `unit` is the default of the numeric
  // columns (overrides set the others).
  table(title, description, targets, transformations, overrides, pos, unit='short'):: {
    type: 'table',
    title: title,
    description: description,
    datasource: ds,
    gridPos: gridPos(pos),
    targets: withRefIds(targets),
    transformations: transformations,
    fieldConfig: {
      defaults: {
        unit: unit,
        custom: { align: 'auto', filterable: true },
      },
      overrides: overrides,
    },
    options: { showHeader: true, cellHeight: 'sm', footer: { show: false } },
  },

  // A dashboard variable listing the values of `label` (multi-select, All = allValue, .+ by
  // default), refreshed when the time range changes.
  queryVariable(name, label, query, allValue='.+'):: {
    name: name,
    label: label,
    type: 'query',
    datasource: ds,
    definition: query,
    query: {
      query: query,
      refId: 'PrometheusVariableQueryEditor-VariableQuery',
      qryType: 1,
    },
    current: {},
    hide: 0,
    includeAll: true,
    allValue: allValue,
    multi: true,
    refresh: 2,
    regex: '',
    sort: 1,
    options: [],
  },

  datasourceVariable:: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    current: {},
    hide: 0,
    includeAll: false,
    multi: false,
    refresh: 1,
    regex: '',
    options: [],
  },

  // Panel ids 1, 2, 3... in order.
  withIds(panels):: std.mapWithIndex(function(i, p) p { id: i + 1 }, panels),
}
