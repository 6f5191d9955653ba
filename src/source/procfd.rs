//! Which process owns a socket: socket inode -> pid, through `<procfs>/<pid>/fd/*` links
//! (`socket:[INODE]`), as `ss -p` and `netstat -p` find it.
//!
//! Walking every fd of every process costs a few microseconds per fd (about half a second
//! at 100k fds), so owners are cached as inode -> (pid, fd). Each scrape verifies a cached
//! entry with one readlink; a full walk happens only when an inode never seen before shows
//! up, and at most once per `walk_interval`, so churning short-lived listeners cannot make
//! every scrape pay for it. Inodes a walk could not attribute (a process in another PID
//! namespace, fds that cannot be read, a socket held by no process) are remembered as
//! unresolvable and never cause another walk; the first walk can be done at start-up
//! ([`OwnerResolver::warm_up`] through a first collection) so that no scrape pays it.
//!
//! One resolver serves every network namespace (socket inodes are unique host-wide), so
//! entries are kept while any namespace wants them and forgotten after [`FORGET_AFTER`]
//! without a lookup.
//!
//! Without privileges (root, or CAP_DAC_READ_SEARCH + CAP_SYS_PTRACE) other users' fd
//! directories cannot be read: their sockets stay unresolved, which is not an error.

use std::collections::{HashMap, HashSet};
use std::sync::MutexGuard;

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cgroup::{self, Identity};
use super::SourceError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// The process name, `<procfs>/<pid>/comm`.
    pub comm: String,
    /// The container and pod of the process, from `<procfs>/<pid>/cgroup` (empty for a host
    /// process).
    pub identity: Identity,
}

/// Counters and timings of the resolver since start, for self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResolverStats {
    /// Lookups answered by a verified cache entry.
    pub cached: u64,
    /// Lookups answered by a full walk.
    pub walked: u64,
    /// Lookups left unresolved: no owner visible (permissions, process gone, kernel-owned
    /// socket) or a walk not allowed yet by the interval.
    pub failed: u64,
    pub walks: u64,
    pub last_walk_seconds: f64,
    pub last_walk_fds: u64,
    /// Inodes remembered as unresolvable (no walk found an owner).
    pub unresolved: u64,
}

/// The locked cache, see [`OwnerResolver::view`].
pub struct OwnerView<'a>(MutexGuard<'a, State>);

impl OwnerView<'_> {
    /// What the cache knows of `inode`, without verifying it: a socket keeps its inode for
    /// life and rarely changes owner, so per-connection lookups trust the cache (listener
    /// lookups, few and important, are verified by [`OwnerResolver::resolve`]). Marks the
    /// entry as used at `now`.
    pub fn lookup(&mut self, inode: u64, now: Instant) -> Lookup {
        let st = &mut *self.0;
        if let Some(e) = st.cache.get_mut(inode) {
            // Only as often as pruning needs to know: no write per socket and scrape.
            let t = stamp(now);
            if t.saturating_sub(e.2) >= FORGET_AFTER.as_secs() as u32 / 10 {
                e.2 = t;
            }
            return Lookup::Cached(e.0);
        }
        match st.unresolvable.get_mut(&inode) {
            Some(t) => {
                *t = now;
                Lookup::Unresolvable
            }
            None => Lookup::Unknown,
        }
    }
}

/// Every socket inode a walk saw, with the lowest pid holding it and that pid's fd: a
/// sorted vector of 16 bytes a socket, searched by bisection. Written by hand instead of a
/// hash map because a walk fills it once and only reads it after: a hash table of the same
/// entries touches all its buckets (about twice the memory at 300k sockets) and holds its
/// old and new arrays at once while it grows; a vector's untouched capacity costs no
/// resident memory.
#[derive(Debug, Default)]
struct OwnerMap(Vec<(u64, u32, u32)>);

impl OwnerMap {
    fn with_capacity(n: usize) -> Self {
        OwnerMap(Vec::with_capacity(n))
    }

    /// Record that `pid` holds `inode` as `fd` (before [`Self::seal`]).
    fn push(&mut self, inode: u64, pid: u32, fd: u32) {
        self.0.push((inode, pid, fd));
    }

    /// Sort by inode and keep, per inode, the lowest pid (and its lowest fd).
    fn seal(&mut self) {
        self.0.sort_unstable();
        self.0.dedup_by_key(|e| e.0);
    }

