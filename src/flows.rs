//! Every TCP connection counted, even the short ones: the kernel's socket-destroy stream
//! (`source::destroy`) turned into monotonic counters per outbound and inbound key.
//!
//! One subscriber per network namespace the connections collector reads, opened on the
//! scrape's thread while it is in that namespace (the exporter's own at the warm-up scrape,
//! another one by the worker thread that entered it, `scrape.rs`) and then read by a thread
//! of its own, off the async runtime, for as long as the namespace is collected. The thread
//! decodes each message, classifies it and adds it to a small per-namespace table of deltas
//! keyed by numbers ([`Pending`]: remote port and network class, or listener port, network
//! class and listener inode). Each scrape drains those deltas and adds them, labelled with
//! what the scrape knows (services, ephemeral range, named networks, listener owners), to the
//! namespace's bank of labelled series ([`Bank`]). A delta is labelled once and never moves:
//! every series only ever grows, whatever happens to labels later, and a lost message is a
//! missing increment, never a decrease. With `--collector.connections.health` each pass
//! also hands over its live sockets' traffic so far (their `tcp_info`), and a series shows
//! the closed plus the live, never less than it showed before ([`Bank::show`]).
//!
//! Classification of one message (the socket is gone: `idiag_inode` is 0, no owner):
//! - a listener (remote address unspecified, remote port 0): not a connection;
//! - a socket the last pass saw as outbound ([`Remembered`], by its cookie): outbound, under
//!   the owner and remote port that pass found (a message that comes while a pass is naming
//!   owners waits for it, [`PASS_WAIT`]);
//! - a local (address, port) a listener of the namespace had (a LISTEN-only dump kept by the
//!   thread, refreshed at most every [`LISTEN_REFRESH`] on a miss; a listener is remembered
//!   [`LISTEN_KEEP`] after it closed, for its accepted sockets that close later): inbound;
//!   (a message no known listener's waits up to [`DEFER`] for its listener to be found);
//! - else outbound. An outbound socket that never completed a handshake (`tcpi_min_rtt`
//!   never sampled) is a failed connect, `refused` or `timeout`
//!   ([`crate::source::destroy::Outcome`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::collectors::rows::{FlowInRow, FlowOutRow, Flows as FlowRows};
use crate::metrics::{Desc, MetricFamily};
use crate::networks::{unmap, Networks};
use crate::source::destroy::{DestroySocket, Destroyed, Outcome, Traffic};
use crate::source::inet::{state_bit, Family, InetSocket, TCP_LISTEN};
use crate::source::netlink::{DiagSocket, DumpRequest};
use crate::source::netns::{NetlinkAccess, Netns};

pub static MESSAGES: Desc = Desc::counter(
    "netstat_socket_destroy_messages",
    &[],
    "Messages of the kernel's TCP socket-destroy stream received (one per end of every TCP socket freed in the namespace, listeners included).",
);
pub static LOST: Desc = Desc::counter(
    "netstat_socket_destroy_lost",
    &[],
    "Overruns of the socket-destroy subscriber's receive buffer (ENOBUFS: at least one message lost each) and undecodable messages: connections missing from the closed, bytes and retransmit counters.",
);
pub static RECEIVE_BUFFER: Desc = Desc::gauge(
    "netstat_socket_destroy_receive_buffer_bytes",
    &[],
    "Receive buffer of the socket-destroy subscriber: 16 MiB with CAP_NET_ADMIN (SO_RCVBUFFORCE), else what net.core.rmem_max allows (the kernel reports twice the size asked for).",
)
.unit("bytes");

/// Outbound keys: the outbound family's labels without the state.
const OUT_KEY: &[&str] = crate::collectors::connections::OWNER_KEY;
/// Inbound keys: the inbound family's labels without the state.
const IN_KEY: &[&str] = &["protocol", "port", "service", "process", "remote_network"];

pub static OUT_CLOSED: Desc = Desc::counter(
    "netstat_outbound_connections_closed",
    OUT_KEY,
    "Outbound TCP connections closed, from the kernel's socket-destroy stream (every one, however short; failed connects are in netstat_outbound_connect_failures_total). A socket a scrape saw counts under the owner and the remote port that scrape found (by its socket cookie); one no scrape saw has process unknown, and remote_port unknown if it was aborted with SO_LINGER 0 (the kernel clears it).",
);
pub static OUT_BYTES: Desc = Desc::counter(
    "netstat_outbound_bytes",
    &[
        "protocol",
        "remote_port",
        "service",
        "remote_network",
        "process",
        "container_id",
        "pod_uid",
        "direction",
    ],
    "Payload bytes of closed outbound TCP connections, sent (tcpi_bytes_sent less retransmitted bytes) and received (tcpi_bytes_received less the peer's FIN), counted when the connection closes (with --collector.connections.health, also while it lives). A connection aborted with SO_LINGER 0 counts none (the kernel zeroes them), except what a scrape saw while it lived.",
)
.unit("bytes");
pub static OUT_RETRANS: Desc = Desc::counter(
    "netstat_outbound_retransmitted_segments",
    OUT_KEY,
    "Segments retransmitted by closed outbound TCP connections (tcpi_total_retrans), counted when the connection closes (with --collector.connections.health, also while it lives).",
);
pub static IN_CLOSED: Desc = Desc::counter(
    "netstat_inbound_connections_closed",
    IN_KEY,
    "Inbound TCP connections (accepted by a listener of this host) closed, from the kernel's socket-destroy stream, by the listener's port, service and process and the remote network.",
);
pub static IN_BYTES: Desc = Desc::counter(
    "netstat_inbound_bytes",
    &[
        "protocol",
        "port",
        "service",
        "process",
        "remote_network",
        "direction",
    ],
    "Payload bytes of closed inbound TCP connections, sent and received by this host, counted when the connection closes (with --collector.connections.health, also while it lives).",
)
.unit("bytes");
pub static IN_RETRANS: Desc = Desc::counter(
    "netstat_inbound_retransmitted_segments",
    IN_KEY,
    "Segments retransmitted by closed inbound TCP connections (tcpi_total_retrans), counted when the connection closes (with --collector.connections.health, also while it lives).",
);
pub static CONNECT_FAILURES: Desc = Desc::counter(
    "netstat_outbound_connect_failures",
    &[
        "protocol",
        "remote_port",
        "service",
        "remote_network",
        "process",
        "reason",
    ],
    "Outbound TCP connects that never completed the handshake, by reason: refused (answered by a reset; the kernel clears the remote port, so remote_port is unknown unless a scrape saw the connect in SYN-SENT) or timeout (SYNs retransmitted, never answered).",
);

