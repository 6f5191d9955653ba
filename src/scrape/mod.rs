//! The engine: one request runs the selected collectors, grouped into jobs that are coalesced
//! ([`coalesce`]); a job's run reads every namespace with ONE pass over each socket table
//! ([`fanout`]); then the exporter's own metrics (declared in [`crate::self_metrics`]) are
//! added, and what a run freed is given back ([`memory`]).

mod coalesce;
mod fanout;
mod memory;

pub use fanout::merge_families;
pub use memory::release_memory;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::collectors::rows::{CollectorStatus, NamespaceRow, Scraped};
use crate::collectors::{self, Collector};
use crate::config::{Config, NetnsConfig};
use crate::metrics::{Desc, MetricFamily};
use crate::self_metrics::*;
use crate::source::netns::Netns;
use crate::source::sockets::{SocketSource, SourceMode};
use crate::source::{process, SourceError};

use coalesce::{Run, Slot, SlotState, Ticket};
use fanout::{NetnsAll, NetnsReport, Shared};

/// How many errors of one collector are logged one by one per scrape; the rest are summed up
/// in one line so that a file full of garbage cannot flood the log.
const LOGGED_ERRORS_PER_SCRAPE: usize = 5;

/// Scrape timeout when neither the request nor the configuration gives one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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
pub(super) type ErrorTotals = Mutex<BTreeMap<(&'static str, String), u64>>;

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
    /// Requests so far (each one's runs share a namespace discovery).
    requests: std::sync::atomic::AtomicU64,
    /// The runs the change log observed last (job, run number), to observe each once.
    observed: Mutex<Vec<(Vec<usize>, u64)>>,
    /// The watch, once started ([`Scraper::start_watch`]).
    watch: std::sync::OnceLock<crate::watch::Watch>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
                unprivileged_until: Mutex::new(None),
                discovered: Mutex::new(None),
            }),
            jobs: Mutex::new(HashMap::new()),
            procfs,
            timeout: DEFAULT_TIMEOUT,
            events: None,
            requests: std::sync::atomic::AtomicU64::new(0),
            observed: Mutex::new(Vec::new()),
            watch: std::sync::OnceLock::new(),
        }
    }

    /// The enabled collectors of `config`, reading the exporter's own namespace, with the
    /// change log. An error is a collector's flag that does not validate.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let netlink = config.sockets_source() != SourceMode::Proc;
        let own = Netns::own(&config.procfs, &config.sysfs, netlink);
        Ok(Self::with_namespaces(
            config.build_collectors()?,
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
        self.scrape_runs(selection, timeout, false).0
    }

    /// [`scrape_with_timeout`](Self::scrape_with_timeout), with what the scrape read typed
    /// (the rows the families were rendered from, each collector's outcome, the namespaces):
    /// what the snapshot is made of.
    pub fn scrape_typed(
        &self,
        selection: Option<&[String]>,
        timeout: Option<Duration>,
    ) -> (Vec<MetricFamily>, Scraped) {
        self.scrape_runs(selection, timeout, true)
    }

    /// One scrape; its rows are gathered from the runs (copied) only when `want_rows` or
    /// when the change log observes this scrape.
    fn scrape_runs(
        &self,
        selection: Option<&[String]>,
        timeout: Option<Duration>,
        want_rows: bool,
    ) -> (Vec<MetricFamily>, Scraped) {
        let begin = Instant::now();
        let deadline = timeout.and_then(|t| begin.checked_add(t));
        let mut families = Vec::new();
        let mut duration = COLLECTOR_DURATION.family();
        let mut success = COLLECTOR_SUCCESS.family();
        // Claim every job first so that they run in parallel, then wait for each.
        let request = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tickets: Vec<Ticket> = self
            .jobs_for(selection)
            .iter()
            .map(|slot| slot.request(&self.shared, request))
            .collect();
        // Collector index -> (families, ok, seconds), to answer in registry order.
        let mut by_collector: BTreeMap<usize, (Vec<MetricFamily>, bool, f64)> = BTreeMap::new();
        // Collector index -> its run and its place among the run's results (for its rows).
        let mut rows_at: BTreeMap<usize, (Arc<Run>, usize)> = BTreeMap::new();
        // The namespaces one run read (the first run that reports them).
        let mut netns_run: Option<Arc<Run>> = None;
        // Which run of each job this request got, and whether it covers every collector.
        let mut runs: Vec<(Vec<usize>, u64)> = Vec::new();
        let every = tickets.iter().map(|t| t.slot.members.len()).sum::<usize>()
            == self.shared.collectors.len();
        for ticket in tickets {
            match ticket.wait(deadline, &self.shared) {
                Some(run) => {
                    runs.push((ticket.slot.members.clone(), run.number));
                    if netns_run.is_none() && run.netns.is_some() {
                        netns_run = Some(run.clone());
                    }
                    for (k, (&i, r)) in ticket.slot.members.iter().zip(&run.results).enumerate() {
                        by_collector.insert(i, (r.families.clone(), r.ok, r.seconds));
                        rows_at.insert(i, (run.clone(), k));
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
        let mut scraped = Scraped::default();
        for (i, (fams, ok, seconds)) in by_collector {
            let name = self.shared.collectors[i].name();
            families.extend(fams);
            scraped.collectors.push(CollectorStatus {
                name: name.into(),
                success: ok,
                duration_seconds: seconds,
            });
        }
        // The self-metrics of the collectors, rendered from their statuses.
        for c in &scraped.collectors {
            duration.push(vec![("collector", c.name.clone())], c.duration_seconds);
            success.push(vec![("collector", c.name.clone())], c.success);
        }
        if self.shared.netns.is_some() {
            let report = netns_run.as_ref().and_then(|r| r.netns.as_ref());
            scraped.namespaces = report.map(namespace_rows);
            families.extend(self.netns_families(scraped.namespaces.as_deref(), report));
        }
        families.push(duration);
        families.push(success);
        families.push(self.errors_family());
        families.push(build_info());
        let process = process::read_self(&self.procfs)
            .map_err(|e| tracing::debug!(error = %e, "process metrics unavailable"))
            .ok();
        scraped.start_time_seconds = process.as_ref().map(|p| p.start_time_seconds);
        families.extend(process.map(process_families).unwrap_or_default());
        if let Some(w) = self.watch.get() {
            families.extend(w.families());
        }
        // The change log observes each finished set of runs once: not again for another
        // request served by the same runs (a page poll next to a Prometheus scrape), and never
        // a collect[] subset (a partial view). A job that timed out is in no run here: its
        // collectors are reported failed and the log carries their last view.
        let observe = self.events.is_some() && every && self.first_to_observe(runs);
        if want_rows || observe {
            for (run, k) in rows_at.values() {
                if let Some(r) = run.results.get(*k) {
                    scraped.rows.extend(r.rows.clone());
                }
            }
        }
        if let Some(events) = &self.events {
            if observe {
                // The watch's completed ticks: its first family, netstat_watch_ticks_total.
                scraped.watch_ticks = self.watch.get().and_then(|w| {
                    let f = w.families().into_iter().next()?;
                    let v = f.samples.first()?.value.as_f64();
                    (v >= 0.0).then_some(v as u64)
                });
                events.observe(&scraped);
            }
            families.extend(events.families());
        }
        (families, scraped)
    }

    /// Whether the runs `runs` (job, run number) were not observed yet; records them.
    fn first_to_observe(&self, mut runs: Vec<(Vec<usize>, u64)>) -> bool {
        runs.sort();
        let mut last = lock(&self.observed);
        if *last == runs {
            return false;
        }
        *last = runs;
        true
    }

    /// `netstat_netns_info`, `netstat_netns`, `netstat_netns_dropped` (from the run that read
    /// the namespaces; absent when no collector that reads them was scraped) and
    /// `netstat_netns_errors_total`.
    fn netns_families(
        &self,
        rows: Option<&[NamespaceRow]>,
        report: Option<&NetnsReport>,
    ) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        if let (Some(rows), Some(r)) = (rows, report) {
            let mut info = NETNS_INFO.family();
            for n in rows {
                info.push(
                    vec![
                        ("netns", n.netns.clone()),
                        ("name", n.name.clone()),
                        ("container_id", n.container_id.clone()),
                        ("pod_uid", n.pod_uid.clone()),
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
}

/// The namespaces of a run's report, typed (`netstat_netns_info` is rendered from them).
fn namespace_rows(r: &NetnsReport) -> Vec<NamespaceRow> {
    r.read
        .iter()
        .map(|(label, i)| NamespaceRow {
            netns: label.clone(),
            name: i.name.clone(),
            container_id: i.container_id.clone(),
            pod_uid: i.pod_uid.clone(),
        })
        .collect()
}

/// The exporter's process metrics.
fn process_families(p: process::ProcessStats) -> Vec<MetricFamily> {
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

pub(super) fn record_errors(totals: &ErrorTotals, collector: &'static str, errors: &[SourceError]) {
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
    use crate::collectors::{Collected, SimpleCollector};
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
                ..Collected::default()
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

    /// The change log observes each run once, whatever the number of requests it serves, and
    /// never a collect[] subset.
    #[test]
    fn the_change_log_observes_each_run_once_and_no_subset() {
        let runs = Arc::new(AtomicU64::new(0));
        let counting = |name| {
            let c = Counting {
                delay: Duration::from_millis(300),
                runs: runs.clone(),
                epoch: Instant::now(),
            };
            Box::new(Named(name, c)) as Box<dyn Collector>
        };
        let log = Arc::new(crate::events::EventLog::new(10));
        let s = Arc::new(
            Scraper::new(
                vec![counting("sockets"), counting("interfaces")],
                "/nonexistent".into(),
            )
            .with_events(Some(log.clone())),
        );
        let observed = || log.since(0, 10).scrapes;
        s.scrape(None);
        assert_eq!(observed(), 1);
        // Four requests at once share one run of each job (or two): observed at most twice.
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (s, b) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    s.scrape(None);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let after = observed();
        assert!((2..=3).contains(&after), "{after} observations");
        // A subset is collected but not observed.
        s.scrape(Some(&["sockets".to_string()]));
        assert_eq!(observed(), after);
        s.scrape(None);
        assert_eq!(observed(), after + 1);
    }

    /// A collector of another name.
    struct Named(&'static str, Counting);

    impl SimpleCollector for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn collect(&self, ns: &Netns) -> Collected {
            self.1.collect(ns)
        }
    }

    /// A listeners collector whose listeners are the ports in `.0`, made into rows and
    /// families by the listeners collector's own functions.
    struct Ports(Arc<Mutex<Vec<u16>>>);

    impl SimpleCollector for Ports {
        fn name(&self) -> &'static str {
            "listeners"
        }
        fn collect(&self, _ns: &Netns) -> Collected {
            use crate::collectors::listeners::{self, ListenerAgg, ListenerKey, RenderOptions};
            use crate::source::inet::{Family, Protocol};
            let raw = lock(&self.0)
                .iter()
                .map(|&port| {
                    let key = ListenerKey {
                        protocol: Protocol::Tcp,
                        family: Family::Ipv4,
                        address: std::net::Ipv4Addr::LOCALHOST.into(),
                        port,
                    };
                    (key, ListenerAgg::default())
                })
                .collect();
            let (services, users, owners) = Default::default();
            let ls = listeners::resolve_names(raw, &services, &users, &owners, None);
            let opts = RenderOptions {
                limits: false,
                attribution: false,
                expected: false,
            };
            let rows = listeners::rows(&ls, opts, None);
            Collected {
                families: listeners::render(&rows, 0, opts),
                rows: crate::collectors::rows::Rows {
                    listeners: Some(crate::collectors::rows::Listeners {
                        rows,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                errors: vec![],
            }
        }
    }

    /// The change log is fed the rows of the scrape the engine ran (and the snapshot gets
    /// the same): opened, then closed when the last listener is gone.
    #[test]
    fn the_rows_of_a_run_reach_the_change_log_and_the_snapshot() {
        let ports = Arc::new(Mutex::new(vec![8080]));
        let log = Arc::new(crate::events::EventLog::new(10));
        let s = Scraper::new(vec![Box::new(Ports(ports.clone()))], "/nonexistent".into())
            .with_events(Some(log.clone()));
        let (_, scraped) = s.scrape_typed(None, None);
        let l = scraped.rows.listeners.as_ref().unwrap();
        assert_eq!(l.rows[0].port, 8080);
        assert_eq!(scraped.collectors[0].name, "listeners");
        assert!(scraped.collectors[0].success);
        lock(&ports).push(8081);
        s.scrape(None);
        lock(&ports).clear();
        s.scrape(None);
        let kinds: Vec<(&str, u16)> = log
            .since(0, 10)
            .events
            .iter()
            .map(|e| match &e.subject {
                crate::events::Subject::Listener { port, .. } => (e.kind.as_str(), *port),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("listener_opened", 8081),
                ("listener_closed", 8080),
                ("listener_closed", 8081)
            ],
            "the last listener going is an event too"
        );
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
