//! The watch (`netstat -c`, done properly): a background thread that reads the listening
//! sockets of every namespace the exporter reads every `--watch.interval` (default 1 s),
//! compares them with the previous tick and records `listener_opened`, `listener_closed` and
//! `listener_owner_changed` in the change log, stamped with the tick's time, with their owner
//! (process, pid, user, container, pod) named before the event is written.
//!
//! Cost per tick: one LISTEN-only sock_diag dump per namespace through a netlink socket kept
//! open in it (microseconds: the kernel walks only its listening hash), and with
//! `--netns=all` one listing of `<procfs>` to notice new processes and namespaces. Nothing
//! per established socket, nothing per fd of the host.
//!
//! Owners: a listener whose socket the shared owner cache ([`OwnerResolver`]) does not know is
//! looked for first among the fds of the processes started since the last look (a targeted
//! walk, proportional to the new processes' fds), then by a full walk of `<procfs>/*/fd`, at
//! most one per [`FULL_WALK_EVERY`] (5 s). Its `listener_opened` waits until one of them names
//! it, or until a full walk could not (the inode is then remembered as unresolvable and the
//! event says `unknown`). What the watch finds goes into the shared cache, so scrapes show the
//! owner the watch named (`--collector.listeners.walk-interval` keeps its meaning for the
//! walks scrapes do on their own, for connections and listeners the watch does not cover).
//!
//! Owners of known listeners are verified every [`VERIFY_EVERY`] ticks (one readlink each),
//! which is how `listener_owner_changed` is noticed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::collectors::listeners::{ListenersCollector, Selection};
use crate::config::{Config, NetnsConfig};
use crate::events::{Change, EventLog, Kind, ListenerKey as EventKey, Subject, WatchCoverage};
use crate::expected::ExpectedListeners;
use crate::metrics::{Desc, MetricFamily};
use crate::source::etc::{self, Services, Users};
use crate::source::inet::{InetSocket, Protocol};
use crate::source::netns::{self, Found};
use crate::source::procfd::{Owner, OwnerResolver};
use crate::source::sockets::SourceMode;
use crate::source::watch::{list_pids, netns_dir_names, pid_netns, WatchSocket};
use crate::source::SourceError;

pub static TICKS: Desc = Desc::counter(
    "netstat_watch_ticks",
    &[],
    "Ticks of the watch (--watch.interval): each reads the listening sockets of every watched network namespace and records what opened, closed or changed owner.",
)
.host_wide();
pub static DURATION: Desc = Desc::gauge(
    "netstat_watch_duration_seconds",
    &[],
    "Duration of the watch's last tick.",
)
.unit("seconds")
.host_wide();
pub static OWNER_WALKS: Desc = Desc::counter(
    "netstat_watch_owner_walks",
    &["kind"],
    "Walks of /proc/<pid>/fd by the watch to name the owner of a new listener: targeted (only the processes started since the last look), full (every process, at most one per 5 s).",
)
.host_wide();
pub static LAGGING: Desc = Desc::counter(
    "netstat_watch_lagging_ticks",
    &[],
    "Ticks of the watch that took longer than --watch.interval (the next tick starts late).",
)
.host_wide();
pub static DROPPED: Desc = Desc::gauge(
    "netstat_watch_listeners_dropped",
    &[],
    "Listening sockets the watch's last tick left out because a namespace had more listeners than --collector.listeners.max (those already watched stay; new ones beyond the cap are not reported).",
)
.host_wide();
pub static NAMESPACES: Desc = Desc::gauge(
    "netstat_watch_namespaces",
    &[],
    "Network namespaces the watch reads (a netlink socket kept open in each), the exporter's own included.",
)
.host_wide();

/// The watch's metrics, declared with the exporter's own.
pub fn metrics() -> Vec<&'static Desc> {
    vec![
        &TICKS,
        &DURATION,
        &OWNER_WALKS,
        &LAGGING,
        &DROPPED,
        &NAMESPACES,
    ]
}

/// At most one full walk of `<procfs>/*/fd` per this long (a targeted walk is tried first).
pub const FULL_WALK_EVERY: Duration = Duration::from_secs(5);
/// Owners of known listeners are verified every this many ticks.
pub const VERIFY_EVERY: u64 = 10;
/// With `--netns=all`, a full discovery of the namespaces at least every this many ticks
/// (between them, new processes' namespaces and the `ip netns` directories are checked each
/// tick, and a namespace whose process left is rediscovered at once).
const DISCOVER_EVERY: u64 = 30;

