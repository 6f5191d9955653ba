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
use std::sync::Arc;

use regex::Regex;
use rustc_hash::FxHashMap;

use crate::expected::{ExpectedListeners, PortRange};
use crate::flag_values::{anchored_regex, pair, parse_duration};
use crate::metrics::{Desc, Labels, MetricFamily};
use crate::source::cgroup::Identity;
use crate::source::etc::{self, Services, Users};
use crate::source::inet::{
    state_bit, Family, InetSocket, Protocol, ALL_STATES, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN,
};
use crate::source::netns::Netns;
use crate::source::procfd::{Owner, OwnerResolver, ResolverStats};
use crate::source::sockets::{Backend, PassInfo, SocketNeeds};

use super::health::{self, Health};
use super::inbound::{self, Inbound, InboundFlags, InboundPass};
use super::rows::{ListenerRow, RowHealth};
use super::{
    BuildContext, Collected, Collection, Collector, CollectorDecl, CollectorFlags, FlagsDecl,
};

pub const DECL: CollectorDecl = CollectorDecl {
    name: "listeners",
    default_enabled: true,
    help: "listening sockets with service, process, user, accept queue and limit, drops",
    metrics,
    flags: FlagsDecl::of::<ListenersFlags>(),
};

const KEY: &[&str] = &["protocol", "family", "address", "port"];

pub static INFO: Desc = Desc::gauge(
    "netstat_listener_info",
    &[
        "protocol",
        "family",
        "address",
        "port",
        "service",
        "process",
        "user",
        "container_id",
        "pod_uid",
    ],
    "A listening socket (TCP LISTEN, or bound unconnected UDP/UDP-Lite) as netstat -lntup shows it, with its /etc/services name, owning process (unknown when it cannot be resolved), user, and the owning process's container_id and Kubernetes pod_uid from its cgroup (empty for a host process; join kube_pod_info on uid for pod names). Always 1.",
);
pub static SOCKETS: Desc = Desc::gauge(
    "netstat_listener_sockets",
    KEY,
    "Sockets bound to this listener's protocol, address and port (more than 1 with SO_REUSEPORT).",
);
pub static ACCEPT_QUEUE: Desc = Desc::gauge(
    "netstat_listener_accept_queue",
    KEY,
    "TCP: connections completed but not yet accepted by the application (Recv-Q of the listening sockets, ss -lnt).",
);
pub static ACCEPT_QUEUE_LIMIT: Desc = Desc::gauge(
    "netstat_listener_accept_queue_limit",
    KEY,
    "TCP: accept queue limit, the listen() backlog capped by net.core.somaxconn (Send-Q of the listening sockets, ss -lnt). Summed over an SO_REUSEPORT group.",
);
pub static CONNECTIONS: Desc = Desc::gauge(
    "netstat_listener_connections",
    KEY,
    "TCP: established connections whose local address and port belong to this listener.",
);
pub static RECEIVE_QUEUE_BYTES: Desc = Desc::gauge(
    "netstat_listener_receive_queue_bytes",
    KEY,
    "UDP: bytes waiting to be read by the application (Recv-Q, including kernel overhead).",
)
.unit("bytes");
pub static DROPS: Desc = Desc::counter(
    "netstat_listener_drops",
    KEY,
    "UDP: datagrams this listener's sockets dropped (receive buffer full, or filtered), from the drops column of /proc/net/udp or SK_MEMINFO_DROPS. Resets when the socket is re-created.",
);
pub static UNEXPECTED: Desc = Desc::gauge(
    "netstat_listener_unexpected",
    &[
        "protocol",
        "family",
        "address",
        "port",
        "service",
        "process",
        "container_id",
        "pod_uid",
    ],
    "1 for every listener that no entry of the expected-listeners file allows; container_id and pod_uid name the owner's container and pod (the alert shows the pod).",
);
pub static DROPPED: Desc = Desc::gauge(
    "netstat_listeners_dropped",
    &[],
    "Listeners left out of this scrape because there were more than --collector.listeners.max.",
);
pub static UNEXPECTED_COUNT: Desc = Desc::gauge(
    "netstat_listeners_unexpected",
    &[],
    "Number of listeners that no entry of the expected-listeners file allows.",
);
pub static OWNER_LOOKUPS: Desc = Desc::counter(
    "netstat_listener_owner_lookups",
    &["result"],
    "Listener socket owner lookups: cached (verified with one readlink), walked (found by walking /proc/*/fd), failed (not found: no permission, another PID namespace, a kernel socket, or a walk not due yet).",
)
.host_wide();
pub static OWNER_WALKS: Desc = Desc::counter(
    "netstat_listener_owner_walks",
    &[],
    "Full walks of /proc/*/fd to find the owners of new sockets (one at start-up, then only when a socket never seen before appears: by scrapes at most once per --collector.listeners.walk-interval, by the watch at most once per 5 s and only when the processes started since its last look do not hold it, see netstat_watch_owner_walks_total).",
)
.host_wide();
pub static OWNER_WALK_DURATION: Desc = Desc::gauge(
    "netstat_listener_owner_walk_duration_seconds",
    &[],
    "Duration of the last full walk of /proc/*/fd.",
)
.unit("seconds")
.host_wide();
pub static OWNER_WALK_FDS: Desc = Desc::gauge(
    "netstat_listener_owner_walk_fds",
    &[],
    "File descriptors examined by the last full walk of /proc/*/fd.",
)
.host_wide();
pub static OWNER_UNRESOLVED: Desc = Desc::gauge(
    "netstat_listener_owner_unresolved",
    &[],
    "Listener sockets that a walk could not attribute to any process (another PID namespace, fds not readable, sockets held only by the kernel or in flight); remembered, so they never cause another walk.",
)
.host_wide();

