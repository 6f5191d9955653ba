//! Continuous capture (`netstat -c`, for the browser and the log): each scrape's typed rows
//! (crate::collectors::rows, what its families were rendered from) are compared with the
//! previous scrape's, and what changed becomes an [`Event`]: a listener
//! opened, closed, changed owner or became unexpected; an outbound key became unexpected; an
//! interface appeared, vanished or changed a flag; a network namespace appeared or vanished.
//!
//! [`Observation::from_scraped`] and [`diff`] are pure; [`EventLog`] keeps the previous
//! observation, a bounded ring of events (oldest dropped and counted), writes one info log
//! line per event and renders `netstat_events_total{kind}` / `netstat_events_dropped_total`.
//!
//! Events come from the scrapes that requests trigger (Prometheus, the landing page): their
//! time resolution is the scrape interval. The first observation of each kind is the baseline
//! and records nothing. A kind is only diffed when its collector ran in the scrape; when the
//! collector that produced it failed, what is missing is not reported closed or vanished.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::collectors::rows::{ListenerRow, Scraped};
use crate::collectors::{connections, interfaces, listeners};
use crate::metrics::{Desc, MetricFamily};

pub static EVENTS: Desc = Desc::counter(
    "netstat_events",
    &["kind"],
    "Changes seen between consecutive scrapes (listener opened/closed, interface flag changed, ...), by kind; see /api/v1/events.",
);
pub static EVENTS_DROPPED: Desc = Desc::counter(
    "netstat_events_dropped",
    &[],
    "Events dropped from the in-memory event log because it held --events.capacity events.",
);

/// The listeners collector's `process` value for an owner it could not resolve.
const UNKNOWN_OWNER: &str = "unknown";

/// Interface flags whose changes are events (`lower_up` is the carrier).
pub use crate::collectors::rows::WATCHED_FLAGS;

/// Version of the `/api/v1/events` schema (bumped on incompatible changes).
pub const SCHEMA_VERSION: u32 = 1;
pub use crate::config::{check_capacity, DEFAULT_CAPACITY, MAX_CAPACITY};

// ---------------------------------------------------------------------------------------------
// Events.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ListenerOpened,
    ListenerClosed,
    ListenerOwnerChanged,
    ListenerUnexpected,
    OutboundUnexpected,
    InterfaceAppeared,
    InterfaceVanished,
    InterfaceFlagChanged,
    NetnsAppeared,
    NetnsVanished,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::ListenerOpened,
        Kind::ListenerClosed,
        Kind::ListenerOwnerChanged,
        Kind::ListenerUnexpected,
        Kind::OutboundUnexpected,
        Kind::InterfaceAppeared,
        Kind::InterfaceVanished,
        Kind::InterfaceFlagChanged,
        Kind::NetnsAppeared,
        Kind::NetnsVanished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ListenerOpened => "listener_opened",
            Kind::ListenerClosed => "listener_closed",
            Kind::ListenerOwnerChanged => "listener_owner_changed",
            Kind::ListenerUnexpected => "listener_unexpected",
            Kind::OutboundUnexpected => "outbound_unexpected",
            Kind::InterfaceAppeared => "interface_appeared",
            Kind::InterfaceVanished => "interface_vanished",
            Kind::InterfaceFlagChanged => "interface_flag_changed",
            Kind::NetnsAppeared => "netns_appeared",
            Kind::NetnsVanished => "netns_vanished",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Kind::ListenerOpened => "listener opened",
            Kind::ListenerClosed => "listener closed",
            Kind::ListenerOwnerChanged => "listener owner changed",
            Kind::ListenerUnexpected => "listener became unexpected",
            Kind::OutboundUnexpected => "outbound key became unexpected",
            Kind::InterfaceAppeared => "interface appeared",
            Kind::InterfaceVanished => "interface vanished",
            Kind::InterfaceFlagChanged => "interface flag changed",
            Kind::NetnsAppeared => "network namespace appeared",
            Kind::NetnsVanished => "network namespace vanished",
        }
    }
}

/// What an event is about; serialized flat into the event object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Subject {
    Listener {
        protocol: String,
        family: String,
        address: String,
        port: u16,
        service: String,
        process: String,
        user: String,
        /// The owning process (null when not known: events from scrapes carry none).
        pid: Option<u32>,
        /// The owner's container and Kubernetes pod, from its cgroup ("" for a host process).
        container_id: String,
        pod_uid: String,
        /// Null without an expected-listeners policy.
        unexpected: Option<bool>,
        /// listener_owner_changed only: the owner before.
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_process: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_user: Option<String>,
    },
    Interface {
        device: String,
        /// netstat -i Flg letters after the change (interface_vanished: as last seen).
        flags: String,
        operstate: String,
        /// interface_flag_changed only.
        #[serde(skip_serializing_if = "Option::is_none")]
        flag: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<bool>,
    },
    Netns {
        name: String,
        container_id: String,
        pod_uid: String,
    },
    Outbound {
        protocol: String,
        remote_port: String,
        service: String,
        remote_network: String,
        process: String,
    },
}

/// One change, as served by `/api/v1/events` and logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Sequence number, 1-based, increasing, never reused while the exporter runs.
    pub seq: u64,
    /// Unix seconds of the scrape that saw the change.
    pub time: f64,
    /// Number of the observed scrape (1 = the baseline).
    pub scrape: u64,
    pub kind: Kind,
    /// "warning" for unexpected listeners/outbound keys and promiscuous mode switched on.
    pub severity: &'static str,
    /// Network namespace inode ("" for the exporter's own namespace).
    pub netns: String,
    #[serde(flatten)]
    pub subject: Subject,
    /// Where the change was seen when not by a scrape or the watch: `destroy_only` for a
    /// listener_closed of a listener only the kernel's socket-destroy stream saw (it opened
    /// and closed between two looks). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen: Option<&'static str>,
}

/// [`Event::seen`] of a listener only the socket-destroy stream saw.
pub const SEEN_DESTROY_ONLY: &str = "destroy_only";

/// A change before it gets its sequence number and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: Kind,
    pub netns: String,
    pub subject: Subject,
}

