//! Runs the enabled collectors for one request and adds the exporter's own metrics:
//! per-collector duration and success, parse/read error counters, build info and `process_*`.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::collectors::{self, Collected, Collector};
use crate::config::Config;
use crate::metrics::MetricFamily;
use crate::source::{process, SourceError};

/// How many errors of one collector are logged one by one per scrape; the rest are summed up
/// in one line so that a file full of garbage cannot flood the log.
const LOGGED_ERRORS_PER_SCRAPE: usize = 5;

/// Scrape timeout when neither the request nor the configuration gives one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// (collector, source) -> errors since start, for `netstat_scrape_errors_total`.
type ErrorTotals = Mutex<BTreeMap<(&'static str, String), u64>>;

/// Runs the collectors. Scrapes are coalesced per collector: at most one collection of a
/// collector is in flight at any time, and concurrent requests share it.
///
/// A request never gets data read before it arrived: if a collection is already running
/// when a request comes in, the request waits for the next one, which starts as soon as the
/// running one ends and serves every request that arrived meanwhile (two Prometheus replicas
/// scraping at once cost one collection, or two if the second arrives mid-collection).
///
/// A collector that has not finished by the request's deadline is reported failed for that
/// request (`netstat_scrape_collector_success 0`) and the other collectors' data is returned.
/// Its collection keeps running in its own thread to completion; since there is at most one
/// in flight per collector, a stuck collector cannot pile up threads.
pub struct Scraper {
    collectors: Vec<Arc<Slot>>,
    procfs: PathBuf,
    errors_total: Arc<ErrorTotals>,
    timeout: Duration,
    // events: change log fed by every scrape (see crate::events)
    events: Option<Arc<crate::events::EventLog>>,
}

/// One collector and its coalescing state.
struct Slot {
    collector: Arc<dyn Collector>,
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct SlotState {
    /// Number of the last collection started (1-based; 0: none yet).
    started: u64,
    /// Whether collection `started` is still running.
    running: bool,
    /// Number and result of the last collection that finished.
    finished: u64,
    last: Option<Arc<Run>>,
}

/// What one collection produced, shared by all requests it serves.
struct Run {
    families: Vec<MetricFamily>,
    ok: bool,
    seconds: f64,
}

/// A request's claim on a collector: the number of the first collection that started after
/// the request arrived.
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
    /// Claim a collection that starts after now, starting one if none is running.
    fn request(self: &Arc<Self>, errors_total: &Arc<ErrorTotals>) -> Ticket {
        let mut st = lock(&self.state);
        let wanted = st.started + 1;
        if !st.running {
            self.start(&mut st, errors_total);
        }
        Ticket {
            slot: self.clone(),
            wanted,
        }
    }

    /// Start collection `started + 1` in its own thread. Called with the state locked and no
    /// collection running.
    fn start(self: &Arc<Self>, st: &mut SlotState, errors_total: &Arc<ErrorTotals>) {
        st.started += 1;
        st.running = true;
        let number = st.started;
        let slot = self.clone();
        let totals = errors_total.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("collect-{}", self.collector.name()))
            .spawn(move || slot.run(number, &totals));
        if let Err(e) = spawned {
            let name = self.collector.name();
            tracing::error!(collector = name, error = %e, "cannot start a collection thread");
            st.running = false;
            st.finished = number;
            st.last = Some(Arc::new(Run {
                families: Vec::new(),
                ok: false,
                seconds: 0.0,
            }));
            self.done.notify_all();
        }
    }

    fn run(&self, number: u64, errors_total: &ErrorTotals) {
        let name = self.collector.name();
        let begin = Instant::now();
        let collected =
            catch_unwind(AssertUnwindSafe(|| self.collector.collect())).unwrap_or_else(|_| {
                Collected {
                    families: Vec::new(),
                    errors: vec![SourceError {
                        source: "panic".into(),
                        location: format!("collector {name}"),
                        line: None,
                        message: "the collector panicked (a bug: please report it)".into(),
                    }],
                }
            });
        let seconds = begin.elapsed().as_secs_f64();
        let ok = collected.errors.is_empty();
        if !ok {
            record_errors(errors_total, name, &collected.errors);
        }
        let run = Arc::new(Run {
            families: collected.families,
            ok,
            seconds,
        });
        let mut st = lock(&self.state);
        st.running = false;
        st.finished = number;
        st.last = Some(run);
        self.done.notify_all();
    }
}

