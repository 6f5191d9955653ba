#!/usr/bin/env python3
"""Generates alerts_test.yml from the cases below and the annotation templates of alerts.yml.

Run it after changing alerts.yml (`python3 deploy/prometheus/gen_alerts_test.py`), then
`promtool test rules deploy/prometheus/alerts_test.yml`. The expected annotations are rendered
here with the same formatting as Prometheus (humanize, humanizePercentage, humanize1024), so
promtool checks the templates too. Needs PyYAML.
"""
import math
import os
import re

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
rules = {}
for g in yaml.safe_load(open(os.path.join(HERE, 'alerts.yml')))['groups']:
    for r in g['rules']:
        rules[r['alert']] = r

def g4(v):
    s = '%.4g' % v
    return s
def humanize(v):
    if v == 0 or math.isnan(v) or math.isinf(v): return '%.4g' % v
    if abs(v) >= 1:
        prefix = ''
        for p in ['k','M','G','T','P','E','Z','Y']:
            if abs(v) < 1000: break
            prefix = p; v /= 1000
        return '%.4g%s' % (v, prefix)
    prefix = ''
    for p in ['m','u','n','p','f','a','z','y']:
        if abs(v) >= 1: break
        prefix = p; v *= 1000
    return '%.4g%s' % (v, prefix)
def humanize1024(v):
    if abs(v) <= 1: return '%.4g' % v
    prefix = ''
    for p in ['ki','Mi','Gi','Ti','Pi','Ei','Zi','Yi']:
        if abs(v) < 1024: break
        prefix = p; v /= 1024
    return '%.4g%s' % (v, prefix)
def plain(v):
    # Go's %v for float64: shortest representation, exponent from 1e21.
    if v == int(v) and abs(v) < 1e21:
        return '%d' % v
    return repr(v)

def render(tmpl, labels, value):
    """The subset of Go's text/template the annotations use: {{ $labels.x }}, {{ $value }} with
    the humanize functions, {{ . }}, and {{ with X }}...{{ else }}...{{ end }} (empty = false)."""
    tokens = re.split(r'(\{\{.*?\}\})', tmpl)
    pos = [0]
    def ev(expr, dot):
        if expr == '.': return dot
        if expr.startswith('$labels.'):
            return labels.get(expr[len('$labels.'):], '')
        if expr == '$value': return plain(value)
        if expr == '$value | humanizePercentage': return '%.4g%%' % (value*100)
        if expr == '$value | humanize': return humanize(value)
        if expr == '$value | humanize1024': return humanize1024(value)
        raise Exception(expr)
    def block(dot):
        out = ''
        while pos[0] < len(tokens):
            t = tokens[pos[0]]; pos[0] += 1
            if not t.startswith('{{'):
                out += t; continue
            e = t[2:-2].strip()
            if e in ('else', 'end'):
                return out, e
            if e.startswith('with '):
                v = ev(e[5:].strip(), dot)
                body, stop = block(v)
                alt = ''
                if stop == 'else':
                    alt, stop = block(dot)
                assert stop == 'end', tmpl
                out += body if v else alt
            else:
                out += ev(e, dot)
        return out, None
    out, stop = block('')
    assert stop is None, tmpl
    return out

def exp(alert, labels, value):
    r = rules[alert]
    lab = dict(labels); lab.update(r.get('labels', {}))
    ann = {k: render(v, lab, value) for k, v in r['annotations'].items()}
    return {'exp_labels': lab, 'exp_annotations': ann}

H = {'instance': 'host1:9958', 'job': 'netstat-exporter'}
H2 = {'instance': 'host2:9958', 'job': 'netstat-exporter'}
def S(name, labels, values, base=H):
    l = dict(base); l.update(labels)
    return {'series': name + '{' + ', '.join('%s="%s"' % (k, v) for k, v in l.items()) + '}', 'values': values}
def L(labels, base=H):
    l = dict(base); l.update(labels); return l

