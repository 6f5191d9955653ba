// Defaults of the netstat_exporter mixin. Override any of them in your own jsonnet:
//
//   (import 'netstat-exporter-mixin/mixin.libsonnet') + {
//     _config+:: { netstatExporterSelector: 'job="netstat"', timeWaitThreshold: 100000 },
//   }
//
// The shipped deploy/prometheus/alerts.yml and dashboards/*.json are these defaults rendered.
{
  _config+:: {
    // --- Selectors
    // Label matchers selecting the exporter's series in every alert: the scrape job of
    // deploy/prometheus/prometheus.yml and the Service name in deploy/kubernetes. Add your own
    // matchers here (e.g. 'job="netstat-exporter", cluster="prod"').
    netstatExporterSelector: 'job="netstat-exporter"',
    // Devices NetstatInterfacePromiscuous ignores (anchored regex): bridge ports (veth, tap,
    // vnet and CNI devices) are promiscuous by design.
    promiscuousInterfaceExcludeRegex: 'veth.*|vnet.*|tap.*|cali.*|cilium.*|flannel.*|cni.*|docker.*|br-.*|virbr.*|lxc.*',
    // Window of the rate()s in the alerts.
    alertRateInterval: '5m',
    // Network namespaces (--netns=all): the alerts on per-namespace series join
    // netstat_netns_info on these labels plus netns (add e.g. cluster when instance names
    // repeat across clusters) and copy netnsInfoLabels from it, so an alert names the pod.
    netnsInfoJoinLabels: 'job, instance',
    netnsInfoLabels: 'pod_uid, container_id',

    // --- Thresholds and `for:` durations of the alerts
    interfaceErrorRatio: 0.01,  // share of a direction's packets that are errors
    interfaceErrorFor: '15m',
    interfaceDropRatio: 0.01,
    interfaceDropFor: '15m',
    interfaceOverrunRatio: 0.001,
    interfaceOverrunFor: '10m',
    interfacePromiscuousFor: '5m',
    acceptQueueFillRatio: 0.8,  // accept queue / its limit (also the dashboard's red line)
    acceptQueueFor: '5m',
    listenOverflowsFor: '5m',
    unexpectedListenerFor: '2m',
    unexpectedOutboundFor: '2m',
    unexpectedInboundFor: '2m',
    // NetstatConnectionsRetransmitting (needs --collector.connections.health): the share of a
    // listener's or an outbound series' established connections retransmitting, summed over
    // the window (a connection retransmits for moments; the window makes it a rate).
    retransmittingRatio: 0.1,
    retransmittingWindow: '10m',
    retransmittingFor: '10m',
    // NetstatOutboundConnectFailures (the socket-destroy stream, on by default): the share of
    // a remote service's connects that failed (refused or timed out) over alertRateInterval,
    // when at least connectFailureMinRate of them fail per second.
    connectFailureRatio: 0.1,
    connectFailureMinRate: 0.05,
    connectFailureFor: '10m',
    socketQueueWindow: '10m',  // a queue must stay non-empty at every scrape of this window
    socketQueueFor: '5m',
    timeWaitThreshold: 50000,  // TIME_WAIT sockets per host (also the dashboard's orange)
    timeWaitFor: '15m',
    closeWaitThreshold: 100,  // CLOSE_WAIT sockets per host (also the dashboard's orange)
    closeWaitFor: '15m',
    udpReceiveBufferErrorsFor: '10m',
    netnsUnreadableFor: '15m',  // NetstatNetnsUnreadable (namespaces that cannot be read)
    netnsDroppedFor: '15m',  // NetstatNetnsDropped (namespaces left out by --netns.max)
    collectorFailedFor: '5m',
    exporterDownFor: '5m',
    exporterAbsentFor: '15m',

    // --- Dashboard
    dashboardUid: 'netstat-exporter',
    dashboardTitle: 'netstat_exporter',
    dashboardTags: ['netstat', 'network', 'prometheus'],
    dashboardRefresh: '30s',
    dashboardTimeFrom: 'now-3h',
    dashboardTimezone: '',
  },
}