fn metrics() -> Vec<&'static Desc> {
    vec![
        &INFO,
        &SOCKETS,
        &ACCEPT_QUEUE,
        &ACCEPT_QUEUE_LIMIT,
        &CONNECTIONS,
        &RECEIVE_QUEUE_BYTES,
        &DROPS,
        &health::LISTENER_RTT,
        &health::LISTENER_RETRANSMITTING,
        &UNEXPECTED,
        &DROPPED,
        &UNEXPECTED_COUNT,
        &OWNER_LOOKUPS,
        &OWNER_WALKS,
        &OWNER_WALK_DURATION,
        &OWNER_WALK_FDS,
        &OWNER_UNRESOLVED,
        &inbound::INBOUND,
        &inbound::FOLDED,
        &inbound::SOURCES,
        &inbound::NEW_SOURCES,
        &inbound::UNEXPECTED,
        &inbound::UNEXPECTED_CONNECTIONS,
    ]
}

/// The flags of the listeners collector.
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct ListenersFlags {
    #[arg(
        id = "collector.listeners.process",
        long = "collector.listeners.process",
        overrides_with = "no-collector.listeners.process",
        help = "Attribute listeners to their processes via <procfs>/<pid>/fd (default: enabled; needs root or CAP_DAC_READ_SEARCH + CAP_SYS_PTRACE for other users' processes)."
    )]
    process: bool,
    #[arg(
        id = "no-collector.listeners.process",
        long = "no-collector.listeners.process",
        overrides_with = "collector.listeners.process",
        help = "Do not attribute listeners to processes (process=\"\")."
    )]
    no_process: bool,
    #[arg(
        id = "collector.listeners.walk-interval",
        long = "collector.listeners.walk-interval",
        value_name = "DURATION",
        default_value = "30s",
        help = "Minimum time between two full walks of <procfs>/*/fd to find the owner of a new listener (the first walk happens at start-up; cached owners are verified on every scrape without a walk; owners no walk could find are remembered and never cause another walk)."
    )]
    walk_interval: String,
    #[arg(
        id = "collector.listeners.max",
        long = "collector.listeners.max",
        value_name = "N",
        default_value = "1000",
        help = "Export at most this many listeners per network namespace (lowest ports first); the rest are counted in netstat_listeners_dropped."
    )]
    max: usize,
    #[arg(
        id = "collector.listeners.port-exclude",
        long = "collector.listeners.port-exclude",
        value_name = "RANGES",
        help = "Ports not to report as listeners: comma-separated ports and ranges, e.g. \"32768-60999,8080\"."
    )]
    port_exclude: Option<String>,
    #[arg(
        id = "collector.listeners.address-include",
        long = "collector.listeners.address-include",
        value_name = "REGEX",
        help = "Regexp (anchored) of listener addresses to report (as in the address label)."
    )]
    address_include: Option<String>,
    #[arg(
        id = "collector.listeners.address-exclude",
        long = "collector.listeners.address-exclude",
        value_name = "REGEX",
        help = "Regexp (anchored) of listener addresses not to report."
    )]
    address_exclude: Option<String>,
    /// Shared: connections reads it through [`BuildContext::expected_file`].
    #[arg(
        id = "collector.listeners.expected",
        long = "collector.listeners.expected",
        value_name = "FILE",
        help = "YAML file listing what may listen on this host; listeners it does not allow get netstat_listener_unexpected 1. A malformed file stops the exporter at start-up."
    )]
    pub expected: Option<PathBuf>,
    #[command(flatten)]
    inbound: InboundFlags,
}