def iface(device, direction, ok, err, drop, ovr, n=40):
    out = []
    for outcome, per in [('ok', ok), ('error', err), ('drop', drop), ('overrun', ovr)]:
        out.append(S('netstat_interface_packets_total', {'device': device, 'direction': direction, 'outcome': outcome}, '0+%gx%d' % (per, n)))
    return out

tests = []
# --- interfaces: eth0 receive 10% errors (fires), eth0 transmit clean, eth1 receive 0.5% errors
# (below 1%), eth2 receive 5% drops (fires), eth2 transmit 0.2% overruns (fires), eth3 transmit
# 0.05% overruns (does not).
series = []
series += iface('eth0', 'receive', 900, 100, 0, 0)
series += iface('eth0', 'transmit', 1000, 0, 0, 0)
series += iface('eth1', 'receive', 995, 5, 0, 0)
series += iface('eth2', 'receive', 950, 0, 50, 0)
series += iface('eth2', 'transmit', 998, 0, 0, 2)
series += iface('eth3', 'transmit', 9995, 0, 0, 5)
tests.append({
    'name': 'interface errors, drops and overruns as a ratio of packets',
    'interval': '1m',
    'input_series': series,
    'alert_rule_test': [
        # rate() has data from 1m on; for: 15m / 10m: pending, not firing yet at 10m / 5m.
        {'eval_time': '10m', 'alertname': 'NetstatInterfaceErrors', 'exp_alerts': []},
        {'eval_time': '10m', 'alertname': 'NetstatInterfaceDrops', 'exp_alerts': []},
        {'eval_time': '5m', 'alertname': 'NetstatInterfaceOverruns', 'exp_alerts': []},
        {'eval_time': '25m', 'alertname': 'NetstatInterfaceErrors', 'exp_alerts': [
            exp('NetstatInterfaceErrors', L({'device': 'eth0', 'direction': 'receive'}), 0.1)]},
        {'eval_time': '25m', 'alertname': 'NetstatInterfaceDrops', 'exp_alerts': [
            exp('NetstatInterfaceDrops', L({'device': 'eth2', 'direction': 'receive'}), 0.05)]},
        {'eval_time': '25m', 'alertname': 'NetstatInterfaceOverruns', 'exp_alerts': [
            exp('NetstatInterfaceOverruns', L({'device': 'eth2', 'direction': 'transmit'}), 0.002)]},
    ],
})
# --- promiscuous: eth0 yes (fires), veth1234 yes (bridge port, excluded), eth1 no.
tests.append({
    'name': 'promiscuous interfaces',
    'interval': '1m',
    'input_series': [
        S('netstat_interface_flag', {'device': 'eth0', 'flag': 'promisc'}, '1x20'),
        S('netstat_interface_flag', {'device': 'veth1234', 'flag': 'promisc'}, '1x20'),
        S('netstat_interface_flag', {'device': 'eth1', 'flag': 'promisc'}, '0x20'),
        S('netstat_interface_flag', {'device': 'eth1', 'flag': 'up'}, '1x20'),
    ],
    'alert_rule_test': [
        {'eval_time': '3m', 'alertname': 'NetstatInterfacePromiscuous', 'exp_alerts': []},
        {'eval_time': '10m', 'alertname': 'NetstatInterfacePromiscuous', 'exp_alerts': [
            exp('NetstatInterfacePromiscuous', L({'device': 'eth0', 'flag': 'promisc'}), 1)]},
    ],
})
# --- listeners
OUT = {'protocol': 'tcp', 'remote_port': '6667', 'service': 'ircd', 'remote_network': 'public', 'process': 'ircbot'}
lst = lambda addr, port, proto='tcp': {'protocol': proto, 'family': 'ipv4', 'address': addr, 'port': str(port)}
# A hostNetwork pod's listener and outbound series (--netns=self): the exporter labels them with
# the owning process's pod uid and container id; the alerts name the pod.
HOSTNET = {'pod_uid': '7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d', 'container_id': 'd' * 64}
tests.append({
    'name': 'listener accept queue near its limit, listen overflows, unexpected listeners',
    'interval': '1m',
    'input_series': [
        S('netstat_listener_accept_queue', lst('0.0.0.0', 8080), '90x20'),
        S('netstat_listener_accept_queue_limit', lst('0.0.0.0', 8080), '100x20'),
        S('netstat_listener_accept_queue', lst('0.0.0.0', 443), '50x20'),
        S('netstat_listener_accept_queue_limit', lst('0.0.0.0', 443), '100x20'),
        S('netstat_listener_accept_queue', lst('127.0.0.1', 6000), '0x20'),
        S('netstat_listener_accept_queue_limit', lst('127.0.0.1', 6000), '0x20'),
        S('netstat_tcp_listen_overflows_total', {}, '0+60x20'),
        S('netstat_tcp_listen_overflows_total', {}, '7x20', base=H2),
        S('netstat_listener_unexpected', dict(lst('0.0.0.0', 4444), service='krb524', process='nc'), '1x10'),
        S('netstat_listener_unexpected', dict(lst('0.0.0.0', 6443), service='sun-sr-https', process='nc', **HOSTNET), '1x10'),
        S('netstat_outbound_unexpected', OUT, '1x10'),
        S('netstat_outbound_unexpected', dict(OUT, **HOSTNET), '1x10'),
    ],
    'alert_rule_test': [
        {'eval_time': '3m', 'alertname': 'NetstatListenerAcceptQueueNearLimit', 'exp_alerts': []},
        {'eval_time': '10m', 'alertname': 'NetstatListenerAcceptQueueNearLimit', 'exp_alerts': [
            exp('NetstatListenerAcceptQueueNearLimit', L(lst('0.0.0.0', 8080)), 0.9)]},
        {'eval_time': '4m', 'alertname': 'NetstatTcpListenOverflows', 'exp_alerts': []},
        {'eval_time': '15m', 'alertname': 'NetstatTcpListenOverflows', 'exp_alerts': [
            exp('NetstatTcpListenOverflows', L({}), 1)]},
        {'eval_time': '1m', 'alertname': 'NetstatUnexpectedListener', 'exp_alerts': []},
        {'eval_time': '5m', 'alertname': 'NetstatUnexpectedListener', 'exp_alerts': [
            exp('NetstatUnexpectedListener', L(dict(lst('0.0.0.0', 4444), service='krb524', process='nc')), 1),
            exp('NetstatUnexpectedListener', L(dict(lst('0.0.0.0', 6443), service='sun-sr-https', process='nc', **HOSTNET)), 1)]},
        {'eval_time': '1m', 'alertname': 'NetstatUnexpectedOutboundConnection', 'exp_alerts': []},
        {'eval_time': '5m', 'alertname': 'NetstatUnexpectedOutboundConnection', 'exp_alerts': [
            exp('NetstatUnexpectedOutboundConnection', L(OUT), 1),
            exp('NetstatUnexpectedOutboundConnection', L(dict(OUT, **HOSTNET)), 1)]},
    ],
})
# --- inbound policy; connections retransmitting: listener 443 50% (fires), listener 8080 1%
# (does not), outbound to 5432 20% (fires), outbound to 443 5% (does not).
INB = {'protocol': 'tcp', 'port': '22', 'service': 'ssh', 'process': 'sshd', 'remote_network': 'public'}
OUTR = {'protocol': 'tcp', 'remote_port': '5432', 'service': 'postgresql', 'remote_network': 'private', 'process': 'app'}
OUTOK = {'protocol': 'tcp', 'remote_port': '443', 'service': 'https', 'remote_network': 'public', 'process': 'app'}
tests.append({
    'name': 'unexpected inbound source, connections retransmitting',
    'interval': '1m',
    'input_series': [
        S('netstat_inbound_unexpected', INB, '1x10'),
        S('netstat_listener_connections', lst('0.0.0.0', 443), '10x40'),
        S('netstat_listener_connections_retransmitting', lst('0.0.0.0', 443), '5x40'),
        S('netstat_listener_connections', lst('0.0.0.0', 8080), '100x40'),
        S('netstat_listener_connections_retransmitting', lst('0.0.0.0', 8080), '1x40'),
        S('netstat_outbound_connections', dict(OUTR, state='established'), '20x40'),
        S('netstat_outbound_connections', dict(OUTR, state='time_wait'), '50x40'),
        S('netstat_outbound_connections_retransmitting', OUTR, '4x40'),
        S('netstat_outbound_connections', dict(OUTOK, state='established'), '20x40'),
        S('netstat_outbound_connections_retransmitting', OUTOK, '1x40'),
    ],
    'alert_rule_test': [
        {'eval_time': '1m', 'alertname': 'NetstatUnexpectedInboundSource', 'exp_alerts': []},
        {'eval_time': '5m', 'alertname': 'NetstatUnexpectedInboundSource', 'exp_alerts': [
            exp('NetstatUnexpectedInboundSource', L(INB), 1)]},
        {'eval_time': '5m', 'alertname': 'NetstatConnectionsRetransmitting', 'exp_alerts': []},
        {'eval_time': '30m', 'alertname': 'NetstatConnectionsRetransmitting', 'exp_alerts': [
            exp('NetstatConnectionsRetransmitting', L(lst('0.0.0.0', 443)), 0.5),
            exp('NetstatConnectionsRetransmitting', L(OUTR), 0.2)]},
    ],
})
# --- failed connects (socket-destroy stream): postgresql 1/3 of the connects time out (fires),
# refused connects to loopback with no completed one (ratio 1, fires), https 1% (does not),
# smtp all failing but below the minimum rate (does not).
fk = lambda port, service, net: {'protocol': 'tcp', 'remote_port': port, 'service': service, 'remote_network': net, 'process': 'unknown'}
PG = fk('5432', 'postgresql', 'private')
REF = {k: v for k, v in fk('unknown', '', 'loopback').items() if v}  # an empty label is no label
HTTPS = fk('443', 'https', 'public')
SMTP = fk('25', 'smtp', 'public')
CL = {'container_id': '', 'pod_uid': ''}
tests.append({
    'name': 'outbound connect failures per remote service',
    'interval': '1m',
    'input_series': [
        S('netstat_outbound_connections_closed_total', dict(PG, **CL), '0+60x40'),
        S('netstat_outbound_connect_failures_total', dict(PG, reason='timeout'), '0+30x40'),
        S('netstat_outbound_connect_failures_total', dict(REF, reason='refused'), '0+12x40'),
        S('netstat_outbound_connections_closed_total', dict(HTTPS, **CL), '0+600x40'),
        S('netstat_outbound_connect_failures_total', dict(HTTPS, reason='timeout'), '0+6x40'),
        S('netstat_outbound_connect_failures_total', dict(SMTP, reason='refused'), '0+1x40'),
    ],
    'alert_rule_test': [
        {'eval_time': '5m', 'alertname': 'NetstatOutboundConnectFailures', 'exp_alerts': []},
        {'eval_time': '20m', 'alertname': 'NetstatOutboundConnectFailures', 'exp_alerts': [
            exp('NetstatOutboundConnectFailures', L(PG), 1 / 3),
            exp('NetstatOutboundConnectFailures', L(REF), 1)]},
    ],
})
# --- socket queues: tcp receive never drains (fires); tcp send drains once (does not).
q = lambda queue: {'protocol': 'tcp', 'family': 'ipv4', 'queue': queue}
tests.append({
    'name': 'sustained non-empty socket queues',
    'interval': '1m',
    'input_series': [
        S('netstat_socket_queue_max_bytes', q('receive'), '4096x30'),
        S('netstat_socket_queue_max_bytes', q('send'), '1000x12 0 1000x17'),
        S('netstat_socket_queue_max_bytes', {'protocol': 'udp', 'family': 'ipv6', 'queue': 'receive'}, '0x30'),
    ],
    'alert_rule_test': [
        {'eval_time': '3m', 'alertname': 'NetstatSocketQueueBacklog', 'exp_alerts': []},
        {'eval_time': '20m', 'alertname': 'NetstatSocketQueueBacklog', 'exp_alerts': [
            exp('NetstatSocketQueueBacklog', L(q('receive')), 4096)]},
    ],
})
st = lambda fam, state: {'protocol': 'tcp', 'family': fam, 'state': state}
tests.append({
    'name': 'TIME_WAIT and CLOSE_WAIT pile-ups',
    'interval': '1m',
    'input_series': [
        S('netstat_sockets', st('ipv4', 'time_wait'), '40000x30'),
        S('netstat_sockets', st('ipv6', 'time_wait'), '20000x30'),
        S('netstat_sockets', st('ipv4', 'close_wait'), '100x30'),
        S('netstat_sockets', st('ipv6', 'close_wait'), '50x30'),
        S('netstat_sockets', st('ipv4', 'time_wait'), '30000x30', base=H2),
        S('netstat_sockets', st('ipv6', 'time_wait'), '0x30', base=H2),
        S('netstat_sockets', st('ipv4', 'close_wait'), '60x30', base=H2),
        S('netstat_sockets', st('ipv6', 'close_wait'), '0x30', base=H2),
    ],
    'alert_rule_test': [
        {'eval_time': '10m', 'alertname': 'NetstatTcpTimeWaitPileUp', 'exp_alerts': []},
        {'eval_time': '10m', 'alertname': 'NetstatTcpCloseWaitPileUp', 'exp_alerts': []},
        {'eval_time': '20m', 'alertname': 'NetstatTcpTimeWaitPileUp', 'exp_alerts': [
            exp('NetstatTcpTimeWaitPileUp', L({'protocol': 'tcp', 'state': 'time_wait'}), 60000)]},
        {'eval_time': '20m', 'alertname': 'NetstatTcpCloseWaitPileUp', 'exp_alerts': [
            exp('NetstatTcpCloseWaitPileUp', L({'protocol': 'tcp', 'state': 'close_wait'}), 150)]},
    ],
})
tests.append({
    'name': 'UDP receive buffer errors',
    'interval': '1m',
    'input_series': [
        S('netstat_udp_receive_buffer_errors_total', {'family': 'ipv4'}, '0+120x30'),
        S('netstat_udp_receive_buffer_errors_total', {'family': 'ipv6'}, '3x30'),
    ],
    'alert_rule_test': [
        {'eval_time': '8m', 'alertname': 'NetstatUdpReceiveBufferErrors', 'exp_alerts': []},
        {'eval_time': '20m', 'alertname': 'NetstatUdpReceiveBufferErrors', 'exp_alerts': [
            exp('NetstatUdpReceiveBufferErrors', L({'family': 'ipv4'}), 2)]},
    ],
})
tests.append({
    'name': 'exporter health: failing collector, target down, no target at all',
    'interval': '1m',
    'input_series': [
        S('netstat_scrape_collector_success', {'collector': 'sockets'}, '0x20'),
        S('netstat_scrape_collector_success', {'collector': 'interfaces'}, '1x20'),
        S('netstat_scrape_collector_success', {'collector': 'protocols'}, '1x3 0 1x15'),
        S('up', {}, '0x20'),
        S('up', {}, '1x20', base=H2),
    ],
    'alert_rule_test': [
        {'eval_time': '3m', 'alertname': 'NetstatExporterCollectorFailed', 'exp_alerts': []},
        {'eval_time': '10m', 'alertname': 'NetstatExporterCollectorFailed', 'exp_alerts': [
            exp('NetstatExporterCollectorFailed', L({'collector': 'sockets'}), 0)]},
        {'eval_time': '3m', 'alertname': 'NetstatExporterDown', 'exp_alerts': []},
        {'eval_time': '10m', 'alertname': 'NetstatExporterDown', 'exp_alerts': [
            exp('NetstatExporterDown', L({}), 0)]},
        {'eval_time': '20m', 'alertname': 'NetstatExporterAbsent', 'exp_alerts': []},
    ],
})
tests.append({
    'name': 'exporter absent: no up series for the job',
    'interval': '1m',
    'input_series': [
        {'series': 'up{instance="localhost:9090", job="prometheus"}', 'values': '1x30'},
    ],
    'alert_rule_test': [
        {'eval_time': '10m', 'alertname': 'NetstatExporterAbsent', 'exp_alerts': []},
        {'eval_time': '20m', 'alertname': 'NetstatExporterAbsent', 'exp_alerts': [
            exp('NetstatExporterAbsent', {'job': 'netstat-exporter'}, 1)]},
    ],
})