/// The families, declared with the connections collector's.
pub fn metrics() -> [&'static Desc; 10] {
    [
        &OUT_CLOSED,
        &OUT_BYTES,
        &OUT_RETRANS,
        &IN_CLOSED,
        &IN_BYTES,
        &IN_RETRANS,
        &CONNECT_FAILURES,
        &MESSAGES,
        &LOST,
        &RECEIVE_BUFFER,
    ]
}

/// A listener is looked for again at most this often when a message's local port is no
/// known listener's.
pub const LISTEN_REFRESH: Duration = Duration::from_millis(100);
/// A listener is remembered this long after it was last seen (its accepted connections may
/// close after it).
pub const LISTEN_KEEP: Duration = Duration::from_secs(60);
/// A subscriber's thread checks whether it should stop this often.
const WAKE: Duration = Duration::from_secs(1);
/// A message whose local port is no known listener's waits this long for the listener to
/// be found (a refresh, or the listener's own destroy message) before it counts as outbound:
/// a listener that opens, accepts and closes between two refreshes still gets its
/// connections.
pub const DEFER: Duration = Duration::from_millis(200);
/// A message no pass remembered waits at most this long while a pass of its namespace is
/// between its kernel dump and [`Scrape::remember`] (the owner walk of a pass can take
/// seconds), so a socket the pass saw is counted with what the pass knew of it.
pub const PASS_WAIT: Duration = Duration::from_secs(30);
/// At most this many messages wait for a pass; beyond, the oldest are counted at once.
const PASS_WAIT_MAX: usize = 200_000;
/// How often the thread wakes while messages wait ([`DEFER`]).
const DEFER_TICK: Duration = Duration::from_millis(50);
/// After reading what arrived, the thread lets the next messages gather this long (one
/// wake-up per batch rather than per message: most of the cost at high rates), when its
/// receive buffer holds at least [`BATCH_BUFFER`] (at 50,000 messages/s, 10 ms is 500
/// messages, about 0.5 MB).
const BATCH_PAUSE: Duration = Duration::from_millis(10);
const BATCH_BUFFER: usize = 4 << 20;
/// At most this many labelled series per family and namespace; beyond, new keys go into one
/// series with remote_port (port) and process `other`, so totals are conserved.
pub const MAX_SERIES: usize = 1000;

/// Totals of closed connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub closed: u64,
    pub sent: u64,
    pub received: u64,
    pub retransmits: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.closed += o.closed;
        self.sent += o.sent;
        self.received += o.received;
        self.retransmits += o.retransmits;
    }

    fn of(d: &Destroyed) -> Totals {
        Totals {
            closed: 1,
            sent: d.counters.sent,
            received: d.counters.received,
            retransmits: d.counters.retransmits,
        }
    }
}

/// Why a connect failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Refused,
    Timeout,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Refused => "refused",
            Reason::Timeout => "timeout",
        }
    }
}

/// What the thread counted since the last scrape, by numeric keys.
#[derive(Debug, Default)]
pub struct Pending {
    /// (remote port, 0 when cleared and not remembered; network class; owner pid, 0 when
    /// not remembered) -> totals.
    pub outbound: FxHashMap<(u16, u16, u32), Totals>,
    /// (listener port, network class, listener inode) -> totals.
    pub inbound: FxHashMap<(u16, u16, u64), Totals>,
    /// (reason, remote port, network class, owner pid) -> connects.
    pub failures: FxHashMap<(Reason, u16, u16, u32), u64>,
}

/// What a pass remembers of one outbound TCP socket alive at its dump, for that socket's
/// destroy message, which has no inode (no owner) and may have lost its remote port
/// (`tcp_disconnect` clears it: a refused connect, a `SO_LINGER` 0 close). 16 bytes per live
/// outbound socket; the memory is replaced by every pass of the namespace (sockets gone from
/// the kernel's tables are gone from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    /// `idiag_cookie`: the destroy message carries the same.
    pub cookie: u64,
    /// The owner's pid as the pass attributed it (0: unknown).
    pub pid: u32,
    /// The remote port as the pass saw it (also in SYN-SENT).
    pub port: u16,
    /// The remote address's network class.
    pub network: u16,
}

/// An inbound socket's traffic in a pass (with tcp_info), under its key of [`Pending`].
#[derive(Debug, Clone, Copy)]
pub struct LiveInbound {
    pub cookie: u64,
    pub key: (u16, u16, u64),
    pub traffic: Traffic,
}

/// The labels an owner's pid had in a pass: process, container_id, pod_uid.
pub type OwnerLabels = FxHashMap<u32, [String; 3]>;

/// The outbound sockets of the namespace's last pass, sorted by cookie, and the owners of
/// the last two passes (a message counted under a pass's pid is labelled at the next scrape,
/// when the process may have exited).
#[derive(Debug, Default)]
struct Memory {
    sockets: Vec<Remembered>,
    /// The sockets of the two passes before that the next one no longer found (closed
    /// meanwhile), sorted: a destroy message can come after the next pass (the kernel frees
    /// a socket after an RCU grace period, and sends its message from a work queue).
    gone: [Vec<Remembered>; 2],
    owners: [Arc<OwnerLabels>; 2],
    /// When the passes of the namespace begun and not yet ended (their [`Scrape`] alive)
    /// began: a message no pass remembered waits for the passes that began before it came
    /// (their dump may have seen its socket alive; a later one cannot), at most
    /// [`PASS_WAIT`].
    running: Vec<Instant>,
    /// The live connections' traffic in the last pass (with tcp_info), by the numeric keys
    /// of [`Pending`] (closed counts 0).
    live: Pending,
    /// Bumped by every [`Scrape::remember`]: waiting messages are looked up in each memory
    /// as soon as it is published (a later one may no longer have their socket).
    generation: u64,
    /// Cookies of the sockets whose destroy message was read while a pass was running (at
    /// most [`PASS_WAIT_MAX`]): a socket the pass dumped alive and whose end is already
    /// counted adds no live traffic (it would count twice).
    closing: Vec<u64>,
}

impl Memory {
    fn find(&self, cookie: u64) -> Option<Remembered> {
        let find = |v: &[Remembered]| {
            v.binary_search_by_key(&cookie, |r| r.cookie)
                .ok()
                .map(|i| v[i])
        };
        find(&self.sockets)
            .or_else(|| find(&self.gone[0]))
            .or_else(|| find(&self.gone[1]))
    }
}

/// A listener's destroy message, kept [`GONE_KEEP`] for the change log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gone {
    pub family: Family,
    pub address: IpAddr,
    pub port: u16,
    /// Unix seconds when it was read.
    pub time: f64,
}

/// How long a listener's destroy message is handed to every scrape (the change log takes
/// each once, after it waited for the watch: see `crate::events`).
pub const GONE_KEEP: Duration = Duration::from_secs(120);
/// At most this many listeners' destroy messages are kept (the oldest go first; a host that
/// closes more listeners than this in [`GONE_KEEP`] loses the oldest from the change log).
pub const GONE_MAX: usize = 4096;

