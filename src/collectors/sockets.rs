//! Collector `sockets`: what `netstat -an` / `ss -s` show, as counts by protocol, family and
//! state, plus the Recv-Q/Send-Q of non-listening sockets.

use crate::config::Config;
use crate::metrics::MetricFamily;
use crate::source::inet::{
    Family, InetSocket, Protocol, UnixSocket, UnixState, UnixType, ALL_STATES, TCP_ESTABLISHED,
    TCP_LISTEN, TCP_NEW_SYN_RECV, TCP_STATE_NAMES, TCP_SYN_RECV,
};
use crate::source::sockets::{SocketSource, SourceMode};
use crate::source::SourceError;

use super::{Collected, Collector};

/// Sum, maximum and count of non-empty queues of one direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueAgg {
    pub bytes: u64,
    pub max: u32,
    pub nonempty: u64,
}

impl QueueAgg {
    fn add(&mut self, q: u32) {
        if q > 0 {
            self.bytes += u64::from(q);
            self.max = self.max.max(q);
            self.nonempty += 1;
        }
    }
}

/// Aggregates built while the kernel streams sockets: a fixed size, whatever the count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SocketStats {
    /// [family][kernel TCP state 0..=11]
    pub tcp: [[u64; 12]; 2],
    /// [protocol][family][0 = connected, 1 = unconnected] for udp, udplite, raw.
    pub dgram: [[[u64; 2]; 2]; 4],
    /// [protocol][family][0 = receive, 1 = send], non-listening sockets only.
    pub queues: [[[QueueAgg; 2]; 2]; 4],
    /// [unix type][unix state]
    pub unix: [[u64; 5]; 3],
    /// TCP sockets in a state number the exporter does not know (a newer kernel).
    pub unknown_tcp_states: u64,
}

impl SocketStats {
    pub fn add_inet(&mut self, s: &InetSocket) {
        let (p, f) = (s.protocol.index(), s.family.index());
        match s.protocol {
            Protocol::Tcp => {
                let state = if s.state == TCP_NEW_SYN_RECV {
                    TCP_SYN_RECV
                } else {
                    s.state
                };
                match self.tcp[f].get_mut(state as usize) {
                    Some(c) if state != 0 => *c += 1,
                    _ => self.unknown_tcp_states += 1,
                }
            }
            _ => {
                let i = usize::from(s.state != TCP_ESTABLISHED);
                self.dgram[p][f][i] += 1;
            }
        }
        // A listener's Recv-Q counts connections, not bytes: the listeners collector has it.
        if !(s.protocol == Protocol::Tcp && s.state == TCP_LISTEN) {
            self.queues[p][f][0].add(s.rx_queue);
            self.queues[p][f][1].add(s.tx_queue);
        }
    }

    pub fn add_unix(&mut self, s: &UnixSocket) {
        let t = UnixType::ALL.iter().position(|t| *t == s.kind).unwrap_or(0);
        let st = UnixState::ALL
            .iter()
            .position(|x| *x == s.state)
            .unwrap_or(0);
        self.unix[t][st] += 1;
    }

    /// Number of TCP sockets in `state` (kernel name, e.g. "time_wait") for `family`.
    pub fn tcp_state(&self, family: Family, state: &str) -> u64 {
        TCP_STATE_NAMES
            .iter()
            .position(|n| *n == state)
            .map_or(0, |i| self.tcp[family.index()][i])
    }
}

const DGRAM_STATES: [&str; 2] = ["connected", "unconnected"];
const QUEUES: [&str; 2] = ["receive", "send"];

