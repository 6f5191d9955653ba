//! Collector `connections`: who this host talks to, what `netstat -tunp` shows for the
//! connections a process opened itself: a bounded, alertable outbound inventory.
//!
//! Outbound = a TCP socket not in LISTEN whose local port is not a listening port of the same
//! namespace (on its address or a wildcard), or a connected UDP / UDP-Lite socket whose local
//! port is not a UDP listener's (a reply socket of a server). Inbound connections are counted
//! per listener by the listeners collector.
//!
//! Everything comes from the shared socket pass: no extra walk of the socket tables. Series
//! are keyed by protocol, remote port (kept below the namespace's ephemeral port range or when
//! /etc/services names it, else `ephemeral`), service, remote network (see `networks.rs`),
//! owning process (the shared inode -> process map of the listeners) and state, and capped at
//! `--collector.connections.max` by folding the smallest series: the sum of every series is
//! always the number of outbound sockets. State kept across scrapes is only the capped memory
//! of remote addresses, for counting new destinations.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::expected::{ConnectionEntry, ExpectedListeners, OutboundKey};
use crate::flag_values::{pair, parse_duration_max};
use crate::metrics::{Desc, Labels, MetricFamily};
use crate::networks::{unmap, Networks};
use crate::source::destroy::Traffic;
use crate::source::etc::{self, Services};
use crate::source::inet::{
    state_bit, Family, InetSocket, Protocol, ALL_STATES, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN,
    TCP_NEW_SYN_RECV, TCP_STATE_NAMES, TCP_SYN_RECV, TCP_TIME_WAIT,
};
use crate::source::netns::Netns;
use crate::source::procfd::{Lookup, OwnerResolver};
use crate::source::sockets::{PassInfo, SocketNeeds};

use super::health::{self, Health, HealthFlags, Probe};
use super::listeners::ListeningPorts;
use super::rows::{self, OutboundRow, RowHealth};
use super::{
    BuildContext, Collected, Collection, Collector, CollectorDecl, CollectorFlags, FlagsDecl,
};
use crate::source::cgroup::Identity;

pub const DECL: CollectorDecl = CollectorDecl {
    name: "connections",
    default_enabled: true,
    help: "outbound connections by process, remote port, service and network; new destinations; an outbound policy",
    metrics,
    flags: FlagsDecl::of::<ConnectionsFlags>(),
};

pub static OUTBOUND: Desc = Desc::gauge(
    "netstat_outbound_connections",
    &[
        "protocol",
        "remote_port",
        "service",
        "remote_network",
        "process",
        "state",
        "container_id",
        "pod_uid",
    ],
    "Outbound sockets (opened by this host: TCP not accepted by a local listener, connected UDP that is no listener's reply socket) by protocol, remote port (ephemeral above the namespace's ephemeral range unless /etc/services names it; other when folded), /etc/services name of the remote port, remote network (a named network, else loopback, link_local, private, multicast, public), owning process (unknown when it cannot be seen; other when folded), state (TCP state, connected for UDP), and the owning process's container_id and Kubernetes pod_uid from its cgroup (empty for a host process, an unknown owner and folded series). A series exists while its count is not zero.",
);
pub static FOLDED: Desc = Desc::gauge(
    "netstat_outbound_connections_folded",
    &[],
    "Outbound sockets counted in the folded series (remote_port=\"other\", process=\"other\") because there were more series than --collector.connections.max.",
);
pub static DESTINATIONS: Desc = Desc::gauge(
    "netstat_outbound_destinations",
    &["remote_network"],
    "Distinct remote addresses of outbound sockets now.",
);
pub static NEW_DESTINATIONS: Desc = Desc::counter(
    "netstat_outbound_new_destinations",
    &["remote_network"],
    "Remote addresses of outbound sockets not seen within --collector.connections.destination-memory (the first collection of a namespace is the baseline and counts none). A rise is how a host that starts phoning home shows up without a per-address label.",
);
pub static DESTINATIONS_REMEMBERED: Desc = Desc::gauge(
    "netstat_outbound_destinations_remembered",
    &[],
    "Remote addresses held in the new-destination memory (at most --collector.connections.destination-capacity).",
)
.host_wide();
pub static DESTINATION_EVICTIONS: Desc = Desc::counter(
    "netstat_outbound_destination_evictions",
    &[],
    "Remote addresses dropped from the new-destination memory before their time because it was full (the oldest go first); such an address counts as new when it is seen again.",
)
.host_wide();
/// The labels of a series without its state, with the owner's container and pod: what
/// [`owner_labels`] writes, for the unexpected and the health families.
pub const OWNER_KEY: &[&str] = &[
    "protocol",
    "remote_port",
    "service",
    "remote_network",
    "process",
    "container_id",
    "pod_uid",
];
pub static UNEXPECTED: Desc = Desc::gauge(
    "netstat_outbound_unexpected",
    OWNER_KEY,
    "1 for every outbound series (without its state) that no connections: entry of the expected file allows; container_id and pod_uid name the owner's container and pod (the alert shows the pod).",
);
pub static UNEXPECTED_CONNECTIONS: Desc = Desc::gauge(
    "netstat_outbound_unexpected_connections",
    &[],
    "Outbound sockets that no connections: entry of the expected file allows.",
);

fn metrics() -> Vec<&'static Desc> {
    vec![
        &OUTBOUND,
        &FOLDED,
        &DESTINATIONS,
        &NEW_DESTINATIONS,
        &UNEXPECTED,
        &UNEXPECTED_CONNECTIONS,
        &health::OUTBOUND_RTT,
        &health::OUTBOUND_RETRANSMITTING,
        &DESTINATIONS_REMEMBERED,
        &DESTINATION_EVICTIONS,
    ]
    .into_iter()
    .chain(crate::flows::metrics())
    .collect()
}

