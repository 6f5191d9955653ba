//! Collector `listeners`: what `netstat -lntup` / `ss -lntup` show: every TCP socket in LISTEN
//! and every bound, unconnected UDP / UDP-Lite socket, with its service name, owning process
//! and user, accept queue and limit (TCP) or receive queue and drops (UDP), and how many
//! established connections it holds.
//!
//! One listener = one distinct (protocol, family, address, port): an SO_REUSEPORT group counts
//! as one listener with several sockets; its queues, limits and drops are summed.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use regex::Regex;

use crate::config::Config;
use crate::expected::{ExpectedListeners, PortRange};
use crate::metrics::{Labels, MetricFamily};
use crate::source::etc::{self, Services, Users};
use crate::source::inet::{
    state_bit, Family, InetSocket, Protocol, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN,
};
use crate::source::procfd::{Owner, OwnerResolver, ResolverStats};
use crate::source::sockets::{Backend, SocketSource};
use crate::source::SourceError;

use super::{Collected, Collector};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerKey {
    pub protocol: Protocol,
    pub family: Family,
    pub address: IpAddr,
    pub port: u16,
}

/// What the sockets of one listener add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerAgg {
    pub sockets: u32,
    /// Socket inodes (one per socket of an SO_REUSEPORT group), for owner lookup.
    pub inodes: Vec<u64>,
    /// Owner uid of the socket with the lowest inode (the oldest, in practice).
    pub uid: u32,
    /// TCP: connections waiting to be accepted (Recv-Q of the listening sockets).
    pub accept_queue: u64,
    /// TCP: backlog limit (Send-Q of the listening sockets, netlink only).
    pub accept_queue_limit: u64,
    /// UDP: bytes waiting to be read.
    pub receive_queue_bytes: u64,
    /// UDP: datagrams dropped by these sockets.
    pub drops: Option<u64>,
    /// TCP: established connections whose local address and port belong to this listener.
    pub connections: u64,
}

impl ListenerAgg {
    fn add(&mut self, s: &InetSocket) {
        if self.inodes.is_empty() || s.inode < self.inodes.iter().copied().min().unwrap_or(0) {
            self.uid = s.uid;
        }
        self.sockets += 1;
        self.inodes.push(s.inode);
        match s.protocol {
            Protocol::Tcp => {
                self.accept_queue += u64::from(s.rx_queue);
                self.accept_queue_limit += u64::from(s.tx_queue);
            }
            _ => {
                self.receive_queue_bytes += u64::from(s.rx_queue);
                if let Some(d) = s.drops {
                    *self.drops.get_or_insert(0) += u64::from(d);
                }
            }
        }
    }
}

/// Listener sockets, keyed and aggregated while they stream past.
#[derive(Debug, Default)]
pub struct ListenerTable {
    pub listeners: BTreeMap<ListenerKey, ListenerAgg>,
}

impl ListenerTable {
    /// Add a socket if it is a listener (TCP LISTEN, or UDP/UDP-Lite unconnected).
    pub fn add(&mut self, s: &InetSocket) {
        let is_listener = match s.protocol {
            Protocol::Tcp => s.state == TCP_LISTEN,
            Protocol::Udp | Protocol::UdpLite => s.state == TCP_CLOSE,
            Protocol::Raw => false,
        };
        if !is_listener {
            return;
        }
        let key = ListenerKey {
            protocol: s.protocol,
            family: s.family,
            address: s.local,
            port: s.local_port,
        };
        self.listeners.entry(key).or_default().add(s);
    }
}

/// Index of TCP listeners by (family, port) for counting established connections.
pub struct ConnectionIndex {
    by_port: HashMap<(Family, u16), Vec<(IpAddr, usize)>>,
}

