//! The watch (`--watch.interval`, default 1 s).
//!
//! 1. Idle cost: N network namespaces (default 100, made with `ip netns add`, each with a
//!    process holding a listener) and C established TCP connections on the host (default
//!    25,000, i.e. 50,000 sockets). Two exporter binaries run side by side over the same window
//!    with no scrape: `--netns=all` with the default watch, and `--netns=all
//!    --watch.interval=0`. Their CPU time over `--seconds` (default 60) comes from
//!    /proc/<pid>/stat (utime + stime), as a share of one core.
//! 2. Naming a new listener's owner with F open fds on the host (default 100,000 held by
//!    forked children): the targeted look at the processes started since the last look
//!    (`OwnerResolver::find_in` on the new pid) against a full walk of every process's fds
//!    (`OwnerResolver::walk_for`), medians of `--iterations`.
//!
//! Run as root: `cargo bench --bench watch` (`-- --namespaces 100 --connections 25000
//! --seconds 60 --fds 100000 --iterations 9`; `--naming 0` or `--idle 0` skips a part).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::netns::TestNetns;
use common::sockload::{hold_in_netns, hold_listeners, hold_tcp};
use netstat_exporter::source::procfd::OwnerResolver;
use netstat_exporter::source::watch::list_pids;

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(14) + ticks(15)) / hz
}

/// `path` of the exporter at `addr`, waiting as long as its start-up collection takes (a full
/// walk of a busy host's fds can take longer than the test helper's 30 s read timeout).
fn get_patiently(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(600)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    common::parse_response(&raw).text()
}

fn socket_inode_of(pid: i32) -> Option<u64> {
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let target = std::fs::read_link(e.path()).ok()?;
        let t = target.to_string_lossy();
        if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
            return n.parse().ok();
        }
    }
    None
}

/// Holders dropped newest first, also when the bench panics: each holder inherited the control
/// pipes of those forked before it, so an older one only exits after every younger one.
struct Holders(Vec<common::sockload::Holder>);

impl Drop for Holders {
    fn drop(&mut self) {
        while let Some(h) = self.0.pop() {
            drop(h);
        }
    }
}

