// Alert rules of the netstat_exporter mixin, rendered to deploy/prometheus/alerts.yml.
//
// Every rule aggregates with `without (...)` or matches series one to one, so the labels that
// identify a host (instance, job and any target labels such as cluster) are kept: the rules
// work unchanged for a whole fleet, in one Prometheus or in a Thanos/Mimir ruler. Every
// selector carries _config.netstatExporterSelector.
//
// Tested by deploy/prometheus/alerts_test.yml (`promtool test rules`) and, against a live
// Prometheus, by tests/e2e_prometheus.rs; linted by tests/dashboard_lint.rs.
// Numbers as a person writes them (jsonnet's own %s prints 0.95 as 0.94999999999999996).
local num(x) = if x == std.floor(x) then std.format('%d', x) else std.format('%.15g', x);
local pct(r) = num(r * 100);
// A ||| text block as one line, like a YAML folded (>-) scalar.
local oneLine(s) = std.strReplace(std.rstripChars(s, '\n'), '\n', ' ');

{
  prometheusAlerts+:: {
    local c = $._config {
      errorPercent: pct($._config.interfaceErrorRatio),
      dropPercent: pct($._config.interfaceDropRatio),
      overrunPercent: pct($._config.interfaceOverrunRatio),
      acceptQueuePercent: pct($._config.acceptQueueFillRatio),
      acceptQueueFillRatioText: num($._config.acceptQueueFillRatio),
      timeWaitThresholdText: num($._config.timeWaitThreshold),
      closeWaitThresholdText: num($._config.closeWaitThreshold),
    },
    local ratioRule(name, outcome, ratio, forDuration, summaryText, descriptionText) = {
      alert: name,
      expr: |||
        (
            sum without (outcome) (rate(netstat_interface_packets_total{%(sel)s, outcome="%(outcome)s"}[%(rate)s]))
          /
            sum without (outcome) (rate(netstat_interface_packets_total{%(sel)s}[%(rate)s]))
        ) > %(ratio)s
      ||| % { sel: c.netstatExporterSelector, outcome: outcome, rate: c.alertRateInterval, ratio: num(ratio) },
      'for': forDuration,
      labels: { severity: 'warning' },
      annotations: {
        summary: summaryText,
        description: oneLine(descriptionText % c),
      },
    },

    groups+: [
      {
        name: 'netstat-exporter-interfaces',
        rules: [
          ratioRule(
            'NetstatInterfaceErrors', 'error', c.interfaceErrorRatio, c.interfaceErrorFor,
            '{{ $labels.device }} on {{ $labels.instance }}: {{ $value | humanizePercentage }} of {{ $labels.direction }} packets are errors',
            |||
              More than %(errorPercent)s%% of the packets ({{ $labels.direction }}) on {{ $labels.device }} on
              {{ $labels.instance }} have been errors (netstat -i RX-ERR/TX-ERR) for %(interfaceErrorFor)s.
              Usually a physical problem: check the cable, transceiver and switch port
              (`ethtool -S {{ $labels.device }}` for CRC/frame/carrier errors,
              netstat_interface_receive_frame_errors_total and
              netstat_interface_transmit_carrier_errors_total), a duplex or speed mismatch
              (`ethtool {{ $labels.device }}`), or the driver/firmware.
            |||
          ),
          ratioRule(
            'NetstatInterfaceDrops', 'drop', c.interfaceDropRatio, c.interfaceDropFor,
            '{{ $labels.device }} on {{ $labels.instance }}: {{ $value | humanizePercentage }} of {{ $labels.direction }} packets dropped',
            |||
              More than %(dropPercent)s%% of the packets ({{ $labels.direction }}) on {{ $labels.device }} on
              {{ $labels.instance }} have been dropped (netstat -i RX-DRP/TX-DRP) for %(interfaceDropFor)s.
              Receive drops: the kernel had no room for them (RX ring too small:
              `ethtool -g/-G {{ $labels.device }}`; softirq backlog full:
              net.core.netdev_max_backlog, /proc/net/softnet_stat) or did not want them (unknown
              protocol or VLAN, rx_missed: `ip -s -s link show {{ $labels.device }}`). Transmit
              drops: a full qdisc (`tc -s qdisc show dev {{ $labels.device }}`).
            |||
          ),
          ratioRule(
            'NetstatInterfaceOverruns', 'overrun', c.interfaceOverrunRatio, c.interfaceOverrunFor,
            '{{ $labels.device }} on {{ $labels.instance }}: {{ $value | humanizePercentage }} of {{ $labels.direction }} packets overran the NIC FIFO',
            |||
              More than %(overrunPercent)s%% of the packets ({{ $labels.direction }}) on {{ $labels.device }} on
              {{ $labels.instance }} have been FIFO overruns (netstat -i RX-OVR/TX-OVR) for
              %(interfaceOverrunFor)s: the NIC's buffer filled before the host emptied it. Look at interrupt and
              softirq load on the CPUs serving the NIC (`/proc/interrupts`, `mpstat -P ALL`), IRQ
              affinity/RSS (`ethtool -l/-x {{ $labels.device }}`), ring sizes (`ethtool -g`) and
              interrupt coalescing (`ethtool -c`).
            |||
          ),
          {
            alert: 'NetstatInterfacePromiscuous',
            expr: |||
              netstat_interface_flag{%(netstatExporterSelector)s, flag="promisc", device!~"%(promiscuousInterfaceExcludeRegex)s"} == 1
            ||| % c,
            'for': c.interfacePromiscuousFor,
            labels: { severity: 'info' },
            annotations: {
              summary: '{{ $labels.device }} on {{ $labels.instance }} is in promiscuous mode',
              description: oneLine(|||
                {{ $labels.device }} on {{ $labels.instance }} has been receiving every frame on
                its link (flag P in `netstat -i`) for %(interfacePromiscuousFor)s. Something asked for it: a packet
                capture (tcpdump, wireshark, an IDS: find it with `ss -0 -p` or
                `grep -l . /proc/*/net/packet`), `ip link set {{ $labels.device }} promisc on`, or
                the device was added to a bridge. If it is an expected bridge port, add the
                device to the mixin's promiscuousInterfaceExcludeRegex.
              ||| % c),
            },
          },
        ],
      },
      {
        name: 'netstat-exporter-sockets',
        rules: [
          {
            alert: 'NetstatListenerAcceptQueueNearLimit',
            expr: |||
              (
                  netstat_listener_accept_queue{%(netstatExporterSelector)s}
                /
                  (netstat_listener_accept_queue_limit{%(netstatExporterSelector)s} > 0)
              ) > %(acceptQueueFillRatioText)s
            ||| % c,
            'for': c.acceptQueueFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Listener {{ $labels.address }}:{{ $labels.port }} on {{ $labels.instance }}: accept queue {{ $value | humanizePercentage }} full',
              description: oneLine(|||
                The accept queue of the {{ $labels.protocol }} listener on {{ $labels.address }}:{{ $labels.port }}
                on {{ $labels.instance }} has been over %(acceptQueuePercent)s%% of its limit (the listen() backlog,
                capped by net.core.somaxconn) for %(acceptQueueFor)s. When it is full, new connections are
                dropped (NetstatTcpListenOverflows). The process (netstat_listener_info, or
                `ss -ltnp 'sport = :{{ $labels.port }}'`) does not accept() fast enough: look at its
                thread pool, CPU and locks; or its backlog is too small for its connection rate.
              ||| % c),
            },
          },
          {
            alert: 'NetstatTcpListenOverflows',
            expr: |||
              rate(netstat_tcp_listen_overflows_total{%(netstatExporterSelector)s}[%(alertRateInterval)s]) > 0
            ||| % c,
            'for': c.listenOverflowsFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $labels.instance }} drops TCP connections: listen queue overflows ({{ $value | humanize }}/s)',
              description: oneLine(|||
                For %(listenOverflowsFor)s {{ $labels.instance }} has been dropping completed TCP handshakes
                because a listener's accept queue was full (TcpExt ListenOverflows, `netstat -s`:
                "times the listen queue of a socket overflowed"). Clients see connect timeouts and
                retransmitted SYNs. Find the listener with the fullest queue (dashboard "Listeners",
                netstat_listener_accept_queue / netstat_listener_accept_queue_limit, or `ss -ltn`:
                Recv-Q vs Send-Q), then make it accept faster or raise its backlog and
                net.core.somaxconn.
              ||| % c),
            },
          },
          {
            alert: 'NetstatUnexpectedListener',
            expr: |||
              netstat_listener_unexpected{%(netstatExporterSelector)s} == 1
            ||| % c,
            'for': c.unexpectedListenerFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Unexpected {{ $labels.protocol }} listener {{ $labels.address }}:{{ $labels.port }} ({{ $labels.process }}) on {{ $labels.instance }}',
              description: oneLine(|||
                {{ $labels.instance }} has been listening on {{ $labels.protocol }}
                {{ $labels.address }}:{{ $labels.port }} (service "{{ $labels.service }}", process
                "{{ $labels.process }}") for %(unexpectedListenerFor)s and no entry of the exporter's
                --collector.listeners.expected file allows it. Check who started it
                (`ss -lntup 'sport = :{{ $labels.port }}'`, `systemctl status <pid>`); if it is
                legitimate, add it to the expected-listeners file, otherwise stop it.
              ||| % c),
            },
          },
          {
            alert: 'NetstatUnexpectedOutboundConnection',
            expr: |||
              netstat_outbound_unexpected{%(netstatExporterSelector)s} == 1
            ||| % c,
            'for': c.unexpectedOutboundFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Unexpected outbound {{ $labels.protocol }} connection by {{ $labels.process }} to port {{ $labels.remote_port }} ({{ $labels.service }}) in {{ $labels.remote_network }} on {{ $labels.instance }}',
              description: oneLine(|||
                On {{ $labels.instance }}, process "{{ $labels.process }}" has held {{ $labels.protocol }}
                connections to remote port {{ $labels.remote_port }} (service "{{ $labels.service }}") in
                network "{{ $labels.remote_network }}" for %(unexpectedOutboundFor)s, and no entry of the
                connections: section of the exporter's expected file allows it. Find the peers
                (`ss -tnp 'dport = :{{ $labels.remote_port }}'`) and the process; if it is legitimate,
                add an entry, otherwise stop it: a process phoning home looks like this.
              ||| % c),
            },
          },
          {
            alert: 'NetstatSocketQueueBacklog',
            // netstat_socket_queue_max_bytes is the largest single Recv-Q/Send-Q at scrape
            // time; its minimum over the window stays above zero only if some socket never
            // drained.
            expr: |||
              min_over_time(netstat_socket_queue_max_bytes{%(netstatExporterSelector)s}[%(socketQueueWindow)s]) > 0
            ||| % c,
            'for': c.socketQueueFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $labels.protocol }}/{{ $labels.family }} {{ $labels.queue }} queues on {{ $labels.instance }} have not drained',
              description: oneLine(|||
                At every scrape of the last %(socketQueueWindow)s, for %(socketQueueFor)s, some {{ $labels.protocol }} {{ $labels.family }}
                socket on {{ $labels.instance }} had data waiting in its {{ $labels.queue }} queue
                (largest now {{ $value | humanize1024 }}B). A receive queue that does not drain is
                an application that stopped reading; a send queue that does not drain is a peer
                that does not read or a congested/broken path. Find the sockets with
                `ss -tunp` (non-zero Recv-Q/Send-Q); the dashboard's queue panels show how much is
                queued and how many sockets (netstat_sockets_queued).
              ||| % c),
            },
          },
          {
            alert: 'NetstatTcpTimeWaitPileUp',
            expr: |||
              sum without (family) (netstat_sockets{%(netstatExporterSelector)s, protocol="tcp", state="time_wait"}) > %(timeWaitThresholdText)s
            ||| % c,
            'for': c.timeWaitFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $value }} TCP sockets in TIME_WAIT on {{ $labels.instance }}',
              description: oneLine(|||
                {{ $labels.instance }} has had more than %(timeWaitThresholdText)s TCP connections in TIME_WAIT for
                %(timeWaitFor)s. Each was closed actively by this host; many of them mean many short-lived
                outgoing connections (no keep-alive or connection pooling). They use ephemeral ports
                (net.ipv4.ip_local_port_range) and, past net.ipv4.tcp_max_tw_buckets, are destroyed
                early (netstat_tcp_time_wait_overflows_total). Find the peers with
                `ss -tan state time-wait` and reuse connections.
              ||| % c),
            },
          },
          {
            alert: 'NetstatTcpCloseWaitPileUp',
            expr: |||
              sum without (family) (netstat_sockets{%(netstatExporterSelector)s, protocol="tcp", state="close_wait"}) > %(closeWaitThresholdText)s
            ||| % c,
            'for': c.closeWaitFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $value }} TCP sockets in CLOSE_WAIT on {{ $labels.instance }}',
              description: oneLine(|||
                {{ $labels.instance }} has had more than %(closeWaitThresholdText)s TCP connections in CLOSE_WAIT for
                %(closeWaitFor)s: the peer closed them but the local application never called close(). This
                is a socket (file descriptor) leak in the application; it ends in "too many open
                files". Find the process with `ss -tanp state close-wait`.
              ||| % c),
            },
          },
          {
            alert: 'NetstatUdpReceiveBufferErrors',
            expr: |||
              rate(netstat_udp_receive_buffer_errors_total{%(netstatExporterSelector)s}[%(alertRateInterval)s]) > 0
            ||| % c,
            'for': c.udpReceiveBufferErrorsFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $labels.instance }} drops UDP/{{ $labels.family }} datagrams: receive buffers full ({{ $value | humanize }}/s)',
              description: oneLine(|||
                For %(udpReceiveBufferErrorsFor)s {{ $labels.instance }} has been dropping incoming {{ $labels.family }}
                UDP datagrams because a socket's receive buffer was full (Udp RcvbufErrors,
                `netstat -su`: "receive buffer errors"). The application reads too slowly or its
                SO_RCVBUF is too small (capped by net.core.rmem_max). netstat_listener_drops_total
                and netstat_listener_receive_queue_bytes (or `ss -lunm`) show which socket.
              ||| % c),
            },
          },
        ],
      },
      {
        name: 'netstat-exporter-self',
        rules: [
          {
            alert: 'NetstatExporterCollectorFailed',
            expr: |||
              netstat_scrape_collector_success{%(netstatExporterSelector)s} == 0
            ||| % c,
            'for': c.collectorFailedFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'netstat_exporter collector {{ $labels.collector }} fails on {{ $labels.instance }}',
              description: oneLine(|||
                The {{ $labels.collector }} collector of netstat_exporter on {{ $labels.instance }}
                has met errors at every scrape for %(collectorFailedFor)s, so its metrics are incomplete. The
                exporter's log names the file and line; netstat_scrape_errors_total{collector="{{ $labels.collector }}"}
                counts the errors by source. Common causes: missing privileges (see the
                deployment's capabilities), a /proc or /sys not mounted where --path.procfs /
                --path.sysfs point.
              ||| % c),
            },
          },
          {
            alert: 'NetstatExporterDown',
            expr: |||
              up{%(netstatExporterSelector)s} == 0
            ||| % c,
            'for': c.exporterDownFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'netstat_exporter on {{ $labels.instance }} cannot be scraped',
              description: oneLine(|||
                Prometheus has failed to scrape netstat_exporter on {{ $labels.instance }} for
                %(exporterDownFor)s, so none of the network alerts can fire for this host. Check the service
                (`systemctl status netstat_exporter`, the DaemonSet pod), the port (9958 by default)
                and the firewall; the target's last error is on Prometheus' /targets page.
              ||| % c),
            },
          },
          {
            alert: 'NetstatExporterAbsent',
            expr: |||
              absent(up{%(netstatExporterSelector)s})
            ||| % c,
            'for': c.exporterAbsentFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'No netstat_exporter target is being scraped',
              description: oneLine(|||
                Prometheus has had no target of job "{{ $labels.job }}" ({%(netstatExporterSelector)s}) for %(exporterAbsentFor)s: the scrape
                configuration or service discovery (ServiceMonitor, file_sd) lost the exporters, so
                no host's network is being watched. Check the scrape configuration and the
                Prometheus /service-discovery page.
              ||| % c),
            },
          },
        ],
      },
    ],
  },
}