impl ConnectionIndex {
    pub fn new<'a>(keys: impl Iterator<Item = (usize, &'a ListenerKey)>) -> Self {
        let mut by_port: HashMap<(Family, u16), Vec<(IpAddr, usize)>> = HashMap::new();
        for (i, k) in keys {
            if k.protocol == Protocol::Tcp {
                by_port
                    .entry((k.family, k.port))
                    .or_default()
                    .push((k.address, i));
            }
        }
        ConnectionIndex { by_port }
    }

    pub fn is_empty(&self) -> bool {
        self.by_port.is_empty()
    }

    /// The listener owning an established socket: one bound to its exact local address, else
    /// the wildcard listener of its family on that port (an IPv6 `::` listener owns the
    /// `::ffff:` IPv4-mapped connections it accepted: they are IPv6 sockets).
    pub fn owner(&self, s: &InetSocket) -> Option<usize> {
        let candidates = self.by_port.get(&(s.family, s.local_port))?;
        candidates
            .iter()
            .find(|(a, _)| *a == s.local)
            .or_else(|| candidates.iter().find(|(a, _)| a.is_unspecified()))
            .map(|(_, i)| *i)
    }
}

/// A listener ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub key: ListenerKey,
    pub agg: ListenerAgg,
    pub service: String,
    /// The owning process name; `None` when it could not be resolved.
    pub process: Option<String>,
    pub user: String,
    pub unexpected: bool,
}

/// How to render: which optional series exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Accept queue limits are known (netlink served TCP).
    pub limits: bool,
    /// Process attribution is on (off: `process=""`).
    pub attribution: bool,
    /// An expected-listeners file is configured.
    pub expected: bool,
}

fn key_labels(k: &ListenerKey) -> Labels {
    vec![
        ("protocol", k.protocol.name().into()),
        ("family", k.family.name().into()),
        ("address", k.address.to_string()),
        ("port", k.port.to_string()),
    ]
}

fn process_label(l: &Listener, opts: RenderOptions) -> String {
    match (&l.process, opts.attribution) {
        (_, false) => String::new(),
        (Some(p), true) => p.clone(),
        (None, true) => "unknown".into(),
    }
}

/// Render listeners (already filtered and capped) plus the count of those left out.
pub fn render(listeners: &[Listener], dropped: usize, opts: RenderOptions) -> Vec<MetricFamily> {
    let mut info = MetricFamily::gauge(
        "netstat_listener_info",
        "A listening socket (TCP LISTEN, or bound unconnected UDP/UDP-Lite) as netstat -lntup shows it, with its /etc/services name, owning process (unknown when it cannot be resolved) and user. Always 1.",
    );
    let mut sockets = MetricFamily::gauge(
        "netstat_listener_sockets",
        "Sockets bound to this listener's protocol, address and port (more than 1 with SO_REUSEPORT).",
    );
    let mut accept_queue = MetricFamily::gauge(
        "netstat_listener_accept_queue",
        "TCP: connections completed but not yet accepted by the application (Recv-Q of the listening sockets, ss -lnt).",
    );
    let mut accept_limit = MetricFamily::gauge(
        "netstat_listener_accept_queue_limit",
        "TCP: accept queue limit, the listen() backlog capped by net.core.somaxconn (Send-Q of the listening sockets, ss -lnt). Summed over an SO_REUSEPORT group.",
    );
    let mut connections = MetricFamily::gauge(
        "netstat_listener_connections",
        "TCP: established connections whose local address and port belong to this listener.",
    );
    let mut rqueue = MetricFamily::gauge(
        "netstat_listener_receive_queue_bytes",
        "UDP: bytes waiting to be read by the application (Recv-Q, including kernel overhead).",
    );
    let mut drops = MetricFamily::counter(
        "netstat_listener_drops",
        "UDP: datagrams this listener's sockets dropped (receive buffer full, or filtered), from the drops column of /proc/net/udp or SK_MEMINFO_DROPS. Resets when the socket is re-created.",
    );
    let mut unexpected = MetricFamily::gauge(
        "netstat_listener_unexpected",
        "1 for every listener that no entry of the expected-listeners file allows.",
    );
    for l in listeners {
        let mut labels = key_labels(&l.key);
        let proc_name = process_label(l, opts);
        sockets.push(labels.clone(), l.agg.sockets);
        match l.key.protocol {
            Protocol::Tcp => {
                accept_queue.push(labels.clone(), l.agg.accept_queue);
                if opts.limits {
                    accept_limit.push(labels.clone(), l.agg.accept_queue_limit);
                }
                connections.push(labels.clone(), l.agg.connections);
            }
            _ => {
                rqueue.push(labels.clone(), l.agg.receive_queue_bytes);
                if let Some(d) = l.agg.drops {
                    drops.push(labels.clone(), d);
                }
            }
        }
        labels.push(("service", l.service.clone()));
        labels.push(("process", proc_name));
        if l.unexpected {
            unexpected.push(labels.clone(), 1u64);
        }
        labels.push(("user", l.user.clone()));
        info.push(labels, 1u64);
    }
    let mut out = vec![info, sockets, accept_queue];
    if opts.limits {
        out.push(accept_limit);
    }
    out.extend([connections, rqueue, drops]);
    out.push(
        MetricFamily::gauge(
            "netstat_listeners_dropped",
            "Listeners left out of this scrape because there were more than --collector.listeners.max.",
        )
        .with(vec![], dropped),
    );
    if opts.expected {
        out.push(
            MetricFamily::gauge(
                "netstat_listeners_unexpected",
                "Number of listeners that no entry of the expected-listeners file allows.",
            )
            .with(vec![], listeners.iter().filter(|l| l.unexpected).count()),
        );
        out.push(unexpected);
    }
    out
}