impl ListenersFlags {
    /// `--collector.listeners.walk-interval` (the shared owner resolver's).
    pub fn walk_interval(&self) -> Result<std::time::Duration, String> {
        parse_duration("--collector.listeners.walk-interval", &self.walk_interval)
    }

    /// `--[no-]collector.listeners.process`.
    pub fn process(&self) -> bool {
        pair(self.process, self.no_process, true)
    }

    /// The listeners to report (`--collector.listeners.{port-exclude,address-*,max}`).
    fn selection(&self) -> Result<Selection, String> {
        let port_exclude = match &self.port_exclude {
            None => Vec::new(),
            Some(s) => s
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    p.parse::<PortRange>()
                        .map_err(|e| format!("invalid --collector.listeners.port-exclude: {e}"))
                })
                .collect::<Result<_, _>>()?,
        };
        let address_include = anchored_regex(
            "--collector.listeners.address-include",
            self.address_include.as_deref(),
        )?;
        let address_exclude = anchored_regex(
            "--collector.listeners.address-exclude",
            self.address_exclude.as_deref(),
        )?;
        if address_include.is_some() && address_exclude.is_some() {
            return Err(
                "--collector.listeners.address-include and --collector.listeners.address-exclude are mutually exclusive"
                    .into(),
            );
        }
        Ok(Selection {
            port_exclude,
            address_include,
            address_exclude,
            max: self.max,
        })
    }
}

impl CollectorFlags for ListenersFlags {
    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Collector>, String> {
        Ok(Box::new(ListenersCollector::with(self, ctx)?))
    }
}

/// What the listeners collector reads of the pass: TCP listeners and the sockets they accepted
/// in every state (established ones counted per listener, all of them as inbound
/// connections), unconnected UDP sockets with their drops.
pub const NEEDS: SocketNeeds = {
    let mut n = SocketNeeds::NONE;
    n.states[Protocol::Tcp as usize] = ALL_STATES;
    n.states[Protocol::Udp as usize] = state_bit(TCP_CLOSE);
    n.states[Protocol::UdpLite as usize] = state_bit(TCP_CLOSE);
    n.meminfo[Protocol::Udp as usize] = true;
    n.meminfo[Protocol::UdpLite as usize] = true;
    n
};

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

/// The TCP listening ports of one namespace, built while the pass streams its listening
/// sockets (the kernel sends them before all other TCP sockets), to tell which listener a
/// connection belongs to. A bitmap per family answers "nobody listens on this port" (the
/// common case for outbound sockets) without hashing.
pub struct ListeningPorts {
    bits: Vec<u64>,
    by_port: FxHashMap<(Family, u16), Vec<IpAddr>>,
}

impl Default for ListeningPorts {
    fn default() -> Self {
        ListeningPorts {
            bits: vec![0; 2 * 65536 / 64],
            by_port: FxHashMap::default(),
        }
    }
}

impl ListeningPorts {
    fn bit(family: Family, port: u16) -> (usize, u64) {
        let i = family.index() * 65536 + usize::from(port);
        (i / 64, 1 << (i % 64))
    }