fn idle_cost(n: usize, connections: usize, seconds: u64) {
    let t = Instant::now();
    let mut namespaces = Vec::new();
    let mut holders = Holders(Vec::new());
    for _ in 0..n {
        let ns = TestNetns::new("bw");
        holders
            .0
            .push(hold_in_netns(&format!("/run/netns/{}", ns.name), 9000, 0).expect("holder"));
        namespaces.push(ns);
    }
    holders.0.push(hold_tcp(connections).expect("connections"));
    let conns = holders.0.last().map_or(0, |h| h.connections);
    println!(
        "\n== idle cost: {n} namespaces with a listener each, {} established TCP sockets on the host (set up in {:.1} s), {seconds} s without a scrape",
        conns * 2,
        t.elapsed().as_secs_f64()
    );
    let watch = common::Exporter::start(&["--netns=all"]);
    let off = common::Exporter::start(&["--netns=all", "--watch.interval=0"]);
    // Both done with their start-up collection.
    let t = Instant::now();
    let walks = |text: &str, kind: &str| {
        common::sample(text, "netstat_watch_owner_walks_total", &[("kind", kind)]).unwrap_or(0.0)
    };
    let before = get_patiently(watch.addr, "/metrics");
    let ticks_before = common::sample(&before, "netstat_watch_ticks_total", &[]).unwrap_or(0.0);
    get_patiently(off.addr, "/healthz");
    println!(
        "  both exporters ready after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(2));
    let before = get_patiently(watch.addr, "/metrics");
    let (w0, o0, t0) = (
        cpu_seconds(watch.pid()),
        cpu_seconds(off.pid()),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let (w1, o1, el) = (
        cpu_seconds(watch.pid()),
        cpu_seconds(off.pid()),
        t0.elapsed().as_secs_f64(),
    );
    let text = get_patiently(watch.addr, "/metrics");
    let ticks = common::sample(&text, "netstat_watch_ticks_total", &[]).unwrap_or(0.0);
    let namespaces_read = common::sample(&text, "netstat_watch_namespaces", &[]).unwrap_or(0.0);
    let last = common::sample(&text, "netstat_watch_duration_seconds", &[]).unwrap_or(0.0);
    let lagging = common::sample(&text, "netstat_watch_lagging_ticks_total", &[]).unwrap_or(0.0);
    println!(
        "  exporter --netns=all (watch every 1 s):     {:.3} % of one core ({:.3} s CPU in {el:.1} s, {} ticks, {namespaces_read} namespaces watched, last tick {:.2} ms, {lagging} lagging)",
        (w1 - w0) / el * 100.0,
        w1 - w0,
        ticks - ticks_before,
        last * 1000.0
    );
    // Owner walks happen only when a listener appears whose owner is not known: none on a
    // quiet host. Other work on the machine opening listeners makes them (a full walk of
    // every /proc/<pid>/fd at most every 5 s), and then they dominate the watch's CPU.
    println!(
        "  owner walks during the window: {} targeted, {} full (0 and 0 on a quiet host: others opened listeners)",
        walks(&text, "targeted") - walks(&before, "targeted"),
        walks(&text, "full") - walks(&before, "full"),
    );
    println!(
        "  exporter --netns=all --watch.interval=0:    {:.3} % of one core ({:.3} s CPU)",
        (o1 - o0) / el * 100.0,
        o1 - o0
    );
    drop(watch);
    drop(off);
    drop(holders);
    drop(namespaces);
}

fn naming_cost(fds: usize, iterations: usize) {
    // Each connection is two fds (client and accepted side), held by forked children.
    let held = hold_tcp(fds / 2).expect("fds");
    let pids = list_pids(std::path::Path::new("/proc")).unwrap_or_default();
    println!(
        "\n== naming a new listener's owner with {} fds held on the host ({} processes)",
        held.connections * 2,
        pids.len()
    );
    let mut targeted = Vec::new();
    let mut full = Vec::new();
    let mut full_fds = 0;
    for _ in 0..iterations {
        let l = hold_listeners(1).expect("listener");
        let pid = l.pids()[0];
        let inode = socket_inode_of(pid).expect("the listener's inode");
        // Targeted: list the processes, look at the new one's fds.
        let r = OwnerResolver::new("/proc", Duration::from_secs(3600));
        let t = Instant::now();
        let now = list_pids(std::path::Path::new("/proc")).unwrap_or_default();
        let new: Vec<u32> = now
            .iter()
            .copied()
            .filter(|p| pids.binary_search(p).is_err())
            .collect();
        let (found, _) = r.find_in(&[inode], &new);
        targeted.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(found.get(&inode), Some(&(pid as u32)));
        // Full walk.
        let r = OwnerResolver::new("/proc", Duration::from_secs(3600));
        let mut errors = Vec::new();
        let t = Instant::now();
        let found = r.walk_for(&[inode], &mut errors);
        full.push(t.elapsed().as_secs_f64() * 1000.0);
        full_fds = r.stats().last_walk_fds;
        assert_eq!(found.get(&inode), Some(&(pid as u32)));
        drop(l);
    }
    let (t, f) = (common::median(targeted), common::median(full));
    println!("  targeted (list /proc, the new process's fds)   median {t:>9.3} ms");
    println!("  full walk ({full_fds} fds)                     median {f:>9.3} ms");
    println!("  full / targeted: {:.0}x", f / t);
    drop(held);
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("watch bench: needs root (namespaces, other processes' fds); skipped");
        return;
    }
    let n = common::arg_usize("--namespaces", 100);
    let connections = common::arg_usize("--connections", 25_000);
    let seconds = common::arg_usize("--seconds", 60) as u64;
    let fds = common::arg_usize("--fds", 100_000);
    let iterations = common::arg_usize("--iterations", 9);
    if common::arg_usize("--naming", 1) == 1 {
        naming_cost(fds, iterations);
    }
    if common::arg_usize("--idle", 1) == 1 {
        idle_cost(n, connections, seconds);
    }
}
