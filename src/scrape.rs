//! One request: the selected collectors, per network namespace, with ONE pass over each
//! socket table shared by every collector that needs sockets; then the exporter's own
//! metrics (per-collector duration and success, error counters, build info, `process_*`).

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::collectors::{self, Collected, Collection, Collector};
use crate::config::Config;
use crate::config::NetnsConfig;
use crate::metrics::{Desc, MetricFamily};

use crate::source::inet::{InetSocket, UnixSocket};
use crate::source::netns::{self, Found, Netns, NetnsInfo};
use crate::source::sockets::{SocketNeeds, SocketSource, SocketVisitor, SourceMode};
use crate::source::{process, SourceError};

/// How many errors of one collector are logged one by one per scrape; the rest are summed up
/// in one line so that a file full of garbage cannot flood the log.
const LOGGED_ERRORS_PER_SCRAPE: usize = 5;

/// Scrape timeout when neither the request nor the configuration gives one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub static COLLECTOR_DURATION: Desc = Desc::gauge(
    "netstat_scrape_collector_duration_seconds",
    &["collector"],
    "Time the collector took in this scrape. Collectors that share the socket pass each count the pass plus their own work.",
)
.unit("seconds");
pub static COLLECTOR_SUCCESS: Desc = Desc::gauge(
    "netstat_scrape_collector_success",
    &["collector"],
    "1 if the collector read everything without error in this scrape, 0 if it met a problem (the log says which file and line).",
);
pub static SCRAPE_ERRORS: Desc = Desc::counter(
    "netstat_scrape_errors",
    &["collector", "source"],
    "Problems met by a collector since the exporter started, by source (a file below the procfs root such as net/tcp6, or a netlink dump): malformed lines skipped, unreadable files, failed dumps.",
);
pub static BUILD_INFO: Desc = Desc::gauge(
    "netstat_exporter_build_info",
    &["version", "revision", "rustc"],
    "A metric with a constant '1' value labeled by version, revision and rustc version from which netstat_exporter was built.",
);
pub static PROCESS_CPU: Desc = Desc::counter(
    "process_cpu_seconds",
    &[],
    "Total user and system CPU time spent in seconds.",
)
.unit("seconds");
pub static PROCESS_RSS: Desc = Desc::gauge(
    "process_resident_memory_bytes",
    &[],
    "Resident memory size in bytes.",
)
.unit("bytes");
pub static PROCESS_VSZ: Desc = Desc::gauge(
    "process_virtual_memory_bytes",
    &[],
    "Virtual memory size in bytes.",
)
.unit("bytes");
pub static PROCESS_OPEN_FDS: Desc =
    Desc::gauge("process_open_fds", &[], "Number of open file descriptors.");
pub static PROCESS_START: Desc = Desc::gauge(
    "process_start_time_seconds",
    &[],
    "Start time of the process since unix epoch in seconds.",
)
.unit("seconds");
pub static PROCESS_MAX_FDS: Desc = Desc::gauge(
    "process_max_fds",
    &[],
    "Maximum number of open file descriptors.",
);

pub static NETNS_INFO: Desc = Desc::gauge(
    "netstat_netns_info",
    &["netns", "name", "container_id", "pod_uid"],
    "With --netns=all: 1 per network namespace read. netns: its inode (empty for the exporter's own, whose series carry no netns label), name: its ip-netns name, container_id: the full id of the container of its lowest pid, pod_uid: the Kubernetes pod uid (join with kube_pod_info on uid for pod names).",
);
pub static NETNS_READ: Desc = Desc::gauge(
    "netstat_netns",
    &[],
    "With --netns=all: network namespaces read in this scrape, the exporter's own included.",
);
pub static NETNS_DROPPED: Desc = Desc::gauge(
    "netstat_netns_dropped",
    &[],
    "With --netns=all: network namespaces left out of this scrape because there were more than --netns.max.",
);
pub static NETNS_ERRORS: Desc = Desc::counter(
    "netstat_netns_errors",
    &["reason"],
    "With --netns=all: network namespaces skipped since start, by reason: vanished (gone while being read: not a failure), no_permission (no process to read it through without CAP_SYS_ADMIN), enter_failed (setns refused otherwise).",
);
/// Every reason of `netstat_netns_errors_total`, always exported.
const NETNS_ERROR_REASONS: [&str; 3] = ["vanished", "no_permission", "enter_failed"];

/// The exporter's own metrics, present in every scrape whatever `collect[]` selects.
pub fn metrics() -> Vec<&'static Desc> {
    vec![
        &COLLECTOR_DURATION,
        &COLLECTOR_SUCCESS,
        &SCRAPE_ERRORS,
        &BUILD_INFO,
        &PROCESS_CPU,
        &PROCESS_RSS,
        &PROCESS_VSZ,
        &PROCESS_OPEN_FDS,
        &PROCESS_START,
        &PROCESS_MAX_FDS,
        &crate::events::EVENTS,
        &crate::events::EVENTS_DROPPED,
        &NETNS_INFO,
        &NETNS_READ,
        &NETNS_DROPPED,
        &NETNS_ERRORS,
    ]
    .into_iter()
    .chain(crate::watch::metrics())
    .collect()
}