/// Self-metrics of process attribution.
pub fn render_resolver(s: &ResolverStats) -> Vec<MetricFamily> {
    vec![
        MetricFamily::counter(
            "netstat_listener_owner_lookups",
            "Listener socket owner lookups: cached (verified with one readlink), walked (found by walking /proc/*/fd), failed (not found: no permission, kernel socket, or a walk not due yet).",
        )
        .with(vec![("result", "cached".into())], s.cached)
        .with(vec![("result", "walked".into())], s.walked)
        .with(vec![("result", "failed".into())], s.failed),
        MetricFamily::counter(
            "netstat_listener_owner_walks",
            "Full walks of /proc/*/fd to find the owners of new listener sockets.",
        )
        .with(vec![], s.walks),
        MetricFamily::gauge(
            "netstat_listener_owner_walk_duration_seconds",
            "Duration of the last full walk of /proc/*/fd.",
        )
        .with(vec![], s.last_walk_seconds),
        MetricFamily::gauge(
            "netstat_listener_owner_walk_fds",
            "File descriptors examined by the last full walk of /proc/*/fd.",
        )
        .with(vec![], s.last_walk_fds),
    ]
}

/// Filters and the cardinality cap.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub port_exclude: Vec<PortRange>,
    pub address_include: Option<Regex>,
    pub address_exclude: Option<Regex>,
    pub max: usize,
}

impl Selection {
    pub fn keeps(&self, k: &ListenerKey) -> bool {
        if self.port_exclude.iter().any(|r| r.contains(k.port)) {
            return false;
        }
        let addr = k.address.to_string();
        self.address_include
            .as_ref()
            .is_none_or(|re| re.is_match(&addr))
            && !self
                .address_exclude
                .as_ref()
                .is_some_and(|re| re.is_match(&addr))
    }

    /// Apply filters, then keep at most `max` listeners, lowest ports first (privileged
    /// ports are the interesting ones). Returns the kept keys and how many were left out by
    /// the cap.
    pub fn apply(&self, keys: impl Iterator<Item = ListenerKey>) -> (Vec<ListenerKey>, usize) {
        let mut kept: Vec<ListenerKey> = keys.filter(|k| self.keeps(k)).collect();
        kept.sort_by_key(|k| (k.port, k.protocol, k.family, k.address));
        let dropped = kept.len().saturating_sub(self.max);
        kept.truncate(self.max);
        (kept, dropped)
    }
}