/// The flags of the connections collector (the networks file, the memory of remote addresses
/// and the health switch are shared with the listeners collector, through [`BuildContext`]).
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct ConnectionsFlags {
    #[arg(
        id = "collector.connections.process",
        long = "collector.connections.process",
        overrides_with = "no-collector.connections.process",
        help = "Attribute outbound sockets to their processes, through the same inode map as the listeners (default: enabled)."
    )]
    process: bool,
    #[arg(
        id = "no-collector.connections.process",
        long = "no-collector.connections.process",
        overrides_with = "collector.connections.process",
        help = "Do not attribute outbound sockets to processes (process=\"\")."
    )]
    no_process: bool,
    #[arg(
        id = "collector.connections.networks",
        long = "collector.connections.networks",
        value_name = "FILE",
        help = "YAML file naming remote networks (networks: {corp: [\"10.0.0.0/8\", \"fd00::/8\"]}); the longest matching prefix names a connection's remote_network, else its built-in class. A malformed file stops the exporter at start-up."
    )]
    pub networks: Option<PathBuf>,
    #[arg(
        id = "collector.connections.max",
        long = "collector.connections.max",
        value_name = "N",
        default_value = "1000",
        help = "Export at most this many netstat_outbound_connections series per network namespace: beyond it the smallest are folded into one series per protocol, remote network and state (remote_port=\"other\", process=\"other\"), so the sum stays the number of outbound sockets."
    )]
    max: usize,
    #[arg(
        id = "collector.connections.destination-memory",
        long = "collector.connections.destination-memory",
        value_name = "DURATION",
        default_value = "24h",
        help = "A remote address not seen for this long counts as new again in netstat_outbound_new_destinations_total (e.g. 24h, 7d; at most 30d)."
    )]
    destination_memory: String,
    #[arg(
        id = "collector.connections.destination-capacity",
        long = "collector.connections.destination-capacity",
        value_name = "N",
        default_value = "100000",
        help = "At most this many remote addresses are remembered; beyond, the oldest are forgotten (counted in netstat_outbound_destination_evictions_total)."
    )]
    pub destination_capacity: usize,
    #[command(flatten)]
    pub health: HealthFlags,
    #[arg(
        id = "collector.connections.flows",
        long = "collector.connections.flows",
        overrides_with = "no-collector.connections.flows",
        help = "Count every closed TCP connection (bytes, retransmits, failed connects) from the kernel's socket-destroy stream, with a subscriber per network namespace read (default: enabled; needs netlink sockets)."
    )]
    flows: bool,
    #[arg(
        id = "no-collector.connections.flows",
        long = "no-collector.connections.flows",
        overrides_with = "collector.connections.flows",
        help = "Do not subscribe to the socket-destroy stream (no netstat_*_closed_total, netstat_*_bytes_total, netstat_*_retransmitted_segments_total, netstat_outbound_connect_failures_total)."
    )]
    no_flows: bool,
    #[arg(
        id = "collector.connections.flows.receive-buffer",
        long = "collector.connections.flows.receive-buffer",
        value_name = "BYTES",
        default_value = "16777216",
        help = "Receive buffer of each socket-destroy subscriber (SO_RCVBUFFORCE with CAP_NET_ADMIN, else SO_RCVBUF capped by net.core.rmem_max). A burst that overruns it is counted in netstat_socket_destroy_lost_total; tests make it tiny to force losses."
    )]
    flows_receive_buffer: usize,
}

impl ConnectionsFlags {
    /// `--collector.connections.destination-memory` (at most 30 days).
    pub fn destination_memory(&self) -> Result<Duration, String> {
        parse_duration_max(
            "--collector.connections.destination-memory",
            &self.destination_memory,
            30.0 * 86400.0,
        )
    }
}

impl CollectorFlags for ConnectionsFlags {
    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Collector>, String> {
        let networks = match ctx.networks_file() {
            Some(p) => Networks::load(p)?,
            None => Networks::default(),
        };
        let policy = match ctx.expected_file() {
            Some(p) => ExpectedListeners::load(p)?.connections,
            None => None,
        };
        let (memory, capacity) = ctx.remote_memory()?;
        let resolver = if pair(self.process, self.no_process, true) {
            Some(ctx.owner_resolver()?)
        } else {
            None
        };
        let flows = (pair(self.flows, self.no_flows, true)
            && ctx.socket_source() != crate::source::sockets::SourceMode::Proc)
            .then(|| crate::flows::Flows::new(networks.clone(), self.flows_receive_buffer));
        Ok(Box::new(ConnectionsCollector {
            rootfs: ctx.rootfs().to_path_buf(),
            services: Default::default(),
            flows,
            networks,
            policy,
            max: self.max.max(1),
            resolver,
            destinations: Mutex::new(Destinations::new(memory, capacity)),
            health: ctx.health(),
        }))
    }
}

/// What the pass must show: all TCP states (listeners first, to know the listening ports),
/// UDP and UDP-Lite listeners and connected sockets.
pub const NEEDS: SocketNeeds = {
    let mut n = SocketNeeds::NONE;
    n.states[Protocol::Tcp as usize] = ALL_STATES;
    n.states[Protocol::Udp as usize] = state_bit(TCP_CLOSE) | state_bit(TCP_ESTABLISHED);
    n.states[Protocol::UdpLite as usize] = state_bit(TCP_CLOSE) | state_bit(TCP_ESTABLISHED);
    n
};

/// Unknown owners looked for in one scrape at most (the rest stay `unknown` until a later
/// scrape): bounds the per-scrape memory of a host that opens connections by the hundred
/// thousand.
const PENDING_MAX: usize = 65536;

/// Remote port class: a port number, or [`EPHEMERAL`].
const EPHEMERAL: u32 = 1 << 16;

/// An outbound series while aggregating: labels as small numbers, the process as its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RawKey {
    protocol: Protocol,
    port: u32,
    network: u16,
    /// 0: unknown owner.
    pid: u32,
    state: u8,
}

/// An outbound socket waiting for its owner to be looked up: 16 bytes (at 300k sockets
/// these are the collector's largest allocation; a tuple of a 64-bit inode, a [`RawKey`] and
/// an `Option<Probe>` takes 32). Socket inodes are 32-bit (the kernel's `get_next_ino()`); a
/// wider one goes straight to `pending`.
#[derive(Debug, Clone, Copy)]
struct Unattributed {
    inode: u32,
    port: u32,
    network: u16,
    protocol: Protocol,
    state: u8,
    probe: PackedProbe,
}

/// Set in [`Unattributed::state`] when `inode` is an index into the pass's remembered
/// sockets ([`crate::flows::Remembered`], whose `pid` holds the inode until the owner is
/// known): so a socket waiting for its owner stays 16 bytes.
const REMEMBERED: u8 = 0x80;