impl Change {
    fn severity(&self) -> &'static str {
        let warn = match (&self.kind, &self.subject) {
            (Kind::ListenerUnexpected | Kind::OutboundUnexpected, _) => true,
            (Kind::ListenerOpened, Subject::Listener { unexpected, .. }) => {
                *unexpected == Some(true)
            }
            (Kind::InterfaceFlagChanged, Subject::Interface { flag, value, .. }) => {
                flag.as_deref() == Some("promisc") && *value == Some(true)
            }
            _ => false,
        };
        if warn {
            "warning"
        } else {
            "info"
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Observations.

/// The objects of one kind in one scrape; `complete` is false when the collector that
/// produced them reported a failure (then absence means nothing).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Part<T> {
    pub items: T,
    pub complete: bool,
}

/// (netns, protocol, family, address, port)
pub type ListenerKey = (String, String, String, String, u16);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerAttrs {
    pub service: String,
    pub process: String,
    pub user: String,
    pub container_id: String,
    pub pod_uid: String,
}

/// (netns, device)
pub type InterfaceKey = (String, String);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceState {
    pub flags: String,
    pub operstate: String,
    /// Watched flag -> set (absent when the flag family did not report it).
    pub flag: BTreeMap<String, bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsAttrs {
    pub name: String,
    pub container_id: String,
    pub pod_uid: String,
}

/// (netns, protocol, remote_port, service, remote_network, process)
pub type OutboundKey = (String, String, String, String, String, String);

/// What one scrape says about the objects events are about. A kind is None when its family
/// is not in the scrape (collector not selected, disabled, timed out, or not built yet).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    pub listeners: Option<Part<BTreeMap<ListenerKey, ListenerAttrs>>>,
    pub unexpected: Option<Part<BTreeSet<ListenerKey>>>,
    pub interfaces: Option<Part<BTreeMap<InterfaceKey, InterfaceState>>>,
    pub netns: Option<Part<BTreeMap<String, NetnsAttrs>>>,
    pub outbound: Option<Part<BTreeSet<OutboundKey>>>,
}

fn listener_key(r: &ListenerRow) -> ListenerKey {
    (
        r.netns.clone(),
        r.protocol.clone(),
        r.family.clone(),
        r.address.clone(),
        r.port,
    )
}

impl Observation {
    /// Read the typed rows of one scrape.
    pub fn from_scraped(s: &Scraped) -> Observation {
        // Collector -> succeeded, from the scrape's collector statuses.
        let success: BTreeMap<&str, bool> = s
            .collectors
            .iter()
            .map(|c| (c.name.as_str(), c.success))
            .collect();
        // The rows of a collector count as complete when it succeeded; the namespaces (no
        // collector's) when every collector of the scrape did.
        let complete = |owner: Option<&str>| match owner {
            Some(c) => success.get(c).copied().unwrap_or(false),
            None => success.values().all(|ok| *ok),
        };
        let rows = &s.rows;
        let mut o = Observation::default();
        if let Some(l) = &rows.listeners {
            let complete = complete(Some(listeners::DECL.name));
            let items = l
                .rows
                .iter()
                .map(|r| {
                    let attrs = ListenerAttrs {
                        service: r.service.clone(),
                        process: r.process.clone(),
                        user: r.user.clone(),
                        container_id: r.container_id.clone(),
                        pod_uid: r.pod_uid.clone(),
                    };
                    (listener_key(r), attrs)
                })
                .collect();
            o.listeners = Some(Part { items, complete });
            if l.policy {
                let items = l
                    .rows
                    .iter()
                    .filter(|r| r.unexpected == Some(true))
                    .map(listener_key)
                    .collect();
                o.unexpected = Some(Part { items, complete });
            }
        }
        if let Some(ifs) = &rows.interfaces {
            let items = ifs
                .iter()
                .filter(|r| r.link.is_some())
                .map(|r| {
                    let flag = WATCHED_FLAGS
                        .iter()
                        .zip(interfaces::watched(r))
                        .filter_map(|(f, v)| Some((f.to_string(), v?)))
                        .collect();
                    let st = InterfaceState {
                        flags: r.letters().to_string(),
                        operstate: r.operstate().unwrap_or_default().to_string(),
                        flag,
                    };
                    ((r.netns.clone(), r.device.clone()), st)
                })
                .collect();
            let complete = complete(Some(interfaces::DECL.name));
            o.interfaces = Some(Part { items, complete });
        }
        if let Some(ns) = &s.namespaces {
            let items = ns
                .iter()
                .map(|n| {
                    let attrs = NetnsAttrs {
                        name: n.name.clone(),
                        container_id: n.container_id.clone(),
                        pod_uid: n.pod_uid.clone(),
                    };
                    (n.netns.clone(), attrs)
                })
                .collect();
            o.netns = Some(Part {
                items,
                complete: complete(None),
            });
        }
        if let Some(ob) = rows.outbound.as_ref().filter(|o| o.policy) {
            let items = ob
                .unexpected
                .iter()
                .map(|k| {
                    (
                        k.netns.clone(),
                        k.protocol.clone(),
                        k.remote_port.clone(),
                        k.service.clone(),
                        k.remote_network.clone(),
                        k.process.clone(),
                    )
                })
                .collect();
            let complete = complete(Some(connections::DECL.name));
            o.outbound = Some(Part { items, complete });
        }
        o
    }
}

// ---------------------------------------------------------------------------------------------
// The diff.

fn listener_subject(
    k: &ListenerKey,
    a: &ListenerAttrs,
    unexpected: Option<&Part<BTreeSet<ListenerKey>>>,
) -> Subject {
    Subject::Listener {
        protocol: k.1.clone(),
        family: k.2.clone(),
        address: k.3.clone(),
        port: k.4,
        service: a.service.clone(),
        process: a.process.clone(),
        user: a.user.clone(),
        pid: None,
        container_id: a.container_id.clone(),
        pod_uid: a.pod_uid.clone(),
        unexpected: unexpected.map(|u| u.items.contains(k)),
        previous_process: None,
        previous_user: None,
    }
}

fn interface_subject(k: &InterfaceKey, st: &InterfaceState, flag: Option<(&str, bool)>) -> Subject {
    Subject::Interface {
        device: k.1.clone(),
        flags: st.flags.clone(),
        operstate: st.operstate.clone(),
        flag: flag.map(|(f, _)| f.to_string()),
        value: flag.map(|(_, v)| v),
    }
}

/// The objects of one kind, by key: a map, or a set (whose values are `()`).
trait Keyed: Clone {
    type K: Ord;
    type V;
    fn entries(&self) -> impl Iterator<Item = (&Self::K, &Self::V)>;
    fn lookup(&self, k: &Self::K) -> Option<&Self::V>;
    /// Add what `prev` has and `self` lacks.
    fn keep_missing(&mut self, prev: &Self);
}

impl<K: Ord + Clone, V: Clone> Keyed for BTreeMap<K, V> {
    type K = K;
    type V = V;
    fn entries(&self) -> impl Iterator<Item = (&K, &V)> {
        self.iter()
    }
    fn lookup(&self, k: &K) -> Option<&V> {
        self.get(k)
    }
    fn keep_missing(&mut self, prev: &Self) {
        for (k, v) in prev {
            self.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

impl<K: Ord + Clone> Keyed for BTreeSet<K> {
    type K = K;
    type V = ();
    fn entries(&self) -> impl Iterator<Item = (&K, &())> {
        self.iter().map(|k| (k, &()))
    }
    fn lookup(&self, k: &K) -> Option<&()> {
        self.contains(k).then_some(&())
    }
    fn keep_missing(&mut self, prev: &Self) {
        self.extend(prev.iter().cloned());
    }
}

/// What [`keyed_diff`] reports for one key.
enum Delta<'a, K, V> {
    /// In the current observation, not in the previous one.
    Added(&'a K, &'a V),
    /// In both.
    Kept { key: &'a K, old: &'a V, new: &'a V },
    /// In the previous observation and not in the current one, which is complete.
    Removed(&'a K, &'a V),
}

/// Compare one kind of objects of two observations: `on` is told every key added and kept
/// (current order), then every key removed (previous order; only when the current
/// observation is complete: absence in a partial one means nothing). Returns the state to
/// compare the next observation with: the previous one when this kind is absent from `cur`,
/// `cur` when it is absent from `prev` (a baseline: no changes), else `cur` plus, when it is
/// partial, what it missed (the next complete one decides whether that is gone).
fn keyed_diff<'a, C: Keyed>(
    prev: &'a Option<Part<C>>,
    cur: &'a Option<Part<C>>,
    mut on: impl FnMut(Delta<'a, C::K, C::V>),
) -> Option<Part<C>> {
    let Some(c) = cur else {
        return prev.clone();
    };
    let Some(p) = prev else {
        return Some(c.clone());
    };
    for (key, new) in c.items.entries() {
        match p.items.lookup(key) {
            None => on(Delta::Added(key, new)),
            Some(old) => on(Delta::Kept { key, old, new }),
        }
    }
    if c.complete {
        for (key, old) in p.items.entries() {
            if c.items.lookup(key).is_none() {
                on(Delta::Removed(key, old));
            }
        }
    }
    let mut items = c.items.clone();
    if !c.complete {
        items.keep_missing(&p.items);
    }
    Some(Part {
        items,
        complete: c.complete,
    })
}

/// Changes from `prev` to `cur`, and the state to compare the next observation with. A kind
/// absent from `cur` keeps its previous state; a kind absent from `prev` is a baseline.
pub fn diff(prev: &Observation, cur: &Observation) -> (Vec<Change>, Observation) {
    let mut out = Vec::new();
    let mut push = |kind, netns: &str, subject| {
        out.push(Change {
            kind,
            netns: netns.to_string(),
            subject,
        })
    };

    // The unexpected set of this scrape (or the last known one) tags listener events.
    let unexpected_now = cur.unexpected.as_ref().or(prev.unexpected.as_ref());
    let mut listeners = keyed_diff(&prev.listeners, &cur.listeners, |d| match d {
        Delta::Added(k, a) => push(
            Kind::ListenerOpened,
            &k.0,
            listener_subject(k, a, unexpected_now),
        ),
        // An owner that could not be resolved this time (process gone while its socket
        // lingers, a walk not due) is no change of owner.
        Delta::Kept { old, new, .. }
            if new.process == UNKNOWN_OWNER && old.process != UNKNOWN_OWNER => {}
        Delta::Kept { key, old, new } if old.process != new.process || old.user != new.user => {
            let mut s = listener_subject(key, new, unexpected_now);
            if let Subject::Listener {
                previous_process,
                previous_user,
                ..
            } = &mut s
            {
                *previous_process = Some(old.process.clone());
                *previous_user = Some(old.user.clone());
            }
            push(Kind::ListenerOwnerChanged, &key.0, s);
        }
        Delta::Kept { .. } => {}
        Delta::Removed(k, a) => push(Kind::ListenerClosed, &k.0, listener_subject(k, a, None)),
    });
    // Keep the last known owner of a listener whose owner is unknown this time.
    if let (Some(merged), Some(_), Some(p)) = (&mut listeners, &cur.listeners, &prev.listeners) {
        for (k, a) in merged.items.iter_mut() {
            if let Some(old) = p.items.get(k) {
                if a.process == UNKNOWN_OWNER && old.process != UNKNOWN_OWNER {
                    *a = old.clone();
                }
            }
        }
    }
    let unexpected = keyed_diff(&prev.unexpected, &cur.unexpected, |d| {
        if let Delta::Added(k, ()) = d {
            let attrs = cur
                .listeners
                .as_ref()
                .and_then(|l| l.items.get(k))
                .or_else(|| prev.listeners.as_ref().and_then(|l| l.items.get(k)))
                .cloned()
                .unwrap_or(ListenerAttrs {
                    service: String::new(),
                    process: String::new(),
                    user: String::new(),
                    container_id: String::new(),
                    pod_uid: String::new(),
                });
            push(
                Kind::ListenerUnexpected,
                &k.0,
                listener_subject(k, &attrs, cur.unexpected.as_ref()),
            );
        }
    });
    let outbound = keyed_diff(&prev.outbound, &cur.outbound, |d| {
        if let Delta::Added(k, ()) = d {
            let s = Subject::Outbound {
                protocol: k.1.clone(),
                remote_port: k.2.clone(),
                service: k.3.clone(),
                remote_network: k.4.clone(),
                process: k.5.clone(),
            };
            push(Kind::OutboundUnexpected, &k.0, s);
        }
    });
    let interfaces = keyed_diff(&prev.interfaces, &cur.interfaces, |d| match d {
        Delta::Added(k, st) => push(
            Kind::InterfaceAppeared,
            &k.0,
            interface_subject(k, st, None),
        ),
        Delta::Kept { key, old, new } => {
            for (flag, v) in &new.flag {
                if old.flag.get(flag).is_some_and(|o| o != v) {
                    let s = interface_subject(key, new, Some((flag, *v)));
                    push(Kind::InterfaceFlagChanged, &key.0, s);
                }
            }
        }
        Delta::Removed(k, last) => push(
            Kind::InterfaceVanished,
            &k.0,
            interface_subject(k, last, None),
        ),
    });
    let subject = |a: &NetnsAttrs| Subject::Netns {
        name: a.name.clone(),
        container_id: a.container_id.clone(),
        pod_uid: a.pod_uid.clone(),
    };
    let netns = keyed_diff(&prev.netns, &cur.netns, |d| match d {
        Delta::Added(k, a) => push(Kind::NetnsAppeared, k, subject(a)),
        Delta::Kept { .. } => {}
        Delta::Removed(k, a) => push(Kind::NetnsVanished, k, subject(a)),
    });
    let next = Observation {
        listeners,
        unexpected,
        interfaces,
        netns,
        outbound,
    };
    (out, next)
}

// ---------------------------------------------------------------------------------------------
// The bounded log.

/// Keeps the previous observation and the last `capacity` events.
pub struct EventLog {
    capacity: usize,
    inner: Mutex<Inner>,
    /// Which listener events the watch reports (then the scrape diff does not), see
    /// [`WatchCoverage`].
    watch: std::sync::atomic::AtomicU8,
    /// How long a listener's destroy message waits before the change log decides whether
    /// the watch or a scrape saw that listener (seconds): two watch intervals and one second.
    gone_grace: f64,
}

/// Which namespaces' listener events (opened, closed, owner changed) come from the watch
/// instead of the difference between scrapes: nothing is reported twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchCoverage {
    /// No watch: every listener event comes from scrapes.
    None = 0,
    /// The exporter's own namespace only (the watch cannot enter the others): the others'
    /// listener events come from scrapes.
    Own = 1,
    /// Every namespace.
    All = 2,
}

#[derive(Default)]
struct Inner {
    prev: Observation,
    scrapes: u64,
    last_seq: u64,
    events: VecDeque<Event>,
    dropped: u64,
    totals: BTreeMap<Kind, u64>,
    /// Listeners reported opened (by the watch or a scrape) and not reported closed since.
    open: BTreeSet<ListenerKey>,
    /// Listeners reported closed: unix seconds of the last report (kept [`GONE_MEMORY`]).
    closed: BTreeMap<ListenerKey, f64>,
    /// Destroy messages of listeners already taken: (key, time bits) -> time (kept
    /// [`GONE_MEMORY`]).
    gone_taken: BTreeMap<(ListenerKey, u64), f64>,
    /// Destroy messages waiting for the watch: (key, time bits) -> (time, the watch's
    /// completed ticks when a scrape first handed it over).
    gone_waiting: BTreeMap<(ListenerKey, u64), (f64, u64)>,
}

/// How long the change log remembers a listener's close, and a listener destroy message it
/// took (longer than `crate::flows::GONE_KEEP`, so each message is taken once).
const GONE_MEMORY: f64 = 600.0;
/// A listener reported closed at most this long before its destroy message was read is the
/// same close (clocks of two threads).
const GONE_SLACK: f64 = 1.0;
/// At most this many listener closes and taken destroy messages are remembered (each
/// bounded; the oldest go first).
const GONE_MEMORY_MAX: usize = 16384;

/// One page of `/api/v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventsPage {
    pub schema: u32,
    /// Unix seconds when the page was produced.
    pub time: f64,
    pub capacity: usize,
    /// Scrapes observed since the exporter started (0: no baseline yet).
    pub scrapes: u64,
    /// Events dropped from memory because the log was full, since start.
    pub dropped: u64,
    /// Sequence number of the oldest event still in memory (null when empty).
    pub oldest: Option<u64>,
    /// True when events after `since` were dropped before this request could see them.
    pub truncated: bool,
    /// Pass as `since` next time.
    pub next: u64,
    /// Oldest first, at most `limit`.
    pub events: Vec<Event>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl EventLog {
    /// The change log `--events.capacity` asks for (None when 0).
    pub fn from_config(config: &crate::config::Config) -> Option<std::sync::Arc<EventLog>> {
        (config.events_capacity > 0).then(|| {
            let mut log = EventLog::new(config.events_capacity);
            let watch = config.watch_interval.map_or(0.0, |d| d.as_secs_f64());
            log.gone_grace = 2.0 * watch + 1.0;
            std::sync::Arc::new(log)
        })
    }

    /// `capacity` is clamped to 1..=[`MAX_CAPACITY`].
    pub fn new(capacity: usize) -> EventLog {
        EventLog {
            capacity: capacity.clamp(1, MAX_CAPACITY),
            inner: Mutex::new(Inner::default()),
            watch: std::sync::atomic::AtomicU8::new(WatchCoverage::None as u8),
            gone_grace: 3.0,
        }
    }

    /// How long a listener's destroy message waits for the watch (seconds; tests).
    pub fn with_gone_grace(mut self, seconds: f64) -> EventLog {
        self.gone_grace = seconds;
        self
    }

    /// Say which listener events the watch reports from now on.
    pub fn set_watch(&self, coverage: WatchCoverage) {
        self.watch
            .store(coverage as u8, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the watch reports the listener events of namespace `netns`.
    fn watched(&self, netns: &str) -> bool {
        match self.watch.load(std::sync::atomic::Ordering::Relaxed) {
            2 => true,
            1 => netns.is_empty(),
            _ => false,
        }
    }

    /// Record changes the watch saw at `time` (unix seconds of its tick).
    pub fn record(&self, changes: Vec<Change>, time: f64) -> Vec<Event> {
        let mut inner = self.lock();
        let scrape = inner.scrapes;
        self.push(&mut inner, changes, time, scrape)
    }

    fn push(&self, inner: &mut Inner, changes: Vec<Change>, time: f64, scrape: u64) -> Vec<Event> {
        let changes = changes.into_iter().map(|c| (c, time, None)).collect();
        self.push_seen(inner, changes, scrape)
    }

    /// Record `changes`, each with its time and [`Event::seen`]; remembers which listeners
    /// were reported opened and closed.
    fn push_seen(
        &self,
        inner: &mut Inner,
        changes: Vec<(Change, f64, Option<&'static str>)>,
        scrape: u64,
    ) -> Vec<Event> {
        let mut new = Vec::with_capacity(changes.len());
        for (c, time, seen) in changes {
            if let Some(key) = change_listener_key(&c) {
                match c.kind {
                    Kind::ListenerOpened => {
                        // Bounded: beyond, one is forgotten (its destroy message could
                        // then be reported destroy_only).
                        if inner.open.len() >= GONE_MEMORY_MAX {
                            inner.open.pop_first();
                        }
                        inner.open.insert(key);
                    }
                    Kind::ListenerClosed => {
                        inner.open.remove(&key);
                        inner.closed.insert(key, time);
                    }
                    _ => {}
                }
            }
            inner.last_seq += 1;
            let e = Event {
                seq: inner.last_seq,
                time,
                scrape,
                kind: c.kind,
                severity: c.severity(),
                netns: c.netns,
                subject: c.subject,
                seen,
            };
            log_event(&e);
            *inner.totals.entry(e.kind).or_default() += 1;
            if inner.events.len() >= self.capacity {
                inner.events.pop_front();
                inner.dropped += 1;
            }
            inner.events.push_back(e.clone());
            new.push(e);
        }
        new
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compare one scrape with the previous one; record and log what changed.
    pub fn observe(&self, scraped: &Scraped) {
        self.observe_at(scraped, unix_now());
    }

    /// [`observe`](Self::observe) with a given time (unix seconds); returns the new events.
    pub fn observe_at(&self, scraped: &Scraped, time: f64) -> Vec<Event> {
        let cur = Observation::from_scraped(scraped);
        let mut inner = self.lock();
        inner.scrapes += 1;
        let scrape = inner.scrapes;
        let (mut changes, next) = diff(&inner.prev, &cur);
        inner.prev = next;
        // What the watch reports is not reported again from scrapes.
        changes.retain(|c| {
            !(matches!(
                c.kind,
                Kind::ListenerOpened | Kind::ListenerClosed | Kind::ListenerOwnerChanged
            ) && self.watched(&c.netns))
        });
        let mut new = self.push(&mut inner, changes, time, scrape);
        let gone = self.gone_listeners(
            &mut inner,
            &scraped.rows.gone_listeners,
            scraped.watch_ticks,
            time,
        );
        new.extend(self.push_seen(&mut inner, gone, scrape));
        new
    }

    /// The listeners the socket-destroy stream saw close that neither the watch nor a scrape
    /// reported (a listener that opened and closed between two looks): `listener_closed`
    /// with `seen="destroy_only"`, at the time the message was read. A message younger than
    /// the grace (two watch intervals and a second) waits for a later scrape: the watch
    /// reports a listener it saw at its next tick (under load later: a message also waits
    /// until two ticks of the watch completed after a scrape first handed it over). A
    /// listener is known, and not reported
    /// again, when it is open in the log (reported opened and not closed, or in the last
    /// scrape) or was reported closed since its message came (less a second).
    fn gone_listeners(
        &self,
        inner: &mut Inner,
        gone: &[crate::collectors::rows::GoneListener],
        watch_ticks: Option<u64>,
        now: f64,
    ) -> Vec<(Change, f64, Option<&'static str>)> {
        let oldest = now - GONE_MEMORY;
        inner.closed.retain(|_, t| *t >= oldest);
        inner.gone_taken.retain(|_, t| *t >= oldest);
        inner.gone_waiting.retain(|_, t| t.0 >= oldest);
        let mut out = Vec::new();
        for g in gone {
            let key: ListenerKey = (
                g.netns.clone(),
                "tcp".to_string(),
                g.family.clone(),
                g.address.clone(),
                g.port,
            );
            let id = (key.clone(), g.time.to_bits());
            if inner.gone_taken.contains_key(&id) {
                continue;
            }
            // The watch has had its chance when two of its ticks completed since a scrape
            // first handed the message over (the second started after the close), and the
            // grace passed.
            let ticks = watch_ticks.unwrap_or(0);
            let first = inner
                .gone_waiting
                .entry(id.clone())
                .or_insert((g.time, ticks))
                .1;
            if now - g.time < self.gone_grace
                || ticks < first + 2 * u64::from(watch_ticks.is_some())
            {
                continue;
            }
            inner.gone_waiting.remove(&id);
            inner.gone_taken.insert(id, g.time);
            let in_scrape = inner
                .prev
                .listeners
                .as_ref()
                .is_some_and(|l| l.items.contains_key(&key));
            let known = in_scrape
                || inner.open.contains(&key)
                || inner
                    .closed
                    .get(&key)
                    .is_some_and(|t| *t >= g.time - GONE_SLACK);
            if known {
                continue;
            }
            let subject = Subject::Listener {
                protocol: key.1.clone(),
                family: key.2.clone(),
                address: key.3.clone(),
                port: key.4,
                service: g.service.clone(),
                process: UNKNOWN_OWNER.to_string(),
                user: String::new(),
                pid: None,
                container_id: String::new(),
                pod_uid: String::new(),
                unexpected: None,
                previous_process: None,
                previous_user: None,
            };
            let c = Change {
                kind: Kind::ListenerClosed,
                netns: key.0.clone(),
                subject,
            };
            out.push((c, g.time, Some(SEEN_DESTROY_ONLY)));
        }
        // Bounded: the oldest memories go first.
        while inner.closed.len() > GONE_MEMORY_MAX {
            let Some(k) = oldest_key(&inner.closed) else {
                break;
            };
            inner.closed.remove(&k);
        }
        while inner.gone_taken.len() > GONE_MEMORY_MAX {
            let Some(k) = oldest_key(&inner.gone_taken) else {
                break;
            };
            inner.gone_taken.remove(&k);
        }
        out
    }

    /// Events with `seq > since`, oldest first, at most `limit`.
    pub fn since(&self, since: u64, limit: usize) -> EventsPage {
        let inner = self.lock();
        // A cursor from before a restart of the exporter: start over.
        let since = if since > inner.last_seq { 0 } else { since };
        let oldest = inner.events.front().map(|e| e.seq);
        let events: Vec<Event> = inner
            .events
            .iter()
            .filter(|e| e.seq > since)
            .take(limit)
            .cloned()
            .collect();
        let next = events.last().map_or(since, |e| e.seq);
        let truncated = oldest.is_some_and(|o| o > since.saturating_add(1));
        EventsPage {
            schema: SCHEMA_VERSION,
            time: unix_now(),
            capacity: self.capacity,
            scrapes: inner.scrapes,
            dropped: inner.dropped,
            oldest,
            truncated,
            next,
            events,
        }
    }

    /// `netstat_events_total{kind}` (every kind, 0 included) and `netstat_events_dropped_total`.
    pub fn families(&self) -> Vec<MetricFamily> {
        let inner = self.lock();
        let mut total = EVENTS.family();
        for k in Kind::ALL {
            total.push(
                vec![("kind", k.as_str().into())],
                inner.totals.get(&k).copied().unwrap_or(0),
            );
        }
        let dropped = EVENTS_DROPPED.family().with(vec![], inner.dropped);
        vec![total, dropped]
    }
}

/// The listener a change is about (its key in the observations), when it is one.
fn change_listener_key(c: &Change) -> Option<ListenerKey> {
    match &c.subject {
        Subject::Listener {
            protocol,
            family,
            address,
            port,
            ..
        } => Some((
            c.netns.clone(),
            protocol.clone(),
            family.clone(),
            address.clone(),
            *port,
        )),
        _ => None,
    }
}

/// The key with the oldest time.
fn oldest_key<K: Clone>(m: &BTreeMap<K, f64>) -> Option<K> {
    m.iter()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(k, _)| k.clone())
}

/// One info line per event, with the event's fields (logfmt or JSON, see crate::logging).
fn log_event(e: &Event) {
    let kind = e.kind.as_str();
    let msg = e.kind.message();
    match &e.subject {
        Subject::Listener {
            protocol,
            family,
            address,
            port,
            service,
            process,
            user,
            pid,
            container_id,
            pod_uid,
            unexpected,
            previous_process,
            previous_user,
        } => tracing::info!(
            event = kind,
            seq = e.seq,
            scrape = e.scrape,
            severity = e.severity,
            netns = e.netns.as_str(),
            protocol = protocol.as_str(),
            family = family.as_str(),
            address = address.as_str(),
            port = *port,
            service = service.as_str(),
            process = process.as_str(),
            user = user.as_str(),
            pid = pid.map(|p| p.to_string()).unwrap_or_default(),
            container_id = container_id.as_str(),
            pod_uid = pod_uid.as_str(),
            unexpected = unexpected
                .map(|u| if u { "true" } else { "false" })
                .unwrap_or(""),
            previous_process = previous_process.as_deref().unwrap_or(""),
            previous_user = previous_user.as_deref().unwrap_or(""),
            seen = e.seen.unwrap_or(""),
            "{msg}"
        ),
        Subject::Interface {
            device,
            flags,
            operstate,
            flag,
            value,
        } => tracing::info!(
            event = kind,
            seq = e.seq,
            scrape = e.scrape,
            severity = e.severity,
            netns = e.netns.as_str(),
            device = device.as_str(),
            flags = flags.as_str(),
            operstate = operstate.as_str(),
            flag = flag.as_deref().unwrap_or(""),
            value = value.map(|v| if v { "on" } else { "off" }).unwrap_or(""),
            "{msg}"
        ),
        Subject::Netns {
            name,
            container_id,
            pod_uid,
        } => tracing::info!(
            event = kind,
            seq = e.seq,
            scrape = e.scrape,
            severity = e.severity,
            netns = e.netns.as_str(),
            name = name.as_str(),
            container_id = container_id.as_str(),
            pod_uid = pod_uid.as_str(),
            "{msg}"
        ),
        Subject::Outbound {
            protocol,
            remote_port,
            service,
            remote_network,
            process,
        } => tracing::info!(
            event = kind,
            seq = e.seq,
            scrape = e.scrape,
            severity = e.severity,
            netns = e.netns.as_str(),
            protocol = protocol.as_str(),
            remote_port = remote_port.as_str(),
            service = service.as_str(),
            remote_network = remote_network.as_str(),
            process = process.as_str(),
            "{msg}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::interfaces::{self, Interface, FLAGS};
    use crate::collectors::listeners::{self, ListenerAgg, ListenerKey, RenderOptions};
    use crate::collectors::rows::{CollectorStatus, NamespaceRow, Rows};
    use crate::source::inet::{Family, Protocol};
    use crate::source::netdev::SysAttrs;
    use crate::source::procfd::Owner;

    /// A listener: (netns, port, process).
    type L<'a> = (&'a str, u16, &'a str);

    /// What one scrape saw, made into typed rows by the collectors' own functions.
    #[derive(Default, Clone)]
    struct Scrape<'a> {
        listeners: Option<Vec<L<'a>>>,
        /// Ports of unexpected listeners (Some: a policy is configured).
        unexpected: Option<Vec<u16>>,
        /// (device, promisc, up)
        interfaces: Option<Vec<(&'a str, bool, bool)>>,
        netns: Option<Vec<&'a str>>,
        outbound: Option<Vec<&'a str>>,
        failed: Vec<&'static str>,
    }

    /// The rows of listener `l`, by the listeners collector (names, owner, policy, netns).
    fn listener_rows(l: &L, unexpected: Option<&Vec<u16>>) -> Rows {
        let key = ListenerKey {
            protocol: Protocol::Tcp,
            family: Family::Ipv4,
            address: "0.0.0.0".parse().unwrap(),
            port: l.1,
        };
        let agg = ListenerAgg {
            sockets: 1,
            inodes: vec![u64::from(l.1)],
            ..ListenerAgg::default()
        };
        let services = [((l.1, "tcp".to_string()), "svc".to_string())].into();
        let users = [(0, "root".to_string())].into();
        let owner = Owner {
            pid: 1,
            comm: l.2.into(),
            identity: Default::default(),
        };
        let owners = [(u64::from(l.1), owner)].into();
        let mut ls = listeners::resolve_names(vec![(key, agg)], &services, &users, &owners, None);
        for x in &mut ls {
            x.unexpected = unexpected.is_some_and(|ports| ports.contains(&l.1));
        }
        let opts = RenderOptions {
            limits: true,
            attribution: true,
            expected: unexpected.is_some(),
        };
        let mut rows = Rows {
            listeners: Some(crate::collectors::rows::Listeners {
                rows: listeners::rows(&ls, opts, None),
                dropped: 0,
                policy: unexpected.is_some(),
            }),
            ..Rows::default()
        };
        rows.set_netns(l.0);
        rows
    }

    /// An interface, by the interfaces collector (flags as `netstat -i` and the flag family
    /// show them).
    fn interface(dev: &str, promisc: bool, up: bool) -> Interface {
        let bit = |name| FLAGS.iter().find(|(f, _)| *f == name).unwrap().1;
        let mut flags = bit("broadcast") | bit("multicast");
        if promisc {
            flags |= bit("promisc");
        }
        if up {
            flags |= bit("up") | bit("running");
        }
        Interface {
            name: dev.into(),
            counters: None,
            sys: Some(SysAttrs {
                flags: Some(flags),
                operstate: Some(if up { "up" } else { "down" }.into()),
                ..SysAttrs::default()
            }),
        }
    }

    impl Scrape<'_> {
        fn scraped(&self) -> Scraped {
            let mut out = Scraped::default();
            let status = |name: &str, success| CollectorStatus {
                name: name.into(),
                success,
                duration_seconds: 0.0,
            };
            if let Some(ls) = &self.listeners {
                let mut rows = Rows {
                    listeners: Some(crate::collectors::rows::Listeners {
                        policy: self.unexpected.is_some(),
                        ..Default::default()
                    }),
                    ..Rows::default()
                };
                for l in ls {
                    rows.extend(listener_rows(l, self.unexpected.as_ref()));
                }
                out.rows.extend(rows);
                out.collectors
                    .push(status("listeners", !self.failed.contains(&"listeners")));
            }
            if let Some(ifs) = &self.interfaces {
                let ifaces: Vec<Interface> = ifs
                    .iter()
                    .map(|(dev, promisc, up)| interface(dev, *promisc, *up))
                    .collect();
                out.rows.interfaces = Some(interfaces::rows(&ifaces));
                out.collectors
                    .push(status("interfaces", !self.failed.contains(&"interfaces")));
            }
            if let Some(ns) = &self.netns {
                let rows = ns
                    .iter()
                    .map(|n| NamespaceRow {
                        netns: n.to_string(),
                        name: format!("ns-{n}"),
                        container_id: String::new(),
                        pod_uid: String::new(),
                    })
                    .collect();
                out.namespaces = Some(rows);
            }
            if let Some(ob) = &self.outbound {
                let flagged = ob
                    .iter()
                    .map(|port| connections::SeriesKey {
                        protocol: Protocol::Tcp,
                        remote_port: port.to_string(),
                        service: String::new(),
                        remote_network: "0.0.0.0/0".into(),
                        process: "curl".into(),
                        state: "",
                        container_id: String::new(),
                        pod_uid: String::new(),
                    })
                    .collect();
                let series = BTreeMap::new();
                out.rows.outbound = Some(connections::rows(&series, 0, Some(&flagged), None));
            }
            if self.failed.contains(&"other") {
                out.collectors.push(status("sockets", false));
            }
            out
        }
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.as_str()).collect()
    }

    fn port(e: &Event) -> u16 {
        match &e.subject {
            Subject::Listener { port, .. } => *port,
            s => panic!("not a listener: {s:?}"),
        }
    }

    #[test]
    fn the_first_scrape_is_the_baseline() {
        let log = EventLog::new(10);
        let s = Scrape {
            listeners: Some(vec![("", 22, "sshd"), ("", 80, "nginx")]),
            unexpected: Some(vec![80]),
            interfaces: Some(vec![("lo", false, true), ("eth0", true, true)]),
            netns: Some(vec!["4026531840"]),
            outbound: Some(vec!["25"]),
            ..Default::default()
        };
        assert!(log.observe_at(&s.scraped(), 1.0).is_empty());
        // The same state again: nothing either.
        assert!(log.observe_at(&s.scraped(), 2.0).is_empty());
        let page = log.since(0, 100);
        assert_eq!((page.scrapes, page.next, page.events.len()), (2, 0, 0));
        let totals = &log.families()[0];
        assert_eq!(totals.samples.len(), Kind::ALL.len());
        assert!(totals.samples.iter().all(|s| s.value.as_f64() == 0.0));
    }

    #[test]
    fn listeners_opened_closed_and_owner_changed() {
        let log = EventLog::new(10);
        let mut s = Scrape {
            listeners: Some(vec![("", 22, "sshd")]),
            ..Default::default()
        };
        log.observe_at(&s.scraped(), 1.0);
        s.listeners = Some(vec![("", 22, "sshd"), ("4026532001", 8080, "unknown")]);
        let e = log.observe_at(&s.scraped(), 2.0);
        assert_eq!(kinds(&e), ["listener_opened"]);
        assert_eq!((e[0].seq, e[0].scrape, e[0].time), (1, 2, 2.0));
        assert_eq!(e[0].netns, "4026532001");
        assert_eq!(e[0].severity, "info");
        assert_eq!(
            e[0].subject,
            Subject::Listener {
                protocol: "tcp".into(),
                family: "ipv4".into(),
                address: "0.0.0.0".into(),
                port: 8080,
                service: "svc".into(),
                process: "unknown".into(),
                user: "root".into(),
                pid: None,
                container_id: String::new(),
                pod_uid: String::new(),
                unexpected: None,
                previous_process: None,
                previous_user: None,
            }
        );
        // The owner is found later (the walk interval).
        s.listeners = Some(vec![("", 22, "sshd"), ("4026532001", 8080, "java")]);
        let e = log.observe_at(&s.scraped(), 3.0);
        assert_eq!(kinds(&e), ["listener_owner_changed"]);
        let json = serde_json::to_value(&e[0]).unwrap();
        assert_eq!(json["process"], "java");
        assert_eq!(json["previous_process"], "unknown");
        assert_eq!(json["kind"], "listener_owner_changed");
        // An owner that cannot be resolved for a moment is no change; the known one stays.
        s.listeners = Some(vec![("", 22, "sshd"), ("4026532001", 8080, "unknown")]);
        assert!(log.observe_at(&s.scraped(), 3.5).is_empty());
        s.listeners = Some(vec![("", 22, "sshd"), ("4026532001", 8080, "java")]);
        assert!(log.observe_at(&s.scraped(), 3.6).is_empty());
        // Same port in another namespace is another listener.
        s.listeners = Some(vec![("4026532001", 8080, "java"), ("", 8080, "java")]);
        let e = log.observe_at(&s.scraped(), 4.0);
        assert_eq!(kinds(&e), ["listener_opened", "listener_closed"]);
        assert_eq!((port(&e[0]), e[0].netns.as_str()), (8080, ""));
        assert_eq!((port(&e[1]), e[1].netns.as_str()), (22, ""));
        assert_eq!(e[1].seq, 4);
        let json = serde_json::to_value(&e[1]).unwrap();
        assert!(json.get("previous_process").is_none(), "{json}");
        let totals = &log.families()[0];
        let total = |k: &str| {
            totals
                .samples
                .iter()
                .find(|s| s.labels[0].1 == k)
                .unwrap()
                .value
                .as_f64()
        };
        assert_eq!(total("listener_opened"), 2.0);
        assert_eq!(total("listener_closed"), 1.0);
        assert_eq!(total("listener_owner_changed"), 1.0);
    }

    #[test]
    fn unexpected_listeners_and_outbound_keys() {
        let log = EventLog::new(10);
        let mut s = Scrape {
            listeners: Some(vec![("", 22, "sshd")]),
            unexpected: Some(vec![]),
            outbound: Some(vec![]),
            ..Default::default()
        };
        log.observe_at(&s.scraped(), 1.0);
        // A new listener the policy does not allow: opened (a warning) and unexpected.
        s.listeners = Some(vec![("", 22, "sshd"), ("", 23, "telnetd")]);
        s.unexpected = Some(vec![23]);
        let e = log.observe_at(&s.scraped(), 2.0);
        assert_eq!(kinds(&e), ["listener_opened", "listener_unexpected"]);
        assert!(e.iter().all(|e| e.severity == "warning"));
        assert!(
            matches!(&e[1].subject, Subject::Listener { process, unexpected: Some(true), .. } if process == "telnetd")
        );
        // An existing one becomes unexpected (e.g. the policy now names a process).
        s.unexpected = Some(vec![22, 23]);
        let e = log.observe_at(&s.scraped(), 3.0);
        assert_eq!(kinds(&e), ["listener_unexpected"]);
        assert_eq!(port(&e[0]), 22);
        // An outbound key appears.
        s.outbound = Some(vec!["25"]);
        let e = log.observe_at(&s.scraped(), 4.0);
        assert_eq!(kinds(&e), ["outbound_unexpected"]);
        assert_eq!(e[0].severity, "warning");
        let json = serde_json::to_value(&e[0]).unwrap();
        assert_eq!(json["remote_port"], "25");
        assert_eq!(json["process"], "curl");
        assert_eq!(json["remote_network"], "0.0.0.0/0");
        // Nothing new: nothing.
        assert!(log.observe_at(&s.scraped(), 5.0).is_empty());
    }

    #[test]
    fn interface_flags_and_appearance() {
        let log = EventLog::new(10);
        let mut s = Scrape {
            interfaces: Some(vec![("lo", false, true), ("eth0", false, true)]),
            ..Default::default()
        };
        log.observe_at(&s.scraped(), 1.0);
        s.interfaces = Some(vec![("lo", false, true), ("eth0", true, true)]);
        let e = log.observe_at(&s.scraped(), 2.0);
        assert_eq!(kinds(&e), ["interface_flag_changed"]);
        assert_eq!(e[0].severity, "warning");
        let json = serde_json::to_value(&e[0]).unwrap();
        assert_eq!(
            (json["device"].as_str(), json["flag"].as_str()),
            (Some("eth0"), Some("promisc"))
        );
        assert_eq!(json["value"], true);
        assert_eq!(json["flags"], "BMPRU");
        // Promisc off, down (up and running change), and a veth appears.
        s.interfaces = Some(vec![
            ("lo", false, true),
            ("eth0", false, false),
            ("veth1", false, true),
        ]);
        let e = log.observe_at(&s.scraped(), 3.0);
        assert_eq!(
            kinds(&e),
            [
                "interface_flag_changed",
                "interface_flag_changed",
                "interface_flag_changed",
                "interface_appeared"
            ]
        );
        let changed: Vec<(String, bool)> = e[..3]
            .iter()
            .map(|e| match &e.subject {
                Subject::Interface {
                    flag: Some(f),
                    value: Some(v),
                    ..
                } => (f.clone(), *v),
                s => panic!("{s:?}"),
            })
            .collect();
        assert_eq!(
            changed,
            [
                ("promisc".to_string(), false),
                ("running".to_string(), false),
                ("up".to_string(), false)
            ]
        );
        assert!(e.iter().all(|e| e.severity == "info"));
        // Unwatched flags (broadcast) never make events; a device vanishes.
        s.interfaces = Some(vec![("lo", false, true), ("eth0", false, false)]);
        let e = log.observe_at(&s.scraped(), 4.0);
        assert_eq!(kinds(&e), ["interface_vanished"]);
        assert!(
            matches!(&e[0].subject, Subject::Interface { device, flags, .. } if device == "veth1" && flags == "BMRU")
        );
    }

    #[test]
    fn namespaces_appear_and_vanish() {
        let log = EventLog::new(10);
        let mut s = Scrape {
            netns: Some(vec!["1"]),
            ..Default::default()
        };
        log.observe_at(&s.scraped(), 1.0);
        s.netns = Some(vec!["1", "2"]);
        let e = log.observe_at(&s.scraped(), 2.0);
        assert_eq!(kinds(&e), ["netns_appeared"]);
        assert_eq!(e[0].netns, "2");
        assert_eq!(serde_json::to_value(&e[0]).unwrap()["name"], "ns-2");
        s.netns = Some(vec!["2"]);
        let e = log.observe_at(&s.scraped(), 3.0);
        assert_eq!(kinds(&e), ["netns_vanished"]);
        assert_eq!(e[0].netns, "1");
        // A failing collector elsewhere: the owner of netns_info is unknown, so a missing
        // namespace is not reported vanished.
        s.netns = Some(vec![]);
        s.failed = vec!["other"];
        assert!(log.observe_at(&s.scraped(), 4.0).is_empty());
        s.failed = vec![];
        assert_eq!(
            kinds(&log.observe_at(&s.scraped(), 5.0)),
            ["netns_vanished"]
        );
    }

    #[test]
    fn partial_collections_close_nothing() {
        let log = EventLog::new(10);
        let full = Scrape {
            listeners: Some(vec![("", 22, "sshd")]),
            interfaces: Some(vec![("lo", false, true), ("eth0", false, true)]),
            ..Default::default()
        };
        log.observe_at(&full.scraped(), 1.0);
        // collect[]=interfaces: no listener family at all.
        let only_ifs = Scrape {
            listeners: None,
            ..full.clone()
        };
        assert!(log.observe_at(&only_ifs.scraped(), 2.0).is_empty());
        // The listeners collector failed (partial data): what is there is new, what is
        // missing is not closed.
        let failed = Scrape {
            listeners: Some(vec![("", 443, "nginx")]),
            failed: vec!["listeners"],
            ..full.clone()
        };
        let e = log.observe_at(&failed.scraped(), 3.0);
        assert_eq!(kinds(&e), ["listener_opened"]);
        assert_eq!(port(&e[0]), 443);
        // The interfaces collector timed out: its families are absent.
        let no_ifs = Scrape {
            interfaces: None,
            ..full.clone()
        };
        let e = log.observe_at(&no_ifs.scraped(), 4.0);
        assert_eq!(
            kinds(&e),
            ["listener_closed"],
            "443 is gone in a complete scrape"
        );
        // Back: nothing appeared, nothing vanished meanwhile.
        assert!(log.observe_at(&full.scraped(), 5.0).is_empty());
        // A failed interfaces collection that misses eth0: not vanished.
        let failed_ifs = Scrape {
            interfaces: Some(vec![("lo", false, true)]),
            failed: vec!["interfaces"],
            ..full.clone()
        };
        assert!(log.observe_at(&failed_ifs.scraped(), 6.0).is_empty());
        let gone = Scrape {
            interfaces: Some(vec![("lo", false, true)]),
            ..full.clone()
        };
        assert_eq!(
            kinds(&log.observe_at(&gone.scraped(), 7.0)),
            ["interface_vanished"]
        );
    }

    #[test]
    fn a_kind_seen_late_is_a_baseline_too() {
        let log = EventLog::new(10);
        let only_listeners = Scrape {
            listeners: Some(vec![("", 22, "sshd")]),
            ..Default::default()
        };
        log.observe_at(&only_listeners.scraped(), 1.0);
        // First scrape with the interfaces collector (collect[] before): no flood.
        let both = Scrape {
            interfaces: Some(vec![("lo", false, true), ("eth0", false, true)]),
            netns: Some(vec!["1", "2"]),
            ..only_listeners.clone()
        };
        assert!(log.observe_at(&both.scraped(), 2.0).is_empty());
    }

    #[test]
    fn the_log_is_bounded_and_the_cursor_pages() {
        let log = EventLog::new(3);
        let mut s = Scrape {
            listeners: Some(vec![]),
            ..Default::default()
        };
        log.observe_at(&s.scraped(), 1.0);
        s.listeners = Some(vec![("", 1, "a"), ("", 2, "b")]);
        log.observe_at(&s.scraped(), 2.0);
        let p = log.since(0, 100);
        assert_eq!(
            (p.next, p.oldest, p.dropped, p.truncated),
            (2, Some(1), 0, false)
        );
        assert_eq!(p.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        // Nothing new after the cursor: same cursor back.
        let p = log.since(2, 100);
        assert!(p.events.is_empty());
        assert_eq!(p.next, 2);
        // Four more events (two closed, two opened): only 3 kept, the oldest dropped and counted.
        s.listeners = Some(vec![("", 3, "c"), ("", 4, "d")]);
        log.observe_at(&s.scraped(), 3.0);
        let p = log.since(0, 100);
        assert_eq!(p.capacity, 3);
        assert_eq!(
            p.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        assert_eq!(
            (p.dropped, p.oldest, p.truncated, p.next),
            (3, Some(4), true, 6)
        );
        let dropped = &log.families()[1];
        assert_eq!(dropped.name, "netstat_events_dropped");
        assert_eq!(dropped.samples[0].value.as_f64(), 3.0);
        // A client that saw up to 3 missed nothing; one that saw up to 2 missed event 3.
        assert!(!log.since(3, 100).truncated);
        assert!(log.since(2, 100).truncated);
        // Limit pages through.
        let p = log.since(3, 2);
        assert_eq!(p.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(p.next, 5);
        assert_eq!(log.since(p.next, 2).events[0].seq, 6);
        // A cursor from before a restart (beyond the newest): start over.
        let p = log.since(1000, 100);
        assert_eq!(p.events.len(), 3);
        assert_eq!(p.next, 6);
    }

    #[test]
    fn capacity_is_checked() {
        assert_eq!(check_capacity(0), Ok(0));
        assert_eq!(check_capacity(1000), Ok(1000));
        assert!(check_capacity(MAX_CAPACITY + 1).is_err());
        assert_eq!(EventLog::new(0).capacity(), 1);
    }

    #[test]
    fn what_the_watch_reports_is_not_reported_again_by_scrapes() {
        let log = EventLog::new(10);
        let mut s = Scrape {
            listeners: Some(vec![("", 22, "sshd"), ("4026532001", 53, "dns")]),
            ..Default::default()
        };
        log.observe_at(&s.scraped(), 1.0);
        // The watch covers the own namespace only: the other's listener events still come
        // from scrapes.
        log.set_watch(WatchCoverage::Own);
        s.listeners = Some(vec![("", 8080, "java"), ("4026532001", 5353, "dns")]);
        let e = log.observe_at(&s.scraped(), 2.0);
        assert!(e.iter().all(|e| e.netns == "4026532001"), "{e:?}");
        assert_eq!(kinds(&e), ["listener_opened", "listener_closed"]);
        // Every namespace: no listener event from scrapes at all.
        log.set_watch(WatchCoverage::All);
        s.listeners = Some(vec![("", 9090, "x"), ("4026532001", 5454, "y")]);
        assert!(log.observe_at(&s.scraped(), 3.0).is_empty());
        // What the watch records gets the next sequence number and the tick's time.
        let c = Change {
            kind: Kind::ListenerOpened,
            netns: String::new(),
            subject: Subject::Netns {
                name: String::new(),
                container_id: String::new(),
                pod_uid: String::new(),
            },
        };
        let e = log.record(vec![c], 2.5);
        assert_eq!((e[0].seq, e[0].time, e[0].scrape), (3, 2.5, 3));
    }

    fn gone(port: u16, time: f64) -> crate::collectors::rows::GoneListener {
        crate::collectors::rows::GoneListener {
            family: "ipv4".into(),
            address: "0.0.0.0".into(),
            port,
            service: String::new(),
            time,
            netns: String::new(),
        }
    }

    fn watch_change(kind: Kind, port: u16) -> Change {
        Change {
            kind,
            netns: String::new(),
            subject: Subject::Listener {
                protocol: "tcp".into(),
                family: "ipv4".into(),
                address: "0.0.0.0".into(),
                port,
                service: String::new(),
                process: "x".into(),
                user: String::new(),
                pid: None,
                container_id: String::new(),
                pod_uid: String::new(),
                unexpected: None,
                previous_process: None,
                previous_user: None,
            },
        }
    }

    /// A listener only the destroy stream saw is reported once, closed, `destroy_only`, after
    /// the grace; one a scrape or the watch saw is not reported again.
    #[test]
    fn listeners_only_the_destroy_stream_saw_are_reported_once() {
        let log = EventLog::new(100).with_gone_grace(3.0);
        log.set_watch(WatchCoverage::All);
        let s = Scrape {
            listeners: Some(vec![("", 22, "sshd")]),
            ..Default::default()
        };
        log.observe_at(&s.scraped(), 1.0);
        // The watch saw 8080 open; it closes.
        log.record(vec![watch_change(Kind::ListenerOpened, 8080)], 2.0);
        let mut sc = s.scraped();
        // 22 (in the scrape), 8080 (the watch's, closed since), 9000 (nobody's).
        sc.rows.gone_listeners = vec![gone(22, 10.0), gone(8080, 10.0), gone(9000, 10.5)];
        // Within the grace: nothing yet (the watch may still report them).
        assert!(log.observe_at(&sc, 12.0).is_empty());
        log.record(vec![watch_change(Kind::ListenerClosed, 8080)], 10.8);
        let e = log.observe_at(&sc, 14.0);
        assert_eq!(kinds(&e), ["listener_closed"]);
        assert_eq!(e[0].seen, Some(SEEN_DESTROY_ONLY));
        assert_eq!(e[0].time, 10.5);
        assert!(matches!(e[0].subject, Subject::Listener { port: 9000, .. }));
        let json = serde_json::to_value(&e[0]).unwrap();
        assert_eq!(json["seen"], "destroy_only");
        assert_eq!(json["port"], 9000);
        // Handed over again by later scrapes: taken once.
        assert!(log.observe_at(&sc, 15.0).is_empty());
        // 8080 opens and closes again, unseen: a new message, reported.
        sc.rows.gone_listeners.push(gone(8080, 20.0));
        let e = log.observe_at(&sc, 24.0);
        assert_eq!(kinds(&e), ["listener_closed"]);
        assert!(matches!(e[0].subject, Subject::Listener { port: 8080, .. }));
        // With the watch: also two of its ticks completed since a scrape first handed the
        // message over (a lagging watch reports first).
        sc.rows.gone_listeners.push(gone(7000, 30.0));
        sc.watch_ticks = Some(40);
        assert!(log.observe_at(&sc, 31.0).is_empty());
        sc.watch_ticks = Some(41);
        assert!(log.observe_at(&sc, 40.0).is_empty(), "one tick only");
        sc.watch_ticks = Some(42);
        let e = log.observe_at(&sc, 41.0);
        assert_eq!(kinds(&e), ["listener_closed"]);
        assert!(matches!(e[0].subject, Subject::Listener { port: 7000, .. }));
        // An event the watch reported has no `seen`.
        let e = log.record(vec![watch_change(Kind::ListenerOpened, 1)], 25.0);
        assert!(serde_json::to_value(&e[0]).unwrap().get("seen").is_none());
    }
}