pub struct ListenersCollector {
    source: SocketSource,
    rootfs: PathBuf,
    resolver: Option<OwnerResolver>,
    selection: Selection,
    expected: Option<ExpectedListeners>,
    warned_cap: AtomicBool,
}

impl ListenersCollector {
    pub fn new(config: &Config) -> Self {
        ListenersCollector {
            source: SocketSource::new(config.sockets_source(), config.procfs.join("net")),
            rootfs: config.rootfs.clone(),
            resolver: config
                .listeners_process
                .then(|| OwnerResolver::new(config.procfs.clone(), config.listeners_walk_interval)),
            selection: Selection {
                port_exclude: config.listeners_port_exclude.clone(),
                address_include: config.listeners_address_include.clone(),
                address_exclude: config.listeners_address_exclude.clone(),
                max: config.listeners_max,
            },
            expected: config.listeners_expected.clone(),
            warned_cap: AtomicBool::new(false),
        }
    }

    /// Read the socket tables: listeners, then established connections to them.
    fn read(
        &self,
        errors: &mut Vec<SourceError>,
    ) -> (Vec<(ListenerKey, ListenerAgg)>, usize, bool) {
        let mut table = ListenerTable::default();
        let backends = self.source.for_each_inet(
            &[Protocol::Tcp],
            state_bit(TCP_LISTEN),
            false,
            errors,
            &mut |s| table.add(s),
        );
        let limits = backends.first() == Some(&Backend::Netlink);
        self.source.for_each_inet(
            &[Protocol::Udp, Protocol::UdpLite],
            state_bit(TCP_CLOSE),
            true,
            errors,
            &mut |s| table.add(s),
        );
        let (kept, dropped) = self.selection.apply(table.listeners.keys().copied());
        let mut out: Vec<(ListenerKey, ListenerAgg)> = kept
            .into_iter()
            .filter_map(|k| table.listeners.remove(&k).map(|a| (k, a)))
            .collect();
        let index = ConnectionIndex::new(out.iter().enumerate().map(|(i, (k, _))| (i, k)));
        if !index.is_empty() {
            let mut counts = vec![0u64; out.len()];
            self.source.for_each_inet(
                &[Protocol::Tcp],
                state_bit(TCP_ESTABLISHED),
                false,
                errors,
                &mut |s| {
                    if let Some(i) = index.owner(s) {
                        counts[i] += 1;
                    }
                },
            );
            for (i, c) in counts.into_iter().enumerate() {
                out[i].1.connections = c;
            }
        }
        (out, dropped, limits)
    }
}

/// Turn aggregates into renderable listeners: names, owners, policy.
pub fn resolve_names(
    listeners: Vec<(ListenerKey, ListenerAgg)>,
    services: &Services,
    users: &Users,
    owners: &HashMap<u64, Owner>,
    expected: Option<&ExpectedListeners>,
) -> Vec<Listener> {
    listeners
        .into_iter()
        .map(|(key, agg)| {
            let proto = match key.protocol {
                Protocol::Tcp => "tcp",
                _ => "udp",
            };
            let service = services
                .get(&(key.port, proto.to_string()))
                .cloned()
                .unwrap_or_default();
            // Several processes may share a socket (fork, fd passing): the lowest pid.
            let process = agg
                .inodes
                .iter()
                .filter_map(|i| owners.get(i))
                .min_by_key(|o| o.pid)
                .map(|o| o.comm.clone());
            let user = users
                .get(&agg.uid)
                .cloned()
                .unwrap_or_else(|| agg.uid.to_string());
            let unexpected = expected.is_some_and(|x| {
                !x.allows(key.protocol, key.address, key.port, process.as_deref())
            });
            Listener {
                key,
                agg,
                service,
                process,
                user,
                unexpected,
            }
        })
        .collect()
}