/// A namespace's counters.
#[derive(Debug, Default)]
pub struct NsState {
    pub pending: Pending,
    pub messages: u64,
    pub lost: u64,
    pub receive_buffer: u64,
    /// Listeners closed in the last [`GONE_KEEP`], oldest first.
    pub gone: std::collections::VecDeque<Gone>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The labelled series of one namespace (label values in declaration order, without
/// `direction` and `reason`).
#[derive(Debug, Default)]
pub struct Bank {
    /// Closed connections (from the destroy messages), labelled once and never moved.
    pub outbound: BTreeMap<Vec<String>, Totals>,
    pub inbound: BTreeMap<Vec<String>, Totals>,
    /// Key: the labels of [`CONNECT_FAILURES`] without `reason`, then the reason.
    pub failures: BTreeMap<(Vec<String>, Reason), u64>,
    /// What is rendered: per series, the closed connections plus the live ones' traffic so
    /// far (with `--collector.connections.health`, whose dumps carry `tcp_info`), never
    /// below what an earlier scrape rendered ([`Bank::show`]).
    pub shown_out: BTreeMap<Vec<String>, Totals>,
    pub shown_in: BTreeMap<Vec<String>, Totals>,
}

fn out_overflow(mut k: Vec<String>) -> Vec<String> {
    k[1] = "other".into();
    k[2] = String::new();
    k[4] = "other".into();
    k
}

fn in_overflow(mut k: Vec<String>) -> Vec<String> {
    k[1] = "other".into();
    k[2] = String::new();
    k[3] = "other".into();
    k
}

impl Totals {
    /// Field by field, the larger.
    fn max(&self, o: &Totals) -> Totals {
        Totals {
            closed: self.closed.max(o.closed),
            sent: self.sent.max(o.sent),
            received: self.received.max(o.received),
            retransmits: self.retransmits.max(o.retransmits),
        }
    }
}

/// `shown[k] = max(shown[k], closed[k] + live[k])` for every series (a new series beyond
/// [`MAX_SERIES`] goes to the overflow series): a counter never decreases, whatever a live
/// socket's values did (its destroy message lost, not come yet, or zeroed by the kernel).
fn show(
    closed: &BTreeMap<Vec<String>, Totals>,
    live: &BTreeMap<Vec<String>, Totals>,
    shown: &mut BTreeMap<Vec<String>, Totals>,
    overflow: fn(Vec<String>) -> Vec<String>,
) {
    let mut now: BTreeMap<Vec<String>, Totals> = BTreeMap::new();
    for (k, t) in closed.iter().chain(live) {
        let k =
            if shown.contains_key(k) || now.contains_key(k) || shown.len() + now.len() < MAX_SERIES
            {
                k.clone()
            } else {
                overflow(k.clone())
            };
        now.entry(k).or_default().add(t);
    }
    for (k, t) in now {
        let s = shown.entry(k).or_default();
        *s = s.max(&t);
    }
}

/// Adds `t` to the series `key`, or to the overflow series when the bank is full.
fn bank_add<K: Ord + Clone, V>(
    map: &mut BTreeMap<K, V>,
    key: K,
    overflow: impl FnOnce(K) -> K,
    add: impl Fn(&mut V),
) where
    V: Default,
{
    if !map.contains_key(&key) && map.len() >= MAX_SERIES {
        add(map.entry(overflow(key)).or_default());
        return;
    }
    add(map.entry(key).or_default());
}

/// How a scrape labels the numeric keys of its namespace.
pub struct Labeller<'a> {
    /// Remote port -> (remote_port label, service).
    pub port: &'a dyn Fn(u16) -> (String, String),
    /// Listener port -> service.
    pub service: &'a dyn Fn(u16) -> String,
    /// Listener inode -> process ("unknown" when not known, "" without attribution).
    pub listener_process: &'a dyn Fn(u64) -> String,
    /// The process label of an outbound socket no pass attributed ("unknown", "" without
    /// attribution).
    pub gone_process: &'a str,
    pub networks: &'a Networks,
}

impl Bank {
    /// Label and add what the thread counted since the last scrape; `owner` gives the labels
    /// (process, container_id, pod_uid) of a pid a pass attributed.
    pub fn absorb(
        &mut self,
        p: Pending,
        l: &Labeller<'_>,
        owner: &dyn Fn(u32) -> Option<[String; 3]>,
    ) {
        let net = |n: u16| l.networks.name(usize::from(n)).to_string();
        let owner = |pid: u32| -> [String; 3] {
            (pid != 0)
                .then(|| owner(pid))
                .flatten()
                .unwrap_or_else(|| [l.gone_process.to_string(), String::new(), String::new()])
        };
        for ((port, network, pid), t) in p.outbound {
            let (remote_port, service) = if port == 0 {
                ("unknown".to_string(), String::new())
            } else {
                (l.port)(port)
            };
            let [process, container_id, pod_uid] = owner(pid);
            let key = vec![
                "tcp".to_string(),
                remote_port,
                service,
                net(network),
                process,
                container_id,
                pod_uid,
            ];
            bank_add(&mut self.outbound, key, out_overflow, |v| v.add(&t));
        }
        for ((port, network, inode), t) in p.inbound {
            let key = vec![
                "tcp".to_string(),
                port.to_string(),
                (l.service)(port),
                (l.listener_process)(inode),
                net(network),
            ];
            bank_add(&mut self.inbound, key, in_overflow, |v| v.add(&t));
        }
        for ((reason, port, network, pid), n) in p.failures {
            let (remote_port, service) = if port == 0 {
                ("unknown".to_string(), String::new())
            } else {
                (l.port)(port)
            };
            let [process, ..] = owner(pid);
            let key = vec![
                "tcp".to_string(),
                remote_port,
                service,
                net(network),
                process,
            ];
            bank_add(
                &mut self.failures,
                (key, reason),
                |(mut k, r)| {
                    k[1] = "other".into();
                    k[2] = String::new();
                    k[4] = "other".into();
                    (k, r)
                },
                |v| *v += n,
            );
        }
    }

    /// Update what is shown with the live connections' traffic (`live`: labelled like the
    /// closed ones, closed counts 0).
    pub fn show(&mut self, live: &Bank) {
        show(
            &self.outbound,
            &live.outbound,
            &mut self.shown_out,
            out_overflow,
        );
        show(
            &self.inbound,
            &live.inbound,
            &mut self.shown_in,
            in_overflow,
        );
    }