    pub fn add(&mut self, family: Family, address: IpAddr, port: u16) {
        let (w, b) = Self::bit(family, port);
        self.bits[w] |= b;
        let v = self.by_port.entry((family, port)).or_default();
        if !v.contains(&address) {
            v.push(address);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_port.is_empty()
    }

    /// The address of the listener owning a non-listening TCP socket: one bound to its exact
    /// local address, else the wildcard listener of its family on that port (an IPv6 `::`
    /// listener owns the `::ffff:` IPv4-mapped connections it accepted: they are IPv6
    /// sockets). None: nobody listens on its local port, so the socket is outbound.
    pub fn owner(&self, s: &InetSocket) -> Option<IpAddr> {
        let (w, b) = Self::bit(s.family, s.local_port);
        if self.bits[w] & b == 0 {
            return None;
        }
        let candidates = self.by_port.get(&(s.family, s.local_port))?;
        candidates
            .iter()
            .find(|a| **a == s.local)
            .or_else(|| candidates.iter().find(|a| a.is_unspecified()))
            .copied()
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
    /// The owning process's container and pod (empty when none or unknown).
    pub identity: Identity,
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

fn process_label(l: &Listener, opts: RenderOptions) -> String {
    match (&l.process, opts.attribution) {
        (_, false) => String::new(),
        (Some(p), true) => p.clone(),
        (None, true) => "unknown".into(),
    }
}

/// The rows of listeners (already filtered and capped), with the health of the connections
/// they accepted (None: `--collector.connections.health` is off). The families and the
/// snapshot are made from them.
pub fn rows(
    listeners: &[Listener],
    opts: RenderOptions,
    healths: Option<&FxHashMap<ListenerKey, Health>>,
) -> Vec<ListenerRow> {
    listeners
        .iter()
        .map(|l| {
            let tcp = l.key.protocol == Protocol::Tcp;
            ListenerRow {
                protocol: l.key.protocol.name().into(),
                family: l.key.family.name().into(),
                address: l.key.address.to_string(),
                port: l.key.port,
                service: l.service.clone(),
                process: process_label(l, opts),
                user: l.user.clone(),
                sockets: u64::from(l.agg.sockets),
                accept_queue: tcp.then_some(l.agg.accept_queue),
                accept_queue_limit: (tcp && opts.limits).then_some(l.agg.accept_queue_limit),
                connections: tcp.then_some(l.agg.connections),
                receive_queue_bytes: (!tcp).then_some(l.agg.receive_queue_bytes),
                drops: if tcp { None } else { l.agg.drops },
                unexpected: opts.expected.then_some(l.unexpected),
                container_id: l.identity.container_id.clone(),
                pod_uid: l.identity.pod_uid.clone(),
                health: RowHealth::of(healths.and_then(|h| h.get(&l.key))),
                netns: String::new(),
            }
        })
        .collect()
}

fn row_key_labels(r: &ListenerRow) -> Labels {
    vec![
        ("protocol", r.protocol.clone()),
        ("family", r.family.clone()),
        ("address", r.address.clone()),
        ("port", r.port.to_string()),
    ]
}

/// The health families of the listeners' rows (`--collector.connections.health`): the RTT
/// of the connections each accepted and those retransmitting, on listeners with connections.
pub fn render_health(rows: &[ListenerRow]) -> [MetricFamily; 2] {
    health::render_rows(
        &health::LISTENER_RTT,
        &health::LISTENER_RETRANSMITTING,
        rows.iter(),
        |r| &r.health,
        row_key_labels,
    )
}

/// Render the rows of listeners plus the count of those left out: the one place where the
/// listener families are made.
pub fn render(rows: &[ListenerRow], dropped: usize, opts: RenderOptions) -> Vec<MetricFamily> {
    let mut info = INFO.family();
    let mut sockets = SOCKETS.family();
    let mut accept_queue = ACCEPT_QUEUE.family();
    let mut accept_limit = ACCEPT_QUEUE_LIMIT.family();
    let mut connections = CONNECTIONS.family();
    let mut rqueue = RECEIVE_QUEUE_BYTES.family();
    let mut drops = DROPS.family();
    let mut unexpected = UNEXPECTED.family();
    for r in rows {
        let mut labels = row_key_labels(r);
        sockets.push(labels.clone(), r.sockets);
        for (family, value) in [
            (&mut accept_queue, r.accept_queue),
            (&mut accept_limit, r.accept_queue_limit),
            (&mut connections, r.connections),
            (&mut rqueue, r.receive_queue_bytes),
            (&mut drops, r.drops),
        ] {
            if let Some(v) = value {
                family.push(labels.clone(), v);
            }
        }
        labels.push(("service", r.service.clone()));
        labels.push(("process", r.process.clone()));
        let owner = [
            ("container_id", r.container_id.clone()),
            ("pod_uid", r.pod_uid.clone()),
        ];
        if r.unexpected == Some(true) {
            let mut u = labels.clone();
            u.extend(owner.iter().cloned());
            unexpected.push(u, 1u64);
        }
        labels.push(("user", r.user.clone()));
        labels.extend(owner);
        info.push(labels, 1u64);
    }
    let mut out = vec![info, sockets, accept_queue];
    if opts.limits {
        out.push(accept_limit);
    }
    out.extend([connections, rqueue, drops]);
    out.push(DROPPED.family().with(vec![], dropped));
    if opts.expected {
        out.push(UNEXPECTED_COUNT.family().with(
            vec![],
            rows.iter().filter(|r| r.unexpected == Some(true)).count(),
        ));
        out.push(unexpected);
    }
    out
}

/// Self-metrics of process attribution.
pub fn render_resolver(s: &ResolverStats) -> Vec<MetricFamily> {
    vec![
        OWNER_LOOKUPS
            .family()
            .with(vec![("result", "cached".into())], s.cached)
            .with(vec![("result", "walked".into())], s.walked)
            .with(vec![("result", "failed".into())], s.failed),
        OWNER_WALKS.family().with(vec![], s.walks),
        OWNER_WALK_DURATION
            .family()
            .with(vec![], s.last_walk_seconds),
        OWNER_WALK_FDS.family().with(vec![], s.last_walk_fds),
        OWNER_UNRESOLVED.family().with(vec![], s.unresolved),
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
    rootfs: PathBuf,
    services: etc::Cached<Services>,
    users: etc::Cached<Users>,
    resolver: Option<Arc<OwnerResolver>>,
    selection: Selection,
    expected: Option<ExpectedListeners>,
    warned_cap: AtomicBool,
    /// `--collector.connections.health`: RTT and retransmissions per listener.
    health: bool,
    /// Inbound connections by remote network, and the memory of their sources.
    inbound: Inbound,
}

impl ListenersCollector {
    pub fn with(flags: &ListenersFlags, ctx: &BuildContext) -> Result<Self, String> {
        let selection = flags.selection()?;
        let expected = match ctx.expected_file() {
            Some(path) => Some(ExpectedListeners::load(path)?).filter(|x| x.listeners_policy),
            None => None,
        };
        // Validated here for a clear error; the shared resolver reads it too.
        flags.walk_interval()?;
        let inbound = Inbound::new(&flags.inbound, ctx, expected.as_ref())?;
        Ok(ListenersCollector {
            rootfs: ctx.rootfs().to_path_buf(),
            services: Default::default(),
            users: Default::default(),
            resolver: if flags.process() {
                Some(ctx.owner_resolver()?)
            } else {
                None
            },
            selection,
            expected,
            warned_cap: AtomicBool::new(false),
            health: ctx.health(),
            inbound,
        })
    }

    /// The filters and the expected-listeners policy (the watch applies them too).
    pub fn policy(&self) -> (Selection, Option<ExpectedListeners>) {
        (self.selection.clone(), self.expected.clone())
    }

    /// The shared owner resolver (None when attribution is off: `--no-collector.listeners.process`).
    pub fn resolver(&self) -> Option<Arc<OwnerResolver>> {
        self.resolver.clone()
    }

    /// Attribution statistics (None when attribution is off).
    pub fn resolver_stats(&self) -> Option<ResolverStats> {
        self.resolver.as_ref().map(|r| r.stats())
    }
}

/// One collection: listeners and per-listener connection counts, from the shared pass.
pub struct ListenersPass<'a> {
    collector: &'a ListenersCollector,
    table: ListenerTable,
    ports: ListeningPorts,
    /// TCP listener key -> established connections seen so far.
    connections: FxHashMap<ListenerKey, u64>,
    /// TCP listener key -> RTT and retransmissions of those connections.
    health: FxHashMap<ListenerKey, Health>,
    inbound: InboundPass<'a>,
}

impl<'a> ListenersPass<'a> {
    pub fn new(collector: &'a ListenersCollector, ns: &Netns) -> Self {
        ListenersPass {
            inbound: collector.inbound.begin(ns.label()),
            collector,
            table: ListenerTable::default(),
            ports: ListeningPorts::default(),
            connections: FxHashMap::default(),
            health: FxHashMap::default(),
        }
    }
}

impl Collection for ListenersPass<'_> {
    fn inet(&mut self, s: &InetSocket) {
        if s.is_listen() {
            self.ports.add(s.family, s.local, s.local_port);
        } else if s.protocol == Protocol::Tcp {
            if let Some(address) = self.ports.owner(s) {
                let key = ListenerKey {
                    protocol: Protocol::Tcp,
                    family: s.family,
                    address,
                    port: s.local_port,
                };
                self.inbound.add(key, s);
                if s.state == TCP_ESTABLISHED {
                    *self.connections.entry(key).or_default() += 1;
                    if let Some(p) = health::Probe::of(s) {
                        self.health.entry(key).or_default().add(p);
                    }
                }
            }
            return;
        }
        self.table.add(s);
    }

    fn finish(self: Box<Self>, pass: &PassInfo, out: &mut Collected) {
        let ListenersPass {
            collector: c,
            mut table,
            connections,
            health: healths,
            inbound: inbound_pass,
            ..
        } = *self;
        let errors = &mut out.errors;
        let limits = pass.backend(Protocol::Tcp) == Some(Backend::Netlink);
        let (kept, dropped) = c.selection.apply(table.listeners.keys().copied());
        let raw: Vec<(ListenerKey, ListenerAgg)> = kept
            .into_iter()
            .filter_map(|k| {
                table.listeners.remove(&k).map(|mut a| {
                    a.connections = connections.get(&k).copied().unwrap_or(0);
                    (k, a)
                })
            })
            .collect();
        if dropped > 0 && !c.warned_cap.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                dropped,
                max = c.selection.max,
                "more listeners than --collector.listeners.max; the highest ports are left out (see netstat_listeners_dropped)"
            );
        }
        let services = etc::services_cached(&c.services, &c.rootfs, errors);
        let users = etc::users_cached(&c.users, &c.rootfs, errors);
        let owners = match &c.resolver {
            Some(r) => {
                let inodes: Vec<u64> = raw
                    .iter()
                    .flat_map(|(_, a)| a.inodes.iter().copied())
                    .collect();
                r.resolve(&inodes, errors)
            }
            None => HashMap::new(),
        };
        let listeners = resolve_names(raw, &services, &users, &owners, c.expected.as_ref());
        let opts = RenderOptions {
            limits,
            attribution: c.resolver.is_some(),
            expected: c.expected.is_some(),
        };
        let rows = rows(&listeners, opts, c.health.then_some(&healths));
        out.families.extend(render(&rows, dropped, opts));
        let health = c.health.then(|| render_health(&rows));
        out.rows.listeners = Some(super::rows::Listeners {
            rows,
            dropped: dropped as u64,
            policy: opts.expected,
        });
        inbound_pass.finish(
            out,
            &listeners,
            &services,
            c.resolver.is_some(),
            c.expected.as_ref(),
        );
        out.families.extend(health.into_iter().flatten());
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
            let owner = agg
                .inodes
                .iter()
                .filter_map(|i| owners.get(i))
                .min_by_key(|o| o.pid);
            let process = owner.map(|o| o.comm.clone());
            let identity = owner.map(|o| o.identity.clone()).unwrap_or_default();
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
                identity,
                user,
                unexpected,
            }
        })
        .collect()
}

