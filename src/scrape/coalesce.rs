//! Coalescing: a job (a set of collectors) has at most one run in flight; concurrent
//! requests share it, and a request never gets data read before it arrived.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::fanout::{NetnsReport, Shared};
use super::{lock, record_errors};
use crate::collectors::rows::Rows;
use crate::collectors::{Collected, Collector};
use crate::metrics::MetricFamily;
use crate::source::SourceError;

/// One job and its coalescing state.
pub(super) struct Slot {
    pub(super) members: Vec<usize>,
    pub(super) state: Mutex<SlotState>,
    pub(super) done: Condvar,
}

#[derive(Default)]
pub(super) struct SlotState {
    /// Number of the last run started (1-based; 0: none yet).
    pub(super) started: u64,
    /// Whether run `started` is still going.
    pub(super) running: bool,
    /// Number and result of the last run that finished.
    pub(super) finished: u64,
    pub(super) last: Option<Arc<Run>>,
}

/// What one run of a job produced, per member collector, shared by all requests it serves.
pub(super) struct Run {
    /// The run's number in its job (1-based): requests served by the same run see the same.
    pub(super) number: u64,
    pub(super) results: Vec<CollectorRun>,
    pub(super) netns: Option<NetnsReport>,
}

pub(super) struct CollectorRun {
    pub(super) families: Vec<MetricFamily>,
    /// The typed rows behind the families (see crate::collectors::rows).
    pub(super) rows: Rows,
    pub(super) ok: bool,
    pub(super) seconds: f64,
}

/// A request's claim on a job: the number of the first run that started after the request
/// arrived.
pub(super) struct Ticket {
    pub(super) slot: Arc<Slot>,
    pub(super) wanted: u64,
    /// The request that holds it: the runs a request starts share one namespace discovery.
    pub(super) request: u64,
}

impl Slot {
    /// Claim a run that starts after now, starting one if none is going.
    pub(super) fn request(self: &Arc<Self>, shared: &Arc<Shared>, request: u64) -> Ticket {
        let mut st = lock(&self.state);
        let wanted = st.started + 1;
        if !st.running {
            self.start(&mut st, shared, request);
        }
        Ticket {
            slot: self.clone(),
            wanted,
            request,
        }
    }

    pub(super) fn name(&self, shared: &Shared) -> String {
        self.members
            .iter()
            .map(|&i| shared.collectors[i].name())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Start run `started + 1` in its own thread. Called with the state locked and no run
    /// going.
    pub(super) fn start(self: &Arc<Self>, st: &mut SlotState, shared: &Arc<Shared>, request: u64) {
        st.started += 1;
        st.running = true;
        let number = st.started;
        let slot = self.clone();
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("collect-{}", self.name(shared)))
            .spawn(move || slot.run(number, &sh, request));
        if let Err(e) = spawned {
            tracing::error!(job = %self.name(shared), error = %e, "cannot start a collection thread");
            st.running = false;
            st.finished = number;
            st.last = Some(Arc::new(Run {
                number,
                results: self
                    .members
                    .iter()
                    .map(|_| CollectorRun {
                        families: Vec::new(),
                        rows: Rows::default(),
                        ok: false,
                        seconds: 0.0,
                    })
                    .collect(),
                netns: None,
            }));
            self.done.notify_all();
        }
    }

    pub(super) fn run(&self, number: u64, shared: &Shared, request: u64) {
        let members: Vec<&dyn Collector> = self
            .members
            .iter()
            .map(|&i| shared.collectors[i].as_ref())
            .collect();
        let outcome = catch_unwind(AssertUnwindSafe(|| shared.collect(&self.members, request)));
        let (collected, netns) = outcome.unwrap_or_else(|_| {
            let failed = members
                .iter()
                .map(|c| {
                    let collected = Collected {
                        errors: vec![SourceError {
                            source: "panic".into(),
                            location: format!("collector {}", c.name()),
                            line: None,
                            message: "the collector panicked (a bug: please report it)".into(),
                        }],
                        ..Collected::default()
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
                    rows: collected.rows,
                    ok,
                    seconds,
                }
            })
            .collect();
        let mut st = lock(&self.state);
        st.running = false;
        st.finished = number;
        st.last = Some(Arc::new(Run {
            number,
            results,
            netns,
        }));
        self.done.notify_all();
        drop(st);
        // Once per run, whatever the number of requests it serves.
        super::release_memory();
    }
}

impl Ticket {
    /// Wait for the claimed run (or a later one) until `deadline`. None: timed out.
    pub(super) fn wait(&self, deadline: Option<Instant>, shared: &Arc<Shared>) -> Option<Arc<Run>> {
        let slot = &self.slot;
        let mut st = lock(&slot.state);
        loop {
            if st.finished >= self.wanted {
                return st.last.clone();
            }
            if !st.running {
                // The run that was going when we arrived is over: start ours (it serves
                // everyone who arrived while the previous one ran).
                slot.start(&mut st, shared, self.request);
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