    /// The typed rows of this namespace's counters, one per key (netns ""): a failures key
    /// joins the outbound key with the same labels and no container or pod (a failed connect
    /// has no owner). The families are rendered from them ([`render_rows`]).
    pub fn rows(&self) -> FlowRows {
        let fkey = failure_key();
        // Where each failure label sits in an outbound key.
        let at: Vec<Option<usize>> = fkey
            .iter()
            .map(|n| OUT_KEY.iter().position(|o| o == n))
            .collect();
        let owner: Vec<usize> = OUT_KEY
            .iter()
            .enumerate()
            .filter(|(_, n)| !fkey.contains(n))
            .map(|(i, _)| i)
            .collect();
        let mut outbound: Vec<FlowOutRow> = Vec::with_capacity(self.shown_out.len());
        // The outbound keys without an owner container or pod, by their failure labels.
        let mut index: FxHashMap<Vec<&str>, usize> = FxHashMap::default();
        for (k, t) in &self.shown_out {
            let mut r = FlowOutRow::default();
            for (name, value) in OUT_KEY.iter().zip(k) {
                r.set_label(name, value.clone());
            }
            r.closed = t.closed;
            r.sent = t.sent;
            r.received = t.received;
            r.retransmits = t.retransmits;
            if owner.iter().all(|i| k.get(*i).is_none_or(String::is_empty)) {
                let f = at
                    .iter()
                    .map(|i| i.and_then(|i| k.get(i)).map_or("", String::as_str))
                    .collect();
                index.insert(f, outbound.len());
            }
            outbound.push(r);
        }
        let failures_only = outbound.len();
        for ((k, reason), n) in &self.failures {
            let f: Vec<&str> = k.iter().map(String::as_str).collect();
            let i = match index.get(&f) {
                Some(i) => *i,
                None => {
                    let mut r = FlowOutRow::default();
                    for (name, value) in fkey.iter().zip(k) {
                        r.set_label(name, value.clone());
                    }
                    outbound.push(r);
                    index.insert(f, outbound.len() - 1);
                    outbound.len() - 1
                }
            };
            let r = &mut outbound[i];
            match reason {
                Reason::Refused => r.failed_refused += n,
                Reason::Timeout => r.failed_timeout += n,
            }
            r.failed += n;
        }
        drop(index);
        // In the order of their labels, as the bank's keys.
        if outbound.len() > failures_only {
            outbound.sort_by(|a, b| {
                OUT_KEY
                    .iter()
                    .map(|n| a.label(n))
                    .cmp(OUT_KEY.iter().map(|n| b.label(n)))
            });
        }
        let inbound = self
            .shown_in
            .iter()
            .map(|(k, t)| {
                let mut r = FlowInRow::default();
                for (name, value) in IN_KEY.iter().zip(k) {
                    r.set_label(name, value.clone());
                }
                r.closed = t.closed;
                r.sent = t.sent;
                r.received = t.received;
                r.retransmits = t.retransmits;
                r
            })
            .collect();
        FlowRows {
            outbound,
            inbound,
            namespaces: vec![String::new()],
        }
    }
}

/// The labels of [`CONNECT_FAILURES`] without `reason` (its last).
fn failure_key() -> &'static [&'static str] {
    let l = CONNECT_FAILURES.labels;
    &l[..l.len().saturating_sub(1)]
}

/// The counter families of these rows (of one namespace, or several with their `netns`
/// left to the scrape layer): a key's closed, bytes and retransmit series when it closed a
/// connection, a failures series per reason it has.
pub fn render_rows(rows: &FlowRows) -> Vec<MetricFamily> {
    fn labels<'a>(
        names: &[&'static str],
        value: impl Fn(&str) -> &'a str,
    ) -> Vec<(&'static str, String)> {
        names.iter().map(|n| (*n, value(n).to_string())).collect()
    }
    let mut out_closed = OUT_CLOSED.family();
    let mut out_bytes = OUT_BYTES.family();
    let mut out_retrans = OUT_RETRANS.family();
    let mut failures = CONNECT_FAILURES.family();
    for r in &rows.outbound {
        // A key that closed a connection or showed live traffic (a failures-only key has
        // none of its own): once shown, a series stays (its values never decrease).
        if r.closed > 0 || r.sent > 0 || r.received > 0 || r.retransmits > 0 {
            let l = labels(OUT_KEY, |n| r.label(n));
            out_closed.push(l.clone(), r.closed);
            out_retrans.push(l.clone(), r.retransmits);
            for (dir, v) in [("sent", r.sent), ("received", r.received)] {
                let mut l = l.clone();
                l.push(("direction", dir.into()));
                out_bytes.push(l, v);
            }
        }
        for (reason, n) in [
            (Reason::Refused, r.failed_refused),
            (Reason::Timeout, r.failed_timeout),
        ] {
            if n > 0 {
                let mut l = labels(failure_key(), |name| r.label(name));
                l.push(("reason", reason.name().into()));
                failures.push(l, n);
            }
        }
    }
    let mut in_closed = IN_CLOSED.family();
    let mut in_bytes = IN_BYTES.family();
    let mut in_retrans = IN_RETRANS.family();
    for r in &rows.inbound {
        let l = labels(IN_KEY, |n| r.label(n));
        in_closed.push(l.clone(), r.closed);
        in_retrans.push(l.clone(), r.retransmits);
        for (dir, v) in [("sent", r.sent), ("received", r.received)] {
            let mut l = l.clone();
            l.push(("direction", dir.into()));
            in_bytes.push(l, v);
        }
    }
    vec![
        out_closed,
        out_bytes,
        out_retrans,
        in_closed,
        in_bytes,
        in_retrans,
        failures,
    ]
}

/// Shared between a namespace's subscriber thread and the scrapes.
struct Shared {
    state: Mutex<NsState>,
    bank: Mutex<Bank>,
    memory: Mutex<Memory>,
}

/// One namespace's subscriber; dropping it stops its thread (within [`WAKE`]).
struct Subscriber {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The subscribers of every namespace the connections collector reads.
pub struct Flows {
    networks: Networks,
    buffer: usize,
    /// By namespace label; None: no subscriber could be opened there (logged once).
    subscribers: Mutex<HashMap<String, Option<Subscriber>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one scrape of a namespace gets: the namespace's bank, with the thread's counts since
/// the last scrape to be absorbed. While it lives, the namespace's pass is running (made
/// before the kernel's dump, dropped with the pass).
pub struct Scrape {
    shared: Arc<Shared>,
    began: Instant,
}

impl Scrape {
    fn begin(shared: Arc<Shared>) -> Scrape {
        let began = Instant::now();
        lock(&shared.memory).running.push(began);
        Scrape { shared, began }
    }
}

impl Drop for Scrape {
    fn drop(&mut self) {
        let mut m = lock(&self.shared.memory);
        if let Some(i) = m.running.iter().position(|b| *b == self.began) {
            m.running.swap_remove(i);
        }
    }
}

impl Scrape {
    /// The listeners the stream saw close in the last [`GONE_KEEP`] (every scrape gets them
    /// all: the change log takes each once), labelled with their service by `service`.
    pub fn gone_listeners(
        &self,
        service: &dyn Fn(u16) -> String,
    ) -> Vec<crate::collectors::rows::GoneListener> {
        let st = lock(&self.shared.state);
        st.gone
            .iter()
            .map(|g| crate::collectors::rows::GoneListener {
                family: g.family.name().to_string(),
                address: g.address.to_string(),
                port: g.port,
                service: service(g.port),
                time: g.time,
                netns: String::new(),
            })
            .collect()
    }