    /// The (pid, fd) holding `inode` (after [`Self::seal`]).
    fn get(&self, inode: u64) -> Option<(u32, u32)> {
        self.0
            .binary_search_by_key(&inode, |e| e.0)
            .ok()
            .map(|i| (self.0[i].1, self.0[i].2))
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// How long a walk's map of every socket serves lookups when no end of scrape cleared it.
const WALK_MAP_TTL: Duration = Duration::from_secs(10);

/// What the cache says of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Owned by this pid when last seen.
    Cached(u32),
    /// A walk found no owner.
    Unresolvable,
    /// Never looked for.
    Unknown,
}

/// Seconds since the first stamp of the process (a compact time for cache entries).
fn stamp(now: Instant) -> u32 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| now);
    now.saturating_duration_since(epoch).as_secs() as u32
}

/// How long an entry (cached owner or unresolvable inode) is kept without being looked up.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// inode -> (pid, fd, last lookup as a [`stamp`]): 16 bytes an entry (a 64-bit key would
/// make it 24, an `Instant` 32). Socket inodes are 32-bit numbers (the kernel gives them out
/// with `get_next_ino()`); a wider one, which only a fabricated procfs could show, is not
/// cached: it is looked for again, never misattributed.
#[derive(Debug, Default)]
struct Cache(FxHashMap<u32, (u32, u32, u32)>);

impl Cache {
    fn get(&self, inode: u64) -> Option<(u32, u32, u32)> {
        self.0.get(&u32::try_from(inode).ok()?).copied()
    }

    fn get_mut(&mut self, inode: u64) -> Option<&mut (u32, u32, u32)> {
        self.0.get_mut(&u32::try_from(inode).ok()?)
    }

    fn insert(&mut self, inode: u64, entry: (u32, u32, u32)) {
        if let Ok(k) = u32::try_from(inode) {
            self.0.insert(k, entry);
        }
    }

    fn remove(&mut self, inode: u64) {
        if let Ok(k) = u32::try_from(inode) {
            self.0.remove(&k);
        }
    }
}

#[derive(Debug, Default)]
pub struct State {
    /// One entry per attributed socket.
    cache: Cache,
    /// inode -> last lookup, for inodes a walk found no owner for.
    unresolvable: FxHashMap<u64, Instant>,
    last_walk: Option<Instant>,
    last_prune: Option<Instant>,
    /// Every socket inode the last walk saw, kept until the end of the scrape that walked
    /// ([`OwnerResolver::end_scrape`]): the namespaces read after the walk in the same scrape
    /// find their new sockets there instead of waiting for the next walk.
    walk_map: Option<(Instant, OwnerMap)>,
    stats: ResolverStats,
}

#[derive(Debug)]
pub struct OwnerResolver {
    procfs: PathBuf,
    walk_interval: Duration,
    state: Mutex<State>,
    /// Held for the duration of a scrape's full walk (not `state`: cached look-ups of other
    /// namespaces' workers go on meanwhile); a worker that waited for it uses the walk that
    /// just ended instead of making another.
    walking: Mutex<()>,
    /// Socket inodes the last walk found, to size the next walk's map.
    last_walk_sockets: AtomicUsize,
}

/// Parse a `socket:[12345]` link target.
pub fn socket_inode(link: &[u8]) -> Option<u64> {
    super::bracketed_number(link, b"socket:[")
}

fn readlink_inode(path: &Path) -> Option<u64> {
    super::readlink_number(path, b"socket:[")
}

impl OwnerResolver {
    pub fn new(procfs: impl Into<PathBuf>, walk_interval: Duration) -> Self {
        OwnerResolver {
            procfs: procfs.into(),
            walk_interval,
            state: Mutex::new(State::default()),
            walking: Mutex::new(()),
            last_walk_sockets: AtomicUsize::new(0),
        }
    }