#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    ticks: u64,
    last_seconds: f64,
    targeted: u64,
    full: u64,
    lagging: u64,
    dropped: u64,
    namespaces: u64,
}

/// A running watch; dropping it stops the thread.
pub struct Watch {
    stats: Arc<Mutex<Stats>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Watch {
    /// Start the watch `config` asks for (None: `--watch.interval=0`, the sockets not read
    /// over netlink, or nothing to serve). The first tick (the baseline: no events, a full
    /// walk to name every listener) runs before this returns.
    pub fn start(config: &Config, events: Option<Arc<EventLog>>) -> Result<Option<Watch>, String> {
        let Some(interval) = config.watch_interval else {
            return Ok(None);
        };
        let listeners_on = config.collector_enabled("listeners");
        if events.is_none() && !listeners_on {
            return Ok(None);
        }
        if config.sockets_source() == SourceMode::Proc {
            tracing::debug!("no watch: sockets are read from /proc text files (--collector.sockets.source=proc, or --path.procfs not the live /proc)");
            return Ok(None);
        }
        let listeners = ListenersCollector::with(&config.flags()?, &config.build_context()?)?;
        let (selection, expected) = listeners.policy();
        let resolver = listeners.resolver();
        let own = match WatchSocket::open(&config.procfs.join("net")) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no watch: cannot open a sock_diag netlink socket");
                return Ok(None);
            }
        };
        let netns = config
            .netns
            .clone()
            .filter(|n| n.collectors.iter().any(|c| c == "listeners"));
        let mut w = Watcher {
            procfs: config.procfs.clone(),
            rootfs: config.rootfs.clone(),
            resolver,
            selection,
            expected,
            services: Default::default(),
            users: Default::default(),
            events,
            netns,
            own,
            others: BTreeMap::new(),
            seen_inodes: HashSet::new(),
            own_inode: None,
            unprivileged: false,
            dir_names: Vec::new(),
            known_pids: Vec::new(),
            looked_pids: Vec::new(),
            last_discovery: 0,
            listeners: BTreeMap::new(),
            last_full_walk: None,
            tick: 0,
            stats: Arc::new(Mutex::new(Stats::default())),
            warned: HashSet::new(),
        };
        let t = Instant::now();
        w.run_tick();
        w.finish_tick(t.elapsed(), interval);
        if let Some(ev) = &w.events {
            ev.set_watch(if w.netns.is_some() && w.unprivileged {
                WatchCoverage::Own
            } else {
                WatchCoverage::All
            });
        }
        tracing::info!(
            interval_seconds = interval.as_secs_f64(),
            namespaces = w.others.len() + 1,
            listeners = w.listeners.len(),
            first_tick_seconds = t.elapsed().as_secs_f64(),
            "watch started"
        );
        let stats = w.stats.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || w.run(interval, &stop2))
            .map_err(|e| format!("cannot start the watch thread: {e}"))?;
        Ok(Some(Watch {
            stats,
            stop,
            thread: Some(thread),
        }))
    }

    /// `netstat_watch_*`.
    pub fn families(&self) -> Vec<MetricFamily> {
        let s = *self.stats.lock().unwrap_or_else(|p| p.into_inner());
        vec![
            TICKS.family().with(vec![], s.ticks),
            DURATION.family().with(vec![], s.last_seconds),
            OWNER_WALKS
                .family()
                .with(vec![("kind", "targeted".into())], s.targeted)
                .with(vec![("kind", "full".into())], s.full),
            LAGGING.family().with(vec![], s.lagging),
            DROPPED.family().with(vec![], s.dropped),
            NAMESPACES.family().with(vec![], s.namespaces),
        ]
    }
}

/// A listener as the watch tracks it.
#[derive(Debug, Clone)]
struct Entry {
    /// Socket inodes, ascending (several with SO_REUSEPORT).
    inodes: Vec<u64>,
    /// Owner uid of the socket with the lowest inode.
    uid: u32,
    owner: Option<Owner>,
    /// Whether `listener_opened` was recorded (false: waiting for its owner).
    announced: bool,
    /// When it was first seen (unix seconds of that tick, and as an Instant).
    first_time: f64,
    first_seen: Instant,
}

