//! One pass per scrape: what a default scrape costs next to ONE kernel dump of the TCP table,
//! at 10k, 100k and 300k TCP sockets held by forked children.
//!
//! For every probe, wall time and CPU time (user + system of this process, getrusage: the
//! kernel's work for a netlink dump is system time of the thread that asks) are measured
//! round-robin, and the medians compared with the first probe, the kernel dump.
//!
//! Run: `cargo bench --bench one_pass` (root not needed). Options after `--`:
//!   --sizes 10000,100000,300000   TCP sockets in the table (half clients, half accepted)
//!   --iterations 15               timed repetitions per probe

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use netstat_exporter::config::Config;
use netstat_exporter::metrics::{encode, Format};
use netstat_exporter::scrape::Scraper;
use netstat_exporter::source::inet::{Family, Protocol, ALL_STATES};
use netstat_exporter::source::netlink::{DiagSocket, DumpRequest, EXT_INFO};

/// User + system CPU seconds of this process so far (terminated threads included).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// User + system CPU seconds of another process (clock ticks: 10 ms resolution).
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the line; 12 and 13 after the ") state" part.
    (ticks(11) + ticks(12)) / 100.0
}

type Probe<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Round-robin timing: wall and CPU medians per probe, ratios against probe 0.
fn measure(iterations: usize, probes: &mut [Probe<'_>]) -> Vec<(f64, f64)> {
    let mut wall = vec![Vec::with_capacity(iterations); probes.len()];
    let mut cpu = vec![Vec::with_capacity(iterations); probes.len()];
    for (_, f) in probes.iter_mut() {
        f(); // warm-up
    }
    for _ in 0..iterations {
        for (i, (_, f)) in probes.iter_mut().enumerate() {
            let c = cpu_seconds();
            let t = Instant::now();
            f();
            wall[i].push(t.elapsed().as_secs_f64() * 1000.0);
            cpu[i].push((cpu_seconds() - c) * 1000.0);
        }
    }
    let out: Vec<(f64, f64)> = wall
        .into_iter()
        .zip(cpu)
        .map(|(w, c)| (common::median(w), common::median(c)))
        .collect();
    let (w0, c0) = out[0];
    println!(
        "  {:<62} {:>9} {:>9} {:>7} {:>7}",
        "probe", "wall ms", "cpu ms", "wall x", "cpu x"
    );
    for ((name, _), (w, c)) in probes.iter().zip(&out) {
        println!(
            "  {name:<62} {w:>9.2} {c:>9.2} {:>7.2} {:>7.2}",
            w / w0,
            c / c0
        );
    }
    out
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// VmRSS and VmHWM (the peak) of `pid`.
fn memory(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    format!(
        "VmRSS {:.1} MB, VmHWM {:.1} MB",
        field("VmRSS:") as f64 / 1024.0,
        field("VmHWM:") as f64 / 1024.0
    )
}

fn main() {
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "10000,100000,300000".into())
        .split(',')
        .map(|s| s.parse().expect("--sizes"))
        .collect();
    let iterations: usize = arg("--iterations").map_or(15, |s| s.parse().expect("--iterations"));
    let config = Config::from_args(["netstat_exporter"]).expect("default flags");
    let config_health =
        Config::from_args(["netstat_exporter", "--collector.connections.health"]).expect("flags");
    let config_no_flows =
        Config::from_args(["netstat_exporter", "--no-collector.connections.flows"]).expect("flags");
    let sockets_only = vec!["sockets".to_string()];

    for size in sizes {
        let holder = common::sockload::hold_tcp(size / 2).expect("open connections");
        std::thread::sleep(Duration::from_millis(500));
        let mut d = DiagSocket::open().expect("netlink");
        let mut d2 = DiagSocket::open().expect("netlink");
        let mut d3 = DiagSocket::open().expect("netlink");
        let tcp = d
            .dump_raw(DumpRequest::TcpBothFamilies, ALL_STATES, 0, &mut |_| Ok(()))
            .expect("dump");
        println!(
            "\n== {} held connections: {tcp} TCP sockets in the table ({iterations} iterations)",
            holder.connections
        );
        // In process: the default collectors, as the binary runs them (warm: the first
        // collection has walked /proc/*/fd, as the binary does before serving).
        let scraper = Scraper::from_config(&config).expect("collectors");
        scraper.warm_up();
        let scraper_health = Scraper::from_config(&config_health).expect("collectors");
        scraper_health.warm_up();
        let scraper_no_flows = Scraper::from_config(&config_no_flows).expect("collectors");
        scraper_no_flows.warm_up();
        // The binary, over HTTP.
        let e = common::Exporter::start(&[]);
        let pid = e.pid();
        let mut http_cpu = Vec::new();

        let mut probes: Vec<Probe<'_>> = vec![
            (
                "kernel: ONE dump of TCP v4+v6 (TCPDIAG_GETSOCK), not read",
                Box::new(|| {
                    d.dump_raw(DumpRequest::TcpBothFamilies, ALL_STATES, 0, &mut |_| Ok(()))
                        .unwrap();
                }),
            ),
            (
                "kernel: two dumps, one per family (SOCK_DIAG_BY_FAMILY)",
                Box::new(|| {
                    for f in Family::ALL {
                        d2.dump_raw(
                            DumpRequest::ByFamily(Protocol::Tcp, f),
                            ALL_STATES,
                            0,
                            &mut |_| Ok(()),
                        )
                        .unwrap();
                    }
                }),
            ),
            (
                "kernel: ONE dump with tcp_info (INET_DIAG_INFO), not read",
                Box::new(|| {
                    d3.dump_raw(
                        DumpRequest::TcpBothFamilies,
                        ALL_STATES,
                        EXT_INFO,
                        &mut |_| Ok(()),
                    )
                    .unwrap();
                }),
            ),
            (
                "exporter: default scrape (every default collector) + encoding",
                Box::new(|| {
                    assert!(encode(scraper.scrape(None), Format::Text).len() > 1000);
                }),
            ),
            (
                "exporter: default scrape, --no-collector.connections.flows",
                Box::new(|| {
                    assert!(encode(scraper_no_flows.scrape(None), Format::Text).len() > 1000);
                }),
            ),
            (
                "exporter: default scrape + --collector.connections.health",
                Box::new(|| {
                    assert!(encode(scraper_health.scrape(None), Format::Text).len() > 1000);
                }),
            ),
            (
                "exporter: collect[]=sockets scrape + encoding",
                Box::new(|| {
                    let f = scraper.scrape(Some(&sockets_only));
                    assert!(encode(f, Format::Text).len() > 1000);
                }),
            ),
            (
                "netstat_exporter binary: default GET /metrics over HTTP",
                Box::new(|| {
                    let c = process_cpu_seconds(pid);
                    assert_eq!(e.get("/metrics").status, 200);
                    http_cpu.push(process_cpu_seconds(pid) - c);
                }),
            ),
        ];
        let r = measure(iterations, &mut probes);
        drop(probes);
        let mean_http_cpu = http_cpu.iter().sum::<f64>() / http_cpu.len().max(1) as f64 * 1000.0;
        println!(
            "  binary's own CPU per default scrape (mean of utime+stime deltas): {mean_http_cpu:.1} ms = {:.2}x the kernel dump's CPU",
            mean_http_cpu / r[0].1
        );
        println!(
            "  SUMMARY {tcp} sockets: dump with tcp_info cpu {:.2}x, wall {:.2}x; default scrape with health cpu {:.2}x, wall {:.2}x",
            r[2].1 / r[0].1,
            r[2].0 / r[0].0,
            r[5].1 / r[0].1,
            r[5].0 / r[0].0
        );
        println!(
            "  SUMMARY {tcp} sockets: default scrape cpu {:.2}x, wall {:.2}x (without the destroy subscriber cpu {:.2}x); collect[]=sockets cpu {:.2}x, wall {:.2}x; binary wall {:.2}x",
            r[3].1 / r[0].1,
            r[3].0 / r[0].0,
            r[4].1 / r[0].1,
            r[6].1 / r[0].1,
            r[6].0 / r[0].0,
            r[7].0 / r[0].0
        );
        println!("  binary's memory: {}", memory(pid));
        drop(e);
        drop(scraper);
        drop(scraper_health);
        drop(scraper_no_flows);
        // Memory of the binary with some parts off, each after five scrapes: what holds the
        // peak (VmHWM).
        for flags in [
            &["--collector.connections.health"][..],
            &["--no-collector.listeners.process"][..],
            &["--no-collector.connections"][..],
        ] {
            let e = common::Exporter::start(flags);
            for _ in 0..5 {
                assert_eq!(e.get("/metrics").status, 200);
            }
            println!("  binary's memory with {flags:?}: {}", memory(e.pid()));
        }
        drop(holder);
        std::thread::sleep(Duration::from_millis(500));
    }
}