    /// How many outbound sockets the last pass remembered (to size the next one's memory).
    pub fn remembered(&self) -> usize {
        lock(&self.shared.memory).sockets.len()
    }

    /// Remember the outbound sockets of this pass (replacing the last pass's) and the labels
    /// of their owners, for the sockets' destroy messages; with the live connections' traffic
    /// (`live`: `traffic[i]` of `sockets[i]`, and the inbound keys' sums) when the pass read
    /// tcp_info. A socket the pass found no owner for keeps the one an earlier pass found.
    /// Live traffic is counted only under a known owner (`attributed`: owners are looked up):
    /// a series' values never move to another when an owner is found later. Call before
    /// [`Self::render`].
    pub fn remember(
        &self,
        mut sockets: Vec<Remembered>,
        owners: OwnerLabels,
        live: Option<(Vec<Traffic>, Vec<LiveInbound>)>,
        attributed: bool,
    ) {
        let mut m = lock(&self.shared.memory);
        if live.is_some() && attributed {
            // The live traffic is counted by owner below, before the sort that would part
            // `sockets` from `traffic`: sticky owners by binary search (only for the sockets
            // without one; with health only). Without health the merge below does it.
            for r in sockets.iter_mut().filter(|r| r.pid == 0) {
                if let Some(old) = m.find(r.cookie) {
                    r.pid = old.pid;
                }
            }
        }
        // The labels of every pid remembered, also of one this pass did not count (an
        // orphaned socket, closed by its process, keeps the owner an earlier pass found; the
        // sockets gone since keep theirs while they are remembered).
        let mut owners = owners;
        let mut last = 0;
        // (This pass's sockets: counted by it, or sticky, so in the last memory.)
        for r in m.sockets.iter().chain(&m.gone[0]) {
            if r.pid != 0 && r.pid != last && !owners.contains_key(&r.pid) {
                if let Some(l) = m.owners.iter().find_map(|o| o.get(&r.pid)) {
                    owners.insert(r.pid, l.clone());
                }
            }
            last = r.pid;
        }
        let mut pending = Pending::default();
        if let Some((traffic, inbound)) = live {
            let closing: rustc_hash::FxHashSet<u64> = m.closing.iter().copied().collect();
            let totals = |t: &Traffic| Totals {
                closed: 0,
                sent: t.sent,
                received: t.received,
                retransmits: t.retransmits,
            };
            for (r, t) in sockets.iter().zip(&traffic) {
                if r.cookie == 0 || (attributed && r.pid == 0) || closing.contains(&r.cookie) {
                    continue;
                }
                pending
                    .outbound
                    .entry((r.port, r.network, r.pid))
                    .or_default()
                    .add(&totals(t));
            }
            for i in inbound.iter().filter(|i| !closing.contains(&i.cookie)) {
                pending
                    .inbound
                    .entry(i.key)
                    .or_default()
                    .add(&totals(&i.traffic));
            }
        }
        // This pass's Scrape is alive: the last running pass clears the cookies.
        if m.running.len() <= 1 {
            m.closing = Vec::new();
        }
        sockets.retain(|r| r.cookie != 0);
        sockets.sort_unstable_by_key(|r| r.cookie);
        if sockets.capacity() > sockets.len() + sockets.len() / 4 {
            sockets.shrink_to_fit();
        }
        // Both sorted, one merge: a socket this pass found no owner for keeps the last
        // pass's (an orphan, closed by its process; a walk not due yet), and what the last
        // pass had and this one has not is gone.
        let mut gone = Vec::new();
        let mut next = sockets.iter_mut().peekable();
        for old in &m.sockets {
            while next.next_if(|n| n.cookie < old.cookie).is_some() {}
            match next.peek_mut() {
                Some(n) if n.cookie == old.cookie => {
                    if n.pid == 0 {
                        n.pid = old.pid;
                    }
                }
                _ => gone.push(*old),
            }
        }
        drop(next);
        m.gone.swap(0, 1);
        m.gone[0] = gone;
        m.sockets = sockets;
        m.owners.swap(0, 1);
        m.owners[0] = Arc::new(owners);
        m.live = pending;
        m.generation += 1;
    }

    /// Absorb the pending counts (labelled by `l`): the namespace's rows, and its families
    /// rendered from them.
    pub fn render(&self, l: &Labeller<'_>) -> (Vec<MetricFamily>, FlowRows) {
        let (pending, messages, lost, buffer) = {
            let mut st = lock(&self.shared.state);
            (
                std::mem::take(&mut st.pending),
                st.messages,
                st.lost,
                st.receive_buffer,
            )
        };
        let (owners, live) = {
            let mut m = lock(&self.shared.memory);
            (m.owners.clone(), std::mem::take(&mut m.live))
        };
        let owner = |pid: u32| owners.iter().find_map(|o| o.get(&pid).cloned());
        // The live traffic, labelled like the closed connections; a listener whose owner is
        // not known now shows none (its connections' values would move series later).
        let mut labelled = Bank::default();
        labelled.absorb(live, l, &owner);
        labelled.inbound.retain(|k, _| k[3] != "unknown");
        let mut bank = lock(&self.shared.bank);
        bank.absorb(pending, l, &owner);
        bank.show(&labelled);
        let rows = bank.rows();
        drop(bank);
        let mut out = render_rows(&rows);
        out.push(MESSAGES.family().with(vec![], messages));
        out.push(LOST.family().with(vec![], lost));
        out.push(RECEIVE_BUFFER.family().with(vec![], buffer));
        (out, rows)
    }
}

impl Flows {
    /// `buffer`: the receive buffer each subscriber asks for
    /// ([`crate::source::destroy::RECEIVE_BUFFER`] unless a test forces losses).
    pub fn new(networks: Networks, buffer: usize) -> Flows {
        Flows {
            networks,
            buffer,
            subscribers: Mutex::new(HashMap::new()),
        }
    }

