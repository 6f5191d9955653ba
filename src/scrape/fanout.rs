//! One run of a job: namespace discovery (`--netns=all`), then per namespace ONE pass over
//! each socket table shared by every collector that needs sockets, then each collector's own
//! reads; families labelled with their namespace and merged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{lock, record_errors, ErrorTotals};

/// After entering a namespace was refused (EPERM), namespaces are read through
/// /proc/<pid>/net for this long, then entering is tried again: at most one refused setns per
/// namespace and period.
/// The namespaces one discovery found, each with what its processes say of it.
pub(super) type Discovered = Arc<Vec<(Found, NetnsInfo)>>;

pub(super) const RETRY_ENTER: Duration = Duration::from_secs(300);
use crate::collectors::{Collected, Collection, Collector};
use crate::config::NetnsConfig;
use crate::metrics::MetricFamily;
use crate::source::inet::{InetSocket, UnixSocket};
use crate::source::netns::{self, Found, Netns, NetnsInfo};
use crate::source::sockets::{SocketNeeds, SocketSource, SocketVisitor};

/// What every job run reads.
pub(super) struct Shared {
    pub(super) collectors: Vec<Arc<dyn Collector>>,
    pub(super) source: SocketSource,
    /// The exporter's own namespace, always read first.
    pub(super) own: Netns,
    /// `--netns=all`: the other namespaces and which collectors read them.
    pub(super) netns: Option<NetnsAll>,
    pub(super) procfs: PathBuf,
    pub(super) errors_total: ErrorTotals,
    /// reason -> namespaces skipped since start, for `netstat_netns_errors_total`.
    pub(super) netns_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Entering a namespace was refused (no CAP_SYS_ADMIN): read /proc/<pid>/net from then on.
    /// Entering a namespace was refused (no CAP_SYS_ADMIN): until then, read /proc/<pid>/net
    /// of a process in it instead; then try entering again (a capability granted later, or a
    /// refusal that was about one namespace only, is not a downgrade for the process's life).
    pub(super) unprivileged_until: Mutex<Option<Instant>>,
    /// The last discovery (`--netns=all`) and the request whose runs share it: the jobs a
    /// request starts (the socket pass, the interfaces) read the same namespaces, found once.
    pub(super) discovered: Mutex<Option<(u64, Discovered)>>,
}

pub(super) struct NetnsAll {
    pub(super) config: NetnsConfig,
    /// Per collector (index in `Shared::collectors`): whether it reads other namespaces.
    pub(super) reads: Vec<bool>,
}

/// The namespaces one run read, for `netstat_netns_info` and friends.
pub(super) struct NetnsReport {
    /// (label, info) of every namespace read.
    pub(super) read: Vec<(String, NetnsInfo)>,
    pub(super) dropped: usize,
}

/// What the collectors of a job read in one namespace, with the seconds each took.
pub(super) type NsResults = Vec<(Collected, f64)>;

/// A namespace to read in one run, and how to tell whether it vanished meanwhile.
pub(super) struct Target {
    pub(super) ns: Netns,
    pub(super) found: Option<Found>,
}

/// Feeds one socket pass to every collection that asked for the socket's protocol and state.
pub(super) struct Dispatch<'a, 'b> {
    pub(super) collections: &'b mut [Box<dyn Collection + 'a>],
    pub(super) needs: &'b [SocketNeeds],
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
pub(super) fn finish_scrape(
    collectors: &[&dyn Collector],
    read: &[BTreeSet<String>],
    out: &mut [(Collected, f64)],
) {
    for (i, c) in collectors.iter().enumerate() {
        let t = Instant::now();
        c.end_scrape(&read[i], &mut out[i].0);
        out[i].1 += t.elapsed().as_secs_f64();
        let families = std::mem::take(&mut out[i].0.families);
        out[i].0.families = merge_families(families);
    }
}