impl Unattributed {
    fn key(&self) -> RawKey {
        RawKey {
            protocol: self.protocol,
            port: self.port,
            network: self.network,
            pid: 0,
            state: self.state & !REMEMBERED,
        }
    }

    /// The index of its remembered entry, when it has one.
    fn remembered(&self) -> Option<u32> {
        (self.state & REMEMBERED != 0).then_some(self.inode)
    }
}

/// An `Option<Probe>` in 4 bytes: `u32::MAX` for none, else the RTT in microseconds (clamped
/// below 2^31: 35 minutes, beyond every bucket) and the top bit for retransmitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PackedProbe(u32);

impl PackedProbe {
    const NONE: PackedProbe = PackedProbe(u32::MAX);
    const RETRANSMITTING: u32 = 1 << 31;

    fn pack(p: Option<Probe>) -> Self {
        match p {
            None => Self::NONE,
            Some(p) => PackedProbe(
                p.rtt_us.min(Self::RETRANSMITTING - 2)
                    | if p.retransmitting {
                        Self::RETRANSMITTING
                    } else {
                        0
                    },
            ),
        }
    }

    fn unpack(self) -> Option<Probe> {
        (self != Self::NONE).then_some(Probe {
            rtt_us: self.0 & !Self::RETRANSMITTING,
            retransmitting: self.0 & Self::RETRANSMITTING != 0,
        })
    }
}

/// A rendered series key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    pub protocol: Protocol,
    /// A port number, `ephemeral`, or `other` (folded).
    pub remote_port: String,
    pub service: String,
    pub remote_network: String,
    /// The owner's comm, `unknown`, `other` (folded), or "" with attribution off.
    pub process: String,
    pub state: &'static str,
    /// The owner's container and pod (cgroup), "" when none or unknown.
    pub container_id: String,
    pub pod_uid: String,
}

pub struct ConnectionsCollector {
    rootfs: PathBuf,
    services: etc::Cached<Services>,
    networks: Networks,
    policy: Option<Vec<ConnectionEntry>>,
    max: usize,
    resolver: Option<Arc<OwnerResolver>>,
    destinations: Mutex<Destinations>,
    /// `--collector.connections.health`: RTT and retransmissions per outbound series.
    health: bool,
    /// `--collector.connections.flows`: the socket-destroy subscribers (`crate::flows`).
    flows: Option<crate::flows::Flows>,
}

/// The memory of remote addresses, per namespace, for counting new destinations (and new
/// inbound sources, `inbound.rs`).
pub(crate) struct Destinations {
    memory: Duration,
    capacity: usize,
    /// netns label -> remote address -> last seen.
    seen: HashMap<String, HashMap<IpAddr, Instant>>,
    /// netns label -> network class index -> new destinations counted.
    new: HashMap<String, Vec<u64>>,
    len: usize,
    evictions: u64,
    last_prune: Option<Instant>,
}

impl Destinations {
    pub(crate) fn new(memory: Duration, capacity: usize) -> Self {
        Destinations {
            memory,
            capacity,
            seen: HashMap::new(),
            new: HashMap::new(),
            len: 0,
            evictions: 0,
            last_prune: None,
        }
    }

    /// Record this scrape's addresses of namespace `ns`; returns the namespace's counters of
    /// new destinations per network class.
    pub(crate) fn observe(
        &mut self,
        ns: &str,
        now: Instant,
        addresses: &FxHashMap<IpAddr, u16>,
        classes: usize,
    ) -> Vec<u64> {
        let memory = self.memory;
        let baseline = !self.seen.contains_key(ns);
        let seen = self.seen.entry(ns.to_string()).or_default();
        let counts = self.new.entry(ns.to_string()).or_default();
        counts.resize(classes, 0);
        for (addr, class) in addresses {
            match seen.insert(*addr, now) {
                Some(last) if now.duration_since(last) <= memory => {}
                old => {
                    if old.is_none() {
                        self.len += 1;
                    }
                    if !baseline {
                        counts[usize::from(*class)] += 1;
                    }
                }
            }
        }
        let out = counts.clone();
        self.prune(now);
        out
    }

    /// Forget what is older than the memory (once a minute), then, when over capacity, the
    /// oldest addresses until 90% of it is used.
    fn prune(&mut self, now: Instant) {
        if self
            .last_prune
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
        {
            let memory = self.memory;
            for m in self.seen.values_mut() {
                m.retain(|_, t| now.duration_since(*t) <= memory);
            }
            self.len = self.seen.values().map(HashMap::len).sum();
            self.last_prune = Some(now);
        }
        if self.len <= self.capacity {
            return;
        }
        let mut all: Vec<(Instant, String, IpAddr)> = self
            .seen
            .iter()
            .flat_map(|(ns, m)| m.iter().map(move |(a, t)| (*t, ns.clone(), *a)))
            .collect();
        all.sort_unstable_by_key(|e| e.0);
        let target = self.capacity - self.capacity / 10;
        let drop = self.len.saturating_sub(target);
        for (_, ns, addr) in all.into_iter().take(drop) {
            if let Some(m) = self.seen.get_mut(&ns) {
                m.remove(&addr);
            }
        }
        self.len -= drop;
        self.evictions += drop as u64;
    }

    /// Forget namespaces that are no longer read (gone).
    pub(crate) fn retain_namespaces(&mut self, live: &BTreeSet<String>) {
        self.seen.retain(|ns, _| live.contains(ns));
        self.new.retain(|ns, _| live.contains(ns));
        self.len = self.seen.values().map(HashMap::len).sum();
    }
}

/// A connected UDP socket, classified after the pass (UDP listeners do not come first).
struct UdpSock {
    protocol: Protocol,
    family: crate::source::inet::Family,
    local: IpAddr,
    local_port: u16,
    remote: IpAddr,
    remote_port: u16,
    inode: u64,
}

#[derive(Default)]
struct LiveTraffic {
    traffic: Vec<Traffic>,
    /// (family, port, address) -> the listener's inode (the first, with SO_REUSEPORT):
    /// the address is the one `ListeningPorts::owner` finds for an accepted socket.
    listeners: FxHashMap<(Family, u16, IpAddr), u64>,
    inbound: Vec<crate::flows::LiveInbound>,
}

