//! Runs the enabled collectors for one request and adds the exporter's own metrics:
//! per-collector duration and success, parse/read error counters, build info and `process_*`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use crate::collectors::{self, Collector};
use crate::config::Config;
use crate::metrics::MetricFamily;
use crate::source::process;

/// How many errors of one collector are logged one by one per scrape; the rest are summed up
/// in one line so that a file full of garbage cannot flood the log.
const LOGGED_ERRORS_PER_SCRAPE: usize = 5;

pub struct Scraper {
    collectors: Vec<Box<dyn Collector>>,
    procfs: PathBuf,
    /// (collector, source) -> errors since start, for `netstat_scrape_errors_total`.
    errors_total: Mutex<BTreeMap<(&'static str, String), u64>>,
}

/// Build metadata, filled in by build.rs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("NETSTAT_EXPORTER_REVISION");
pub const RUSTC: &str = env!("NETSTAT_EXPORTER_RUSTC");

impl Scraper {
    pub fn new(collectors: Vec<Box<dyn Collector>>, procfs: PathBuf) -> Self {
        Scraper {
            collectors,
            procfs,
            errors_total: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn from_config(config: &Config) -> Self {
        Self::new(collectors::build(config), config.procfs.clone())
    }

    pub fn collector_names(&self) -> Vec<&'static str> {
        self.collectors.iter().map(|c| c.name()).collect()
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

    /// One scrape: the selected collectors (all enabled ones when `selection` is None or
    /// empty), then the exporter's own metrics. Blocking: call it off the async runtime.
    pub fn scrape(&self, selection: Option<&[String]>) -> Vec<MetricFamily> {
        let mut families = Vec::new();
        let mut duration = MetricFamily::gauge(
            "netstat_scrape_collector_duration_seconds",
            "Time the collector took in this scrape.",
        );
        let mut success = MetricFamily::gauge(
            "netstat_scrape_collector_success",
            "1 if the collector read everything without error in this scrape, 0 if it met a problem (the log says which file and line).",
        );
        for c in &self.collectors {
            let name = c.name();
            if let Some(sel) = selection {
                if !sel.is_empty() && !sel.iter().any(|s| s == name) {
                    continue;
                }
            }
            let start = Instant::now();
            let collected = c.collect();
            let elapsed = start.elapsed().as_secs_f64();
            families.extend(collected.families);
            let ok = collected.errors.is_empty();
            if !ok {
                self.record_errors(name, &collected.errors);
            }
            duration.push(vec![("collector", name.into())], elapsed);
            success.push(vec![("collector", name.into())], ok);
        }
        families.push(duration);
        families.push(success);
        families.push(self.errors_family());
        families.push(build_info());
        families.extend(self.process_families());
        families
    }

    fn record_errors(&self, collector: &'static str, errors: &[crate::source::SourceError]) {
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
        let mut totals = self.errors_total.lock().unwrap_or_else(|p| p.into_inner());
        for e in errors {
            *totals.entry((collector, e.source.clone())).or_default() += 1;
        }
    }

    fn errors_family(&self) -> MetricFamily {
        let mut f = MetricFamily::counter(
            "netstat_scrape_errors",
            "Problems met by a collector since the exporter started, by source (a file below the procfs root such as net/tcp6, or a netlink dump): malformed lines skipped, unreadable files, failed dumps.",
        );
        let totals = self.errors_total.lock().unwrap_or_else(|p| p.into_inner());
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