    /// The subscriber of `ns`, opened now if it is not yet (on the calling thread, which must
    /// be in that namespace: a scrape's collection). None: no netlink there, or the kernel
    /// refused the subscription.
    pub fn scrape(&self, ns: &Netns) -> Option<Scrape> {
        if let Some(s) = lock(&self.subscribers).get(ns.label()) {
            return s.as_ref().map(|s| Scrape::begin(s.shared.clone()));
        }
        // Opened without the lock: namespaces are read in parallel, each by one thread.
        let sub = match ns.netlink() {
            NetlinkAccess::Own => match self.open(ns) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(netns = ns.label(), error = %e, "no socket-destroy subscriber: closed connections are not counted in this namespace");
                    None
                }
            },
            NetlinkAccess::Unavailable => None,
        };
        let out = sub.as_ref().map(|s| Scrape::begin(s.shared.clone()));
        lock(&self.subscribers).insert(ns.label().to_string(), sub);
        out
    }

    fn open(&self, ns: &Netns) -> std::io::Result<Subscriber> {
        let sock = DestroySocket::open(self.buffer, WAKE)?;
        let listen = ns.open_diag()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(NsState {
                receive_buffer: sock.receive_buffer as u64,
                ..Default::default()
            }),
            bank: Mutex::new(Bank::default()),
            memory: Mutex::new(Memory::default()),
        });
        tracing::debug!(
            netns = ns.label(),
            receive_buffer = sock.receive_buffer,
            forced = sock.forced,
            "socket-destroy subscriber"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let pause = if sock.receive_buffer >= BATCH_BUFFER {
            BATCH_PAUSE
        } else {
            Duration::ZERO
        };
        let mut reader = Reader {
            pause,
            sock,
            classifier: Classifier::new(listen),
            networks: self.networks.clone(),
            shared: shared.clone(),
        };
        let stop2 = stop.clone();
        let label = ns.label().to_string();
        std::thread::Builder::new()
            .name(format!("flows-{label}"))
            .spawn(move || reader.run(&stop2))?;
        Ok(Subscriber { shared, stop })
    }

    /// After a scrape: stop the subscribers of namespaces no longer collected.
    pub fn retain(&self, live: &BTreeSet<String>) {
        lock(&self.subscribers).retain(|ns, _| live.contains(ns));
    }
}

/// A listener as the classifier remembers it: (address, inode (0: unknown), last seen).
type Known = (IpAddr, u64, Instant);

/// The listeners of a namespace, to tell inbound sockets from outbound ones.
struct Classifier {
    /// A sock_diag socket of the namespace, for LISTEN-only dumps (the kernel walks only its
    /// listening hash).
    sock: DiagSocket,
    /// (family, port) -> listeners on it.
    listeners: FxHashMap<(Family, u16), Vec<Known>>,
    refreshed: Option<Instant>,
    buf: Vec<InetSocket>,
    /// Bumped when a listener is added: waiting messages are looked up again.
    generation: u64,
}

impl Classifier {
    fn new(sock: DiagSocket) -> Self {
        let c = Classifier {
            sock,
            listeners: FxHashMap::default(),
            refreshed: None,
            buf: Vec::new(),
            generation: 0,
        };
        // The first dump is the reader thread's (never a scrape's wait).
        c
    }

    fn refresh(&mut self, now: Instant) {
        self.refreshed = Some(now);
        let mut found = std::mem::take(&mut self.buf);
        found.clear();
        let dumped = self.sock.dump_inet(
            DumpRequest::TcpBothFamilies,
            state_bit(TCP_LISTEN),
            0,
            &mut |s| found.push(*s),
        );
        if dumped.is_ok() {
            for s in &found {
                self.add(s.family, s.local, s.local_port, s.inode, now);
            }
        }
        self.buf = found;
        self.listeners.retain(|_, v| {
            v.retain(|e| now.duration_since(e.2) <= LISTEN_KEEP);
            !v.is_empty()
        });
    }

    fn add(&mut self, family: Family, address: IpAddr, port: u16, inode: u64, now: Instant) {
        let v = self.listeners.entry((family, port)).or_default();
        match v.iter_mut().find(|e| e.0 == address) {
            Some(e) => {
                if inode != 0 {
                    e.1 = inode;
                }
                e.2 = now;
            }
            None => {
                v.push((address, inode, now));
                self.generation += 1;
            }
        }
    }

    /// A listener's own destroy message: remembered (its inode, when a refresh saw it,
    /// names its owner) for its accepted connections that close after it.
    fn closed_listener(&mut self, d: &Destroyed, now: Instant) {
        self.add(d.family, d.local, d.local_port, 0, now);
    }

    fn refresh_due(&self, now: Instant) -> bool {
        self.refreshed
            .is_none_or(|t| now.duration_since(t) >= LISTEN_REFRESH)
    }

    /// The inode of the listener that accepted `d` (its exact address, else the wildcard
    /// of its family; any on its port when the kernel cleared its local address).
    fn lookup(&self, d: &Destroyed) -> Option<u64> {
        let v = self.listeners.get(&(d.family, d.local_port))?;
        if d.local.is_unspecified() {
            return v.first().map(|e| e.1);
        }
        v.iter()
            .find(|e| unmap(e.0) == unmap(d.local))
            .or_else(|| v.iter().find(|e| e.0.is_unspecified()))
            .map(|e| e.1)
    }
}

/// A subscriber's thread.
struct Reader {
    /// [`BATCH_PAUSE`], or zero with a small receive buffer.
    pause: Duration,
    sock: DestroySocket,
    classifier: Classifier,
    networks: Networks,
    shared: Arc<Shared>,
}