/// (collector, source) -> errors since start, for `netstat_scrape_errors_total`.
type ErrorTotals = Mutex<BTreeMap<(&'static str, String), u64>>;

/// Runs the collectors. A request's collectors are grouped into jobs: every collector that
/// needs sockets shares one job (so each socket table is walked once per namespace and
/// scrape), every other collector is a job of its own, so that they run in parallel.
///
/// Jobs are coalesced: at most one run of a job is in flight at any time, and concurrent
/// requests share it. A request never gets data read before it arrived: if a run is already
/// going when a request comes in, the request waits for the next one, which starts as soon
/// as the running one ends and serves every request that arrived meanwhile (two Prometheus
/// replicas scraping at once cost one run, or two if the second arrives mid-run).
///
/// A job that has not finished by the request's deadline is reported failed for that request
/// (`netstat_scrape_collector_success 0` for its collectors) and the other collectors' data
/// is returned. The run keeps going in its own thread to completion; since there is at most
/// one in flight per job, a stuck collector cannot pile up threads.
pub struct Scraper {
    shared: Arc<Shared>,
    /// Slots by job (indexes into `shared.collectors`, ascending), created on first use.
    jobs: Mutex<HashMap<Vec<usize>, Arc<Slot>>>,
    procfs: PathBuf,
    timeout: Duration,
    /// The change log fed by every scrape (see crate::events).
    events: Option<Arc<crate::events::EventLog>>,
    /// The watch, once started ([`Scraper::start_watch`]).
    watch: std::sync::OnceLock<crate::watch::Watch>,
}

/// What every job run reads.
struct Shared {
    collectors: Vec<Arc<dyn Collector>>,
    source: SocketSource,
    /// The exporter's own namespace, always read first.
    own: Netns,
    /// `--netns=all`: the other namespaces and which collectors read them.
    netns: Option<NetnsAll>,
    procfs: PathBuf,
    errors_total: ErrorTotals,
    /// reason -> namespaces skipped since start, for `netstat_netns_errors_total`.
    netns_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Entering a namespace was refused (no CAP_SYS_ADMIN): read /proc/<pid>/net from then on.
    unprivileged: AtomicBool,
}

struct NetnsAll {
    config: NetnsConfig,
    /// Per collector (index in `Shared::collectors`): whether it reads other namespaces.
    reads: Vec<bool>,
}

/// The namespaces one run read, for `netstat_netns_info` and friends.
struct NetnsReport {
    /// (label, info) of every namespace read.
    read: Vec<(String, NetnsInfo)>,
    dropped: usize,
}

/// What the collectors of a job read in one namespace, with the seconds each took.
type NsResults = Vec<(Collected, f64)>;

/// A namespace to read in one run, and how to tell whether it vanished meanwhile.
struct Target {
    ns: Netns,
    found: Option<Found>,
}

/// One job and its coalescing state.
struct Slot {
    members: Vec<usize>,
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct SlotState {
    /// Number of the last run started (1-based; 0: none yet).
    started: u64,
    /// Whether run `started` is still going.
    running: bool,
    /// Number and result of the last run that finished.
    finished: u64,
    last: Option<Arc<Run>>,
}

/// What one run of a job produced, per member collector, shared by all requests it serves.
struct Run {
    results: Vec<CollectorRun>,
    netns: Option<NetnsReport>,
}

struct CollectorRun {
    families: Vec<MetricFamily>,
    ok: bool,
    seconds: f64,
}

/// A request's claim on a job: the number of the first run that started after the request
/// arrived.
struct Ticket {
    slot: Arc<Slot>,
    wanted: u64,
}

/// Build metadata, filled in by build.rs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("NETSTAT_EXPORTER_REVISION");
pub const RUSTC: &str = env!("NETSTAT_EXPORTER_RUSTC");

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Slot {
    /// Claim a run that starts after now, starting one if none is going.
    fn request(self: &Arc<Self>, shared: &Arc<Shared>) -> Ticket {
        let mut st = lock(&self.state);
        let wanted = st.started + 1;
        if !st.running {
            self.start(&mut st, shared);
        }
        Ticket {
            slot: self.clone(),
            wanted,
        }
    }

    fn name(&self, shared: &Shared) -> String {
        self.members
            .iter()
            .map(|&i| shared.collectors[i].name())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Start run `started + 1` in its own thread. Called with the state locked and no run
    /// going.
    fn start(self: &Arc<Self>, st: &mut SlotState, shared: &Arc<Shared>) {
        st.started += 1;
        st.running = true;
        let number = st.started;
        let slot = self.clone();
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("collect-{}", self.name(shared)))
            .spawn(move || slot.run(number, &sh));
        if let Err(e) = spawned {
            tracing::error!(job = %self.name(shared), error = %e, "cannot start a collection thread");
            st.running = false;
            st.finished = number;
            st.last = Some(Arc::new(Run {
                results: self
                    .members
                    .iter()
                    .map(|_| CollectorRun {
                        families: Vec::new(),
                        ok: false,
                        seconds: 0.0,
                    })
                    .collect(),
                netns: None,
            }));
            self.done.notify_all();
        }
    }

    fn run(&self, number: u64, shared: &Shared) {
        let members: Vec<&dyn Collector> = self
            .members
            .iter()
            .map(|&i| shared.collectors[i].as_ref())
            .collect();
        let outcome = catch_unwind(AssertUnwindSafe(|| shared.collect(&self.members)));
        let (collected, netns) = outcome.unwrap_or_else(|_| {
            let failed = members
                .iter()
                .map(|c| {
                    let collected = Collected {
                        families: Vec::new(),
                        errors: vec![SourceError {
                            source: "panic".into(),
                            location: format!("collector {}", c.name()),
                            line: None,
                            message: "the collector panicked (a bug: please report it)".into(),
                        }],
                    };
                    (collected, 0.0)
                })
                .collect();
            (failed, None)
        });
        let results = members
            .iter()
            .zip(collected)
            .map(|(c, (collected, seconds))| {
                let ok = collected.errors.is_empty();
                if !ok {
                    record_errors(&shared.errors_total, c.name(), &collected.errors);
                }
                CollectorRun {
                    families: collected.families,
                    ok,
                    seconds,
                }
            })
            .collect();
        let mut st = lock(&self.state);
        st.running = false;
        st.finished = number;
        st.last = Some(Arc::new(Run { results, netns }));
        self.done.notify_all();
    }
}

impl Ticket {
    /// Wait for the claimed run (or a later one) until `deadline`. None: timed out.
    fn wait(&self, deadline: Option<Instant>, shared: &Arc<Shared>) -> Option<Arc<Run>> {
        let slot = &self.slot;
        let mut st = lock(&slot.state);
        loop {
            if st.finished >= self.wanted {
                return st.last.clone();
            }
            if !st.running {
                // The run that was going when we arrived is over: start ours (it serves
                // everyone who arrived while the previous one ran).
                slot.start(&mut st, shared);
                continue;
            }
            st = match deadline {
                None => slot.done.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    slot.done
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

/// Feeds one socket pass to every collection that asked for the socket's protocol and state.
struct Dispatch<'a, 'b> {
    collections: &'b mut [Box<dyn Collection + 'a>],
    needs: &'b [SocketNeeds],
}

impl SocketVisitor for Dispatch<'_, '_> {
    fn inet(&mut self, s: &InetSocket) {
        for (c, n) in self.collections.iter_mut().zip(self.needs) {
            if n.wants(s) {
                c.inet(s);
            }
        }
    }

    fn unix(&mut self, s: &UnixSocket) {
        for (c, n) in self.collections.iter_mut().zip(self.needs) {
            if n.unix {
                c.unix(s);
            }
        }
    }
}

/// Host-wide families once, then the per-namespace families of each name merged.
fn finish_scrape(collectors: &[&dyn Collector], out: &mut [(Collected, f64)]) {
    for (i, c) in collectors.iter().enumerate() {
        let t = Instant::now();
        c.end_scrape(&mut out[i].0);
        out[i].1 += t.elapsed().as_secs_f64();
        let families = std::mem::take(&mut out[i].0.families);
        out[i].0.families = merge_families(families);
    }
}

/// One namespace: the shared socket pass, then every collector's own reads; families
/// labelled with the namespace.
fn collect_ns(
    collectors: &[&dyn Collector],
    ns: &Netns,
    source: &SocketSource,
) -> Vec<(Collected, f64)> {
    let needs: Vec<SocketNeeds> = collectors.iter().map(|c| c.socket_needs()).collect();
    let union = needs.iter().fold(SocketNeeds::NONE, |acc, n| acc.union(n));
    let mut collections: Vec<Box<dyn Collection + '_>> =
        collectors.iter().map(|c| c.begin(ns)).collect();
    let mut pass_errors = Vec::new();
    let mut pass_seconds = 0.0;
    let mut info = Default::default();
    if !union.is_empty() {
        let t = Instant::now();
        let mut dispatch = Dispatch {
            collections: &mut collections,
            needs: &needs,
        };
        info = source.pass(ns, &union, &mut pass_errors, &mut dispatch);
        pass_seconds = t.elapsed().as_secs_f64();
    }
    for c in &mut collections {
        c.pass_done();
    }
    let mut out = Vec::with_capacity(collections.len());
    for (i, c) in collections.into_iter().enumerate() {
        let t = Instant::now();
        let mut got = Collected::default();
        let mut seconds = 0.0;
        if !needs[i].is_empty() {
            got.errors.extend(pass_errors.iter().cloned());
            seconds += pass_seconds;
        }
        c.finish(&info, &mut got);
        seconds += t.elapsed().as_secs_f64();
        label_netns(&mut got.families, ns.label());
        out.push((got, seconds));
    }
    out
}

impl Shared {
    fn count_netns_error(&self, reason: &'static str) {
        *lock(&self.netns_errors).entry(reason).or_default() += 1;
    }

    /// The namespaces of one run of `members`: the exporter's own, then (`--netns=all`, when
    /// one of them reads other namespaces) the others found now, filtered and capped.
    fn targets(&self, members: &[usize]) -> (Vec<Target>, Option<NetnsReport>) {
        let own = Target {
            ns: self.own.clone(),
            found: None,
        };
        let Some(all) = &self.netns else {
            return (vec![own], None);
        };
        if !members.iter().any(|&m| all.reads[m]) {
            // No member reads other namespaces: no discovery for this run.
            let report = NetnsReport {
                read: Vec::new(),
                dropped: 0,
            };
            return (vec![own], Some(report));
        }
        let mut errors = Vec::new();
        let found = netns::discover(&self.procfs, &all.config.dirs, &mut errors);
        for e in &errors {
            tracing::warn!(error = %e, "network namespace discovery");
        }
        let mut report = NetnsReport {
            read: Vec::new(),
            dropped: 0,
        };
        let mut targets = vec![own];
        let unprivileged = self.unprivileged.load(Ordering::Relaxed);
        for f in found.found {
            let info = f.info(&self.procfs, &mut errors);
            if !all
                .config
                .keeps(&[&info.name, &info.container_id, &info.pod_uid])
            {
                continue;
            }
            if targets.len() >= all.config.max {
                report.dropped += 1;
                continue;
            }
            let ns = match (unprivileged, f.pid) {
                (false, _) => Netns::entered(&self.procfs, info, f.path.clone()),
                (true, Some(pid)) => Netns::proc_only(&self.procfs, info, pid),
                (true, None) => {
                    self.count_netns_error("no_permission");
                    continue;
                }
            };
            targets.push(Target { ns, found: Some(f) });
        }
        (targets, Some(report))
    }

    /// Run the collectors `members` (indexes) in every namespace of this run.
    fn collect(&self, members: &[usize]) -> (Vec<(Collected, f64)>, Option<NetnsReport>) {
        let collectors: Vec<&dyn Collector> = members
            .iter()
            .map(|&i| self.collectors[i].as_ref())
            .collect();
        let mut out: Vec<(Collected, f64)> = members
            .iter()
            .map(|_| (Collected::default(), 0.0))
            .collect();
        let (targets, mut report) = self.targets(members);
        // Which members read each namespace: all of them in the own one.
        let chosen: Vec<Vec<usize>> = targets
            .iter()
            .map(|target| {
                (0..members.len())
                    .filter(|&k| {
                        target.found.is_none()
                            || self.netns.as_ref().is_some_and(|a| a.reads[members[k]])
                    })
                    .collect()
            })
            .collect();
        let results = self.collect_targets(&targets, &chosen, &collectors);
        for ((target, chosen), got) in targets.iter().zip(&chosen).zip(results) {
            let Some(got) = got else {
                continue;
            };
            if let Some(r) = report.as_mut() {
                r.read
                    .push((target.ns.label().to_string(), target.ns.info.clone()));
            }
            for (&k, (c, secs)) in chosen.iter().zip(got) {
                out[k].0.families.extend(c.families);
                out[k].0.errors.extend(c.errors);
                out[k].1 += secs;
            }
        }
        finish_scrape(&collectors, &mut out);
        (out, report)
    }

    /// Read every target: the exporter's own namespace on this thread, the others on a few
    /// short-lived worker threads (one per core, at most 4) that enter each namespace in turn
    /// and exit when done, so no thread of the exporter stays in another namespace. Results
    /// in the order of `targets`; None for a namespace that vanished or could not be read.
    fn collect_targets(
        &self,
        targets: &[Target],
        chosen: &[Vec<usize>],
        collectors: &[&dyn Collector],
    ) -> Vec<Option<NsResults>> {
        let subset = |i: usize| -> Vec<&dyn Collector> {
            chosen[i].iter().map(|&k| collectors[k]).collect()
        };
        let mut results: Vec<Option<NsResults>> = Vec::with_capacity(targets.len());
        results.resize_with(targets.len(), || None);
        let mut others = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            if chosen[i].is_empty() {
                continue;
            }
            if t.found.is_none() {
                results[i] = self.collect_target(t, &subset(i));
            } else {
                others.push(i);
            }
        }
        if others.is_empty() {
            return results;
        }
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 4)
            .min(others.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done: Mutex<Vec<(usize, Option<NsResults>)>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .filter_map(|w| {
                    std::thread::Builder::new()
                        .name(format!("netns-{w}"))
                        .spawn_scoped(s, || loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&i) = others.get(k) else {
                                break;
                            };
                            let got = self.collect_target(&targets[i], &subset(i));
                            lock(&done).push((i, got));
                        })
                        .map_err(|e| tracing::error!(error = %e, "cannot start a namespace thread"))
                        .ok()
                })
                .collect();
            for h in handles {
                if let Err(panic) = h.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
        for (i, got) in done.into_inner().unwrap_or_else(|p| p.into_inner()) {
            results[i] = got;
        }
        results
    }

    /// Read one namespace on the calling thread, entering it first when it must be entered
    /// (only on a worker thread of [`Shared::collect_targets`]). None: it vanished or could
    /// not be read at all (counted, not an error of the collectors).
    fn collect_target(
        &self,
        target: &Target,
        collectors: &[&dyn Collector],
    ) -> Option<Vec<(Collected, f64)>> {
        let got = match target.ns.enter_path() {
            None => collect_ns(collectors, &target.ns, &self.source),
            Some(path) => {
                let entered = netns::enter(path, target.ns.info.inode)
                    .map(|()| collect_ns(collectors, &target.ns, &self.source));
                match entered {
                    Ok(got) => got,
                    Err(e) => {
                        let errno = e.raw_os_error().unwrap_or(0);
                        if errno == libc::EPERM || errno == libc::EACCES {
                            // No CAP_SYS_ADMIN: the text files of a process in it, from now on.
                            if !self.unprivileged.swap(true, Ordering::Relaxed) {
                                tracing::warn!(error = %e, "cannot enter other network namespaces (CAP_SYS_ADMIN); reading /proc/<pid>/net instead: no netlink, no interface flags");
                            }
                            let pid = target.found.as_ref().and_then(|f| f.pid);
                            let Some(pid) = pid else {
                                self.count_netns_error("no_permission");
                                return None;
                            };
                            let ns = Netns::proc_only(&self.procfs, target.ns.info.clone(), pid);
                            collect_ns(collectors, &ns, &self.source)
                        } else if errno == libc::ENOENT || errno == libc::ESRCH {
                            self.count_netns_error("vanished");
                            return None;
                        } else {
                            tracing::warn!(netns = target.ns.label(), error = %e, "cannot enter network namespace");
                            self.count_netns_error("enter_failed");
                            return None;
                        }
                    }
                }
            }
        };
        // Errors in a namespace that is gone now are its disappearance, not a failure.
        let failed = got.iter().any(|(c, _)| !c.errors.is_empty());
        if failed {
            if let Some(f) = &target.found {
                if !netns::still_there(f) {
                    self.count_netns_error("vanished");
                    return None;
                }
            }
        }
        Some(got)
    }
}

/// Add `netns="<label>"` to every sample (nothing for the exporter's own namespace, whose
/// label is empty: its series look as they always did).
fn label_netns(families: &mut [MetricFamily], label: &str) {
    if label.is_empty() {
        return;
    }
    for f in families {
        for s in &mut f.samples {
            s.labels.push(("netns", label.to_string()));
        }
    }
}

/// Merge families of the same name (one per namespace) into one, in order of first
/// appearance; families without samples are dropped.
pub fn merge_families(families: Vec<MetricFamily>) -> Vec<MetricFamily> {
    let mut out: Vec<MetricFamily> = Vec::with_capacity(families.len());
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for f in families {
        if f.samples.is_empty() {
            continue;
        }
        match index.get(f.name) {
            Some(&i) => out[i].samples.extend(f.samples),
            None => {
                index.insert(f.name, out.len());
                out.push(f);
            }
        }
    }
    out
}

impl Scraper {
    pub fn new(collectors: Vec<Box<dyn Collector>>, procfs: PathBuf) -> Self {
        let own = Netns::own(&procfs, std::path::Path::new("/sys"), true);
        Self::with_namespaces(
            collectors,
            SocketSource::new(SourceMode::Auto),
            own,
            None,
            procfs,
        )
    }

    /// The collectors reading `own` and, with `netns` (`--netns=all`), every other namespace.
    pub fn with_namespaces(
        collectors: Vec<Box<dyn Collector>>,
        source: SocketSource,
        own: Netns,
        netns: Option<NetnsConfig>,
        procfs: PathBuf,
    ) -> Self {
        let netns = netns.map(|config| NetnsAll {
            reads: collectors
                .iter()
                .map(|c| config.collectors.iter().any(|n| n == c.name()))
                .collect(),
            config,
        });
        Scraper {
            shared: Arc::new(Shared {
                collectors: collectors.into_iter().map(Arc::from).collect(),
                source,
                own,
                netns,
                procfs: procfs.clone(),
                errors_total: Mutex::new(BTreeMap::new()),
                netns_errors: Mutex::new(BTreeMap::new()),
                unprivileged: AtomicBool::new(false),
            }),
            jobs: Mutex::new(HashMap::new()),
            procfs,
            timeout: DEFAULT_TIMEOUT,
            events: None,
            watch: std::sync::OnceLock::new(),
        }
    }

    /// The enabled collectors of `config`, reading the exporter's own namespace, with the
    /// change log. An error is a collector's flag that does not validate.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let netlink = config.sockets_source() != SourceMode::Proc;
        let own = Netns::own(&config.procfs, &config.sysfs, netlink);
        Ok(Self::with_namespaces(
            collectors::build(config)?,
            SocketSource::new(config.sockets_source()),
            own,
            config.netns.clone(),
            config.procfs.clone(),
        )
        .with_timeout(config.web_scrape_timeout)
        .with_events(crate::events::EventLog::from_config(config)))
    }

    /// Attach the change log (None: no change log).
    pub fn with_events(mut self, events: Option<Arc<crate::events::EventLog>>) -> Self {
        self.events = events;
        self
    }

    /// Start the watch `config` asks for (`--watch.interval`), feeding the change log and
    /// the shared owner cache; its first tick runs before this returns. Blocking.
    pub fn start_watch(&self, config: &Config) -> Result<(), String> {
        if self.watch.get().is_some() {
            return Ok(());
        }
        if let Some(w) = crate::watch::Watch::start(config, self.events.clone())? {
            let _ = self.watch.set(w);
        }
        Ok(())
    }

    /// The change log, for /api/v1/events.
    pub fn events(&self) -> Option<&Arc<crate::events::EventLog>> {
        self.events.as_ref()
    }

    /// Default per-scrape timeout (used by [`Scraper::scrape`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn collector_names(&self) -> Vec<&'static str> {
        self.shared.collectors.iter().map(|c| c.name()).collect()
    }

    /// One full collection before serving: pays the cold costs (the first walk of every
    /// process's fds to attribute listeners) so that no request does. Returns its duration.
    pub fn warm_up(&self) -> Duration {
        let t = Instant::now();
        let _ = self.scrape_with_timeout(None, None);
        t.elapsed()
    }

    /// Check a `collect[]` selection: every name must be an enabled collector.
    pub fn check_selection(&self, names: &[String]) -> Result<(), String> {
        let enabled = self.collector_names();
        for n in names {
            if enabled.contains(&n.as_str()) {
                continue;
            }
            let all: Vec<&str> = collectors::REGISTRY.iter().map(|d| d.name).collect();
            return Err(if all.contains(&n.as_str()) {
                format!(
                    "collector {n:?} is disabled on this exporter (enabled: {})",
                    enabled.join(", ")
                )
            } else {
                format!(
                    "unknown collector {n:?} in collect[] (available: {})",
                    all.join(", ")
                )
            });
        }
        Ok(())
    }

    /// One scrape with the default timeout: the selected collectors (all enabled ones when
    /// `selection` is None or empty), then the exporter's own metrics. Blocking: call it off
    /// the async runtime.
    pub fn scrape(&self, selection: Option<&[String]>) -> Vec<MetricFamily> {
        self.scrape_with_timeout(selection, Some(self.timeout))
    }

    /// The jobs of a selection: the socket-pass collectors together, the others alone.
    fn jobs_for(&self, selection: Option<&[String]>) -> Vec<Arc<Slot>> {
        let selected: Vec<usize> = self
            .shared
            .collectors
            .iter()
            .enumerate()
            .filter(|(_, c)| match selection {
                Some(sel) if !sel.is_empty() => sel.iter().any(|s| s == c.name()),
                _ => true,
            })
            .map(|(i, _)| i)
            .collect();
        let (pass, alone): (Vec<usize>, Vec<usize>) = selected
            .into_iter()
            .partition(|&i| !self.shared.collectors[i].socket_needs().is_empty());
        let mut keys: Vec<Vec<usize>> = alone.into_iter().map(|i| vec![i]).collect();
        if !pass.is_empty() {
            keys.insert(0, pass);
        }
        let mut jobs = lock(&self.jobs);
        keys.into_iter()
            .map(|members| {
                jobs.entry(members.clone())
                    .or_insert_with(|| {
                        Arc::new(Slot {
                            members,
                            state: Mutex::new(SlotState::default()),
                            done: Condvar::new(),
                        })
                    })
                    .clone()
            })
            .collect()
    }

    /// One scrape; jobs not done within `timeout` (None: wait as long as it takes) are
    /// reported failed and left out.
    pub fn scrape_with_timeout(
        &self,
        selection: Option<&[String]>,
        timeout: Option<Duration>,
    ) -> Vec<MetricFamily> {
        let begin = Instant::now();
        let deadline = timeout.and_then(|t| begin.checked_add(t));
        let mut families = Vec::new();
        let mut duration = COLLECTOR_DURATION.family();
        let mut success = COLLECTOR_SUCCESS.family();
        // Claim every job first so that they run in parallel, then wait for each.
        let tickets: Vec<Ticket> = self
            .jobs_for(selection)
            .iter()
            .map(|slot| slot.request(&self.shared))
            .collect();
        // Collector index -> (families, ok, seconds), to answer in registry order.
        let mut by_collector: BTreeMap<usize, (Vec<MetricFamily>, bool, f64)> = BTreeMap::new();
        // The namespaces one run read (the first run that reports them).
        let mut netns_run: Option<Arc<Run>> = None;
        for ticket in tickets {
            match ticket.wait(deadline, &self.shared) {
                Some(run) => {
                    if netns_run.is_none() && run.netns.is_some() {
                        netns_run = Some(run.clone());
                    }
                    for (&i, r) in ticket.slot.members.iter().zip(&run.results) {
                        by_collector.insert(i, (r.families.clone(), r.ok, r.seconds));
                    }
                }
                None => {
                    let waited = begin.elapsed();
                    for &i in &ticket.slot.members {
                        let name = self.shared.collectors[i].name();
                        tracing::warn!(
                            collector = name,
                            timeout_seconds = waited.as_secs_f64(),
                            "collector did not finish within the scrape timeout; reported failed in this scrape"
                        );
                        let mut totals = lock(&self.shared.errors_total);
                        *totals.entry((name, "scrape_timeout".into())).or_default() += 1;
                        drop(totals);
                        by_collector.insert(i, (Vec::new(), false, waited.as_secs_f64()));
                    }
                }
            }
        }
        for (i, (fams, ok, seconds)) in by_collector {
            let name = self.shared.collectors[i].name();
            families.extend(fams);
            duration.push(vec![("collector", name.into())], seconds);
            success.push(vec![("collector", name.into())], ok);
        }
        if self.shared.netns.is_some() {
            let report = netns_run.as_ref().and_then(|r| r.netns.as_ref());
            families.extend(self.netns_families(report));
        }
        families.push(duration);
        families.push(success);
        families.push(self.errors_family());
        families.push(build_info());
        families.extend(self.process_families());
        if let Some(w) = self.watch.get() {
            families.extend(w.families());
        }
        if let Some(events) = &self.events {
            events.observe(&families);
            families.extend(events.families());
        }
        families
    }

    /// `netstat_netns_info`, `netstat_netns`, `netstat_netns_dropped` (from the run that read
    /// the namespaces; absent when no collector that reads them was scraped) and
    /// `netstat_netns_errors_total`.
    fn netns_families(&self, report: Option<&NetnsReport>) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        if let Some(r) = report {
            let mut info = NETNS_INFO.family();
            for (label, i) in &r.read {
                info.push(
                    vec![
                        ("netns", label.clone()),
                        ("name", i.name.clone()),
                        ("container_id", i.container_id.clone()),
                        ("pod_uid", i.pod_uid.clone()),
                    ],
                    1u64,
                );
            }
            out.push(info);
            out.push(NETNS_READ.family().with(vec![], r.read.len()));
            out.push(NETNS_DROPPED.family().with(vec![], r.dropped));
        }
        let mut errors = NETNS_ERRORS.family();
        let totals = lock(&self.shared.netns_errors);
        for reason in NETNS_ERROR_REASONS {
            errors.push(
                vec![("reason", reason.to_string())],
                totals.get(reason).copied().unwrap_or(0),
            );
        }
        out.push(errors);
        out
    }

    fn errors_family(&self) -> MetricFamily {
        let mut f = SCRAPE_ERRORS.family();
        let totals = lock(&self.shared.errors_total);
        for ((collector, source), n) in totals.iter() {
            f.push(
                vec![
                    ("collector", (*collector).into()),
                    ("source", source.clone()),
                ],
                *n,
            );
        }
        f
    }

    fn process_families(&self) -> Vec<MetricFamily> {
        match process::read_self(&self.procfs) {
            Ok(p) => {
                let mut v = vec![
                    PROCESS_CPU.family().with(vec![], p.cpu_seconds),
                    PROCESS_RSS.family().with(vec![], p.resident_memory_bytes),
                    PROCESS_VSZ.family().with(vec![], p.virtual_memory_bytes),
                    PROCESS_OPEN_FDS.family().with(vec![], p.open_fds),
                    PROCESS_START.family().with(vec![], p.start_time_seconds),
                ];
                if let Some(max) = p.max_fds {
                    v.push(PROCESS_MAX_FDS.family().with(vec![], max));
                }
                v
            }
            Err(e) => {
                tracing::debug!(error = %e, "process metrics unavailable");
                Vec::new()
            }
        }
    }
}