/// Another namespace the watch reads.
struct Other {
    label: String,
    found: Found,
    sock: WatchSocket,
}

struct Watcher {
    procfs: PathBuf,
    rootfs: PathBuf,
    resolver: Option<Arc<OwnerResolver>>,
    selection: Selection,
    expected: Option<ExpectedListeners>,
    services: etc::Cached<Services>,
    users: etc::Cached<Users>,
    events: Option<Arc<EventLog>>,
    /// `--netns=all` with the listeners collector reading every namespace.
    netns: Option<NetnsConfig>,
    own: WatchSocket,
    /// By namespace inode.
    others: BTreeMap<u64, Other>,
    /// Every namespace inode the last discovery found (read or filtered out).
    seen_inodes: HashSet<u64>,
    own_inode: Option<u64>,
    /// Entering namespaces was refused: only the own one is watched.
    unprivileged: bool,
    dir_names: Vec<String>,
    /// The pids of the last tick (ascending), to notice new processes' namespaces.
    known_pids: Vec<u32>,
    /// The pids at the last owner look-up (ascending): later ones are "new".
    looked_pids: Vec<u32>,
    last_discovery: u64,
    listeners: BTreeMap<EventKey, Entry>,
    last_full_walk: Option<Instant>,
    tick: u64,
    stats: Arc<Mutex<Stats>>,
    /// Problems already logged (by source and location), to log each once.
    warned: HashSet<(String, String)>,
}

/// The listeners of one tick: socket inodes (ascending) and the uid of the lowest, by key.
type Current = BTreeMap<EventKey, (Vec<u64>, u32)>;

