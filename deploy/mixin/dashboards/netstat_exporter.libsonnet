// The netstat_exporter Grafana dashboard: sockets, listeners, interfaces (netstat -i),
// protocol counters (netstat -s) and the exporter's own health, for the hosts picked by the
// $job and $instance variables. Rendered to dashboards/netstat_exporter.json by render.py.
local p = import '../lib/panels.libsonnet';

{
  grafanaDashboards+:: {
    'netstat_exporter.json':
      local c = $._config;
      // Every query is filtered by the two variables (%(sel)s below).
      //   sel: the exporter's own series (health, build info);
      //   ns:  per-namespace series (sockets, listeners, connections, interfaces, protocols),
      //        also filtered by $netns. With --netns=self they have no netns label, and
      //        $netns's All value (.*) matches the empty label, so nothing changes there.
      //   pod: the namespaces of the pods picked by $pod (netstat_netns_info, --netns=all).
      local v = {
        sel: 'job=~"$job",instance=~"$instance"',
        ns: 'job=~"$job",instance=~"$instance",netns=~"$netns"',
        info: 'job=~"$job",instance=~"$instance",netns=~"$netns",pod_uid=~"$pod"',
      };
      // `X` restricted to the namespaces picked by $netns and $pod, with their name and pod uid
      // as labels (netstat_netns_info, one per namespace and host).
      local withInfo(x) =
        '%s * on (instance, netns) group_left (name, pod_uid, container_id) max by (instance, netns, name, pod_uid, container_id) (netstat_netns_info{%s})' % [x, v.info];
      {
        __requires: [
          { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
          { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
          { type: 'panel', id: 'timeseries', name: 'Time series', version: '' },
          { type: 'panel', id: 'stat', name: 'Stat', version: '' },
          { type: 'panel', id: 'table', name: 'Table', version: '' },
        ],
        // Grafana adds its built-in annotation itself; none is declared here, so no data source
        // uid is hard-coded anywhere in the dashboard.
        annotations: { list: [] },
        description: 'netstat_exporter: socket states and queues, listeners, interfaces (netstat -i) and protocol counters (netstat -s) across hosts.',
        editable: false,
        fiscalYearStartMonth: 0,
        graphTooltip: 1,
        id: null,
        links: [],
        refresh: c.dashboardRefresh,
        schemaVersion: 39,
        tags: c.dashboardTags,
        time: { from: c.dashboardTimeFrom, to: 'now' },
        timepicker: {},
        timezone: c.dashboardTimezone,
        title: c.dashboardTitle,
        uid: c.dashboardUid,
        version: 1,
        weekStart: '',
        templating: {
          list: [
            p.datasourceVariable,
            p.queryVariable('job', 'Job', 'label_values(netstat_exporter_build_info, job)'),
            p.queryVariable('instance', 'Instance', 'label_values(netstat_exporter_build_info{job=~"$job"}, instance)'),
            // Namespaces exist with --netns=all; the own namespace has netns="" (the first
            // option, labelled by its empty value), so All must be .* to match it.
            p.queryVariable('pod', 'Pod uid', 'label_values(netstat_netns_info{job=~"$job",instance=~"$instance"}, pod_uid)', allValue='.*'),
            p.queryVariable('netns', 'Network namespace', 'label_values(netstat_netns_info{job=~"$job",instance=~"$instance",pod_uid=~"$pod"}, netns)', allValue='.*'),
          ],
        },
        panels: p.withIds([
          p.row('Overview', [0, 0, 24, 1]),
          p.stat('Exporters up', 'Targets of the selected jobs and instances that Prometheus scraped successfully (up == 1).',
                 'sum(up{%(sel)s})' % v,
                 [{"color": "red", "value": null}, {"color": "green", "value": 1}], [0, 1, 3, 4]),
          p.stat('TCP established', 'TCP connections in ESTABLISHED on the selected hosts (netstat_sockets).',
                 'sum(netstat_sockets{%(ns)s,protocol="tcp",state="established"})' % v,
                 [{"color": "green", "value": null}], [3, 1, 3, 4]),
          p.stat('TIME_WAIT', 'TCP sockets in TIME_WAIT: connections this host closed first. Many of them mean many short-lived outgoing connections.',
                 'sum(netstat_sockets{%(ns)s,protocol="tcp",state="time_wait"})' % v,
                 [{"color": "green", "value": null}, {"color": "orange", "value": c.timeWaitThreshold}], [6, 1, 3, 4]),
          p.stat('CLOSE_WAIT', 'TCP sockets in CLOSE_WAIT: the peer closed, the local application has not. A growing number is a socket leak.',
                 'sum(netstat_sockets{%(ns)s,protocol="tcp",state="close_wait"})' % v,
                 [{"color": "green", "value": null}, {"color": "orange", "value": c.closeWaitThreshold}], [9, 1, 3, 4]),
          p.stat('Listeners', 'Listening sockets (address, port, protocol) on the selected hosts.',
                 'count(netstat_listener_info{%(ns)s})' % v,
                 [{"color": "green", "value": null}], [12, 1, 3, 4]),
          p.stat('Unexpected listeners', 'Listeners that no entry of --collector.listeners.expected allows (0 when the file is not used).',
                 'count(netstat_listener_unexpected{%(ns)s} == 1) or vector(0)' % v,
                 [{"color": "green", "value": null}, {"color": "red", "value": 1}], [15, 1, 3, 4]),
          p.stat('Promiscuous interfaces', 'Interfaces with the promisc flag (a packet capture, a bridge port, or ip link set promisc on).',
                 'sum(netstat_interface_flag{%(ns)s,flag="promisc"})' % v,
                 [{"color": "green", "value": null}, {"color": "orange", "value": 1}], [18, 1, 3, 4]),
          p.stat('Failing collectors', 'Collectors whose last scrape met an error (netstat_scrape_collector_success == 0); the exporter\'s log says which file and line.',
                 'count(netstat_scrape_collector_success{%(sel)s} == 0) or vector(0)' % v,
                 [{"color": "green", "value": null}, {"color": "red", "value": 1}], [21, 1, 3, 4]),
          p.row('Sockets', [0, 5, 24, 1]),
          p.timeseries('TCP sockets by state', 'netstat_sockets for TCP, by address family and state (netstat -ant / ss -s).', 'short', [
            p.target('sum by (family, state) (netstat_sockets{%(ns)s,protocol="tcp"})' % v, '{{family}} {{state}}'),
          ], [0, 6, 12, 8]),
          p.timeseries('TIME_WAIT and CLOSE_WAIT per host', 'TIME_WAIT: closed by this host, waiting 60 s (ephemeral ports in use). CLOSE_WAIT: closed by the peer, not yet by the application (a leak if it grows). Alerts: NetstatTcpTimeWaitPileUp, NetstatTcpCloseWaitPileUp.', 'short', [
            p.target('sum by (instance, state) (netstat_sockets{%(ns)s,protocol="tcp",state=~"time_wait|close_wait"})' % v, '{{instance}} {{state}}'),
          ], [12, 6, 12, 8]),
          p.timeseries('UDP, UDP-Lite and raw sockets', 'Datagram sockets by protocol, family and state (connected: connect() called).', 'short', [
            p.target('sum by (protocol, family, state) (netstat_sockets{%(ns)s,protocol!="tcp"})' % v, '{{protocol}}/{{family}} {{state}}'),
          ], [0, 14, 12, 8]),
          p.timeseries('Unix sockets', 'Unix domain sockets by type and state (/proc/net/unix).', 'short', [
            p.target('sum by (type, state) (netstat_unix_sockets{%(ns)s})' % v, '{{type}} {{state}}'),
          ], [12, 14, 12, 8]),
          p.timeseries('Queued bytes (sum of Recv-Q / Send-Q)', 'Bytes waiting in socket queues, summed over non-listening sockets. Receive: the application does not read; send: the peer does not read or the path is slow. Should stay near zero.', 'bytes', [
            p.target('sum by (instance, protocol, queue) (netstat_socket_queued_bytes{%(ns)s})' % v, '{{instance}} {{protocol}} {{queue}}'),
          ], [0, 22, 8, 8]),
          p.timeseries('Largest single queue', 'The largest Recv-Q / Send-Q of a single socket. Alert NetstatSocketQueueBacklog fires when it never drops to zero for 15 minutes.', 'bytes', [
            p.target('max by (instance, protocol, queue) (netstat_socket_queue_max_bytes{%(ns)s})' % v, '{{instance}} {{protocol}} {{queue}}'),
          ], [8, 22, 8, 8]),
          p.timeseries('Sockets with data queued', 'Number of non-listening sockets whose receive or send queue is not empty.', 'short', [
            p.target('sum by (instance, protocol, queue) (netstat_sockets_queued{%(ns)s})' % v, '{{instance}} {{protocol}} {{queue}}'),
          ], [16, 22, 8, 8]),
          p.row('Listeners', [0, 30, 24, 1]),
          p.table('Listeners', 'Every listening socket: who listens (service from /etc/services, process and user, and the pod uid and container id of the owning process: hostNetwork pods too), how many sockets share the address (SO_REUSEPORT), the accept queue against its limit (TCP), established connections, UDP receive queue and drops. Unexpected listeners (not allowed by --collector.listeners.expected) are highlighted.', [
            p.tableTarget('max by (instance, netns, protocol, family, address, port, service, process, user, pod_uid, container_id) (netstat_listener_info{%(ns)s})' % v, '__auto'),
            p.tableTarget('max by (instance, netns, protocol, family, address, port) (netstat_listener_sockets{%(ns)s})' % v, '__auto'),
            p.tableTarget('max by (instance, netns, protocol, family, address, port) (netstat_listener_accept_queue{%(ns)s})' % v, '__auto'),
            p.tableTarget('max by (instance, netns, protocol, family, address, port) (netstat_listener_accept_queue_limit{%(ns)s})' % v, '__auto'),
            p.tableTarget('max by (instance, netns, protocol, family, address, port) (netstat_listener_accept_queue{%(ns)s} / (netstat_listener_accept_queue_limit{%(ns)s} > 0))' % v, '__auto'),
            p.tableTarget('max by (instance, netns, protocol, family, address, port) (netstat_listener_connections{%(ns)s})' % v, '__auto'),
            p.tableTarget('max by (instance, netns, protocol, family, address, port) (netstat_listener_receive_queue_bytes{%(ns)s})' % v, '__auto'),
            p.tableTarget('sum by (instance, netns, protocol, family, address, port) (rate(netstat_listener_drops_total{%(ns)s}[$__rate_interval]))' % v, '__auto'),
            p.tableTarget('max by (instance, netns, protocol, family, address, port) (netstat_listener_unexpected{%(ns)s})' % v, '__auto'),
          ], [
            {
              "id": "merge",
              "options": {}
            },
            {
              "id": "organize",
              "options": {
                "excludeByName": {
                  "Time": true,
                  "Value #A": true
                },
                "renameByName": {
                  "instance": "Instance",
                  "netns": "Netns",
                  "protocol": "Protocol",
                  "family": "Family",
                  "address": "Address",
                  "port": "Port",
                  "service": "Service",
                  "process": "Process",
                  "user": "User",
                  "pod_uid": "Pod uid",
                  "container_id": "Container",
                  "Value #A": "Info",
                  "Value #B": "Sockets",
                  "Value #C": "Accept queue",
                  "Value #D": "Accept queue limit",
                  "Value #E": "Accept queue fill",
                  "Value #F": "Connections",
                  "Value #G": "UDP receive queue",
                  "Value #H": "UDP drops/s",
                  "Value #I": "Unexpected"
                },
                "indexByName": {
                  "instance": 0,
                  "netns": 1,
                  "protocol": 2,
                  "family": 3,
                  "address": 4,
                  "port": 5,
                  "service": 6,
                  "process": 7,
                  "user": 8,
                  "pod_uid": 9,
                  "container_id": 10,
                  "Value #B": 11,
                  "Value #C": 12,
                  "Value #D": 13,
                  "Value #E": 14,
                  "Value #F": 15,
                  "Value #G": 16,
                  "Value #H": 17,
                  "Value #I": 18
                }
              }
            }
          ], [
            {
              "matcher": {
                "id": "byName",
                "options": "Unexpected"
              },
              "properties": [
                {
                  "id": "mappings",
                  "value": [
                    {
                      "type": "value",
                      "options": {
                        "1": {
                          "text": "UNEXPECTED",
                          "color": "red",
                          "index": 0
                        },
                        "0": {
                          "text": "",
                          "index": 1
                        }
                      }
                    }
                  ]
                },
                {
                  "id": "custom.cellOptions",
                  "value": {
                    "type": "color-background"
                  }
                }
              ]
            },
            {
              "matcher": {
                "id": "byName",
                "options": "Accept queue fill"
              },
              "properties": [
                {
                  "id": "unit",
                  "value": "percentunit"
                },
                {
                  "id": "min",
                  "value": 0
                },
                {
                  "id": "max",
                  "value": 1
                },
                {
                  "id": "thresholds",
                  "value": {
                    "mode": "absolute",
                    "steps": [
                      {
                        "color": "green",
                        "value": null
                      },
                      {
                        "color": "orange",
                        "value": 0.5
                      },
                      {
                        "color": "red",
                        "value": c.acceptQueueFillRatio
                      }
                    ]
                  }
                },
                {
                  "id": "custom.cellOptions",
                  "value": {
                    "type": "gauge",
                    "mode": "basic"
                  }
                }
              ]
            },
            {
              "matcher": {
                "id": "byName",
                "options": "UDP receive queue"
              },
              "properties": [
                {
                  "id": "unit",
                  "value": "bytes"
                }
              ]
            },
            {
              "matcher": {
                "id": "byName",
                "options": "UDP drops/s"
              },
              "properties": [
                {
                  "id": "unit",
                  "value": "pps"
                }
              ]
            }
          ], [0, 31, 24, 12]),
          p.timeseries('Accept queue fill (top 10 listeners)', 'Accept queue / limit for the ten fullest TCP listeners. At 100% new connections are dropped (listen overflows). Alert NetstatListenerAcceptQueueNearLimit: over 80% for 5 minutes.', 'percentunit', [
            p.target('topk(10, max by (instance, netns, address, port) (netstat_listener_accept_queue{%(ns)s} / (netstat_listener_accept_queue_limit{%(ns)s} > 0)))' % v, '{{instance}} {{netns}} {{address}}:{{port}}'),
          ], [0, 43, 8, 8]) + {
            fieldConfig+: {
              defaults+: {
                "thresholds": {
                  "mode": "absolute",
                  "steps": [
                    {
                      "color": "green",
                      "value": null
                    },
                    {
                      "color": "red",
                      "value": c.acceptQueueFillRatio
                    }
                  ]
                },
                "min": 0,
                "max": 1,
                custom+: {
                  "thresholdsStyle": {
                    "mode": "dashed"
                  }
                }
              }
            }
          },
          p.timeseries('UDP listener drops', 'Datagrams dropped per UDP listener (full receive buffer), from netstat_listener_drops_total.', 'pps', [
            p.target('sum by (instance, netns, address, port) (rate(netstat_listener_drops_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} {{netns}} {{address}}:{{port}}'),
          ], [8, 43, 8, 8]),
          p.timeseries('Established connections per listener (top 10)', 'Connections established to each listening port (netstat_listener_connections).', 'short', [
            p.target('topk(10, max by (instance, netns, address, port) (netstat_listener_connections{%(ns)s}))' % v, '{{instance}} {{netns}} {{address}}:{{port}}'),
          ], [16, 43, 8, 8]),
          p.row('Interfaces', [0, 51, 24, 1]),
          p.timeseries('Throughput', 'Bits per second received (positive) and transmitted (negative) per interface (netstat_interface_bytes_total).', 'bps', [
            p.target('sum by (instance, netns, device, direction) (rate(netstat_interface_bytes_total{%(ns)s}[$__rate_interval])) * 8' % v, '{{instance}} {{netns}} {{device}} {{direction}}'),
          ], [0, 52, 12, 8]) + {
            fieldConfig+: {
              "overrides": [
                {
                  "matcher": {
                    "id": "byRegexp",
                    "options": ".*transmit.*"
                  },
                  "properties": [
                    {
                      "id": "custom.transform",
                      "value": "negative-Y"
                    }
                  ]
                }
              ]
            }
          },
          p.timeseries('Packets', 'Packets received and transmitted per interface (netstat -i RX-OK / TX-OK).', 'pps', [
            p.target('sum by (instance, netns, device, direction) (rate(netstat_interface_packets_total{%(ns)s,outcome="ok"}[$__rate_interval]))' % v, '{{instance}} {{netns}} {{device}} {{direction}}'),
          ], [12, 52, 12, 8]) + {
            fieldConfig+: {
              "overrides": [
                {
                  "matcher": {
                    "id": "byRegexp",
                    "options": ".*transmit.*"
                  },
                  "properties": [
                    {
                      "id": "custom.transform",
                      "value": "negative-Y"
                    }
                  ]
                }
              ]
            }
          },
          p.timeseries('Errors, drops and overruns', 'netstat -i RX-ERR/TX-ERR, RX-DRP/TX-DRP and RX-OVR/TX-OVR per interface and second. Alerts: NetstatInterfaceErrors, NetstatInterfaceDrops, NetstatInterfaceOverruns.', 'pps', [
            p.target('sum by (instance, netns, device, direction, outcome) (rate(netstat_interface_packets_total{%(ns)s,outcome!="ok"}[$__rate_interval]))' % v, '{{instance}} {{netns}} {{device}} {{direction}} {{outcome}}'),
          ], [0, 60, 12, 8]),
          p.timeseries('Errors, drops and overruns as a share of packets', 'The ratio the interface alerts use: errors (1%), drops (1%) and overruns (0.1%) over all packets of that direction.', 'percentunit', [
            p.target('sum by (instance, netns, device, direction, outcome) (rate(netstat_interface_packets_total{%(ns)s,outcome!="ok"}[$__rate_interval])) / on (instance, netns, device, direction) group_left sum by (instance, netns, device, direction) (rate(netstat_interface_packets_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} {{netns}} {{device}} {{direction}} {{outcome}}'),
          ], [12, 60, 12, 8]),
          p.table('Interfaces (promiscuous highlighted)', 'Every interface with its netstat -i flags (Flg), operational state, MTU and link speed; promiscuous interfaces are highlighted (alert NetstatInterfacePromiscuous).', [
            p.tableTarget('max by (instance, netns, device, flags, operstate, type) (netstat_interface_info{%(ns)s})' % v, '__auto'),
            p.tableTarget('max by (instance, netns, device) (netstat_interface_flag{%(ns)s,flag="promisc"})' % v, '__auto'),
            p.tableTarget('max by (instance, netns, device) (netstat_interface_mtu_bytes{%(ns)s})' % v, '__auto'),
            p.tableTarget('max by (instance, netns, device) (netstat_interface_flag{%(ns)s,flag="up"})' % v, '__auto'),
          ], [
            {
              "id": "merge",
              "options": {}
            },
            {
              "id": "organize",
              "options": {
                "excludeByName": {
                  "Time": true,
                  "Value #A": true
                },
                "renameByName": {
                  "instance": "Instance",
                  "netns": "Netns",
                  "device": "Device",
                  "flags": "Flags",
                  "operstate": "State",
                  "type": "Type",
                  "Value #A": "Info",
                  "Value #B": "Promiscuous",
                  "Value #C": "MTU",
                  "Value #D": "Up"
                },
                "indexByName": {
                  "instance": 0,
                  "netns": 1,
                  "device": 2,
                  "flags": 3,
                  "operstate": 4,
                  "type": 5,
                  "Value #B": 6,
                  "Value #C": 7,
                  "Value #D": 8
                }
              }
            }
          ], [
            {
              "matcher": {
                "id": "byName",
                "options": "Promiscuous"
              },
              "properties": [
                {
                  "id": "mappings",
                  "value": [
                    {
                      "type": "value",
                      "options": {
                        "1": {
                          "text": "PROMISC",
                          "color": "orange",
                          "index": 0
                        },
                        "0": {
                          "text": "no",
                          "index": 1
                        }
                      }
                    }
                  ]
                },
                {
                  "id": "custom.cellOptions",
                  "value": {
                    "type": "color-background"
                  }
                }
              ]
            },
            {
              "matcher": {
                "id": "byName",
                "options": "Up"
              },
              "properties": [
                {
                  "id": "mappings",
                  "value": [
                    {
                      "type": "value",
                      "options": {
                        "1": {
                          "text": "up",
                          "color": "green",
                          "index": 0
                        },
                        "0": {
                          "text": "down",
                          "color": "red",
                          "index": 1
                        }
                      }
                    }
                  ]
                },
                {
                  "id": "custom.cellOptions",
                  "value": {
                    "type": "color-text"
                  }
                }
              ]
            },
            {
              "matcher": {
                "id": "byName",
                "options": "MTU"
              },
              "properties": [
                {
                  "id": "unit",
                  "value": "bytes"
                }
              ]
            }
          ], [0, 68, 24, 10]),
          p.row('Protocols (netstat -s)', [0, 78, 24, 1]),
          p.timeseries('TCP retransmissions', 'Segments retransmitted per second, and as a share of segments sent (netstat -s: segments retransmitted).', 'short', [
            p.target('sum by (instance) (rate(netstat_tcp_retransmitted_segments_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} retransmitted/s'),
            p.target('sum by (instance) (rate(netstat_tcp_retransmitted_segments_total{%(ns)s}[$__rate_interval])) / sum by (instance) (rate(netstat_tcp_segments_sent_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} share of sent'),
          ], [0, 79, 8, 8]) + {
            fieldConfig+: {
              "overrides": [
                {
                  "matcher": {
                    "id": "byFrameRefID",
                    "options": "B"
                  },
                  "properties": [
                    {
                      "id": "unit",
                      "value": "percentunit"
                    },
                    {
                      "id": "custom.axisPlacement",
                      "value": "right"
                    }
                  ]
                }
              ]
            }
          },
          p.timeseries('Listen overflows and drops', 'Completed handshakes dropped because an accept queue was full (ListenOverflows) and all SYNs/ACKs to listeners dropped (ListenDrops). Alert NetstatTcpListenOverflows.', 'ops', [
            p.target('sum by (instance) (rate(netstat_tcp_listen_overflows_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} overflows'),
            p.target('sum by (instance) (rate(netstat_tcp_listen_drops_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} drops'),
          ], [8, 79, 8, 8]),
          p.timeseries('SYN cookies', 'SYN cookies sent because a SYN queue was full (a SYN flood or a listener far behind), valid ones received back, and invalid ones.', 'ops', [
            p.target('sum by (instance) (rate(netstat_tcp_syncookies_sent_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} sent'),
            p.target('sum by (instance) (rate(netstat_tcp_syncookies_received_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} received'),
            p.target('sum by (instance) (rate(netstat_tcp_syncookies_failed_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} failed'),
          ], [16, 79, 8, 8]),
          p.timeseries('UDP buffer errors', 'Datagrams dropped because a socket\'s receive buffer was full (RcvbufErrors) and sends that failed for a full send buffer (SndbufErrors). Alert NetstatUdpReceiveBufferErrors.', 'pps', [
            p.target('sum by (instance, family) (rate(netstat_udp_receive_buffer_errors_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} {{family}} receive'),
            p.target('sum by (instance, family) (rate(netstat_udp_send_buffer_errors_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} {{family}} send'),
          ], [0, 87, 8, 8]),
          p.timeseries('TCP connection opens', 'Connections opened by this host (active), accepted (passive) and failed attempts, per second.', 'ops', [
            p.target('sum by (instance) (rate(netstat_tcp_active_opens_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} active'),
            p.target('sum by (instance) (rate(netstat_tcp_passive_opens_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} passive'),
            p.target('sum by (instance) (rate(netstat_tcp_attempt_fails_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} failed'),
          ], [8, 87, 8, 8]),
          p.timeseries('UDP datagrams', 'Datagrams received and sent, and datagrams to ports nobody listens on.', 'pps', [
            p.target('sum by (instance, family) (rate(netstat_udp_datagrams_received_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} {{family}} received'),
            p.target('sum by (instance, family) (rate(netstat_udp_datagrams_sent_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} {{family}} sent'),
            p.target('sum by (instance, family) (rate(netstat_udp_no_ports_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} {{family}} no port'),
          ], [16, 87, 8, 8]),
          p.row('Exporter health', [0, 95, 24, 1]),
          p.timeseries('Collector success', '1 when the collector read everything in the scrape, 0 when it met an error (alert NetstatExporterCollectorFailed).', 'short', [
            p.target('min by (instance, collector) (netstat_scrape_collector_success{%(sel)s})' % v, '{{instance}} {{collector}}'),
          ], [0, 96, 8, 8]) + {
            fieldConfig+: {
              defaults+: {
                "thresholds": {
                  "mode": "absolute",
                  "steps": [
                    {
                      "color": "red",
                      "value": null
                    },
                    {
                      "color": "green",
                      "value": 1
                    }
                  ]
                },
                "min": 0,
                "max": 1,
                custom+: {
                  "thresholdsStyle": {
                    "mode": "dashed"
                  }
                }
              }
            }
          },
          p.timeseries('Collector duration', 'Time each collector took per scrape; the sockets collector grows with the number of sockets.', 's', [
            p.target('max by (instance, collector) (netstat_scrape_collector_duration_seconds{%(sel)s})' % v, '{{instance}} {{collector}}'),
          ], [8, 96, 8, 8]),
          p.timeseries('Scrape duration', 'How long Prometheus\' scrape of the exporter took, against the scrape timeout.', 's', [
            p.target('scrape_duration_seconds{%(sel)s}' % v, '{{instance}}'),
          ], [16, 96, 8, 8]),
          p.timeseries('Scrape errors', 'Read and parse errors per collector and source file (netstat_scrape_errors_total); zero per collector when there are none.', 'short', [
            p.target('sum by (instance, collector, source) (increase(netstat_scrape_errors_total{%(sel)s}[$__rate_interval])) or sum by (instance, collector) (0 * netstat_scrape_collector_success{%(sel)s})' % v, '{{instance}} {{collector}} {{source}}'),
          ], [0, 104, 8, 8]),
          p.timeseries('Listener owner lookups', 'How listeners were attributed to processes: from the cache, by walking /proc/<pid>/fd, or failed (missing CAP_SYS_PTRACE/CAP_DAC_READ_SEARCH). Also listeners left out by the listener limit.', 'short', [
            p.target('sum by (instance, result) (rate(netstat_listener_owner_lookups_total{%(sel)s}[$__rate_interval]))' % v, '{{instance}} {{result}}'),
            p.target('max by (instance) (netstat_listeners_dropped{%(sel)s})' % v, '{{instance}} listeners dropped'),
          ], [8, 104, 8, 8]),
          p.timeseries('Exporter memory and CPU', 'Resident memory and CPU use of the exporter process.', 'bytes', [
            p.target('process_resident_memory_bytes{%(sel)s}' % v, '{{instance}} memory'),
            p.target('rate(process_cpu_seconds_total{%(sel)s}[$__rate_interval])' % v, '{{instance}} CPU'),
          ], [16, 104, 8, 8]) + {
            fieldConfig+: {
              "overrides": [
                {
                  "matcher": {
                    "id": "byFrameRefID",
                    "options": "B"
                  },
                  "properties": [
                    {
                      "id": "unit",
                      "value": "percentunit"
                    },
                    {
                      "id": "custom.axisPlacement",
                      "value": "right"
                    }
                  ]
                }
              ]
            }
          },
          p.row('Outbound connections (who this host talks to)', [0, 112, 24, 1]),
          p.table('Outbound connections by process and destination', 'Sockets this host opened (netstat -tunp without the inbound ones), by process (with its pod uid and container id), remote port and service, remote network and state. Series that no connections: entry of the expected file allows are highlighted (alert NetstatUnexpectedOutboundConnection); remote_port="other" and process="other" are folded series (--collector.connections.max).', [
            p.tableTarget('sum by (instance, netns, pod_uid, container_id, protocol, process, remote_port, service, remote_network, state) (netstat_outbound_connections{%(ns)s})' % v, '__auto'),
            p.tableTarget('max by (instance, netns, pod_uid, container_id, protocol, process, remote_port, service, remote_network) (netstat_outbound_unexpected{%(ns)s})' % v, '__auto'),
          ], [
            { id: 'merge', options: {} },
            {
              id: 'organize',
              options: {
                excludeByName: { Time: true },
                renameByName: { 'Value #A': 'Sockets', 'Value #B': 'Unexpected' },
              },
            },
          ], [
            {
              matcher: { id: 'byName', options: 'Unexpected' },
              properties: [
                {
                  id: 'mappings',
                  value: [{ type: 'value', options: { '1': { text: 'UNEXPECTED', color: 'red', index: 0 } } }],
                },
                { id: 'custom.cellOptions', value: { type: 'color-background' } },
              ],
            },
          ], [0, 113, 16, 10]),
          p.stat('Unexpected outbound sockets', 'Outbound sockets that no connections: entry of the expected file allows (absent without the section).', 'sum(netstat_outbound_unexpected_connections{%(ns)s})' % v, [
            { color: 'green', value: null },
            { color: 'red', value: 1 },
          ], [16, 113, 8, 5]),
          p.timeseries('New destinations', 'Remote addresses not seen within --collector.connections.destination-memory, per remote network and interval: a host that starts phoning home shows up here without a per-address label.', 'short', [
            p.target('sum by (instance, netns, remote_network) (increase(netstat_outbound_new_destinations_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} {{netns}} {{remote_network}}'),
          ], [16, 118, 8, 5]),
          p.timeseries('Outbound sockets by process', 'Outbound sockets per owning process (unknown: no owner visible, such as TIME-WAIT sockets).', 'short', [
            p.target('sum by (instance, netns, process) (netstat_outbound_connections{%(ns)s})' % v, '{{instance}} {{netns}} {{process}}'),
          ], [0, 123, 12, 8]),
          p.timeseries('Distinct destinations by network', 'Distinct remote addresses of outbound sockets now, per remote network.', 'short', [
            p.target('sum by (instance, netns, remote_network) (netstat_outbound_destinations{%(ns)s})' % v, '{{instance}} {{netns}} {{remote_network}}'),
          ], [12, 123, 12, 8]),
          p.row('Network namespaces (containers and pods, --netns=all)', [0, 131, 24, 1]),
          p.stat('Namespaces read', 'Network namespaces the exporter read in its last scrape, its own included (netstat_netns). 1 with --netns=self (no netstat_netns then: no data).',
                 'sum(netstat_netns{%(sel)s})' % v,
                 [{ color: 'green', value: null }], [0, 132, 4, 4]),
          p.stat('Namespaces left out', 'Namespaces not read because of --netns.max (netstat_netns_dropped): raise the limit or narrow --netns.include/--netns.exclude.',
                 'sum(netstat_netns_dropped{%(sel)s})' % v,
                 [{ color: 'green', value: null }, { color: 'orange', value: 1 }], [4, 132, 4, 4]),
          p.timeseries('Namespace read errors', 'Namespaces that could not be read, by reason (netstat_netns_errors_total). "vanished" is a container that stopped during the scrape and is harmless; the others mean missing privileges (CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, hostPID) or an unmounted /run/netns. Zero per host when there are none. Alert NetstatNetnsUnreadable.', 'short', [
            p.target('sum by (instance, reason) (increase(netstat_netns_errors_total{%(sel)s}[$__rate_interval])) or sum by (instance) (0 * netstat_netns{%(sel)s})' % v, '{{instance}} {{reason}}'),
          ], [8, 132, 16, 4]),
          p.table('Network namespaces', 'One row per network namespace read (netstat_netns_info): its inode (netns, empty for the exporter\'s own), its name in /run/netns, the container id and pod uid that own it, and what is in it: sockets, TCP established, listeners, outbound sockets, interfaces. Join the pod uid with kube-state-metrics\' kube_pod_info{uid} for the pod name (docs/deploying.md). Filtered by $pod and $netns.', [
            p.tableTarget('max by (instance, netns, name, container_id, pod_uid) (netstat_netns_info{%(info)s})' % v, '__auto'),
            p.tableTarget('sum by (instance, netns) (netstat_sockets{%(ns)s}) and on (instance, netns) netstat_netns_info{%(info)s}' % v, '__auto'),
            p.tableTarget('sum by (instance, netns) (netstat_sockets{%(ns)s,protocol="tcp",state="established"}) and on (instance, netns) netstat_netns_info{%(info)s}' % v, '__auto'),
            p.tableTarget('count by (instance, netns) (netstat_listener_info{%(ns)s}) and on (instance, netns) netstat_netns_info{%(info)s}' % v, '__auto'),
            p.tableTarget('sum by (instance, netns) (netstat_outbound_connections{%(ns)s}) and on (instance, netns) netstat_netns_info{%(info)s}' % v, '__auto'),
            p.tableTarget('count by (instance, netns) (netstat_interface_info{%(ns)s}) and on (instance, netns) netstat_netns_info{%(info)s}' % v, '__auto'),
          ], [
            { id: 'merge', options: {} },
            {
              id: 'organize',
              options: {
                excludeByName: { Time: true, 'Value #A': true },
                renameByName: {
                  instance: 'Instance',
                  netns: 'Netns',
                  name: 'Name',
                  container_id: 'Container id',
                  pod_uid: 'Pod uid',
                  'Value #B': 'Sockets',
                  'Value #C': 'TCP established',
                  'Value #D': 'Listeners',
                  'Value #E': 'Outbound sockets',
                  'Value #F': 'Interfaces',
                },
                indexByName: {
                  instance: 0,
                  netns: 1,
                  name: 2,
                  pod_uid: 3,
                  container_id: 4,
                  'Value #B': 5,
                  'Value #C': 6,
                  'Value #D': 7,
                  'Value #E': 8,
                  'Value #F': 9,
                },
              },
            },
          ], [], [0, 136, 24, 10]),
          p.timeseries('TCP sockets by state and namespace', 'netstat_sockets for TCP per network namespace and state, labelled with the namespace\'s name and pod uid (netstat_netns_info). Filtered by $pod and $netns.', 'short', [
            p.target(withInfo('sum by (instance, netns, state) (netstat_sockets{%(ns)s,protocol="tcp"})' % v), '{{instance}} {{netns}} {{name}} {{pod_uid}} {{state}}'),
          ], [0, 146, 12, 8]),
          p.timeseries('Interface errors and drops by namespace', 'netstat -i RX/TX errors, drops and overruns per second, summed per network namespace (a pod\'s eth0 and the host\'s veth peer are two namespaces). Alerts NetstatInterfaceErrors/Drops/Overruns name the pod.', 'pps', [
            p.target(withInfo('sum by (instance, netns, outcome) (rate(netstat_interface_packets_total{%(ns)s,outcome!="ok"}[$__rate_interval]))' % v), '{{instance}} {{netns}} {{name}} {{pod_uid}} {{outcome}}'),
          ], [12, 146, 12, 8]),
          p.timeseries('Top namespaces by outbound sockets', 'The ten network namespaces (containers, pods) with the most outbound sockets (netstat_outbound_connections): which pod talks to the world the most.', 'short', [
            p.target('topk(10, ' + withInfo('sum by (instance, netns) (netstat_outbound_connections{%(ns)s})' % v) + ')', '{{instance}} {{netns}} {{name}} {{pod_uid}}'),
          ], [0, 154, 12, 8]),
          p.timeseries('Top namespaces by listeners', 'The ten network namespaces with the most listening sockets (netstat_listener_info): where the services run.', 'short', [
            p.target('topk(10, ' + withInfo('count by (instance, netns) (netstat_listener_info{%(ns)s})' % v) + ')', '{{instance}} {{netns}} {{name}} {{pod_uid}}'),
          ], [12, 154, 12, 8]),
          p.row('Connection health (--collector.connections.health)', [0, 162, 24, 1]),
          p.timeseries('RTT p50 / p99 per listener', 'Smoothed RTT (tcpi_rtt) of the established connections each listener accepted: histogram_quantile over the gauge buckets of netstat_listener_rtt_seconds (a distribution of the connections now, so no rate()). Needs --collector.connections.health.', 's', [
            p.target('histogram_quantile(0.5, sum by (instance, netns, address, port, le) (netstat_listener_rtt_seconds_bucket{%(ns)s}))' % v, 'p50 {{instance}} {{netns}} {{address}}:{{port}}'),
            p.target('histogram_quantile(0.99, sum by (instance, netns, address, port, le) (netstat_listener_rtt_seconds_bucket{%(ns)s}))' % v, 'p99 {{instance}} {{netns}} {{address}}:{{port}}'),
          ], [0, 163, 12, 8]),
          p.timeseries('RTT p50 / p99 per remote service', 'Smoothed RTT of the established outbound connections per remote port, service and network (netstat_outbound_rtt_seconds, gauge buckets, no rate()). Needs --collector.connections.health.', 's', [
            p.target('histogram_quantile(0.5, sum by (instance, netns, remote_port, service, remote_network, le) (netstat_outbound_rtt_seconds_bucket{%(ns)s}))' % v, 'p50 {{instance}} {{netns}} {{remote_port}} {{service}} {{remote_network}}'),
            p.target('histogram_quantile(0.99, sum by (instance, netns, remote_port, service, remote_network, le) (netstat_outbound_rtt_seconds_bucket{%(ns)s}))' % v, 'p99 {{instance}} {{netns}} {{remote_port}} {{service}} {{remote_network}}'),
          ], [12, 163, 12, 8]),
          p.timeseries('Retransmitting connections', 'Established connections in loss recovery or with unacknowledged retransmissions at each scrape, per listener and per remote service (netstat_*_connections_retransmitting). Alert NetstatConnectionsRetransmitting: more than 10% of a listener\'s or a remote service\'s connections over 10 minutes.', 'short', [
            p.target('sum by (instance, netns, address, port) (netstat_listener_connections_retransmitting{%(ns)s})' % v, 'listener {{instance}} {{netns}} {{address}}:{{port}}'),
            p.target('sum by (instance, netns, remote_port, service, remote_network) (netstat_outbound_connections_retransmitting{%(ns)s})' % v, 'to {{instance}} {{netns}} {{remote_port}} {{service}} {{remote_network}}'),
          ], [0, 171, 24, 8]),
          p.row('Inbound connections (who connects in)', [0, 179, 24, 1]),
          p.timeseries('Inbound connections by port and remote network', 'Sockets accepted by the listeners (every state), per listener port and remote network (netstat_inbound_connections; port="other" is the folded series).', 'short', [
            p.target('sum by (instance, netns, port, service, remote_network) (netstat_inbound_connections{%(ns)s})' % v, '{{instance}} {{netns}} {{port}} {{service}} {{remote_network}}'),
          ], [0, 180, 12, 8]),
          p.timeseries('New inbound sources', 'Remote addresses of inbound connections not seen within --collector.connections.destination-memory, per remote network and interval: a public address that starts reaching a listener shows up here.', 'short', [
            p.target('sum by (instance, netns, remote_network) (increase(netstat_inbound_new_sources_total{%(ns)s}[$__rate_interval]))' % v, '{{instance}} {{netns}} {{remote_network}}'),
          ], [12, 180, 8, 8]),
          p.stat('Unexpected inbound sockets', 'Inbound sockets from a remote network that no listeners: entry of the expected file allows for their listener (remote_networks; alert NetstatUnexpectedInboundSource).', 'sum(netstat_inbound_unexpected_connections{%(ns)s})' % v, [
            { color: 'green', value: null },
            { color: 'red', value: 1 },
          ], [20, 180, 4, 8]),
          p.row('Closed connections (every one, from the socket-destroy stream)', [0, 188, 24, 1]),
          p.timeseries('Connections closed and failed per second', 'TCP connections that ended, however short (counted when they close, from the kernel\'s socket-destroy stream: netstat_*_connections_closed_total), per listener and per remote service, and failed connects by reason (netstat_outbound_connect_failures_total; refused connects have remote_port="unknown"). Alert NetstatOutboundConnectFailures.', 'ops', [
            p.target('sum by (instance, netns, port, service) (rate(netstat_inbound_connections_closed_total{%(ns)s}[$__rate_interval]))' % v, 'closed, listener {{instance}} {{netns}} {{port}} {{service}}'),
            p.target('sum by (instance, netns, remote_port, service, remote_network) (rate(netstat_outbound_connections_closed_total{%(ns)s}[$__rate_interval]))' % v, 'closed, to {{instance}} {{netns}} {{remote_port}} {{service}} {{remote_network}}'),
            p.target('sum by (instance, netns, remote_port, service, remote_network, reason) (rate(netstat_outbound_connect_failures_total{%(ns)s}[$__rate_interval]))' % v, '{{reason}}, to {{instance}} {{netns}} {{remote_port}} {{service}} {{remote_network}}'),
          ], [0, 189, 12, 8]),
          p.timeseries('Bytes of closed connections per second', 'Payload bytes of the connections that closed, per listener and per remote service, sent and received by this host (netstat_*_bytes_total: counted in one step when a connection ends).', 'Bps', [
            p.target('sum by (instance, netns, port, service, direction) (rate(netstat_inbound_bytes_total{%(ns)s}[$__rate_interval]))' % v, 'listener {{instance}} {{netns}} {{port}} {{service}} {{direction}}'),
            p.target('sum by (instance, netns, remote_port, service, remote_network, direction) (rate(netstat_outbound_bytes_total{%(ns)s}[$__rate_interval]))' % v, 'to {{instance}} {{netns}} {{remote_port}} {{service}} {{remote_network}} {{direction}}'),
          ], [12, 189, 12, 8]),
        ]),
      },
  },
}
