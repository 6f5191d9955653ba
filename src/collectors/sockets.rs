//! Collector `sockets`: what `netstat -an` / `ss -s` show, as counts by protocol, family and
//! state, plus the Recv-Q/Send-Q of non-listening sockets.

use crate::metrics::{Desc, MetricFamily};
use crate::source::inet::{
    Family, InetSocket, Protocol, UnixSocket, UnixState, UnixType, TCP_ESTABLISHED, TCP_LISTEN,
    TCP_NEW_SYN_RECV, TCP_STATE_NAMES, TCP_SYN_RECV,
};
use crate::source::netns::Netns;
use crate::source::sockets::{PassInfo, SocketNeeds, SocketSource, SocketVisitor};
use crate::source::SourceError;

use super::rows::{SocketCount, UnixSocketCount};
use super::{
    BuildContext, Collected, Collection, Collector, CollectorDecl, CollectorFlags, FlagsDecl,
};

pub const DECL: CollectorDecl = CollectorDecl {
    name: "sockets",
    default_enabled: true,
    help: "socket counts by protocol, family and state; socket queue depths; unix sockets",
    metrics,
    flags: FlagsDecl::of::<SocketsFlags>(),
};

pub static SOCKETS: Desc = Desc::gauge(
    "netstat_sockets",
    &["protocol", "family", "state"],
    "Sockets by protocol, address family and state (netstat -an / ss -s). TCP states use the kernel's names; request sockets count as syn_recv. Datagram sockets are connected or unconnected.",
);
pub static UNIX_SOCKETS: Desc = Desc::gauge(
    "netstat_unix_sockets",
    &["type", "state"],
    "Unix domain sockets by type and state (/proc/net/unix).",
);
pub static QUEUED_BYTES: Desc = Desc::gauge(
    "netstat_socket_queued_bytes",
    &["protocol", "family", "queue"],
    "Sum of Recv-Q (receive) or Send-Q (send) over non-listening sockets, in bytes. Should stay near zero.",
)
.unit("bytes");
pub static QUEUE_MAX_BYTES: Desc = Desc::gauge(
    "netstat_socket_queue_max_bytes",
    &["protocol", "family", "queue"],
    "Largest single Recv-Q (receive) or Send-Q (send) among non-listening sockets, in bytes.",
)
.unit("bytes");
pub static SOCKETS_QUEUED: Desc = Desc::gauge(
    "netstat_sockets_queued",
    &["protocol", "family", "queue"],
    "Non-listening sockets whose receive or send queue is not empty.",
);

fn metrics() -> Vec<&'static Desc> {
    vec![
        &SOCKETS,
        &UNIX_SOCKETS,
        &QUEUED_BYTES,
        &QUEUE_MAX_BYTES,
        &SOCKETS_QUEUED,
    ]
}

/// The sockets collector has no flags of its own (`--collector.sockets.source` is a general
/// flag: the pass serves every collector).
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct SocketsFlags {}

impl CollectorFlags for SocketsFlags {
    fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Collector>, String> {
        Ok(Box::new(SocketsCollector))
    }
}

/// Every state of every inet table, and the unix table.
pub const NEEDS: SocketNeeds = {
    let mut n = SocketNeeds::all_states(&Protocol::ALL);
    n.unix = true;
    n
};

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