/// Add the listening sockets `buf` of namespace `label` to `cur` (draining `buf`), at most
/// `selection.max` listeners per namespace as the listeners collector: those already watched
/// (`tracked`) first, so a listener is never reported closed because others appeared, then
/// new ones by ascending port. Returns the sockets left out.
fn take_listeners(
    cur: &mut Current,
    tracked: &BTreeMap<EventKey, Entry>,
    selection: &Selection,
    label: &str,
    buf: &mut Vec<InetSocket>,
) -> u64 {
    let mut sockets: Vec<(EventKey, InetSocket)> = buf
        .drain(..)
        .filter(|s| {
            selection.keeps(&crate::collectors::listeners::ListenerKey {
                protocol: s.protocol,
                family: s.family,
                address: s.local,
                port: s.local_port,
            })
        })
        .map(|s| (event_key(label, &s), s))
        .collect();
    sockets.sort_by_key(|(k, _)| (!tracked.contains_key(k), k.4));
    let (mut keys, mut dropped) = (0usize, 0u64);
    for (k, s) in sockets {
        let e = match cur.get_mut(&k) {
            Some(e) => e,
            None if keys >= selection.max => {
                dropped += 1;
                continue;
            }
            None => {
                keys += 1;
                cur.entry(k).or_default()
            }
        };
        if e.0.is_empty() || s.inode < e.0.iter().copied().min().unwrap_or(0) {
            e.1 = s.uid;
        }
        e.0.push(s.inode);
    }
    dropped
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Elements of `now` not in `before` (both ascending).
fn added(before: &[u32], now: &[u32]) -> Vec<u32> {
    now.iter()
        .copied()
        .filter(|p| before.binary_search(p).is_err())
        .collect()
}

fn event_key(label: &str, s: &InetSocket) -> EventKey {
    (
        label.to_string(),
        s.protocol.name().to_string(),
        s.family.name().to_string(),
        s.local.to_string(),
        s.local_port,
    )
}

impl Watcher {
    fn run(mut self, interval: Duration, stop: &AtomicBool) {
        let mut next = Instant::now() + interval;
        loop {
            let now = Instant::now();
            if next > now {
                std::thread::park_timeout(next - now);
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if Instant::now() < next {
                continue; // woken early
            }
            let t = Instant::now();
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_tick()));
            if ok.is_err() {
                tracing::error!("the watch's tick panicked (a bug: please report it)");
            }
            let took = t.elapsed();
            self.finish_tick(took, interval);
            next += interval;
            if next < Instant::now() {
                // Late: skip the ticks missed rather than run them back to back.
                next = Instant::now() + interval;
            }
        }
    }

    fn finish_tick(&mut self, took: Duration, interval: Duration) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.ticks += 1;
        s.last_seconds = took.as_secs_f64();
        if took > interval {
            s.lagging += 1;
        }
        s.namespaces = self.others.len() as u64 + 1;
    }

    fn warn_once(&mut self, e: &SourceError) {
        if self.warned.insert((e.source.clone(), e.location.clone())) {
            tracing::warn!(error = %e, "watch");
        }
    }

    /// One tick: namespaces, dumps, comparison, owners, events.
    fn run_tick(&mut self) {
        self.tick += 1;
        let baseline = self.tick == 1;
        let time = unix_now();
        // (time, change): an opened listener carries the time it was first seen.
        let mut changes: Vec<(f64, Change)> = Vec::new();
        let mut pids: Option<Vec<u32>> = None;

        if self.netns.is_some() && !self.unprivileged {
            self.refresh_namespaces(&mut pids, time, &mut changes);
        }
        let (cur, unread) = self.read_listeners(time, &mut changes);
        let (need, closed) = self.compare(&cur, &unread, baseline, time);
        self.name_owners(&need, &mut pids, baseline, time, &mut changes);
        self.announce(closed, time, &mut changes);
        if !changes.is_empty() && !baseline {
            if let Some(ev) = &self.events {
                for (t, c) in changes {
                    ev.record(vec![c], t);
                }
            }
        }
    }

    /// The listeners of every watched namespace now, and the namespaces that could not be
    /// read (a namespace whose dump failed keeps its previous listeners: nothing is reported
    /// closed on a failure; one that vanished is dropped).
    fn read_listeners(
        &mut self,
        time: f64,
        changes: &mut Vec<(f64, Change)>,
    ) -> (Current, HashSet<String>) {
        let mut cur = Current::new();
        let mut unread: HashSet<String> = HashSet::new();
        let mut buf = Vec::new();
        let mut failed: Vec<SourceError> = Vec::new();
        let mut vanished: Vec<u64> = Vec::new();
        let mut dropped = 0u64;
        let failure = |location: String, e: &dyn std::fmt::Display| SourceError {
            source: "netlink/watch".into(),
            location,
            line: None,
            message: e.to_string(),
        };
        match self.own.listeners(&mut buf) {
            Ok(()) => {
                dropped += take_listeners(&mut cur, &self.listeners, &self.selection, "", &mut buf)
            }
            Err(e) => {
                buf.clear();
                unread.insert(String::new());
                failed.push(failure(
                    "LISTEN-only sock_diag dump in the exporter's network namespace".into(),
                    &e,
                ));
            }
        }
        for (inode, o) in self.others.iter_mut() {
            match o.sock.listeners(&mut buf) {
                Ok(()) => {
                    dropped += take_listeners(
                        &mut cur,
                        &self.listeners,
                        &self.selection,
                        &o.label,
                        &mut buf,
                    )
                }
                Err(e) => {
                    buf.clear();
                    unread.insert(o.label.clone());
                    if !netns::still_there(&o.found) {
                        vanished.push(*inode);
                    } else {
                        failed.push(failure(
                            format!(
                                "LISTEN-only sock_diag dump in network namespace {}",
                                o.label
                            ),
                            &e,
                        ));
                    }
                }
            }
        }
        lock(&self.stats).dropped = dropped;
        for e in &failed {
            self.warn_once(e);
        }
        for inode in vanished {
            self.drop_namespace(inode, time, changes);
        }
        for v in cur.values_mut() {
            v.0.sort_unstable();
        }
        (cur, unread)
    }

    /// Compare with what was watched: new and changed listeners (and all of them every
    /// VERIFY_EVERY ticks) need their owner looked up; returns those and the closed ones.
    fn compare(
        &mut self,
        cur: &Current,
        unread: &HashSet<String>,
        baseline: bool,
        time: f64,
    ) -> (Vec<EventKey>, Vec<EventKey>) {
        let now = Instant::now();
        let verify = self.tick.is_multiple_of(VERIFY_EVERY);
        let mut need: Vec<EventKey> = Vec::new();
        for (key, (inodes, uid)) in cur {
            match self.listeners.get_mut(key) {
                None => {
                    self.listeners.insert(
                        key.clone(),
                        Entry {
                            inodes: inodes.clone(),
                            uid: *uid,
                            owner: None,
                            announced: baseline,
                            first_time: time,
                            first_seen: now,
                        },
                    );
                    need.push(key.clone());
                }
                Some(e) => {
                    if e.inodes != *inodes {
                        e.inodes = inodes.clone();
                        e.uid = *uid;
                        need.push(key.clone());
                    } else if verify || !e.announced || (e.owner.is_none() && baseline) {
                        need.push(key.clone());
                    }
                }
            }
        }
        let closed: Vec<EventKey> = self
            .listeners
            .keys()
            .filter(|k| !cur.contains_key(*k) && !unread.contains(&k.0))
            .cloned()
            .collect();
        (need, closed)
    }

    /// Name the owners of the listeners `need`; an owner that changed is an event.
    fn name_owners(
        &mut self,
        need: &[EventKey],
        pids: &mut Option<Vec<u32>>,
        baseline: bool,
        time: f64,
        changes: &mut Vec<(f64, Change)>,
    ) {
        let Some(resolver) = self.resolver.clone() else {
            return;
        };
        let inodes: Vec<u64> = need
            .iter()
            .filter_map(|k| self.listeners.get(k))
            .flat_map(|e| e.inodes.iter().copied())
            .collect();
        let found = self.find_owners(&resolver, &inodes, pids, baseline);
        let mut errors = Vec::new();
        let mut by_pid: HashMap<u32, Option<Owner>> = HashMap::new();
        for key in need {
            let Some(e) = self.listeners.get_mut(key) else {
                continue;
            };
            let owner = e
                .inodes
                .iter()
                .filter_map(|i| found.get(i).copied())
                .min()
                .and_then(|pid| {
                    by_pid
                        .entry(pid)
                        .or_insert_with(|| resolver.owner(pid, &mut errors))
                        .clone()
                });
            // Not named (yet): an announced listener keeps its last known owner (its process
            // exited while the socket lingers: no change); a new one waits until a full walk
            // since it appeared could not name it (see announce).
            if let Some(o) = owner {
                let before = e.owner.replace(o.clone());
                if e.announced && !baseline {
                    let changed = match &before {
                        None => true,
                        Some(b) => b.comm != o.comm,
                    };
                    if changed {
                        let c = self.change(key, Kind::ListenerOwnerChanged, before);
                        changes.push((time, c));
                    }
                }
            }
        }
        for err in &errors {
            self.warn_once(err);
        }
    }

    /// Announce what is named, or settled as unknown, or with attribution off; then what
    /// closed (a listener closed before it could be named is recorded opened and closed).
    fn announce(&mut self, closed: Vec<EventKey>, time: f64, changes: &mut Vec<(f64, Change)>) {
        let walked_since = |e: &Entry, w: Option<Instant>| w.is_some_and(|w| w >= e.first_seen);
        let announce: Vec<EventKey> = self
            .listeners
            .iter()
            .filter(|(_, e)| {
                !e.announced
                    && (e.owner.is_some()
                        || self.resolver.is_none()
                        || walked_since(e, self.last_full_walk))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in announce {
            let c = self.change(&key, Kind::ListenerOpened, None);
            if let Some(e) = self.listeners.get_mut(&key) {
                e.announced = true;
                changes.push((e.first_time, c));
            }
        }
        for key in closed {
            if let Some(e) = self.listeners.get(&key) {
                if !e.announced {
                    let c = self.change(&key, Kind::ListenerOpened, None);
                    changes.push((e.first_time, c));
                }
                changes.push((time, self.change(&key, Kind::ListenerClosed, None)));
            }
            self.listeners.remove(&key);
        }
    }

    /// inode -> pid for `inodes`: the verified cache, then the processes started since the
    /// last look, then (at most one per FULL_WALK_EVERY, or at the baseline) a full walk.
    fn find_owners(
        &mut self,
        resolver: &OwnerResolver,
        inodes: &[u64],
        pids: &mut Option<Vec<u32>>,
        baseline: bool,
    ) -> HashMap<u64, u32> {
        if inodes.is_empty() {
            return HashMap::new();
        }
        let (mut found, unresolvable) = resolver.cached(inodes);
        let mut missing: Vec<u64> = inodes
            .iter()
            .copied()
            .filter(|i| !found.contains_key(i) && !unresolvable.contains(i))
            .collect();
        if missing.is_empty() {
            return found;
        }
        let listed = self.pids(pids).to_vec();
        if !baseline {
            let new = added(&self.looked_pids, &listed);
            if !new.is_empty() {
                let (hits, _fds) = resolver.find_in(&missing, &new);
                lock(&self.stats).targeted += 1;
                missing.retain(|i| !hits.contains_key(i));
                found.extend(hits);
            }
        }
        self.looked_pids = listed;
        let due = baseline
            || self
                .last_full_walk
                .is_none_or(|t| t.elapsed() >= FULL_WALK_EVERY);
        if !missing.is_empty() && due {
            let mut errors = Vec::new();
            let hits = resolver.walk_for(&missing, &mut errors);
            for e in &errors {
                self.warn_once(e);
            }
            self.last_full_walk = Some(Instant::now());
            lock(&self.stats).full += 1;
            found.extend(hits);
        }
        found
    }

    /// This tick's pid list (read once per tick, when needed).
    fn pids<'a>(&mut self, pids: &'a mut Option<Vec<u32>>) -> &'a [u32] {
        if pids.is_none() {
            let got = match list_pids(&self.procfs) {
                Ok(p) => p,
                Err(e) => {
                    let err = SourceError::file(
                        "proc/pid",
                        &self.procfs,
                        format!("cannot list processes: {e}"),
                    );
                    self.warn_once(&err);
                    Vec::new()
                }
            };
            *pids = Some(got);
        }
        pids.as_deref().unwrap_or(&[])
    }

    /// A change about the listener `key` as it is now (`previous`: its owner before, for
    /// listener_owner_changed).
    fn change(&self, key: &EventKey, kind: Kind, previous: Option<Owner>) -> Change {
        let mut errors = Vec::new();
        let services = etc::services_cached(&self.services, &self.rootfs, &mut errors);
        let users = etc::users_cached(&self.users, &self.rootfs, &mut errors);
        let e = self.listeners.get(key);
        let uid = e.map_or(0, |e| e.uid);
        let user = users.get(&uid).cloned().unwrap_or_else(|| uid.to_string());
        let owner = e.and_then(|e| e.owner.as_ref());
        let name = |o: Option<&Owner>| match (o, self.resolver.is_some()) {
            (_, false) => String::new(),
            (Some(o), true) => o.comm.clone(),
            (None, true) => "unknown".to_string(),
        };
        let process = name(owner);
        let proto = if key.1 == "tcp" { "tcp" } else { "udp" };
        let service = services
            .get(&(key.4, proto.to_string()))
            .cloned()
            .unwrap_or_default();
        let protocol = match key.1.as_str() {
            "tcp" => Protocol::Tcp,
            "udplite" => Protocol::UdpLite,
            _ => Protocol::Udp,
        };
        let unexpected = match (&self.expected, key.3.parse()) {
            (Some(x), Ok(addr)) if kind != Kind::ListenerClosed => {
                Some(!x.allows(protocol, addr, key.4, owner.map(|o| o.comm.as_str())))
            }
            _ => None,
        };
        let identity = owner.map(|o| o.identity.clone()).unwrap_or_default();
        let (previous_process, previous_user) = if kind == Kind::ListenerOwnerChanged {
            (Some(name(previous.as_ref())), Some(user.clone()))
        } else {
            (None, None)
        };
        Change {
            kind,
            netns: key.0.clone(),
            subject: Subject::Listener {
                protocol: key.1.clone(),
                family: key.2.clone(),
                address: key.3.clone(),
                port: key.4,
                service,
                process,
                user,
                pid: owner.map(|o| o.pid),
                container_id: identity.container_id,
                pod_uid: identity.pod_uid,
                unexpected,
                previous_process,
                previous_user,
            },
        }
    }

    /// `--netns=all`: keep a netlink socket in every namespace the exporter reads. A full
    /// discovery at the baseline, when a new process is in a namespace not seen yet, when a
    /// watched namespace's process left, when the `ip netns` directories change, and every
    /// DISCOVER_EVERY ticks.
    fn refresh_namespaces(
        &mut self,
        pids: &mut Option<Vec<u32>>,
        time: f64,
        changes: &mut Vec<(f64, Change)>,
    ) {
        let Some(config) = self.netns.clone() else {
            return;
        };
        let listed = self.pids(pids).to_vec();
        let new = added(&self.known_pids, &listed);
        let own = self.own_inode;
        let unknown_ns = new.iter().any(|&p| {
            pid_netns(&self.procfs, p)
                .is_some_and(|i| Some(i) != own && !self.seen_inodes.contains(&i))
        });
        let names = netns_dir_names(&config.dirs);
        let left = self.others.values().any(|o| !netns::still_there(&o.found));
        let due = self.tick == 1
            || unknown_ns
            || left
            || names != self.dir_names
            || self.tick - self.last_discovery >= DISCOVER_EVERY;
        self.known_pids = listed;
        if !due {
            return;
        }
        self.dir_names = names;
        self.last_discovery = self.tick;
        let mut errors = Vec::new();
        let d = netns::discover(&self.procfs, &config.dirs, &mut errors);
        self.own_inode = d.own_inode;
        self.seen_inodes = d.found.iter().map(|f| f.inode).collect();
        let mut keep: BTreeSet<u64> = BTreeSet::new();
        for f in d.found {
            let info = f.info(&self.procfs, &mut errors);
            if !config.keeps(&[&info.name, &info.container_id, &info.pod_uid])
                || keep.len() + 1 >= config.max
            {
                continue;
            }
            keep.insert(f.inode);
            if let Some(o) = self.others.get_mut(&f.inode) {
                o.found = f;
                continue;
            }
            match WatchSocket::open_in(&self.procfs, &f.path, f.inode) {
                Ok(sock) => {
                    self.others.insert(
                        f.inode,
                        Other {
                            label: f.inode.to_string(),
                            found: f,
                            sock,
                        },
                    );
                }
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(0);
                    if errno == libc::EPERM || errno == libc::EACCES {
                        tracing::warn!(error = %e, "the watch cannot enter other network namespaces (CAP_SYS_ADMIN): it watches the exporter's own; the others' listener events come from scrapes");
                        self.unprivileged = true;
                        if let Some(ev) = &self.events {
                            ev.set_watch(WatchCoverage::Own);
                        }
                        let all: Vec<u64> = self.others.keys().copied().collect();
                        for inode in all {
                            self.forget_namespace(inode);
                        }
                        return;
                    }
                    // Gone meanwhile (ENOENT, ESRCH) or another failure: tried again at the
                    // next discovery.
                    if errno != libc::ENOENT && errno != libc::ESRCH {
                        let err = SourceError::file(
                            "netlink/watch",
                            &f.path,
                            format!("cannot open a netlink socket in this namespace: {e}"),
                        );
                        self.warn_once(&err);
                    }
                }
            }
        }
        for e in &errors {
            self.warn_once(e);
        }
        let gone: Vec<u64> = self
            .others
            .keys()
            .filter(|i| !keep.contains(i))
            .copied()
            .collect();
        for inode in gone {
            self.drop_namespace(inode, time, changes);
        }
    }

    /// A namespace no longer read: its listeners are closed.
    fn drop_namespace(&mut self, inode: u64, time: f64, changes: &mut Vec<(f64, Change)>) {
        let Some(o) = self.others.get(&inode) else {
            return;
        };
        let label = o.label.clone();
        let keys: Vec<EventKey> = self
            .listeners
            .keys()
            .filter(|k| k.0 == label)
            .cloned()
            .collect();
        for key in keys {
            if self.listeners.get(&key).is_some_and(|e| e.announced) {
                changes.push((time, self.change(&key, Kind::ListenerClosed, None)));
            }
            self.listeners.remove(&key);
        }
        self.others.remove(&inode);
    }

    /// Stop reading a namespace without events (the scrapes take its listeners over).
    fn forget_namespace(&mut self, inode: u64) {
        if let Some(o) = self.others.remove(&inode) {
            self.listeners.retain(|k, _| k.0 != o.label);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_pids() {
        assert_eq!(added(&[1, 3, 5], &[1, 2, 3, 6]), vec![2, 6]);
        assert!(added(&[1, 2], &[]).is_empty());
    }
}