/// Render the aggregates. Every series is always present (zeros included) so dashboards and
/// alerts never see gaps.
pub fn render(stats: &SocketStats) -> Vec<MetricFamily> {
    let mut sockets = MetricFamily::gauge(
        "netstat_sockets",
        "Sockets by protocol, address family and state (netstat -an / ss -s). TCP states use the kernel's names; request sockets count as syn_recv. Datagram sockets are connected or unconnected.",
    );
    for family in Family::ALL {
        for (state, name) in TCP_STATE_NAMES.iter().enumerate().skip(1) {
            sockets.push(
                vec![
                    ("protocol", "tcp".into()),
                    ("family", family.name().into()),
                    ("state", (*name).into()),
                ],
                stats.tcp[family.index()][state],
            );
        }
    }
    for protocol in [Protocol::Udp, Protocol::UdpLite, Protocol::Raw] {
        for family in Family::ALL {
            for (i, state) in DGRAM_STATES.iter().enumerate() {
                sockets.push(
                    vec![
                        ("protocol", protocol.name().into()),
                        ("family", family.name().into()),
                        ("state", (*state).into()),
                    ],
                    stats.dgram[protocol.index()][family.index()][i],
                );
            }
        }
    }

    let mut unix = MetricFamily::gauge(
        "netstat_unix_sockets",
        "Unix domain sockets by type and state (/proc/net/unix).",
    );
    for (t, kind) in UnixType::ALL.iter().enumerate() {
        for (s, state) in UnixState::ALL.iter().enumerate() {
            unix.push(
                vec![("type", kind.name().into()), ("state", state.name().into())],
                stats.unix[t][s],
            );
        }
    }

    let mut queued_bytes = MetricFamily::gauge(
        "netstat_socket_queued_bytes",
        "Sum of Recv-Q (receive) or Send-Q (send) over non-listening sockets, in bytes. Should stay near zero.",
    );
    let mut queue_max = MetricFamily::gauge(
        "netstat_socket_queue_max_bytes",
        "Largest single Recv-Q (receive) or Send-Q (send) among non-listening sockets, in bytes.",
    );
    let mut queued = MetricFamily::gauge(
        "netstat_sockets_queued",
        "Non-listening sockets whose receive or send queue is not empty.",
    );
    for protocol in Protocol::ALL {
        for family in Family::ALL {
            for (q, queue) in QUEUES.iter().enumerate() {
                let agg = stats.queues[protocol.index()][family.index()][q];
                let labels = vec![
                    ("protocol", protocol.name().to_string()),
                    ("family", family.name().to_string()),
                    ("queue", (*queue).to_string()),
                ];
                queued_bytes.push(labels.clone(), agg.bytes);
                queue_max.push(labels.clone(), agg.max);
                queued.push(labels, agg.nonempty);
            }
        }
    }
    vec![sockets, unix, queued_bytes, queue_max, queued]
}

pub struct SocketsCollector {
    source: SocketSource,
}

impl SocketsCollector {
    pub fn new(config: &Config) -> Self {
        SocketsCollector {
            source: SocketSource::new(config.sockets_source(), config.procfs.join("net")),
        }
    }

    pub fn with_source(source: SocketSource) -> Self {
        SocketsCollector { source }
    }

    pub fn source_mode(&self) -> SourceMode {
        self.source.mode()
    }

    /// Read every socket table once and aggregate it.
    pub fn read_stats(&self, errors: &mut Vec<SourceError>) -> SocketStats {
        let mut stats = SocketStats::default();
        self.source
            .for_each_inet(&Protocol::ALL, ALL_STATES, false, errors, &mut |s| {
                stats.add_inet(s)
            });
        self.source
            .for_each_unix(errors, &mut |s| stats.add_unix(s));
        if stats.unknown_tcp_states > 0 {
            errors.push(SourceError {
                source: "tcp_state".into(),
                location: "TCP socket table".into(),
                line: None,
                message: format!(
                    "{} sockets in a TCP state unknown to this exporter (not counted)",
                    stats.unknown_tcp_states
                ),
            });
        }
        stats
    }
}