/// One namespace: the shared socket pass, then every collector's own reads; families
/// labelled with the namespace.
pub(super) fn collect_ns(
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
        got.rows.set_netns(ns.label());
        out.push((got, seconds));
    }
    out
}

impl Shared {
    pub(super) fn count_netns_error(&self, reason: &'static str) {
        *lock(&self.netns_errors).entry(reason).or_default() += 1;
    }

    /// The namespaces of one run of `members`: the exporter's own, then (`--netns=all`, when
    /// one of them reads other namespaces) the others found now, filtered and capped.
    /// The namespaces found for `request`: discovered by its first run, shared by the others
    /// (a discovery reads every /proc/<pid>/ns/net, and each namespace's cgroup once).
    fn discover(&self, all: &NetnsAll, request: u64) -> Discovered {
        let mut last = lock(&self.discovered);
        if let Some((r, d)) = &*last {
            if *r == request {
                return d.clone();
            }
        }
        let mut errors = Vec::new();
        let found = netns::discover(&self.procfs, &all.config.dirs, &mut errors);
        let d: Discovered = Arc::new(
            found
                .found
                .into_iter()
                .map(|f| {
                    let info = f.info(&self.procfs, &mut errors);
                    (f, info)
                })
                .collect(),
        );
        // Every problem of discovery (an unreadable /proc/<pid>/ns/net, cgroup or netns
        // directory), counted in netstat_scrape_errors_total{collector="netns"} and logged.
        if !errors.is_empty() {
            record_errors(&self.errors_total, "netns", &errors);
        }
        *last = Some((request, d.clone()));
        d
    }

    pub(super) fn targets(
        &self,
        members: &[usize],
        request: u64,
    ) -> (Vec<Target>, Option<NetnsReport>) {
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
        let found = self.discover(all, request);
        let mut report = NetnsReport {
            read: Vec::new(),
            dropped: 0,
        };
        let mut targets = vec![own];
        let unprivileged = lock(&self.unprivileged_until).is_some_and(|t| Instant::now() < t);
        for (f, info) in found.iter() {
            let (f, info) = (f.clone(), info.clone());
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
    pub(super) fn collect(
        &self,
        members: &[usize],
        request: u64,
    ) -> (Vec<(Collected, f64)>, Option<NetnsReport>) {
        let collectors: Vec<&dyn Collector> = members
            .iter()
            .map(|&i| self.collectors[i].as_ref())
            .collect();
        let mut out: Vec<(Collected, f64)> = members
            .iter()
            .map(|_| (Collected::default(), 0.0))
            .collect();
        let (targets, mut report) = self.targets(members, request);
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
        // The namespaces each member was to read (read or not: see `Collector::end_scrape`).
        let mut read = vec![BTreeSet::new(); members.len()];
        for (target, chosen) in targets.iter().zip(&chosen) {
            for &k in chosen {
                read[k].insert(target.ns.label().to_string());
            }
        }
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
                out[k].0.rows.extend(c.rows);
                out[k].0.errors.extend(c.errors);
                out[k].1 += secs;
            }
        }
        finish_scrape(&collectors, &read, &mut out);
        (out, report)
    }

    /// Read every target: the exporter's own namespace on this thread, the others on a few
    /// short-lived worker threads (one per core, at most 4) that enter each namespace in turn
    /// and exit when done, so no thread of the exporter stays in another namespace. Results
    /// in the order of `targets`; None for a namespace that vanished or could not be read.
    pub(super) fn collect_targets(
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
    pub(super) fn collect_target(
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
                            let mut until = lock(&self.unprivileged_until);
                            if until.is_none() {
                                tracing::warn!(error = %e, retry_seconds = RETRY_ENTER.as_secs(), "cannot enter other network namespaces (CAP_SYS_ADMIN); reading /proc/<pid>/net instead (no netlink, no interface flags), trying again later");
                            }
                            *until = Some(Instant::now() + RETRY_ENTER);
                            drop(until);
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
pub(super) fn label_netns(families: &mut [MetricFamily], label: &str) {
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