    pub fn stats(&self) -> ResolverStats {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).stats
    }

    /// A locked view of the cache for many lookups in a row (one lock for a whole socket
    /// pass instead of one per socket). Drop it before calling [`OwnerResolver::resolve`].
    pub fn view(&self) -> OwnerView<'_> {
        OwnerView(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The process name of `pid` (`<procfs>/<pid>/comm`), None when it is gone.
    pub fn comm(&self, pid: u32) -> Option<String> {
        let raw = std::fs::read(self.procfs.join(pid.to_string()).join("comm")).ok()?;
        let s = String::from_utf8_lossy(&raw);
        Some(s.trim_end_matches('\n').to_string())
    }

    /// Who process `pid` is: its name and container (None when it is gone).
    pub fn owner(&self, pid: u32, errors: &mut Vec<SourceError>) -> Option<Owner> {
        let comm = self.comm(pid)?;
        let identity = cgroup::read(&self.procfs, pid, errors);
        Some(Owner {
            pid,
            comm,
            identity,
        })
    }

    /// For the watch: the verified cached owner (pid) of each of `inodes` that has one, and
    /// those remembered as unresolvable. One readlink per cached inode, no walk.
    pub fn cached(&self, inodes: &[u64]) -> (HashMap<u64, u32>, HashSet<u64>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut found = HashMap::new();
        let mut unresolvable = HashSet::new();
        for &inode in inodes {
            if let Some(t) = st.unresolvable.get_mut(&inode) {
                *t = now;
                unresolvable.insert(inode);
                continue;
            }
            if let Some((pid, fd, _)) = st.cache.get(inode) {
                if self.holds(pid, fd, inode) {
                    st.cache.insert(inode, (pid, fd, stamp(now)));
                    found.insert(inode, pid);
                } else {
                    st.cache.remove(inode);
                }
            }
        }
        (found, unresolvable)
    }

    fn holds(&self, pid: u32, fd: u32, inode: u64) -> bool {
        let link = self
            .procfs
            .join(pid.to_string())
            .join("fd")
            .join(fd.to_string());
        readlink_inode(&link) == Some(inode)
    }

    /// For the watch: look for `inodes` among the fds of `pids` only (the processes started
    /// since the last look), and remember what is found. Returns inode -> pid and the number
    /// of fds examined. Costs the new processes' fds, not the host's.
    pub fn find_in(&self, inodes: &[u64], pids: &[u32]) -> (HashMap<u64, u32>, u64) {
        let wanted: HashSet<u64> = inodes.iter().copied().collect();
        let mut hits = OwnerMap::default();
        let mut fds = 0u64;
        for &pid in pids {
            let fd_dir = self.procfs.join(pid.to_string()).join("fd");
            fds += self.walk_pid(pid, &fd_dir, &mut hits);
        }
        hits.seal();
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = HashMap::new();
        for (inode, pid, fd) in hits.0 {
            if wanted.contains(&inode) {
                st.cache.insert(inode, (pid, fd, stamp(now)));
                st.unresolvable.remove(&inode);
                found.insert(inode, pid);
            }
        }
        (found, fds)
    }

    /// For the watch: a full walk now (the watch rate-limits its own walks), for `inodes`:
    /// what it finds is cached, what it does not is remembered as unresolvable (when the walk
    /// could list the processes). Its map of every socket serves the next scrape like a walk
    /// of its own would ([`WALK_MAP_TTL`]), e.g. the first collection after the watch's
    /// start-up walk. Counted in the walk statistics, but it does not delay the scrapes'
    /// own walks (their `walk_interval` counts from their last walk).
    pub fn walk_for(&self, inodes: &[u64], errors: &mut Vec<SourceError>) -> HashMap<u64, u32> {
        // One walk at a time, and the previous walk's map dropped before this one fills its
        // own: two maps of every socket never coexist (the peak memory at 300k sockets).
        let _turn = self.walking.lock().unwrap_or_else(|p| p.into_inner());
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .walk_map = None;
        let start = Instant::now();
        let errors_before = errors.len();
        let (all, fds) = self.walk(errors);
        let complete = errors.len() == errors_before;
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.stats.walks += 1;
        st.stats.last_walk_seconds = start.elapsed().as_secs_f64();
        st.stats.last_walk_fds = fds;
        let mut found = HashMap::new();
        for &inode in inodes {
            match all.get(inode) {
                Some((pid, fd)) => {
                    st.cache.insert(inode, (pid, fd, stamp(now)));
                    st.unresolvable.remove(&inode);
                    found.insert(inode, pid);
                }
                None if complete => {
                    st.unresolvable.insert(inode, now);
                }
                None => {}
            }
        }
        st.stats.unresolved = st.unresolvable.len() as u64;
        st.walk_map = Some((now, all));
        found
    }

    /// Owners of `inodes` (those that can be found), with their names and containers; see
    /// [`Self::resolve_pids`]. For a few sockets (listeners): each owner is cloned per inode.
    pub fn resolve(&self, inodes: &[u64], errors: &mut Vec<SourceError>) -> HashMap<u64, Owner> {
        let pids = self.resolve_pids(inodes, errors);
        // One comm and cgroup read per distinct pid.
        let mut names: HashMap<u32, Option<Owner>> = HashMap::new();
        let mut out = HashMap::with_capacity(pids.len());
        for (inode, pid) in pids {
            let owner = names.entry(pid).or_insert_with(|| self.owner(pid, errors));
            if let Some(o) = owner {
                out.insert(inode, o.clone());
            }
        }
        out
    }

    /// The owning pid of each of `inodes` that can be found (the sockets of connections:
    /// 12 bytes an inode at the peak, no per-socket copy of names). A walk happens only for
    /// inodes neither cached nor known to be unresolvable, and only when `walk_interval` has
    /// passed since the last one. A pid that has exited since is left out and forgotten.
    pub fn resolve_pids(&self, inodes: &[u64], errors: &mut Vec<SourceError>) -> HashMap<u64, u32> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if st
            .last_prune
            .is_none_or(|t| now.duration_since(t) >= FORGET_AFTER / 10)
        {
            st.cache
                .0
                .retain(|_, e| stamp(now).saturating_sub(e.2) < FORGET_AFTER.as_secs() as u32);
            st.unresolvable
                .retain(|_, t| now.duration_since(*t) < FORGET_AFTER);
            st.last_prune = Some(now);
        }
        let mut wanted: Vec<u64> = inodes.to_vec();
        wanted.sort_unstable();
        wanted.dedup();

        let mut found: HashMap<u64, u32> = HashMap::with_capacity(wanted.len());
        // Sorted, as `wanted` is.
        let mut missing: Vec<u64> = Vec::new();
        let mut unresolvable = 0u64;
        for &inode in &wanted {
            if let Some(t) = st.unresolvable.get_mut(&inode) {
                *t = now;
                unresolvable += 1;
                continue;
            }
            match st.cache.get(inode) {
                Some((pid, fd, _)) if self.holds(pid, fd, inode) => {
                    found.insert(inode, pid);
                    st.cache.insert(inode, (pid, fd, stamp(now)));
                    st.stats.cached += 1;
                }
                Some(_) => {
                    st.cache.remove(inode);
                    missing.push(inode);
                }
                None => missing.push(inode),
            }
        }
        drop(wanted);
        st.stats.failed += unresolvable;

        // What a walk's map knows of the missing inodes goes to the cache and `found`; the
        // rest stays missing.
        let take = |st: &mut State,
                    map: &OwnerMap,
                    missing: &mut Vec<u64>,
                    found: &mut HashMap<u64, u32>| {
            missing.retain(|&inode| match map.get(inode) {
                Some((pid, fd)) => {
                    st.cache.insert(inode, (pid, fd, stamp(now)));
                    found.insert(inode, pid);
                    st.stats.walked += 1;
                    false
                }
                None => true,
            });
        };
        // This scrape's walk, if there was one, saw the sockets of every namespace.
        if let Some((t, map)) = st.walk_map.take() {
            if t.elapsed() < WALK_MAP_TTL {
                take(&mut st, &map, &mut missing, &mut found);
            }
            st.walk_map = Some((t, map));
        }
        if !missing.is_empty() {
            let due = st
                .last_walk
                .is_none_or(|t| t.elapsed() >= self.walk_interval);
            if due {
                // The walk runs without the state lock (see `walking`). The last walk's map
                // was looked at above: dropped now, not kept while the new one fills.
                st.walk_map = None;
                drop(st);
                let walked = self.walk_once(errors);
                st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                match walked {
                    Some((all, complete)) => {
                        take(&mut st, &all, &mut missing, &mut found);
                        st.walk_map = Some((Instant::now(), all));
                        // What a whole walk did not find, no later walk will find either
                        // (until the socket is gone): remember it instead of walking again.
                        // (A walk that could not list the processes proves nothing.)
                        if complete {
                            for &inode in &missing {
                                st.unresolvable.insert(inode, now);
                            }
                        }
                    }
                    // Another worker walked while this one waited: its map.
                    None => {
                        if let Some((t, map)) = st.walk_map.take() {
                            take(&mut st, &map, &mut missing, &mut found);
                            st.walk_map = Some((t, map));
                        }
                    }
                }
            }
            st.stats.failed += missing.len() as u64;
        }
        st.stats.unresolved = st.unresolvable.len() as u64;

        // Owners that exited since are forgotten: a later walk finds the new owner if any.
        let mut alive: HashMap<u32, bool> = HashMap::new();
        let procfs = &self.procfs;
        let before = found.len();
        found.retain(|inode, pid| {
            let ok = *alive
                .entry(*pid)
                .or_insert_with(|| procfs.join(pid.to_string()).join("comm").exists());
            if !ok {
                st.cache.remove(*inode);
            }
            ok
        });
        st.stats.failed += (before - found.len()) as u64;
        found
    }

    /// A full walk for a scrape, one at a time: None when another one ended while this one
    /// waited for its turn (its map, in the state, serves). Else the map of every socket and
    /// whether the walk could list every process; the statistics are updated.
    fn walk_once(&self, errors: &mut Vec<SourceError>) -> Option<(OwnerMap, bool)> {
        let _turn = self.walking.lock().unwrap_or_else(|p| p.into_inner());
        let waited_for = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.last_walk
                .is_some_and(|t| t.elapsed() < self.walk_interval)
        };
        if waited_for {
            return None;
        }
        let start = Instant::now();
        let errors_before = errors.len();
        let (all, fds) = self.walk(errors);
        let complete = errors.len() == errors_before;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.last_walk = Some(Instant::now());
        st.stats.walks += 1;
        st.stats.last_walk_seconds = start.elapsed().as_secs_f64();
        st.stats.last_walk_fds = fds;
        Some((all, complete))
    }

    /// The end of a scrape: forget the last walk's map of every socket.
    pub fn end_scrape(&self) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .walk_map = None;
    }

    /// Walk every `<procfs>/<pid>/fd/*` once; for each socket inode keep the lowest pid that
    /// holds it. Returns the owners and the number of fds looked at. Processes that exit or
    /// deny access mid-walk are skipped: they are not errors.
    fn walk(&self, errors: &mut Vec<SourceError>) -> (OwnerMap, u64) {
        // Sized for the last walk's sockets (and a little more): no copy while it fills.
        let last = self.last_walk_sockets.load(Ordering::Relaxed);
        let mut owners = OwnerMap::with_capacity(last + last / 8);
        let mut fds = 0u64;
        let dir = match std::fs::read_dir(&self.procfs) {
            Ok(d) => d,
            Err(e) => {
                errors.push(SourceError::file(
                    "proc/pid/fd",
                    &self.procfs,
                    format!("cannot list processes: {e}"),
                ));
                return (owners, 0);
            }
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            fds += self.walk_pid(pid, &entry.path().join("fd"), &mut owners);
        }
        owners.seal();
        self.last_walk_sockets
            .store(owners.len(), Ordering::Relaxed);
        (owners, fds)
    }

    /// The socket fds of one process into `owners` (lowest pid kept); the fds examined.
    fn walk_pid(&self, pid: u32, fd_dir: &Path, owners: &mut OwnerMap) -> u64 {
        let Ok(fd_entries) = std::fs::read_dir(fd_dir) else {
            return 0; // exited, or not ours to read
        };
        let mut fds = 0;
        for fd_entry in fd_entries.flatten() {
            fds += 1;
            let Some(fd) = fd_entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(inode) = readlink_inode(&fd_entry.path()) else {
                continue;
            };
            owners.push(inode, pid, fd);
        }
        fds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn parses_socket_links() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"socket:[]"), None);
        assert_eq!(socket_inode(b"socket:[12x]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    fn own_inode(fd: i32) -> u64 {
        readlink_inode(Path::new(&format!("/proc/self/fd/{fd}"))).unwrap()
    }

    #[test]
    fn finds_own_socket_then_caches_it_and_respects_interval() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = own_inode(l.as_raw_fd());
        let r = OwnerResolver::new("/proc", Duration::from_secs(3600));
        let mut errors = Vec::new();
        let owners = r.resolve(&[inode], &mut errors);
        assert_eq!(owners[&inode].pid, std::process::id());
        let s = r.stats();
        assert_eq!((s.walked, s.walks, s.cached), (1, 1, 0));
        // Second time: from the cache, no walk.
        let owners = r.resolve(&[inode], &mut errors);
        assert!(owners.contains_key(&inode));
        let s = r.stats();
        assert_eq!((s.cached, s.walks), (1, 1));
        // An unknown inode within the interval: no new walk, counted as failed.
        r.resolve(&[inode, u64::MAX], &mut errors);
        let s = r.stats();
        assert_eq!((s.walks, s.failed), (1, 1));
        assert!(errors.is_empty());
    }

    #[test]
    fn an_unresolvable_inode_never_causes_another_walk() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = own_inode(l.as_raw_fd());
        let r = OwnerResolver::new("/proc", Duration::ZERO);
        let mut errors = Vec::new();
        // u64::MAX is no socket of any process: the walk cannot find it.
        assert!(r.resolve(&[u64::MAX], &mut errors).is_empty());
        r.end_scrape();
        assert_eq!((r.stats().walks, r.stats().unresolved), (1, 1));
        for _ in 0..5 {
            assert!(r.resolve(&[u64::MAX], &mut errors).is_empty());
            r.end_scrape();
        }
        assert_eq!(r.stats().walks, 1, "no walk for a known-unresolvable inode");
        // A new inode still gets its walk, and the unresolvable one stays remembered.
        let owners = r.resolve(&[u64::MAX, inode], &mut errors);
        assert_eq!(owners[&inode].pid, std::process::id());
        let s = r.stats();
        assert_eq!((s.walks, s.unresolved), (2, 1));
        assert!(errors.is_empty());
    }

    #[test]
    fn stale_cache_entry_is_detected() {
        let r = OwnerResolver::new("/proc", Duration::ZERO);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = own_inode(l.as_raw_fd());
        let mut errors = Vec::new();
        assert!(r.resolve(&[inode], &mut errors).contains_key(&inode));
        r.end_scrape();
        drop(l);
        assert!(r.resolve(&[inode], &mut errors).is_empty());
        assert!(r.stats().failed >= 1);
    }

    #[test]
    fn a_walk_serves_every_namespace_of_its_scrape() {
        let r = OwnerResolver::new("/proc", Duration::from_secs(3600));
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (ia, ib) = (own_inode(a.as_raw_fd()), own_inode(b.as_raw_fd()));
        let mut errors = Vec::new();
        // One namespace asks for a, walks; another asks for b in the same scrape: no walk is
        // due, but the walk's map has it.
        assert!(r.resolve(&[ia], &mut errors).contains_key(&ia));
        assert!(r.resolve(&[ib], &mut errors).contains_key(&ib));
        assert_eq!(r.stats().walks, 1);
        // Next scrape: the map is gone, b is cached.
        r.end_scrape();
        assert!(r.resolve(&[ib], &mut errors).contains_key(&ib));
        assert_eq!(r.stats().walks, 1);
    }

    #[test]
    fn the_watch_looks_at_new_processes_then_walks_everything() {
        let r = OwnerResolver::new("/proc", Duration::from_secs(3600));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = own_inode(l.as_raw_fd());
        let me = std::process::id();
        // Not among these pids: not found, nothing remembered.
        let (found, _) = r.find_in(&[inode], &[1]);
        assert!(found.is_empty() || me == 1);
        assert!(r.cached(&[inode]).0.is_empty() || me == 1);
        // Among the new pids: found, cached, verified.
        let (found, fds) = r.find_in(&[inode], &[me]);
        assert_eq!((found[&inode], fds > 0), (me, true));
        assert_eq!(r.cached(&[inode]).0[&inode], me);
        // A full walk: what it does not find is remembered as unresolvable.
        let mut errors = Vec::new();
        assert!(r.walk_for(&[u64::MAX], &mut errors).is_empty());
        assert!(r.cached(&[u64::MAX]).1.contains(&u64::MAX));
        assert_eq!(r.stats().walks, 1);
        // The watch's walk serves the next scrape: another socket, found without a walk.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let oi = own_inode(other.as_raw_fd());
        assert!(r.walk_for(&[inode], &mut errors).contains_key(&inode));
        assert!(r.resolve(&[oi], &mut errors).contains_key(&oi));
        assert_eq!(r.stats().walks, 2, "no walk of the scrape's own");
        let o = r.owner(me, &mut errors).unwrap();
        assert_eq!(o.pid, me);
        assert!(errors.is_empty());
    }

    #[test]
    fn unreadable_procfs_is_an_error() {
        let r = OwnerResolver::new("/nonexistent/proc", Duration::ZERO);
        let mut errors = Vec::new();
        assert!(r.resolve(&[1], &mut errors).is_empty());
        assert_eq!(errors.len(), 1);
    }
}