/// The socket counts by protocol, family and state, and the unix socket counts by type and
/// state: every series, zeros included. Pure.
pub fn rows(stats: &SocketStats) -> (Vec<SocketCount>, Vec<UnixSocketCount>) {
    let count = |protocol: &str, family: Family, state: &str, count| SocketCount {
        protocol: protocol.into(),
        family: family.name().into(),
        state: state.into(),
        count,
        netns: String::new(),
    };
    let mut sockets = Vec::new();
    for family in Family::ALL {
        for (state, name) in TCP_STATE_NAMES.iter().enumerate().skip(1) {
            sockets.push(count("tcp", family, name, stats.tcp[family.index()][state]));
        }
    }
    for protocol in [Protocol::Udp, Protocol::UdpLite, Protocol::Raw] {
        for family in Family::ALL {
            for (i, state) in DGRAM_STATES.iter().enumerate() {
                let n = stats.dgram[protocol.index()][family.index()][i];
                sockets.push(count(protocol.name(), family, state, n));
            }
        }
    }
    let mut unix = Vec::new();
    for (t, kind) in UnixType::ALL.iter().enumerate() {
        for (s, state) in UnixState::ALL.iter().enumerate() {
            unix.push(UnixSocketCount {
                kind: kind.name().into(),
                state: state.name().into(),
                count: stats.unix[t][s],
                netns: String::new(),
            });
        }
    }
    (sockets, unix)
}

/// Render the aggregates (their rows made on the way).
pub fn render(stats: &SocketStats) -> Vec<MetricFamily> {
    let (sockets, unix) = rows(stats);
    render_rows(stats, &sockets, &unix)
}

/// Render the aggregates and their rows ([`rows`]): the one place where the families are
/// made. Every series is always present (zeros included) so dashboards and alerts never
/// see gaps.
pub fn render_rows(
    stats: &SocketStats,
    counts: &[SocketCount],
    unix_counts: &[UnixSocketCount],
) -> Vec<MetricFamily> {
    let mut sockets = SOCKETS.family();
    for r in counts {
        sockets.push(
            vec![
                ("protocol", r.protocol.clone()),
                ("family", r.family.clone()),
                ("state", r.state.clone()),
            ],
            r.count,
        );
    }
    let mut unix = UNIX_SOCKETS.family();
    for r in unix_counts {
        unix.push(
            vec![("type", r.kind.clone()), ("state", r.state.clone())],
            r.count,
        );
    }

    let mut queued_bytes = QUEUED_BYTES.family();
    let mut queue_max = QUEUE_MAX_BYTES.family();
    let mut queued = SOCKETS_QUEUED.family();
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

/// Counts every socket of the shared pass; keeps no state between scrapes.
pub struct SocketsCollector;

/// Aggregate one namespace's sockets with `source` in one pass (what a scrape does, for
/// tests and benchmarks that drive the source directly).
pub fn read_stats(source: &SocketSource, ns: &Netns, errors: &mut Vec<SourceError>) -> SocketStats {
    let mut stats = SocketStats::default();
    source.pass(ns, &NEEDS, errors, &mut stats);
    check_states(&stats, errors);
    stats
}

impl SocketVisitor for SocketStats {
    fn inet(&mut self, s: &InetSocket) {
        self.add_inet(s);
    }

    fn unix(&mut self, s: &UnixSocket) {
        self.add_unix(s);
    }
}

/// Sockets in a TCP state the exporter does not know are an error of the collection.
fn check_states(stats: &SocketStats, errors: &mut Vec<SourceError>) {
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
}

struct SocketsPass {
    stats: SocketStats,
}

impl Collection for SocketsPass {
    fn inet(&mut self, s: &InetSocket) {
        self.stats.add_inet(s);
    }

    fn unix(&mut self, s: &UnixSocket) {
        self.stats.add_unix(s);
    }

    fn finish(self: Box<Self>, _pass: &PassInfo, out: &mut Collected) {
        check_states(&self.stats, &mut out.errors);
        let (sockets, unix) = rows(&self.stats);
        out.families
            .extend(render_rows(&self.stats, &sockets, &unix));
        out.rows.sockets = Some(sockets);
        out.rows.unix_sockets = Some(unix);
    }
}

impl Collector for SocketsCollector {
    fn name(&self) -> &'static str {
        DECL.name
    }

    fn socket_needs(&self) -> SocketNeeds {
        NEEDS
    }

    fn begin<'a>(&'a self, _ns: &'a Netns) -> Box<dyn Collection + 'a> {
        Box::new(SocketsPass {
            stats: SocketStats::default(),
        })
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
            cookie: 0,
            drops: None,
            tcp: None,
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