/// One collection in one namespace.
struct ConnectionsPass<'a> {
    c: &'a ConnectionsCollector,
    ns: &'a Netns,
    now: Instant,
    services: std::sync::Arc<Services>,
    /// Ports /etc/services names, per protocol (0 tcp, 1 udp), as bitmaps.
    named: [Vec<u64>; 2],
    ephemeral_low: u16,
    errors: Vec<crate::source::SourceError>,
    tcp_ports: ListeningPorts,
    udp_ports: ListeningPorts,
    udp_connected: Vec<UdpSock>,
    counts: FxHashMap<RawKey, u64>,
    /// Established TCP sockets that came with tcp_info: RTT and retransmissions per key.
    health: FxHashMap<RawKey, Health>,
    /// Sockets whose owner is not known yet: (inode, key with pid 0, health, index of the
    /// remembered entry).
    pending: Vec<(u64, RawKey, Option<Probe>, Option<u32>)>,
    /// Outbound TCP sockets for their destroy messages (with `--collector.connections.flows`):
    /// the owner's pid is written when it is known.
    remember: Vec<crate::flows::Remembered>,
    /// With `--collector.connections.health` (tcp_info in the dump) and flows: the traffic so
    /// far of each remembered socket (`traffic[i]` of `remember[i]`), the listeners' inodes
    /// by (family, port), and the inbound connections' traffic by (listener port, network
    /// class, listener inode): the live part of the flows counters.
    live: Option<LiveTraffic>,
    /// Remote address -> network class.
    addresses: FxHashMap<IpAddr, u16>,
    /// Outbound sockets whose owner is to be looked up.
    unattributed: Vec<Unattributed>,
    /// This namespace's socket-destroy subscriber (opened on this thread, in the namespace).
    flows: Option<crate::flows::Scrape>,
}

fn bit(v: &[u64], port: u16) -> bool {
    v[usize::from(port) / 64] & (1 << (port % 64)) != 0
}