impl Collector for ListenersCollector {
    fn name(&self) -> &'static str {
        DECL.name
    }

    fn socket_needs(&self) -> SocketNeeds {
        SocketNeeds {
            tcp_info: self.health,
            ..NEEDS
        }
    }

    fn begin<'a>(&'a self, ns: &'a Netns) -> Box<dyn Collection + 'a> {
        Box::new(ListenersPass::new(self, ns))
    }

    /// Attribution is host-wide (one resolver for every namespace): its metrics once.
    fn end_scrape(&self, read: &std::collections::BTreeSet<String>, out: &mut Collected) {
        self.inbound.end_scrape(read);
        if let Some(r) = &self.resolver {
            r.end_scrape();
            out.families.extend(render_resolver(&r.stats()));
        }
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
            cookie: 0,
            drops: Some(2),
            tcp: None,
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
        let mut idx = ListeningPorts::default();
        for k in &keys {
            idx.add(k.family, k.address, k.port);
        }
        let est = |fam, addr, port| sock(Protocol::Tcp, fam, TCP_ESTABLISHED, addr, port);
        let ip = |a: &str| Some(a.parse::<IpAddr>().unwrap());
        assert_eq!(
            idx.owner(&est(Family::Ipv4, "127.0.0.1", 80)),
            ip("127.0.0.1")
        );
        assert_eq!(idx.owner(&est(Family::Ipv4, "10.0.0.1", 80)), ip("0.0.0.0"));
        assert_eq!(
            idx.owner(&est(Family::Ipv6, "::ffff:10.0.0.1", 443)),
            ip("::")
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
                identity: Identity {
                    container_id: "c".repeat(64),
                    pod_uid: String::new(),
                },
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
        let f = render(&rows(&ls, opts, None), 0, opts);
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
                "user=0",
                &format!("container_id={}", "c".repeat(64)),
                "pod_uid="
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
        let f = render(&rows(&ls, opts, None), 0, opts);
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