impl Reader {
    fn run(&mut self, stop: &AtomicBool) {
        self.classifier.refresh(Instant::now());
        let mut batch: Vec<Destroyed> = Vec::new();
        // Counted since the last hand-over to the shared state (kept allocated).
        let mut delta = Pending::default();
        // Messages no known listener's, waiting (at most DEFER) for their listener to be
        // found: (received at, classifier generation of the last look-up, message).
        let mut waiting: std::collections::VecDeque<(Instant, u64, Destroyed)> = Default::default();
        let mut waking = WAKE;
        let mut seen_generation = 0;
        while !stop.load(Ordering::Relaxed) {
            let wake = if waiting.is_empty() { WAKE } else { DEFER_TICK };
            if wake != waking {
                waking = wake;
                let _ = self.sock.set_timeout(wake);
            }
            batch.clear();
            let got = match self.sock.receive(&mut |d| batch.push(*d)) {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(error = %e, "socket-destroy subscriber: read failed; stopping it");
                    return;
                }
            };
            let now = Instant::now();
            // Listeners first: their accepted connections may be in the same batch.
            let mut gone = Vec::new();
            for d in batch.iter().filter(|d| d.is_listener()) {
                self.classifier.closed_listener(d, now);
                gone.push(Gone {
                    family: d.family,
                    address: d.local,
                    port: d.local_port,
                    time: unix_now(),
                });
            }
            let generation = self.classifier.generation;
            {
                // A socket a pass saw as outbound is outbound, with the owner and the remote
                // port the pass saw: no need to find its listener.
                let mut memory = lock(&self.shared.memory);
                if !memory.running.is_empty() {
                    let room = PASS_WAIT_MAX.saturating_sub(memory.closing.len());
                    let cookies = batch.iter().filter(|d| !d.is_listener()).map(|d| d.cookie);
                    memory.closing.extend(cookies.take(room));
                }
                for d in batch.iter().filter(|d| !d.is_listener()) {
                    if let Some(r) = memory.find(d.cookie) {
                        self.outbound(d, Some(r), &mut delta);
                        continue;
                    }
                    match self.classifier.lookup(d) {
                        Some(inode) => self.inbound(d, inode, &mut delta),
                        None => waiting.push_back((now, generation, *d)),
                    }
                }
            }
            if !waiting.is_empty() && self.classifier.refresh_due(now) {
                self.classifier.refresh(now);
            }
            // A listener was added: everything waiting is looked up again (rare).
            let generation = self.classifier.generation;
            if waiting.front().is_some_and(|w| w.1 != generation) {
                let mut keep = std::collections::VecDeque::with_capacity(waiting.len());
                for (at, _, d) in waiting.drain(..) {
                    match self.classifier.lookup(&d) {
                        Some(inode) => self.inbound(&d, inode, &mut delta),
                        None => keep.push_back((at, generation, d)),
                    }
                }
                waiting = keep;
            }
            // Oldest first: those that waited long enough are outbound, with what a pass
            // remembered of them; while a pass is running (its memory not yet published) they
            // wait for it.
            {
                let memory = lock(&self.shared.memory);
                if memory.generation != seen_generation && !waiting.is_empty() {
                    seen_generation = memory.generation;
                    let mut keep = std::collections::VecDeque::with_capacity(waiting.len());
                    for w in waiting.drain(..) {
                        match memory.find(w.2.cookie) {
                            Some(r) => self.outbound(&w.2, Some(r), &mut delta),
                            None => keep.push_back(w),
                        }
                    }
                    waiting = keep;
                }
                let oldest = memory.running.iter().min().copied();
                while waiting.front().is_some_and(|w| {
                    let waited = now.duration_since(w.0);
                    let pass_pending = oldest.is_some_and(|b| b <= w.0);
                    (waited >= DEFER && !pass_pending)
                        || waited >= PASS_WAIT
                        || waiting.len() > PASS_WAIT_MAX
                }) {
                    if let Some((_, _, d)) = waiting.pop_front() {
                        self.outbound(&d, memory.find(d.cookie), &mut delta);
                    }
                }
            }
            let mut st = lock(&self.shared.state);
            st.messages += got.messages;
            st.lost += got.overruns + got.malformed;
            merge(&mut st.pending, &mut delta);
            let oldest = unix_now() - GONE_KEEP.as_secs_f64();
            while st
                .gone
                .front()
                .is_some_and(|g| g.time < oldest || st.gone.len() + gone.len() > GONE_MAX)
            {
                st.gone.pop_front();
            }
            st.gone.extend(gone);
            while st.gone.len() > GONE_MAX {
                st.gone.pop_front();
            }
            drop(st);
            if got.messages > 0 && !self.pause.is_zero() {
                std::thread::sleep(self.pause);
            }
        }
    }

    fn inbound(&self, d: &Destroyed, inode: u64, out: &mut Pending) {
        let network = self.networks.classify(d.remote) as u16;
        out.inbound
            .entry((d.local_port, network, inode))
            .or_default()
            .add(&Totals::of(d));
    }

    /// An outbound socket's message; `seen`: what a pass remembered of it (its owner, and
    /// its remote port when the kernel cleared it).
    fn outbound(&self, d: &Destroyed, seen: Option<Remembered>, out: &mut Pending) {
        let (port, network, pid) = match seen {
            Some(r) => (
                if d.remote_port == 0 {
                    r.port
                } else {
                    d.remote_port
                },
                r.network,
                r.pid,
            ),
            None => (d.remote_port, self.networks.classify(d.remote) as u16, 0),
        };
        let reason = match d.outcome() {
            Outcome::Closed => {
                out.outbound
                    .entry((port, network, pid))
                    .or_default()
                    .add(&Totals::of(d));
                return;
            }
            Outcome::Refused => Reason::Refused,
            Outcome::TimedOut => Reason::Timeout,
            Outcome::Abandoned | Outcome::Listener => return,
        };
        *out.failures
            .entry((reason, port, network, pid))
            .or_default() += 1;
    }
}