impl<'a> ConnectionsPass<'a> {
    fn new(c: &'a ConnectionsCollector, ns: &'a Netns) -> Self {
        let mut errors = Vec::new();
        let services = etc::services_cached(&c.services, &c.rootfs, &mut errors);
        let mut named = [vec![0u64; 1024], vec![0u64; 1024]];
        for (port, proto) in services.keys() {
            let i = match proto.as_str() {
                "tcp" => 0,
                "udp" => 1,
                _ => continue,
            };
            named[i][usize::from(*port) / 64] |= 1 << (port % 64);
        }
        let ephemeral_low = ns.ip_local_port_range(&mut errors).0;
        let flows = c.flows.as_ref().and_then(|f| f.scrape(ns));
        let remembered = flows.as_ref().map_or(0, |f| f.remembered());
        let remembering = flows.is_some();
        ConnectionsPass {
            flows,
            c,
            ns,
            now: Instant::now(),
            services,
            named,
            ephemeral_low,
            errors,
            tcp_ports: ListeningPorts::default(),
            udp_ports: ListeningPorts::default(),
            udp_connected: Vec::new(),
            counts: FxHashMap::default(),
            health: FxHashMap::default(),
            pending: Vec::new(),
            addresses: FxHashMap::default(),
            unattributed: Vec::new(),
            // Sized from the last pass (a few more): no doubling while the kernel streams.
            remember: Vec::with_capacity(remembered + remembered / 16),
            live: (c.health && remembering).then(LiveTraffic::default),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn outbound(
        &mut self,
        protocol: Protocol,
        remote: IpAddr,
        remote_port: u16,
        inode: u64,
        cookie: u64,
        state: u8,
        probe: Option<Probe>,
        traffic: Option<Traffic>,
    ) {
        let network = self.c.networks.classify(remote) as u16;
        // Remembered for its destroy message: a TCP socket that will have one (not a
        // time-wait or request socket, whose full socket's message is already sent or not
        // yet made).
        let mem = (self.flows.is_some()
            && protocol == Protocol::Tcp
            && cookie != 0
            && state != TCP_TIME_WAIT
            && state != TCP_SYN_RECV)
            .then(|| {
                self.remember.push(crate::flows::Remembered {
                    cookie,
                    pid: 0,
                    port: remote_port,
                    network,
                });
                if let Some(l) = &mut self.live {
                    l.traffic.push(traffic.unwrap_or_default());
                }
                (self.remember.len() - 1) as u32
            });
        self.addresses.entry(unmap(remote)).or_insert(network);
        let named = bit(
            &self.named[usize::from(protocol != Protocol::Tcp)],
            remote_port,
        );
        let port = if remote_port < self.ephemeral_low || named {
            u32::from(remote_port)
        } else {
            EPHEMERAL
        };
        let key = RawKey {
            protocol,
            port,
            network,
            pid: 0,
            state,
        };
        if self.c.resolver.is_some() && inode != 0 {
            // Owners are looked up after the kernel's walk, in one batch under one lock
            // ([`Self::attribute`]): the lock is never held while the kernel streams.
            // (Batches during the pass bound this list's memory but, interleaved with the
            // kernel's walk, cost more CPU; measured in docs/benchmarks.md.)
            match u32::try_from(inode) {
                Ok(inode) => {
                    let (inode, state) = match mem {
                        Some(i) => {
                            self.remember[i as usize].pid = inode;
                            (i, state | REMEMBERED)
                        }
                        None => (inode, state),
                    };
                    self.unattributed.push(Unattributed {
                        inode,
                        port,
                        network,
                        protocol,
                        state,
                        probe: PackedProbe::pack(probe),
                    })
                }
                Err(_) if self.pending.len() < PENDING_MAX => {
                    self.pending.push((inode, key, probe, mem))
                }
                Err(_) => self.count(key, probe),
            }
        } else {
            self.count(key, probe);
        }
    }

    /// The owner of remembered entry `mem` is known (0: unknown).
    fn remembered_owner(&mut self, mem: Option<u32>, pid: u32) {
        if let Some(r) = mem.and_then(|i| self.remember.get_mut(i as usize)) {
            r.pid = pid;
        }
    }

    /// One outbound socket of `key` (owner known or given up on), with its health.
    fn count(&mut self, key: RawKey, probe: Option<Probe>) {
        *self.counts.entry(key).or_default() += 1;
        if let Some(p) = probe {
            self.health.entry(key).or_default().add(p);
        }
    }

    /// Look the owners of the sockets seen so far up in the shared cache, under one lock.
    /// Owners it does not know wait in `pending` for one walk in `finish`.
    fn attribute(&mut self) {
        let Some(r) = self.c.resolver.as_deref() else {
            return;
        };
        if self.unattributed.is_empty() {
            return;
        }
        let mut view = r.view();
        let mut unattributed = std::mem::take(&mut self.unattributed);
        for u in unattributed.drain(..) {
            let (mut key, probe, mem) = (u.key(), u.probe.unpack(), u.remembered());
            let inode = match mem {
                Some(i) => u64::from(self.remember[i as usize].pid),
                None => u64::from(u.inode),
            };
            match view.lookup(inode, self.now) {
                Lookup::Cached(pid) => key.pid = pid,
                Lookup::Unknown if self.pending.len() < PENDING_MAX => {
                    self.pending.push((inode, key, probe, mem));
                    continue;
                }
                _ => {}
            }
            self.remembered_owner(mem, key.pid);
            self.count(key, probe);
        }
        self.unattributed = unattributed;
    }
}

impl Collection for ConnectionsPass<'_> {
    fn pass_done(&mut self) {
        self.attribute();
    }

    fn inet(&mut self, s: &InetSocket) {
        match s.protocol {
            Protocol::Tcp => {
                if s.state == TCP_LISTEN {
                    self.tcp_ports.add(s.family, s.local, s.local_port);
                    if let Some(l) = &mut self.live {
                        l.listeners
                            .entry((s.family, s.local_port, s.local))
                            .or_insert(s.inode);
                    }
                } else if let Some(listener) = self.tcp_ports.owner(s) {
                    // Accepted by a listener of the namespace: inbound (its live traffic).
                    if let (Some(l), Some(t)) = (&mut self.live, s.tcp) {
                        if let Some(&inode) = l.listeners.get(&(s.family, s.local_port, listener)) {
                            let network = self.c.networks.classify(s.remote) as u16;
                            l.inbound.push(crate::flows::LiveInbound {
                                cookie: s.cookie,
                                key: (s.local_port, network, inode),
                                traffic: t.traffic.payload(s.state),
                            });
                        }
                    }
                } else {
                    let state = if s.state == TCP_NEW_SYN_RECV {
                        TCP_SYN_RECV
                    } else {
                        s.state
                    };
                    self.outbound(
                        Protocol::Tcp,
                        s.remote,
                        s.remote_port,
                        s.inode,
                        s.cookie,
                        state,
                        Probe::of(s),
                        s.tcp.map(|t| t.traffic.payload(s.state)),
                    );
                }
            }
            Protocol::Udp | Protocol::UdpLite => {
                if s.state == TCP_CLOSE {
                    self.udp_ports.add(s.family, s.local, s.local_port);
                } else {
                    self.udp_connected.push(UdpSock {
                        protocol: s.protocol,
                        family: s.family,
                        local: s.local,
                        local_port: s.local_port,
                        remote: s.remote,
                        remote_port: s.remote_port,
                        inode: s.inode,
                    });
                }
            }
            Protocol::Raw => {}
        }
    }

    fn finish(mut self: Box<Self>, _pass: &PassInfo, out: &mut Collected) {
        for u in std::mem::take(&mut self.udp_connected) {
            let probe = InetSocket {
                protocol: u.protocol,
                family: u.family,
                state: TCP_ESTABLISHED,
                local: u.local,
                local_port: u.local_port,
                remote: u.remote,
                remote_port: u.remote_port,
                rx_queue: 0,
                tx_queue: 0,
                uid: 0,
                inode: u.inode,
                cookie: 0,
                drops: None,
                tcp: None,
            };
            if self.udp_ports.owner(&probe).is_none() {
                self.outbound(
                    u.protocol,
                    u.remote,
                    u.remote_port,
                    u.inode,
                    0,
                    TCP_ESTABLISHED,
                    None,
                    None,
                );
            }
        }
        self.attribute();
        // Every waiting socket is counted or pending now: its vector is freed before the walk.
        self.unattributed = Vec::new();
        let c = self.c;
        let mut errors = std::mem::take(&mut self.errors);
        // Owners never looked for: one walk for all of them (when one is due).
        if let (Some(r), false) = (&c.resolver, self.pending.is_empty()) {
            let inodes: Vec<u64> = self.pending.iter().map(|(i, ..)| *i).collect();
            let pids = r.resolve_pids(&inodes, &mut errors);
            drop(inodes);
            for (inode, mut key, probe, mem) in std::mem::take(&mut self.pending) {
                key.pid = pids.get(&inode).copied().unwrap_or(0);
                self.remembered_owner(mem, key.pid);
                self.count(key, probe);
            }
        }
        let (series, owners) = self.label(&c.resolver);
        let total: u64 = series.values().sum();
        let unexpected = c.policy.as_ref().map(|p| policy(&series, p));
        let (series, folded) = fold(series, c.max);
        debug_assert_eq!(series.values().sum::<u64>(), total);
        let healths = if c.health {
            fold_health(self.label_health(&c.resolver), &series)
        } else {
            BTreeMap::new()
        };
        let classes = c.networks.len();
        let news = c
            .destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(self.ns.label(), self.now, &self.addresses, classes);
        let mut per_class = vec![0u64; classes];
        for class in self.addresses.values() {
            per_class[usize::from(*class)] += 1;
        }
        let rows = rows(
            &series,
            folded,
            unexpected.as_ref().map(|(keys, _)| keys),
            c.health.then_some(&healths),
        );
        out.families.extend(render(
            &rows,
            unexpected.map(|(_, sockets)| sockets),
            &per_class,
            &news,
            &c.networks,
        ));
        if c.health {
            out.families.extend(render_health(&rows));
        }
        out.rows.outbound = Some(rows);
        if let Some(f) = &self.flows {
            let labels = owners
                .into_iter()
                .filter(|(pid, _)| *pid != 0)
                .map(|(pid, (comm, id))| (pid, [comm, id.container_id, id.pod_uid]))
                .collect();
            let live = self.live.take().map(|l| (l.traffic, l.inbound));
            f.remember(
                std::mem::take(&mut self.remember),
                labels,
                live,
                c.resolver.is_some(),
            );
            let (families, flows) = self.render_flows(f);
            out.families.extend(families);
            out.rows.flows = Some(flows);
            let service = |p: u16| -> String {
                self.services
                    .get(&(p, "tcp".to_string()))
                    .cloned()
                    .unwrap_or_default()
            };
            out.rows.gone_listeners = f.gone_listeners(&service);
        }
        out.errors.extend(errors);
    }
}

impl ConnectionsPass<'_> {
    /// The closed-connection counters of this namespace (`crate::flows`), labelled like the
    /// outbound and inbound series: their families and rows.
    fn render_flows(
        &self,
        f: &crate::flows::Scrape,
    ) -> (Vec<MetricFamily>, crate::collectors::rows::Flows) {
        let port = |p: u16| -> (String, String) {
            let named = bit(&self.named[0], p);
            if p < self.ephemeral_low || named {
                let service = self
                    .services
                    .get(&(p, "tcp".to_string()))
                    .cloned()
                    .unwrap_or_default();
                (p.to_string(), service)
            } else {
                ("ephemeral".to_string(), String::new())
            }
        };
        let service = |p: u16| -> String {
            self.services
                .get(&(p, "tcp".to_string()))
                .cloned()
                .unwrap_or_default()
        };
        let resolver = &self.c.resolver;
        let now = self.now;
        let listener_process = |inode: u64| -> String {
            let Some(r) = resolver else {
                return String::new();
            };
            let pid = match r.view().lookup(inode, now) {
                Lookup::Cached(pid) => pid,
                _ => return "unknown".into(),
            };
            r.comm(pid).unwrap_or_else(|| "unknown".into())
        };
        let gone = if resolver.is_some() { "unknown" } else { "" };
        f.render(&crate::flows::Labeller {
            port: &port,
            service: &service,
            listener_process: &listener_process,
            gone_process: gone,
            networks: &self.c.networks,
        })
    }