impl Ticket {
    /// Wait for the claimed collection (or a later one) until `deadline`. None: timed out.
    fn wait(&self, deadline: Option<Instant>, errors_total: &Arc<ErrorTotals>) -> Option<Arc<Run>> {
        let slot = &self.slot;
        let mut st = lock(&slot.state);
        loop {
            if st.finished >= self.wanted {
                return st.last.clone();
            }
            if !st.running {
                // The collection that was running when we arrived is over: start ours (it
                // serves everyone who arrived while the previous one ran).
                slot.start(&mut st, errors_total);
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

impl Scraper {
    pub fn new(collectors: Vec<Box<dyn Collector>>, procfs: PathBuf) -> Self {
        Scraper {
            collectors: collectors
                .into_iter()
                .map(|c| {
                    Arc::new(Slot {
                        collector: Arc::from(c),
                        state: Mutex::new(SlotState::default()),
                        done: Condvar::new(),
                    })
                })
                .collect(),
            procfs,
            errors_total: Arc::new(Mutex::new(BTreeMap::new())),
            timeout: DEFAULT_TIMEOUT,
            events: None, // events
        }
    }

    pub fn from_config(config: &Config) -> Self {
        Self::new(collectors::build(config), config.procfs.clone())
            .with_timeout(config.web_scrape_timeout)
            .with_events(crate::events::EventLog::from_config(config)) // events
    }

    // events: attach the change log (None: no change log).
    pub fn with_events(mut self, events: Option<Arc<crate::events::EventLog>>) -> Self {
        self.events = events;
        self
    }

    // events: the change log, for /api/v1/events.
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
        self.collectors.iter().map(|c| c.collector.name()).collect()
    }

    /// Check a `collect[]` selection: every name must be an enabled collector.
    pub fn check_selection(&self, names: &[String]) -> Result<(), String> {
        let enabled = self.collector_names();
        for n in names {
            if enabled.contains(&n.as_str()) {
                continue;
            }
            let known = collectors::AVAILABLE.iter().any(|c| c.name == n);
            return Err(if known {
                format!(
                    "collector {n:?} is disabled on this exporter (enabled: {})",
                    enabled.join(", ")
                )
            } else {
                format!(
                    "unknown collector {n:?} in collect[] (available: {})",
                    collectors::AVAILABLE
                        .iter()
                        .map(|c| c.name)
                        .collect::<Vec<_>>()
                        .join(", ")
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

    /// One scrape; collectors not done within `timeout` (None: wait as long as it takes) are
    /// reported failed and left out.
    pub fn scrape_with_timeout(
        &self,
        selection: Option<&[String]>,
        timeout: Option<Duration>,
    ) -> Vec<MetricFamily> {
        let begin = Instant::now();
        let deadline = timeout.and_then(|t| begin.checked_add(t));
        let mut families = Vec::new();
        let mut duration = MetricFamily::gauge(
            "netstat_scrape_collector_duration_seconds",
            "Time the collector took in this scrape.",
        );
        let mut success = MetricFamily::gauge(
            "netstat_scrape_collector_success",
            "1 if the collector read everything without error in this scrape, 0 if it met a problem (the log says which file and line).",
        );
        // Claim every collection first so that they run in parallel, then wait for each.
        let tickets: Vec<Ticket> = self
            .collectors
            .iter()
            .filter(|slot| match selection {
                Some(sel) if !sel.is_empty() => sel.iter().any(|s| s == slot.collector.name()),
                _ => true,
            })
            .map(|slot| slot.request(&self.errors_total))
            .collect();
        for ticket in tickets {
            let name = ticket.slot.collector.name();
            match ticket.wait(deadline, &self.errors_total) {
                Some(run) => {
                    families.extend(run.families.iter().cloned());
                    duration.push(vec![("collector", name.into())], run.seconds);
                    success.push(vec![("collector", name.into())], run.ok);
                }
                None => {
                    let waited = begin.elapsed();
                    tracing::warn!(
                        collector = name,
                        timeout_seconds = waited.as_secs_f64(),
                        "collector did not finish within the scrape timeout; reported failed in this scrape"
                    );
                    let mut totals = lock(&self.errors_total);
                    *totals.entry((name, "scrape_timeout".into())).or_default() += 1;
                    drop(totals);
                    duration.push(vec![("collector", name.into())], waited.as_secs_f64());
                    success.push(vec![("collector", name.into())], false);
                }
            }
        }
        families.push(duration);
        families.push(success);
        families.push(self.errors_family());
        families.push(build_info());
        families.extend(self.process_families());
        if let Some(events) = &self.events {
            events.observe(&families); // events
            families.extend(events.families()); // events
        }
        families
    }

    fn errors_family(&self) -> MetricFamily {
        let mut f = MetricFamily::counter(
            "netstat_scrape_errors",
            "Problems met by a collector since the exporter started, by source (a file below the procfs root such as net/tcp6, or a netlink dump): malformed lines skipped, unreadable files, failed dumps.",
        );
        let totals = lock(&self.errors_total);
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
                    MetricFamily::counter(
                        "process_cpu_seconds",
                        "Total user and system CPU time spent in seconds.",
                    )
                    .with(vec![], p.cpu_seconds),
                    MetricFamily::gauge(
                        "process_resident_memory_bytes",
                        "Resident memory size in bytes.",
                    )
                    .with(vec![], p.resident_memory_bytes),
                    MetricFamily::gauge(
                        "process_virtual_memory_bytes",
                        "Virtual memory size in bytes.",
                    )
                    .with(vec![], p.virtual_memory_bytes),
                    MetricFamily::gauge("process_open_fds", "Number of open file descriptors.")
                        .with(vec![], p.open_fds),
                    MetricFamily::gauge(
                        "process_start_time_seconds",
                        "Start time of the process since unix epoch in seconds.",
                    )
                    .with(vec![], p.start_time_seconds),
                ];
                if let Some(max) = p.max_fds {
                    v.push(
                        MetricFamily::gauge(
                            "process_max_fds",
                            "Maximum number of open file descriptors.",
                        )
                        .with(vec![], max),
                    );
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

fn build_info() -> MetricFamily {
    MetricFamily::gauge(
        "netstat_exporter_build_info",
        "A metric with a constant '1' value labeled by version, revision and rustc version from which netstat_exporter was built.",
    )
    .with(
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
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Sleeps, then reports its run number and when the run started.
    struct Counting {
        delay: Duration,
        runs: Arc<AtomicU64>,
        epoch: Instant,
    }

    impl Collector for Counting {
        fn name(&self) -> &'static str {
            "sockets"
        }
        fn collect(&self) -> Collected {
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
    impl Collector for Panics {
        fn name(&self) -> &'static str {
            "interfaces"
        }
        fn collect(&self) -> Collected {
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
