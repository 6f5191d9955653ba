// Alert rules of the netstat_exporter mixin, rendered to deploy/prometheus/alerts.yml.
//
// Every rule aggregates with `without (...)` or matches series one to one, so the labels that
// identify a host (instance, job and any target labels such as cluster) are kept: the rules
// work unchanged for a whole fleet, in one Prometheus or in a Thanos/Mimir ruler. Every
// selector carries _config.netstatExporterSelector.
//
// Tested by deploy/prometheus/alerts_test.yml (`promtool test rules`) and, against a live
// Prometheus, by tests/e2e_prometheus.rs; linted by tests/it/dashboard_lint.rs.
// Numbers as a person writes them (jsonnet's own %s prints 0.95 as 0.94999999999999996).
local num(x) = if x == std.floor(x) then std.format('%d', x) else std.format('%.15g', x);
local pct(r) = num(r * 100);
// A ||| text block as one line, like a YAML folded (>-) scalar.
local oneLine(s) = std.strReplace(std.rstripChars(s, '\n'), '\n', ' ');
// Indent every line of a ||| block (the signal inside the namespace join below).
local indent(s, n) = std.join('\n', [if l == '' then l else std.repeat(' ', n) + l for l in std.split(std.rstripChars(s, '\n'), '\n')]);