    /// Raw keys to label values; keys that differ only by pid but share a comm merge. Also
    /// the owners' labels by pid.
    fn label(&self, resolver: &Option<Arc<OwnerResolver>>) -> (BTreeMap<SeriesKey, u64>, Owners) {
        let mut owners: Owners = HashMap::new();
        let mut out: BTreeMap<SeriesKey, u64> = BTreeMap::new();
        for (k, n) in &self.counts {
            let key = self.series_key(k, resolver, &mut owners);
            *out.entry(key).or_default() += n;
        }
        (out, owners)
    }

    /// The health per labelled series (state `established`: only those have tcp_info).
    fn label_health(&self, resolver: &Option<Arc<OwnerResolver>>) -> BTreeMap<SeriesKey, Health> {
        let mut owners: Owners = HashMap::new();
        let mut out: BTreeMap<SeriesKey, Health> = BTreeMap::new();
        for (k, h) in &self.health {
            let key = self.series_key(k, resolver, &mut owners);
            out.entry(key).or_default().merge(h);
        }
        out
    }

    /// The labels of a raw key; `owners` caches the owners' names and containers.
    fn series_key(
        &self,
        k: &RawKey,
        resolver: &Option<Arc<OwnerResolver>>,
        owners: &mut Owners,
    ) -> SeriesKey {
        let (process, identity) = match resolver {
            None => (String::new(), Identity::default()),
            Some(_) if k.pid == 0 => ("unknown".to_string(), Identity::default()),
            Some(r) => owners
                .entry(k.pid)
                .or_insert_with(|| {
                    // A process gone or unreadable meanwhile is `unknown`, not an error.
                    let mut ignored = Vec::new();
                    match r.owner(k.pid, &mut ignored) {
                        Some(o) => (o.comm, o.identity),
                        None => ("unknown".into(), Identity::default()),
                    }
                })
                .clone(),
        };
        // UDP-Lite shares UDP's service names, as in netstat.
        let proto = if k.protocol == Protocol::Tcp {
            "tcp"
        } else {
            "udp"
        };
        let (remote_port, service) = if k.port == EPHEMERAL {
            ("ephemeral".to_string(), String::new())
        } else {
            let port = k.port as u16;
            (
                port.to_string(),
                self.services
                    .get(&(port, proto.to_string()))
                    .cloned()
                    .unwrap_or_default(),
            )
        };
        let state = if k.protocol == Protocol::Tcp {
            TCP_STATE_NAMES
                .get(usize::from(k.state))
                .copied()
                .unwrap_or("unknown")
        } else {
            "connected"
        };
        SeriesKey {
            protocol: k.protocol,
            remote_port,
            service,
            remote_network: self.c.networks.name(usize::from(k.network)).to_string(),
            process,
            state,
            container_id: identity.container_id,
            pod_uid: identity.pod_uid,
        }
    }
}

impl SeriesKey {
    /// The series a folded key goes into: remote_port and process "other", no service and no
    /// owner, per protocol, remote network and state.
    fn folded(self) -> SeriesKey {
        SeriesKey {
            protocol: self.protocol,
            remote_port: "other".into(),
            service: String::new(),
            remote_network: self.remote_network,
            process: "other".into(),
            state: self.state,
            container_id: String::new(),
            pod_uid: String::new(),
        }
    }
}

/// Owner pid -> (comm, container identity), looked up once per collection.
type Owners = HashMap<u32, (String, Identity)>;

/// Health series follow the fold of the outbound series: a series folded into
/// `remote_port="other", process="other"` takes its health there, so there are never more
/// health series than outbound series. The state is left out of the key.
pub fn fold_health(
    healths: BTreeMap<SeriesKey, Health>,
    series: &BTreeMap<SeriesKey, u64>,
) -> BTreeMap<SeriesKey, Health> {
    let mut out: BTreeMap<SeriesKey, Health> = BTreeMap::new();
    for (k, h) in healths {
        let key = if series.contains_key(&k) {
            k
        } else {
            k.folded()
        };
        out.entry(SeriesKey { state: "", ..key })
            .or_default()
            .merge(&h);
    }
    out
}

/// The series (without state) that no policy entry allows, and how many sockets they hold.
pub fn policy(
    series: &BTreeMap<SeriesKey, u64>,
    entries: &[ConnectionEntry],
) -> (BTreeSet<SeriesKey>, u64) {
    let mut keys = BTreeSet::new();
    let mut sockets = 0;
    for (k, n) in series {
        let key = OutboundKey {
            protocol: k.protocol,
            remote_port: k.remote_port.parse().ok(),
            service: &k.service,
            remote_network: &k.remote_network,
            process: match k.process.as_str() {
                "unknown" | "" => None,
                p => Some(p),
            },
        };
        if !entries.iter().any(|e| e.allows(&key)) {
            sockets += n;
            keys.insert(SeriesKey {
                state: "",
                ..k.clone()
            });
        }
    }
    (keys, sockets)
}