/// Give the memory a scrape freed back to the system: with `--netns=all` one scrape of a
/// hundred namespaces allocates a few MB that glibc would otherwise keep (RSS stays at the
/// peak). A no-op with other allocators.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn build_info() -> MetricFamily {
    BUILD_INFO.family().with(
        vec![
            ("version", VERSION.into()),
            ("revision", REVISION.into()),
            ("rustc", RUSTC.into()),
        ],
        1u64,
    )
}

fn record_errors(totals: &ErrorTotals, collector: &'static str, errors: &[SourceError]) {
    for e in errors.iter().take(LOGGED_ERRORS_PER_SCRAPE) {
        tracing::warn!(collector, error = %e, "collector error");
    }
    if errors.len() > LOGGED_ERRORS_PER_SCRAPE {
        tracing::warn!(
            collector,
            more = errors.len() - LOGGED_ERRORS_PER_SCRAPE,
            "further collector errors in this scrape not logged one by one"
        );
    }
    let mut totals = lock(totals);
    for e in errors {
        *totals.entry((collector, e.source.clone())).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::SimpleCollector;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Sleeps, then reports its run number and when the run started.
    struct Counting {
        delay: Duration,
        runs: Arc<AtomicU64>,
        epoch: Instant,
    }

    impl SimpleCollector for Counting {
        fn name(&self) -> &'static str {
            "sockets"
        }
        fn collect(&self, _ns: &Netns) -> Collected {
            let started = self.epoch.elapsed().as_secs_f64();
            std::thread::sleep(self.delay);
            let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            Collected {
                families: vec![
                    MetricFamily::gauge("test_run", "run number").with(vec![], n),
                    MetricFamily::gauge("test_started", "run start").with(vec![], started),
                ],
                errors: vec![],
            }
        }
    }

    fn value(families: &[MetricFamily], name: &str) -> f64 {
        families
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.samples[0].value.as_f64())
            .unwrap_or(f64::NAN)
    }

    fn scraper(delay_ms: u64) -> (Arc<Scraper>, Arc<AtomicU64>, Instant) {
        let runs = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let c = Counting {
            delay: Duration::from_millis(delay_ms),
            runs: runs.clone(),
            epoch,
        };
        (
            Arc::new(Scraper::new(vec![Box::new(c)], "/nonexistent".into())),
            runs,
            epoch,
        )
    }

    #[test]
    fn simultaneous_scrapes_share_one_collection() {
        let (s, runs, _) = scraper(300);
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                let b = barrier.clone();
                std::thread::spawn(move || {
                    b.wait();
                    value(&s.scrape(None), "test_run")
                })
            })
            .collect();
        let got: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // All eight arrive within microseconds: the first starts run 1; any that arrive
        // after it started wait for run 2, which they all share.
        let n = runs.load(Ordering::SeqCst);
        assert!(n <= 2, "{n} collections for 8 simultaneous scrapes");
        assert!(got.iter().all(|v| *v >= 1.0 && *v <= 2.0), "{got:?}");
    }

    #[test]
    fn late_arrivals_get_data_read_after_they_arrived() {
        let (s, runs, epoch) = scraper(400);
        let first = {
            let s = s.clone();
            std::thread::spawn(move || value(&s.scrape(None), "test_run"))
        };
        std::thread::sleep(Duration::from_millis(100));
        // Run 1 is in flight and started before these requests: they must get run 2.
        let late: Vec<_> = (0..5)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let arrived = epoch.elapsed().as_secs_f64();
                    let f = s.scrape(None);
                    (arrived, value(&f, "test_run"), value(&f, "test_started"))
                })
            })
            .collect();
        assert_eq!(first.join().unwrap(), 1.0);
        for h in late {
            let (arrived, run, started) = h.join().unwrap();
            assert_eq!(run, 2.0);
            assert!(
                started >= arrived,
                "data read at {started} for a request at {arrived}"
            );
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "the late ones shared one collection"
        );
        // Sequential scrapes each collect afresh.
        assert_eq!(value(&s.scrape(None), "test_run"), 3.0);
    }

    #[test]
    fn overrunning_collector_fails_the_scrape_and_does_not_pile_up() {
        let (s, runs, _) = scraper(1000);
        let t = Instant::now();
        let f = s.scrape_with_timeout(None, Some(Duration::from_millis(100)));
        assert!(t.elapsed() < Duration::from_millis(500));
        let success = f
            .iter()
            .find(|f| f.name == "netstat_scrape_collector_success")
            .unwrap();
        assert_eq!(success.samples[0].value.as_f64(), 0.0);
        assert!(f.iter().all(|f| f.name != "test_run"));
        // More impatient scrapes while it runs: still one collection in flight.
        for _ in 0..5 {
            let _ = s.scrape_with_timeout(None, Some(Duration::from_millis(20)));
        }
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The next patient scrape gets a fresh run (2: the one queued by the impatient ones).
        let f = s.scrape_with_timeout(None, Some(Duration::from_secs(5)));
        assert!(value(&f, "test_run") >= 2.0);
        assert!(runs.load(Ordering::SeqCst) <= 3);
    }

    struct Panics;
    impl SimpleCollector for Panics {
        fn name(&self) -> &'static str {
            "interfaces"
        }
        fn collect(&self, _ns: &Netns) -> Collected {
            panic!("test panic")
        }
    }

    #[test]
    fn a_panicking_collector_is_reported_failed() {
        let s = Scraper::new(vec![Box::new(Panics)], "/nonexistent".into());
        for _ in 0..2 {
            let f = s.scrape(None);
            let success = f
                .iter()
                .find(|f| f.name == "netstat_scrape_collector_success")
                .unwrap();
            assert_eq!(success.samples[0].value.as_f64(), 0.0);
        }
    }
}
