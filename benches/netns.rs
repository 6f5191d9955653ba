//! `--netns=all` at scale: N network namespaces (default 100), each with a veth pair and a
//! process holding a listener and M/2 established connections (M TCP sockets, default 200).
//! Measured round-robin, medians: the exporter binary's full default scrape over HTTP with
//! `--netns=all`, the same with `--netns=self` (what the host namespace alone costs), and, for
//! comparison, cAdvisor's way of reading every namespace: `/proc/<pid>/net/tcp` and `tcp6` of
//! one process per namespace, parsed for the state column. Also the exporter's RSS.
//!
//! Run as root: `cargo bench --bench netns` (`-- --namespaces 100 --sockets 200 --iterations 11`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::netns::{must, TestNetns};
use common::sockload::hold_in_netns;

type Probe<'a> = (&'static str, Box<dyn FnMut() + 'a>);

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("netns bench: needs root (namespaces, veth pairs); skipped");
        return;
    }
    let n = common::arg_usize("--namespaces", 100);
    let sockets = common::arg_usize("--sockets", 200);
    let iterations = common::arg_usize("--iterations", 11);
    // `--child-ehash N`: give the namespaces their own TCP hash table of N buckets
    // (net.ipv4.tcp_child_ehash_entries, set before they are made, restored after): every
    // sock_diag dump walks the whole table its namespace uses, by default the host's.
    let child_ehash = common::arg_usize("--child-ehash", 0);
    let sysctl = "/proc/sys/net/ipv4/tcp_child_ehash_entries";
    let saved = std::fs::read_to_string(sysctl).unwrap_or_default();
    if child_ehash > 0 {
        std::fs::write(sysctl, child_ehash.to_string()).expect("tcp_child_ehash_entries");
    }
    let t = Instant::now();
    let mut namespaces = Vec::new();
    let mut holders = Vec::new();
    for i in 0..n {
        let ns = TestNetns::new("bn");
        let host = format!("vbn{}h{i}", std::process::id() % 10_000);
        let peer = format!("vbn{}n{i}", std::process::id() % 10_000);
        must(
            "ip",
            &[
                "link", "add", &host, "type", "veth", "peer", "name", &peer, "netns", &ns.name,
            ],
        );
        ns.ip(&["link", "set", &peer, "up"]);
        holders.push(
            hold_in_netns(&format!("/run/netns/{}", ns.name), 9000, sockets / 2).expect("holder"),
        );
        namespaces.push((ns, host));
    }
    if child_ehash > 0 {
        let _ = std::fs::write(sysctl, saved.trim());
    }
    let host_buckets =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_ehash_entries").unwrap_or_default();
    println!(
        "  TCP hash table of the namespaces: {} buckets",
        if child_ehash > 0 {
            child_ehash.to_string()
        } else {
            format!("the host's, {}", host_buckets.trim())
        }
    );
    let pids: Vec<i32> = holders.iter().flat_map(|h| h.pids()).collect();
    println!(
        "\n== {n} namespaces, each with a veth and {} TCP sockets ({} in all), set up in {:.1} s; {iterations} iterations",
        sockets + 1,
        n * (sockets + 1),
        t.elapsed().as_secs_f64()
    );
    let all = common::Exporter::start(&["--netns=all"]);
    let own = common::Exporter::start(&[]);
    let mut probes: Vec<Probe> = vec![
        (
            "exporter --netns=all: full default scrape over HTTP",
            Box::new(|| {
                let r = all.get("/metrics");
                assert_eq!(r.status, 200);
                assert!(r.text().contains("netstat_netns_info"));
            }),
        ),
        (
            "exporter --netns=self: the same, own namespace only",
            Box::new(|| assert_eq!(own.get("/metrics").status, 200)),
        ),
        (
            "cAdvisor's way: /proc/<pid>/net/tcp{,6} of every namespace",
            Box::new(|| {
                let mut states = [0u64; 16];
                for pid in &pids {
                    for f in ["tcp", "tcp6"] {
                        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{f}"))
                            .unwrap_or_default();
                        for line in text.lines().skip(1) {
                            if let Some(st) = line.split_whitespace().nth(3) {
                                let st = usize::from_str_radix(st, 16).unwrap_or(0) & 15;
                                states[st] += 1;
                            }
                        }
                    }
                }
                assert!(states.iter().sum::<u64>() > 0);
            }),
        ),
    ];
    let mut times = vec![Vec::new(); probes.len()];
    for (_, f) in probes.iter_mut() {
        f();
    }
    for _ in 0..iterations {
        for (i, (_, f)) in probes.iter_mut().enumerate() {
            let t = Instant::now();
            f();
            times[i].push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let medians: Vec<f64> = times.into_iter().map(common::median).collect();
    for ((name, _), m) in probes.iter().zip(&medians) {
        println!("  {name:<62} median {m:>8.2} ms");
    }
    drop(probes);
    for line in all.get("/metrics").text().lines() {
        if line.starts_with("netstat_scrape_collector_duration_seconds{") {
            println!("  {line}");
        }
    }
    println!(
        "  per extra namespace: {:.3} ms; exporter --netns=all RSS {} kB (peak {} kB)",
        (medians[0] - medians[1]) / n as f64,
        common::status_kb(all.pid(), "VmRSS:"),
        common::status_kb(all.pid(), "VmHWM:")
    );
    drop(all);
    drop(own);
    // Newest first: each holder inherited the control pipes of those forked before it.
    while let Some(h) = holders.pop() {
        drop(h);
    }
    drop(namespaces);
    std::thread::sleep(Duration::from_millis(200));
}