# --- network namespaces (--netns=all): the per-namespace alerts carry pod_uid and container_id
# from netstat_netns_info. Every test above has no netstat_netns_info at all (--netns=self): the
# alerts fire there with the series' own labels. Here one host reads four namespaces: its own
# (netns="", info with empty ids), a pod's, a plain Docker container's, and one that vanished
# before its info was written (no info: the alert still fires, without pod or container).
# host2's info for the same inode must not leak onto host1's alerts.
POD = {'netns': '4026532001'}
POD_INFO = {'pod_uid': '5f0c4c8e-2a3b-4c5d-8e9f-0a1b2c3d4e5f', 'container_id': 'a' * 64}
CTR = {'netns': '4026532002'}
CTR_INFO = {'container_id': 'b' * 64}
GONE = {'netns': '4026532003'}
ulst = dict(lst('0.0.0.0', 4444), service='krb524', process='nc')
tests.append({
    'name': 'per-namespace alerts name the pod and container (--netns=all)',
    'interval': '1m',
    'input_series': [
        S('netstat_netns_info', {'netns': '', 'name': '', 'container_id': '', 'pod_uid': ''}, '1x40'),
        S('netstat_netns_info', dict(POD, name='', **POD_INFO), '1x40'),
        S('netstat_netns_info', dict(CTR, name='', pod_uid='', **CTR_INFO), '1x40'),
        S('netstat_netns_info', dict(POD, name='', pod_uid='other-host-pod', container_id='c' * 64), '1x40', base=H2),
        S('netstat_listener_unexpected', ulst, '1x10'),
        S('netstat_listener_unexpected', dict(ulst, **POD), '1x10'),
        S('netstat_listener_unexpected', dict(ulst, **CTR), '1x10'),
        S('netstat_listener_unexpected', dict(ulst, **GONE), '1x10'),
        S('netstat_listener_unexpected', dict(lst('0.0.0.0', 22), service='ssh', process='sshd', **POD), '0x10'),
        S('netstat_sockets', dict(st('ipv4', 'close_wait'), **POD), '150x30'),
        S('netstat_sockets', dict(st('ipv6', 'close_wait'), **POD), '0x30'),
        S('netstat_sockets', st('ipv4', 'close_wait'), '60x30'),
        # A hostNetwork pod in the host's own namespace (netns="", whose info has empty ids) and a
        # process of the pod in its own namespace: each keeps the pod its series names.
        S('netstat_listener_unexpected', dict(lst('0.0.0.0', 6443), service='sun-sr-https', process='nc', **HOSTNET), '1x10'),
        S('netstat_inbound_unexpected', dict(INB, **HOSTNET), '1x10'),
        S('netstat_inbound_unexpected', dict(INB, **POD, **POD_INFO), '1x10'),
        S('netstat_outbound_unexpected', dict(OUT, **HOSTNET), '1x10'),
    ] + [dict(x, series=x['series'].replace('}', ', netns="4026532001"}')) for x in iface('eth0', 'receive', 900, 100, 0, 0)]
      + iface('eth0', 'receive', 1000, 0, 0, 0),
    'alert_rule_test': [
        {'eval_time': '1m', 'alertname': 'NetstatUnexpectedListener', 'exp_alerts': []},
        {'eval_time': '5m', 'alertname': 'NetstatUnexpectedListener', 'exp_alerts': [
            exp('NetstatUnexpectedListener', L(ulst), 1),
            exp('NetstatUnexpectedListener', L(dict(ulst, **POD, **POD_INFO)), 1),
            exp('NetstatUnexpectedListener', L(dict(ulst, **CTR, **CTR_INFO)), 1),
            exp('NetstatUnexpectedListener', L(dict(ulst, **GONE)), 1),
            exp('NetstatUnexpectedListener', L(dict(lst('0.0.0.0', 6443), service='sun-sr-https', process='nc', **HOSTNET)), 1),
        ]},
        {'eval_time': '5m', 'alertname': 'NetstatUnexpectedInboundSource', 'exp_alerts': [
            exp('NetstatUnexpectedInboundSource', L(dict(INB, **HOSTNET)), 1),
            exp('NetstatUnexpectedInboundSource', L(dict(INB, **POD, **POD_INFO)), 1),
        ]},
        {'eval_time': '5m', 'alertname': 'NetstatUnexpectedOutboundConnection', 'exp_alerts': [
            exp('NetstatUnexpectedOutboundConnection', L(dict(OUT, **HOSTNET)), 1),
        ]},
        {'eval_time': '10m', 'alertname': 'NetstatTcpCloseWaitPileUp', 'exp_alerts': []},
        {'eval_time': '20m', 'alertname': 'NetstatTcpCloseWaitPileUp', 'exp_alerts': [
            exp('NetstatTcpCloseWaitPileUp', L(dict({'protocol': 'tcp', 'state': 'close_wait'}, **POD, **POD_INFO)), 150)]},
        {'eval_time': '10m', 'alertname': 'NetstatInterfaceErrors', 'exp_alerts': []},
        {'eval_time': '25m', 'alertname': 'NetstatInterfaceErrors', 'exp_alerts': [
            exp('NetstatInterfaceErrors', L(dict({'device': 'eth0', 'direction': 'receive'}, **POD, **POD_INFO)), 0.1)]},
    ],
})
tests.append({
    'name': 'network namespaces that cannot be read or are left out',
    'interval': '1m',
    'input_series': [
        S('netstat_netns_errors_total', {'reason': 'permission'}, '0+2x40'),
        S('netstat_netns_errors_total', {'reason': 'vanished'}, '0+5x40', base=H2),
        S('netstat_netns_dropped', {}, '3x40'),
        S('netstat_netns_dropped', {}, '0x40', base=H2),
    ],
    'alert_rule_test': [
        {'eval_time': '10m', 'alertname': 'NetstatNetnsUnreadable', 'exp_alerts': []},
        {'eval_time': '30m', 'alertname': 'NetstatNetnsUnreadable', 'exp_alerts': [
            exp('NetstatNetnsUnreadable', L({}), 2 / 60)]},
        {'eval_time': '10m', 'alertname': 'NetstatNetnsDropped', 'exp_alerts': []},
        {'eval_time': '30m', 'alertname': 'NetstatNetnsDropped', 'exp_alerts': [
            exp('NetstatNetnsDropped', L({}), 3)]},
    ],
})

doc = {'rule_files': ['alerts.yml'], 'evaluation_interval': '1m', 'tests': tests}
class D(yaml.SafeDumper): pass
def str_rep(dumper, data):
    return dumper.represent_scalar('tag:yaml.org,2002:str', data)
D.add_representer(str, str_rep)
hdr = '''# Unit tests for alerts.yml: `promtool test rules deploy/prometheus/alerts_test.yml`.
# Every alert is tested firing (labels and rendered annotations) and not firing (below its
# threshold, or not yet for long enough). Run by CI through tests/it/deploy_artifacts.rs.
'''
open(os.path.join(HERE, 'alerts_test.yml'), 'w').write(hdr + yaml.dump(doc, Dumper=D, sort_keys=False, width=1000, allow_unicode=True))