/// Move `from`'s counts into `into`, leaving `from` empty (its memory kept).
fn merge(into: &mut Pending, from: &mut Pending) {
    for (k, t) in from.outbound.drain() {
        into.outbound.entry(k).or_default().add(&t);
    }
    for (k, t) in from.inbound.drain() {
        into.inbound.entry(k).or_default().add(&t);
    }
    for (k, n) in from.failures.drain() {
        *into.failures.entry(k).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorbed_series_only_grow_and_are_capped() {
        let networks = Networks::default();
        let port = |p: u16| (p.to_string(), String::new());
        let service = |_: u16| String::new();
        let proc_ = |_: u64| "srv".to_string();
        let l = Labeller {
            port: &port,
            service: &service,
            listener_process: &proc_,
            gone_process: "unknown",
            networks: &networks,
        };
        let mut bank = Bank::default();
        let t = Totals {
            closed: 1,
            sent: 1000,
            received: 500,
            retransmits: 0,
        };
        for round in 0..3 {
            let mut p = Pending::default();
            p.outbound.insert((443, 0, 0), t);
            p.outbound.insert((0, 0, 0), t);
            p.inbound.insert((22, 0, 7), t);
            p.failures.insert((Reason::Refused, 0, 0, 0), 2);
            bank.absorb(p, &l, &|_| None);
            let k = vec![
                "tcp".to_string(),
                "443".into(),
                String::new(),
                networks.name(0).to_string(),
                "unknown".into(),
                String::new(),
                String::new(),
            ];
            assert_eq!(bank.outbound[&k].closed, round + 1);
            assert_eq!(bank.outbound[&k].sent, 1000 * (round + 1));
        }
        bank.show(&Bank::default());
        let rows = bank.rows();
        // The failures of the cleared remote port join the closed key "unknown": one row.
        assert_eq!(rows.outbound.len(), 2);
        let unknown = rows
            .outbound
            .iter()
            .find(|r| r.remote_port == "unknown")
            .unwrap();
        assert_eq!(
            (unknown.closed, unknown.failed, unknown.failed_refused),
            (3, 6, 6)
        );
        assert_eq!(rows.inbound[0].port, "22");
        assert_eq!(rows.inbound[0].process, "srv");
        assert_eq!((rows.inbound[0].closed, rows.inbound[0].sent), (3, 3000));
        let fams = render_rows(&rows);
        assert_eq!(fams.len(), 7);
        // Over the cap: totals conserved in the overflow series.
        let mut p = Pending::default();
        for port in 1..=(MAX_SERIES as u16 + 10) {
            p.outbound.insert((port + 1000, 0, 0), t);
        }
        bank.absorb(p, &l, &|_| None);
        assert!(bank.outbound.len() <= MAX_SERIES + 1);
        let closed: u64 = bank.outbound.values().map(|t| t.closed).sum();
        assert_eq!(closed, 6 + MAX_SERIES as u64 + 10);
    }

    /// What is shown is closed plus live, never less than before: a live socket's traffic
    /// that vanishes (its message lost, or not come yet) holds the series, its final values
    /// (at least the live ones) do not count twice, later traffic passes the floor.
    #[test]
    fn shown_is_closed_plus_live_and_never_decreases() {
        let key = vec![
            "tcp".to_string(),
            "443".into(),
            String::new(),
            "x".into(),
            "p".into(),
            String::new(),
            String::new(),
        ];
        let t = |closed, sent| Totals {
            closed,
            sent,
            received: 0,
            retransmits: 0,
        };
        let mut bank = Bank::default();
        let mut live = Bank::default();
        live.outbound.insert(key.clone(), t(0, 700));
        bank.show(&live);
        assert_eq!(bank.shown_out[&key], t(0, 700), "live only");
        // It closed with 1,000 bytes; the message came: 1,000, not 1,700.
        bank.outbound.insert(key.clone(), t(1, 1000));
        bank.show(&Bank::default());
        assert_eq!(bank.shown_out[&key], t(1, 1000));
        // Another one lives with 500, then its message is lost: the series holds.
        live.outbound.insert(key.clone(), t(0, 500));
        bank.show(&live);
        assert_eq!(bank.shown_out[&key], t(1, 1500));
        bank.show(&Bank::default());
        assert_eq!(bank.shown_out[&key], t(1, 1500), "held, never decreasing");
        // Later traffic passes the floor.
        bank.outbound.insert(key.clone(), t(2, 1800));
        bank.show(&Bank::default());
        assert_eq!(bank.shown_out[&key], t(2, 1800));
    }

    /// A remembered socket is found in the memory of the pass that saw it, and in the next
    /// two memories once it is gone from the kernel's tables (a late destroy message).
    #[test]
    fn remembered_sockets_outlive_their_pass_by_two() {
        let shared = Arc::new(Shared {
            state: Mutex::new(NsState::default()),
            bank: Mutex::new(Bank::default()),
            memory: Mutex::new(Memory::default()),
        });
        let r = |cookie| Remembered {
            cookie,
            pid: 7,
            port: 443,
            network: 0,
        };
        let pass = |sockets: Vec<Remembered>| {
            let s = Scrape::begin(shared.clone());
            s.remember(sockets, OwnerLabels::default(), None, true);
        };
        pass(vec![r(3), r(1), r(2)]);
        let find = |c| lock(&shared.memory).find(c);
        assert_eq!(find(2), Some(r(2)));
        pass(vec![r(1), r(4)]);
        assert_eq!(find(2), Some(r(2)), "gone one pass ago");
        pass(vec![r(1)]);
        assert_eq!(find(2), Some(r(2)), "gone two passes ago");
        assert_eq!(find(4), Some(r(4)));
        pass(vec![r(1)]);
        assert_eq!(find(2), None, "forgotten");
        assert_eq!(find(4), Some(r(4)));
        // A pass that found no owner keeps the earlier one.
        pass(vec![Remembered { pid: 0, ..r(1) }]);
        assert_eq!(find(1).map(|r| r.pid), Some(7));
        assert!(lock(&shared.memory).running.is_empty(), "every pass ended");
    }

    /// The families rendered from the rows: every key's series with the declared labels, a
    /// failures-only key with no closed series, a closed key with no failures series.
    #[test]
    fn families_are_rendered_from_the_rows() {
        let key = |port: &str| {
            vec![
                "tcp".to_string(),
                port.to_string(),
                String::new(),
                "loopback".into(),
                "unknown".into(),
            ]
        };
        let mut bank = Bank::default();
        let mut k = key("443");
        k.extend([String::from("c1"), String::new()]);
        bank.outbound.insert(
            k,
            Totals {
                closed: 2,
                sent: 10,
                received: 20,
                retransmits: 1,
            },
        );
        bank.failures.insert((key("25"), Reason::Timeout), 4);
        bank.failures.insert((key("25"), Reason::Refused), 1);
        bank.inbound.insert(
            vec![
                "tcp".into(),
                "22".into(),
                "ssh".into(),
                "sshd".into(),
                "private".into(),
            ],
            Totals {
                closed: 5,
                sent: 1,
                received: 2,
                retransmits: 0,
            },
        );
        bank.show(&Bank::default());
        let rows = bank.rows();
        assert_eq!(rows.namespaces, vec![String::new()]);
        let ports: Vec<&str> = rows
            .outbound
            .iter()
            .map(|r| r.remote_port.as_str())
            .collect();
        assert_eq!(ports, ["25", "443"], "in the order of the labels");
        let fams = render_rows(&rows);
        let find = |d: &Desc| fams.iter().find(|f| f.name == d.name).unwrap();
        let closed = find(&OUT_CLOSED);
        assert_eq!(closed.samples.len(), 1, "no closed series for port 25");
        assert_eq!(
            crate::metrics::label(&closed.samples[0], "container_id"),
            "c1"
        );
        assert_eq!(closed.samples[0].value.as_f64(), 2.0);
        let bytes = find(&OUT_BYTES);
        assert_eq!(bytes.samples.len(), 2);
        let failures = find(&CONNECT_FAILURES);
        let got: Vec<(&str, &str, f64)> = failures
            .samples
            .iter()
            .map(|s| {
                (
                    crate::metrics::label(s, "remote_port"),
                    crate::metrics::label(s, "reason"),
                    s.value.as_f64(),
                )
            })
            .collect();
        assert_eq!(got, vec![("25", "refused", 1.0), ("25", "timeout", 4.0)]);
        for f in &fams {
            let desc = metrics().into_iter().find(|d| d.name == f.name).unwrap();
            for s in &f.samples {
                let names: Vec<&str> = s.labels.iter().map(|(n, _)| *n).collect();
                assert_eq!(names, desc.labels, "{}", f.name);
            }
        }
        let port25 = rows
            .outbound
            .iter()
            .find(|r| r.remote_port == "25")
            .unwrap();
        assert_eq!(
            (port25.closed, port25.failed, port25.failed_timeout),
            (0, 5, 4)
        );
        assert_eq!(find(&IN_CLOSED).samples[0].value.as_f64(), 5.0);
    }
}