impl Collector for ListenersCollector {
    fn name(&self) -> &'static str {
        "listeners"
    }

    fn collect(&self) -> Collected {
        let mut errors = Vec::new();
        let (raw, dropped, limits) = self.read(&mut errors);
        if dropped > 0 && !self.warned_cap.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                dropped,
                max = self.selection.max,
                "more listeners than --collector.listeners.max; the highest ports are left out (see netstat_listeners_dropped)"
            );
        }
        let services = etc::read_services(&self.rootfs, &mut errors);
        let users = etc::read_users(&self.rootfs, &mut errors);
        let owners = match &self.resolver {
            Some(r) => {
                let inodes: Vec<u64> = raw
                    .iter()
                    .flat_map(|(_, a)| a.inodes.iter().copied())
                    .collect();
                r.resolve(&inodes, &mut errors)
            }
            None => HashMap::new(),
        };
        let listeners = resolve_names(raw, &services, &users, &owners, self.expected.as_ref());
        // The TCP table is read twice (listeners, then their connections): report a broken
        // file once, not once per pass.
        let mut seen = std::collections::HashSet::new();
        errors.retain(|e| seen.insert(e.clone()));
        let opts = RenderOptions {
            limits,
            attribution: self.resolver.is_some(),
            expected: self.expected.is_some(),
        };
        let mut families = render(&listeners, dropped, opts);
        if let Some(r) = &self.resolver {
            families.extend(render_resolver(&r.stats()));
        }
        Collected { families, errors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(protocol: Protocol, family: Family, state: u8, addr: &str, port: u16) -> InetSocket {
        InetSocket {
            protocol,
            family,
            state,
            local: addr.parse().unwrap(),
            local_port: port,
            remote: addr.parse().unwrap(),
            remote_port: 0,
            rx_queue: 3,
            tx_queue: 5,
            uid: 0,
            inode: u64::from(port) * 10,
            drops: Some(2),
        }
    }

    #[test]
    fn reuseport_group_is_one_listener_and_sums() {
        let mut t = ListenerTable::default();
        let a = sock(Protocol::Tcp, Family::Ipv4, TCP_LISTEN, "0.0.0.0", 80);
        let mut b = a;
        b.inode += 1;
        t.add(&a);
        t.add(&b);
        t.add(&sock(
            Protocol::Tcp,
            Family::Ipv4,
            TCP_ESTABLISHED,
            "0.0.0.0",
            80,
        ));
        t.add(&sock(Protocol::Udp, Family::Ipv6, TCP_CLOSE, "::", 53));
        t.add(&sock(
            Protocol::Udp,
            Family::Ipv6,
            TCP_ESTABLISHED,
            "::1",
            54,
        ));
        assert_eq!(t.listeners.len(), 2);
        let (_, agg) = t.listeners.iter().next().unwrap();
        assert_eq!(
            (agg.sockets, agg.accept_queue, agg.accept_queue_limit),
            (2, 6, 10)
        );
        let udp = t.listeners.values().nth(1).unwrap();
        assert_eq!((udp.receive_queue_bytes, udp.drops), (3, Some(2)));
    }

    #[test]
    fn connections_go_to_exact_then_wildcard_listener() {
        let keys = [
            ListenerKey {
                protocol: Protocol::Tcp,
                family: Family::Ipv4,
                address: "0.0.0.0".parse().unwrap(),
                port: 80,
            },
            ListenerKey {
                protocol: Protocol::Tcp,
                family: Family::Ipv4,
                address: "127.0.0.1".parse().unwrap(),
                port: 80,
            },
            ListenerKey {
                protocol: Protocol::Tcp,
                family: Family::Ipv6,
                address: "::".parse().unwrap(),
                port: 443,
            },
        ];
        let idx = ConnectionIndex::new(keys.iter().enumerate());
        let est = |fam, addr, port| sock(Protocol::Tcp, fam, TCP_ESTABLISHED, addr, port);
        assert_eq!(idx.owner(&est(Family::Ipv4, "127.0.0.1", 80)), Some(1));
        assert_eq!(idx.owner(&est(Family::Ipv4, "10.0.0.1", 80)), Some(0));
        assert_eq!(
            idx.owner(&est(Family::Ipv6, "::ffff:10.0.0.1", 443)),
            Some(2)
        );
        assert_eq!(idx.owner(&est(Family::Ipv4, "10.0.0.1", 443)), None);
        assert_eq!(idx.owner(&est(Family::Ipv4, "10.0.0.1", 8080)), None);
    }

    #[test]
    fn selection_filters_and_caps_lowest_ports_first() {
        let k = |port| ListenerKey {
            protocol: Protocol::Tcp,
            family: Family::Ipv4,
            address: "127.0.0.1".parse().unwrap(),
            port,
        };
        let sel = Selection {
            port_exclude: vec!["1000-1999".parse().unwrap()],
            address_include: None,
            address_exclude: None,
            max: 2,
        };
        let (kept, dropped) = sel.apply([k(3000), k(22), k(1500), k(80)].into_iter());
        assert_eq!(kept, vec![k(22), k(80)]);
        assert_eq!(dropped, 1);
        let sel = Selection {
            address_exclude: Some(Regex::new("^(?:127\\..*)$").unwrap()),
            max: 10,
            ..Default::default()
        };
        assert!(sel.apply([k(22)].into_iter()).0.is_empty());
    }

    #[test]
    fn render_labels_and_optional_series() {
        let key = ListenerKey {
            protocol: Protocol::Tcp,
            family: Family::Ipv4,
            address: "0.0.0.0".parse().unwrap(),
            port: 23,
        };
        let mut agg = ListenerAgg::default();
        agg.add(&sock(
            Protocol::Tcp,
            Family::Ipv4,
            TCP_LISTEN,
            "0.0.0.0",
            23,
        ));
        let mut services = Services::new();
        services.insert((23, "tcp".into()), "telnet".into());
        let users = Users::new();
        let owners: HashMap<u64, Owner> = [(
            230,
            Owner {
                pid: 7,
                comm: "inetd".into(),
            },
        )]
        .into();
        let x = ExpectedListeners::parse("listeners:\n  - port: 22\n", "x").unwrap();
        let ls = resolve_names(vec![(key, agg)], &services, &users, &owners, Some(&x));
        assert_eq!(ls[0].service, "telnet");
        assert_eq!(ls[0].process.as_deref(), Some("inetd"));
        assert_eq!(ls[0].user, "0");
        assert!(ls[0].unexpected);
        let opts = RenderOptions {
            limits: false,
            attribution: true,
            expected: true,
        };
        let f = render(&ls, 0, opts);
        let names: Vec<_> = f.iter().map(|f| f.name).collect();
        assert!(!names.contains(&"netstat_listener_accept_queue_limit"));
        let info = f
            .iter()
            .find(|f| f.name == "netstat_listener_info")
            .unwrap();
        let labels: Vec<_> = info.samples[0]
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            labels,
            [
                "protocol=tcp",
                "family=ipv4",
                "address=0.0.0.0",
                "port=23",
                "service=telnet",
                "process=inetd",
                "user=0"
            ]
        );
        let un = f
            .iter()
            .find(|f| f.name == "netstat_listener_unexpected")
            .unwrap();
        assert_eq!(un.samples.len(), 1);
        let opts = RenderOptions {
            limits: true,
            attribution: false,
            expected: false,
        };
        let f = render(&ls, 0, opts);
        assert!(f
            .iter()
            .any(|f| f.name == "netstat_listener_accept_queue_limit"));
        assert!(!f.iter().any(|f| f.name == "netstat_listener_unexpected"));
        let info = f
            .iter()
            .find(|f| f.name == "netstat_listener_info")
            .unwrap();
        assert!(info.samples[0].labels.contains(&("process", String::new())));
    }
}