impl Collector for SocketsCollector {
    fn name(&self) -> &'static str {
        "sockets"
    }

    fn collect(&self) -> Collected {
        let mut errors = Vec::new();
        let stats = self.read_stats(&mut errors);
        Collected {
            families: render(&stats),
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn sock(protocol: Protocol, family: Family, state: u8, rx: u32, tx: u32) -> InetSocket {
        InetSocket {
            protocol,
            family,
            state,
            local: IpAddr::from([127, 0, 0, 1]),
            local_port: 1,
            remote: IpAddr::from([127, 0, 0, 1]),
            remote_port: 2,
            rx_queue: rx,
            tx_queue: tx,
            uid: 0,
            inode: 1,
            drops: None,
        }
    }

    fn value(fams: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> u64 {
        let f = fams.iter().find(|f| f.name == name).expect(name);
        let s = f
            .samples
            .iter()
            .find(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .expect("sample");
        s.value.as_f64() as u64
    }

    #[test]
    fn aggregates_states_and_queues() {
        let mut st = SocketStats::default();
        st.add_inet(&sock(Protocol::Tcp, Family::Ipv4, TCP_LISTEN, 3, 128));
        st.add_inet(&sock(Protocol::Tcp, Family::Ipv4, 1, 100, 0));
        st.add_inet(&sock(Protocol::Tcp, Family::Ipv4, 1, 50, 7));
        st.add_inet(&sock(Protocol::Tcp, Family::Ipv6, TCP_NEW_SYN_RECV, 0, 0));
        st.add_inet(&sock(Protocol::Udp, Family::Ipv6, 7, 900, 0));
        st.add_inet(&sock(Protocol::Udp, Family::Ipv6, 1, 0, 0));
        st.add_inet(&sock(Protocol::Tcp, Family::Ipv4, 13, 0, 0));
        let f = render(&st);
        let tcp4 = [("protocol", "tcp"), ("family", "ipv4")];
        assert_eq!(
            value(
                &f,
                "netstat_sockets",
                &[tcp4[0], tcp4[1], ("state", "listen")]
            ),
            1
        );
        assert_eq!(
            value(
                &f,
                "netstat_sockets",
                &[tcp4[0], tcp4[1], ("state", "established")]
            ),
            2
        );
        assert_eq!(
            value(
                &f,
                "netstat_sockets",
                &[
                    ("protocol", "tcp"),
                    ("family", "ipv6"),
                    ("state", "syn_recv")
                ]
            ),
            1
        );
        // Listener excluded from queues: 100 + 50, not + 3.
        let rq = [tcp4[0], tcp4[1], ("queue", "receive")];
        assert_eq!(value(&f, "netstat_socket_queued_bytes", &rq), 150);
        assert_eq!(value(&f, "netstat_socket_queue_max_bytes", &rq), 100);
        assert_eq!(value(&f, "netstat_sockets_queued", &rq), 2);
        let sq = [tcp4[0], tcp4[1], ("queue", "send")];
        assert_eq!(value(&f, "netstat_socket_queued_bytes", &sq), 7);
        assert_eq!(value(&f, "netstat_sockets_queued", &sq), 1);
        let udp6 = [("protocol", "udp"), ("family", "ipv6")];
        assert_eq!(
            value(
                &f,
                "netstat_sockets",
                &[udp6[0], udp6[1], ("state", "unconnected")]
            ),
            1
        );
        assert_eq!(
            value(
                &f,
                "netstat_sockets",
                &[udp6[0], udp6[1], ("state", "connected")]
            ),
            1
        );
        assert_eq!(st.unknown_tcp_states, 1);
    }

    #[test]
    fn every_series_present_when_empty() {
        let f = render(&SocketStats::default());
        let n = |name: &str| f.iter().find(|x| x.name == name).unwrap().samples.len();
        assert_eq!(n("netstat_sockets"), 2 * 11 + 3 * 2 * 2);
        assert_eq!(n("netstat_unix_sockets"), 15);
        assert_eq!(n("netstat_socket_queued_bytes"), 4 * 2 * 2);
    }
}