{
  prometheusAlerts+:: {
    local c = $._config {
      errorPercent: pct($._config.interfaceErrorRatio),
      dropPercent: pct($._config.interfaceDropRatio),
      overrunPercent: pct($._config.interfaceOverrunRatio),
      acceptQueuePercent: pct($._config.acceptQueueFillRatio),
      retransmittingPercent: pct($._config.retransmittingRatio),
      retransmittingRatioText: num($._config.retransmittingRatio),
      connectFailurePercent: pct($._config.connectFailureRatio),
      connectFailureRatioText: num($._config.connectFailureRatio),
      connectFailureMinRateText: num($._config.connectFailureMinRate),
      acceptQueueFillRatioText: num($._config.acceptQueueFillRatio),
      timeWaitThresholdText: num($._config.timeWaitThreshold),
      closeWaitThresholdText: num($._config.closeWaitThreshold),
    },
    // --- Network namespaces (--netns=all): the alerts on per-namespace series name the pod.
    //
    // nsExpr(signal) is the signal with the labels of netstat_netns_info
    // (_config.netnsInfoLabels: pod_uid and container_id) joined on the namespace:
    //
    //     signal * on (job, instance, netns) group_left (pod_uid, container_id) netstat_netns_info
    //   or ignoring (pod_uid, container_id)
    //     signal
    //
    // netstat_netns_info is 1, so the value is unchanged. The `or ignoring` keeps every series
    // the join cannot name: all of them with --netns=self (no netstat_netns_info at all), and a
    // namespace whose info is missing (it vanished between the two reads). The own namespace has
    // netns="" on both sides, so it joins too (empty pod_uid and container_id: no label).
    // Comparisons go outside: (nsExpr(signal)) > threshold.
    local nsExpr(signal) = std.rstripChars(|||
      (
      %(signal)s
        * on (%(join)s, netns) group_left (%(info)s)
          netstat_netns_info{%(sel)s}
      or ignoring (%(info)s)
      %(signal)s
      )
    ||| % {
      signal: indent(signal, 2),
      join: c.netnsInfoJoinLabels,
      info: c.netnsInfoLabels,
      sel: c.netstatExporterSelector,
    }, '\n'),
    // nsOwnedExpr(metric): the same for a series that carries its owner's own pod_uid and
    // container_id (listener, outbound and inbound policy series: from the owning process's
    // cgroup). A series that names its owner keeps its labels (a hostNetwork pod's listener is in
    // the host's namespace, whose info has empty ids: a join would blank them); only a series
    // with both empty takes its namespace's.
    local nsOwnedExpr(metric) = std.rstripChars(|||
      (
        %(m)s{%(sel)s, pod_uid="", container_id=""}
          * on (%(join)s, netns) group_left (%(info)s)
            netstat_netns_info{%(sel)s}
      or ignoring (%(info)s)
        %(m)s{%(sel)s, pod_uid="", container_id=""}
      or
        %(m)s{%(sel)s, pod_uid!=""}
      or
        %(m)s{%(sel)s, container_id!=""}
      )
    ||| % {
      m: metric,
      join: c.netnsInfoJoinLabels,
      info: c.netnsInfoLabels,
      sel: c.netstatExporterSelector,
    }, '\n'),
    // Where a per-namespace alert is: nothing for the own namespace, else the namespace and the
    // pod or container that owns it (Go templates: `with` is empty for an empty label).
    local nsSummary = '{{ with $labels.pod_uid }} (pod {{ . }}){{ else }}{{ with $labels.container_id }} (container {{ . }}){{ else }}{{ with $labels.netns }} (netns {{ . }}){{ end }}{{ end }}{{ end }}',
    // Without a namespace (the exporter's own, or --netns=self), a series of a process in a
    // pod or container (a hostNetwork pod: container_id and pod_uid from its cgroup) names them.
    local nsDescription = '{{ with $labels.netns }} In network namespace {{ . }}{{ with $labels.pod_uid }} of pod uid {{ . }} (kube_pod_info{uid="{{ . }}"} names it){{ end }}{{ with $labels.container_id }}, container {{ . }}{{ end }}: run the commands above in it (`nsenter --net=/proc/<pid>/ns/net`, pid of a process of the container).{{ else }}{{ with $labels.pod_uid }} The process is in pod uid {{ . }} (kube_pod_info{uid="{{ . }}"} names it){{ with $labels.container_id }}, container {{ . }}{{ end }}.{{ else }}{{ with $labels.container_id }} The process is in container {{ . }}.{{ end }}{{ end }}{{ end }}',
    // A rule on a per-namespace series: the pod/container in its summary and description.
    local nsRule(rule) = rule {
      annotations+: {
        summary: std.strReplace(rule.annotations.summary, '{{ $labels.instance }}', '{{ $labels.instance }}' + nsSummary),
        description: rule.annotations.description + nsDescription,
      },
    },

    local ratioRule(name, outcome, ratio, forDuration, summaryText, descriptionText) = nsRule({
      alert: name,
      expr: nsExpr(|||
        (
            sum without (outcome) (rate(netstat_interface_packets_total{%(sel)s, outcome="%(outcome)s"}[%(rate)s]))
          /
            sum without (outcome) (rate(netstat_interface_packets_total{%(sel)s}[%(rate)s]))
        )
      ||| % { sel: c.netstatExporterSelector, outcome: outcome, rate: c.alertRateInterval }) + ' > %s\n' % num(ratio),
      'for': forDuration,
      labels: { severity: 'warning' },
      annotations: {
        summary: summaryText,
        description: oneLine(descriptionText % c),
      },
    }),

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
          nsRule({
            alert: 'NetstatInterfacePromiscuous',
            expr: nsExpr(|||
              netstat_interface_flag{%(netstatExporterSelector)s, flag="promisc", device!~"%(promiscuousInterfaceExcludeRegex)s"}
            ||| % c) + ' == 1\n' % c,
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
          }),
        ],
      },
      {
        name: 'netstat-exporter-sockets',
        rules: [
          nsRule({
            alert: 'NetstatListenerAcceptQueueNearLimit',
            expr: nsExpr(|||
              (
                  netstat_listener_accept_queue{%(netstatExporterSelector)s}
                /
                  (netstat_listener_accept_queue_limit{%(netstatExporterSelector)s} > 0)
              )
            ||| % c) + ' > %(acceptQueueFillRatioText)s\n' % c,
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
          }),
          nsRule({
            alert: 'NetstatTcpListenOverflows',
            expr: nsExpr(|||
              rate(netstat_tcp_listen_overflows_total{%(netstatExporterSelector)s}[%(alertRateInterval)s])
            ||| % c) + ' > 0\n' % c,
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
          }),
          nsRule({
            alert: 'NetstatUnexpectedListener',
            expr: nsOwnedExpr('netstat_listener_unexpected') + ' == 1\n',
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
          }),
          nsRule({
            alert: 'NetstatUnexpectedOutboundConnection',
            expr: nsOwnedExpr('netstat_outbound_unexpected') + ' == 1\n',
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
          }),
          nsRule({
            alert: 'NetstatUnexpectedInboundSource',
            expr: nsOwnedExpr('netstat_inbound_unexpected') + ' == 1\n',
            'for': c.unexpectedInboundFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Inbound {{ $labels.protocol }} connections to port {{ $labels.port }} ({{ $labels.process }}) from {{ $labels.remote_network }} on {{ $labels.instance }}',
              description: oneLine(|||
                On {{ $labels.instance }}, the listener on {{ $labels.protocol }} port {{ $labels.port }}
                (service "{{ $labels.service }}", process "{{ $labels.process }}") has held connections
                from network "{{ $labels.remote_network }}" for %(unexpectedInboundFor)s, and no listeners:
                entry of the exporter's expected file allows that network for it (remote_networks).
                Find the peers (`ss -tn 'sport = :{{ $labels.port }}'`); if they are legitimate, add the
                network to the entry, otherwise block them: a public address reaching SSH looks like this.
              ||| % c),
            },
          }),
          nsRule({
            alert: 'NetstatConnectionsRetransmitting',
            // Listeners (their accepted connections) or outbound series (a remote service):
            // retransmitting connections over established connections, each summed over the
            // window. Series exist with --collector.connections.health only.
            expr: nsExpr(|||
              (
                sum_over_time(netstat_listener_connections_retransmitting{%(netstatExporterSelector)s}[%(retransmittingWindow)s])
                / sum_over_time(netstat_listener_connections{%(netstatExporterSelector)s}[%(retransmittingWindow)s])
              or
                sum_over_time(netstat_outbound_connections_retransmitting{%(netstatExporterSelector)s}[%(retransmittingWindow)s])
                / ignoring (state)
                sum_over_time(netstat_outbound_connections{%(netstatExporterSelector)s, protocol="tcp", state="established"}[%(retransmittingWindow)s])
              )
            ||| % c) + ' > %(retransmittingRatioText)s\n' % c,
            'for': c.retransmittingFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $value | humanizePercentage }} of the connections {{ with $labels.remote_port }}to port {{ . }} ({{ $labels.service }}, {{ $labels.remote_network }}){{ else }}of listener {{ $labels.address }}:{{ $labels.port }}{{ end }} retransmitting on {{ $labels.instance }}',
              description: oneLine(|||
                On {{ $labels.instance }}, {{ $value | humanizePercentage }} of the established TCP
                connections {{ with $labels.remote_port }}of process "{{ $labels.process }}" to remote port
                {{ . }} (service "{{ $labels.service }}") in network "{{ $labels.remote_network }}"{{ else }}accepted
                by the listener {{ $labels.address }}:{{ $labels.port }}{{ end }} were in loss recovery or had
                unacknowledged retransmissions, over %(retransmittingWindow)s (more than %(retransmittingPercent)s%%):
                the path loses packets. Look at the RTT and retransmissions on the dashboard and at
                `ss -ti` for those sockets (retrans:, lost:), then at the interfaces and the network in between.
              ||| % c),
            },
          }),
          nsRule({
            alert: 'NetstatOutboundConnectFailures',
            // Failed connects (refused, timed out) over failed plus completed connections, per
            // remote service (a refused connect has lost its port: remote_port="unknown"), when
            // enough of them fail. A service with no completed connection has the ratio 1.
            expr: nsExpr(|||
              sum without (reason) (rate(netstat_outbound_connect_failures_total{%(netstatExporterSelector)s}[%(alertRateInterval)s]))
              /
              (
                (
                  sum without (reason) (rate(netstat_outbound_connect_failures_total{%(netstatExporterSelector)s}[%(alertRateInterval)s]))
                  + sum without (container_id, pod_uid) (rate(netstat_outbound_connections_closed_total{%(netstatExporterSelector)s}[%(alertRateInterval)s]))
                )
                or
                sum without (reason) (rate(netstat_outbound_connect_failures_total{%(netstatExporterSelector)s}[%(alertRateInterval)s]))
              )
            ||| % c) + ' > %(connectFailureRatioText)s and ' % c + nsExpr(|||
              sum without (reason) (rate(netstat_outbound_connect_failures_total{%(netstatExporterSelector)s}[%(alertRateInterval)s]))
            ||| % c) + ' > %(connectFailureMinRateText)s\n' % c,
            'for': c.connectFailureFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: '{{ $value | humanizePercentage }} of the connects to {{ with $labels.service }}{{ . }} {{ end }}port {{ $labels.remote_port }} ({{ $labels.remote_network }}) fail on {{ $labels.instance }}',
              description: oneLine(|||
                On {{ $labels.instance }}, {{ $value | humanizePercentage }} of the outbound TCP connects to
                remote port {{ $labels.remote_port }} (service "{{ $labels.service }}") in network
                "{{ $labels.remote_network }}" failed over %(alertRateInterval)s (more than %(connectFailurePercent)s%%,
                from the kernel's socket-destroy stream): refused (nothing listens there, or a firewall
                rejects) or timed out (SYNs unanswered: the peer or the path is down, or a firewall drops).
                remote_port "unknown" is refused connects, whose port the kernel clears. See
                netstat_outbound_connect_failures_total by reason, then the service itself.
              ||| % c),
            },
          }),
          nsRule({
            alert: 'NetstatSocketQueueBacklog',
            // netstat_socket_queue_max_bytes is the largest single Recv-Q/Send-Q at scrape
            // time; its minimum over the window stays above zero only if some socket never
            // drained.
            expr: nsExpr(|||
              min_over_time(netstat_socket_queue_max_bytes{%(netstatExporterSelector)s}[%(socketQueueWindow)s])
            ||| % c) + ' > 0\n' % c,
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
          }),
          nsRule({
            alert: 'NetstatTcpTimeWaitPileUp',
            expr: nsExpr(|||
              sum without (family) (netstat_sockets{%(netstatExporterSelector)s, protocol="tcp", state="time_wait"})
            ||| % c) + ' > %(timeWaitThresholdText)s\n' % c,
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
          }),
          nsRule({
            alert: 'NetstatTcpCloseWaitPileUp',
            expr: nsExpr(|||
              sum without (family) (netstat_sockets{%(netstatExporterSelector)s, protocol="tcp", state="close_wait"})
            ||| % c) + ' > %(closeWaitThresholdText)s\n' % c,
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
          }),
          nsRule({
            alert: 'NetstatUdpReceiveBufferErrors',
            expr: nsExpr(|||
              rate(netstat_udp_receive_buffer_errors_total{%(netstatExporterSelector)s}[%(alertRateInterval)s])
            ||| % c) + ' > 0\n' % c,
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
          }),
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
            alert: 'NetstatNetnsUnreadable',
            // "vanished": a container stopped while it was being read, normal churn.
            expr: |||
              sum without (reason) (rate(netstat_netns_errors_total{%(netstatExporterSelector)s, reason!="vanished"}[%(alertRateInterval)s])) > 0
            ||| % c,
            'for': c.netnsUnreadableFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'netstat_exporter on {{ $labels.instance }} cannot read some network namespaces ({{ $value | humanize }}/s)',
              description: oneLine(|||
                For %(netnsUnreadableFor)s netstat_exporter (--netns=all) on {{ $labels.instance }} has failed to
                read network namespaces (netstat_netns_errors_total, reasons other than "vanished"), so the
                sockets, listeners and interfaces of some containers or pods are missing. Usually missing
                privileges: CAP_SYS_ADMIN (setns), CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (other processes'
                /proc/<pid>/ns/net), hostPID, or /run/netns not mounted; the exporter's log names the
                namespace and the error. See docs/deploying.md, "Containers and pods".
              ||| % c),
            },
          },
          {
            alert: 'NetstatNetnsDropped',
            expr: |||
              netstat_netns_dropped{%(netstatExporterSelector)s} > 0
            ||| % c,
            'for': c.netnsDroppedFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'netstat_exporter on {{ $labels.instance }} leaves out {{ $value }} network namespaces (--netns.max)',
              description: oneLine(|||
                For %(netnsDroppedFor)s netstat_exporter on {{ $labels.instance }} has found more network namespaces than
                --netns.max allows and left {{ $value }} of them out (netstat_netns_dropped): their containers and
                pods are not monitored. Raise --netns.max (each namespace costs a few series per
                collector) or narrow --netns.include / --netns.exclude.
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