/// Keep at most `max` series: the largest stay, the rest are folded into one series per
/// (protocol, remote network, state) with remote_port and process "other". Counts are
/// conserved. Returns the series and the number of sockets folded.
pub fn fold(series: BTreeMap<SeriesKey, u64>, max: usize) -> (BTreeMap<SeriesKey, u64>, u64) {
    fold_keys(
        series,
        max,
        |k| (k.protocol, k.remote_network.clone(), k.state),
        SeriesKey::folded,
    )
}

/// The folding cap of the outbound and inbound series: keep at most `max` series, the largest
/// (ties in key order, so the result does not depend on hashing); the rest go into one series
/// per `bucket`, keyed `other(key)`. Counts are conserved. Returns the series and the number
/// of sockets folded.
pub(crate) fn fold_keys<K: Ord + Clone, B: Ord>(
    series: BTreeMap<K, u64>,
    max: usize,
    bucket: impl Fn(&K) -> B,
    other: impl Fn(K) -> K,
) -> (BTreeMap<K, u64>, u64) {
    if series.len() <= max {
        return (series, 0);
    }
    let mut v: Vec<(K, u64)> = series.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    // Keep as many as fit next to the buckets the rest needs.
    let mut keep = max;
    loop {
        let buckets: BTreeSet<B> = v[keep..].iter().map(|(k, _)| bucket(k)).collect();
        if keep + buckets.len() <= max || keep == 0 {
            break;
        }
        keep -= 1;
    }
    let rest = v.split_off(keep);
    let mut out: BTreeMap<K, u64> = v.into_iter().collect();
    let mut folded = 0;
    for (k, n) in rest {
        folded += n;
        *out.entry(other(k)).or_default() += n;
    }
    (out, folded)
}

/// A row's labels without its state, plus the owner's container and pod ([`OWNER_KEY`]).
fn owner_labels(r: &OutboundRow) -> Labels {
    vec![
        ("protocol", r.protocol.clone()),
        ("remote_port", r.remote_port.clone()),
        ("service", r.service.clone()),
        ("remote_network", r.remote_network.clone()),
        ("process", r.process.clone()),
        ("container_id", r.container_id.clone()),
        ("pod_uid", r.pod_uid.clone()),
    ]
}

/// The rows of one namespace's outbound series (folded), with the series the policy does
/// not allow (None: no connections: policy) and the health of the established connections
/// of each series (None: `--collector.connections.health` is off). Pure.
pub fn rows(
    series: &BTreeMap<SeriesKey, u64>,
    folded: u64,
    unexpected: Option<&BTreeSet<SeriesKey>>,
    healths: Option<&BTreeMap<SeriesKey, Health>>,
) -> rows::Outbound {
    let rows = series
        .iter()
        .map(|(k, n)| {
            let owner = SeriesKey {
                state: "",
                ..k.clone()
            };
            let health = match k.state {
                "established" => RowHealth::of(healths.and_then(|h| h.get(&owner))),
                _ => RowHealth::default(),
            };
            OutboundRow {
                protocol: k.protocol.name().into(),
                remote_port: k.remote_port.clone(),
                service: k.service.clone(),
                remote_network: k.remote_network.clone(),
                process: k.process.clone(),
                state: k.state.into(),
                count: *n,
                unexpected: unexpected.map(|u| u.contains(&owner)),
                container_id: k.container_id.clone(),
                pod_uid: k.pod_uid.clone(),
                health,
                netns: String::new(),
            }
        })
        .collect();
    let policy = unexpected.is_some();
    let unexpected: Vec<rows::OutboundKey> = unexpected
        .into_iter()
        .flatten()
        .map(|k| rows::OutboundKey {
            protocol: k.protocol.name().into(),
            remote_port: k.remote_port.clone(),
            service: k.service.clone(),
            remote_network: k.remote_network.clone(),
            process: k.process.clone(),
            container_id: k.container_id.clone(),
            pod_uid: k.pod_uid.clone(),
            netns: String::new(),
        })
        .collect();
    rows::Outbound {
        rows,
        folded,
        policy,
        unexpected,
    }
}

/// Render one namespace's outbound rows (and the sockets of the series the policy does not
/// allow, the destinations and new destinations per remote network): the one place where
/// these families are made. Pure.
pub fn render(
    rows: &rows::Outbound,
    unexpected_sockets: Option<u64>,
    destinations: &[u64],
    new_destinations: &[u64],
    networks: &Networks,
) -> Vec<MetricFamily> {
    let mut outbound = OUTBOUND.family();
    for r in &rows.rows {
        let labels = vec![
            ("protocol", r.protocol.clone()),
            ("remote_port", r.remote_port.clone()),
            ("service", r.service.clone()),
            ("remote_network", r.remote_network.clone()),
            ("process", r.process.clone()),
            ("state", r.state.clone()),
            ("container_id", r.container_id.clone()),
            ("pod_uid", r.pod_uid.clone()),
        ];
        outbound.push(labels, r.count);
    }
    let mut dest = DESTINATIONS.family();
    let mut new = NEW_DESTINATIONS.family();
    for i in 0..networks.len() {
        let net = vec![("remote_network", networks.name(i).to_string())];
        dest.push(net.clone(), destinations.get(i).copied().unwrap_or(0));
        new.push(net, new_destinations.get(i).copied().unwrap_or(0));
    }
    let mut out = vec![
        outbound,
        FOLDED.family().with(vec![], rows.folded),
        dest,
        new,
    ];
    if let (true, Some(sockets)) = (rows.policy, unexpected_sockets) {
        let mut f = UNEXPECTED.family();
        for k in &rows.unexpected {
            let labels = vec![
                ("protocol", k.protocol.clone()),
                ("remote_port", k.remote_port.clone()),
                ("service", k.service.clone()),
                ("remote_network", k.remote_network.clone()),
                ("process", k.process.clone()),
                ("container_id", k.container_id.clone()),
                ("pod_uid", k.pod_uid.clone()),
            ];
            f.push(labels, 1u64);
        }
        out.push(f);
        out.push(UNEXPECTED_CONNECTIONS.family().with(vec![], sockets));
    }
    out
}

