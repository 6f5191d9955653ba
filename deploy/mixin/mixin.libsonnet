// netstat_exporter monitoring mixin (https://monitoring.mixins.dev conventions):
//   grafanaDashboards  file name -> Grafana dashboard
//   prometheusAlerts   Prometheus rule file ({groups: [...]})
//   _config            selectors, thresholds and durations (config.libsonnet)
// See docs/mixin.md. deploy/mixin/render.py renders the shipped files from it.
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