/// The health families of one namespace's outbound rows (`--collector.connections.health`):
/// each series' established row carries the health of its established connections
/// (labelled without the state, in the order of the rows).
pub fn render_health(rows: &rows::Outbound) -> [MetricFamily; 2] {
    health::render_rows(
        &health::OUTBOUND_RTT,
        &health::OUTBOUND_RETRANSMITTING,
        rows.rows.iter(),
        |r| &r.health,
        owner_labels,
    )
}

impl Collector for ConnectionsCollector {
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
        Box::new(ConnectionsPass::new(self, ns))
    }

    fn end_scrape(&self, read: &BTreeSet<String>, out: &mut Collected) {
        if let Some(r) = &self.resolver {
            r.end_scrape();
        }
        // The memory of a namespace that is gone goes with it; one whose read timed out or
        // overlapped another run keeps its subscriber and bank (its counters never restart).
        if let Some(f) = &self.flows {
            f.retain(read);
        }
        let mut d = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        d.retain_namespaces(read);
        out.families
            .push(DESTINATIONS_REMEMBERED.family().with(vec![], d.len));
        out.families
            .push(DESTINATION_EVICTIONS.family().with(vec![], d.evictions));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: &str, process: &str, net: &str, state: &'static str) -> SeriesKey {
        SeriesKey {
            protocol: Protocol::Tcp,
            remote_port: port.into(),
            service: String::new(),
            remote_network: net.into(),
            process: process.into(),
            state,
            container_id: String::new(),
            pod_uid: String::new(),
        }
    }

    #[test]
    fn a_waiting_socket_takes_16_bytes_and_keeps_its_health() {
        assert_eq!(std::mem::size_of::<Unattributed>(), 16);
        for p in [
            None,
            Some(Probe {
                rtt_us: 0,
                retransmitting: false,
            }),
            Some(Probe {
                rtt_us: 80_400,
                retransmitting: true,
            }),
            Some(Probe {
                rtt_us: (1 << 31) - 2,
                retransmitting: false,
            }),
        ] {
            assert_eq!(PackedProbe::pack(p).unpack(), p);
        }
        // Beyond 35 minutes the RTT is clamped (every bucket ends at 4 s), never confused
        // with "no probe" or with the retransmitting bit.
        let huge = PackedProbe::pack(Some(Probe {
            rtt_us: u32::MAX,
            retransmitting: false,
        }))
        .unpack()
        .unwrap();
        assert!(huge.rtt_us > 4_000_000 && !huge.retransmitting);
    }

    #[test]
    fn folding_conserves_the_total_and_respects_the_cap() {
        let mut series = BTreeMap::new();
        for i in 0..50u64 {
            series.insert(
                key(
                    &i.to_string(),
                    &format!("p{}", i % 7),
                    if i % 2 == 0 { "public" } else { "private" },
                    if i % 3 == 0 {
                        "established"
                    } else {
                        "syn_sent"
                    },
                ),
                i + 1,
            );
        }
        let total: u64 = series.values().sum();
        for max in [1, 2, 3, 5, 10, 49, 50, 100] {
            let (out, folded) = fold(series.clone(), max);
            assert_eq!(out.values().sum::<u64>(), total, "max {max}");
            assert!(out.len() <= max.max(4), "max {max}: {} series", out.len());
            if max >= 50 {
                assert_eq!(folded, 0);
            } else {
                assert!(folded > 0);
                let others: u64 = out
                    .iter()
                    .filter(|(k, _)| k.process == "other")
                    .map(|(_, n)| n)
                    .sum();
                assert_eq!(others, folded);
            }
        }
        // The largest series survive.
        let (out, _) = fold(series, 10);
        assert!(out.contains_key(&key("49", "p0", "private", "syn_sent")));
    }

    #[test]
    fn new_destinations_after_the_baseline_only_once_per_memory() {
        let mut d = Destinations::new(Duration::from_secs(3600), 100);
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let addrs = |list: &[IpAddr]| list.iter().map(|a| (*a, 1u16)).collect::<FxHashMap<_, _>>();
        assert_eq!(d.observe("", t, &addrs(&[a]), 2), vec![0, 0], "baseline");
        assert_eq!(d.observe("", t, &addrs(&[a, b]), 2), vec![0, 1]);
        assert_eq!(d.observe("", t, &addrs(&[a, b]), 2), vec![0, 1]);
        // Another namespace has its own baseline.
        assert_eq!(d.observe("42", t, &addrs(&[a]), 2), vec![0, 0]);
        // Past the memory, an address is new again.
        let later = t + Duration::from_secs(3601);
        assert_eq!(d.observe("", later, &addrs(&[a]), 2), vec![0, 2]);
    }

    #[test]
    fn capacity_evicts_the_oldest_and_counts() {
        let mut d = Destinations::new(Duration::from_secs(3600), 10);
        let t = Instant::now();
        d.observe("", t, &FxHashMap::default(), 1);
        for i in 0..30u8 {
            let addr: IpAddr = [10, 0, 0, i].into();
            let at = t + Duration::from_millis(u64::from(i));
            d.observe(
                "",
                at,
                &[(addr, 0u16)].into_iter().collect::<FxHashMap<_, _>>(),
                1,
            );
            assert!(d.len <= 10, "{}", d.len);
        }
        assert!(d.evictions >= 20, "{}", d.evictions);
        assert_eq!(d.len + d.evictions as usize, 30);
        // The newest is still remembered: not new again.
        let newest: IpAddr = [10, 0, 0, 29].into();
        let before = d.new[""][0];
        d.observe(
            "",
            t + Duration::from_millis(40),
            &[(newest, 0u16)].into_iter().collect::<FxHashMap<_, _>>(),
            1,
        );
        assert_eq!(d.new[""][0], before);
        // The oldest was forgotten: new again.
        let oldest: IpAddr = [10, 0, 0, 0].into();
        d.observe(
            "",
            t + Duration::from_millis(41),
            &[(oldest, 0u16)].into_iter().collect::<FxHashMap<_, _>>(),
            1,
        );
        assert_eq!(d.new[""][0], before + 1);
    }
}
