//! Scrape cost at 10k and 100k sockets, against the kernel's own cost of dumping the socket
//! table over netlink, plus the exporter's RSS while being scraped.
//!
//! Run: `cargo bench --bench scrape` (root not needed). Options after `--`:
//!   --sizes 10000,100000   socket counts (each is half clients, half accepted sides)
//!   --iterations 15        timed repetitions per measurement (median and p90 reported)
//! If `prometheus-node-exporter` is installed, its tcpstat collector is timed on the same
//! table for comparison.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netstat_exporter::collectors::sockets::{self, SocketsCollector};
use netstat_exporter::metrics::{encode, Format};
use netstat_exporter::scrape::Scraper;
use netstat_exporter::source::inet::{Family, Protocol, ALL_STATES};
use netstat_exporter::source::netlink::{DiagSocket, DumpRequest};
use netstat_exporter::source::netns::Netns;
use netstat_exporter::source::sockets::{SocketNeeds, SocketSource, SourceMode};

struct Stats {
    median: f64,
    p90: f64,
}

type Probe<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Time every probe `iterations` times, round-robin (probe 1, 2, 3, 1, 2, 3, ...) so that a
/// machine that speeds up or slows down during the run affects all of them alike. The
/// first probe is the baseline the others are compared with.
fn measure_interleaved(iterations: usize, probes: &mut [Probe<'_>]) {
    let mut times = vec![Vec::with_capacity(iterations); probes.len()];
    for (_, f) in probes.iter_mut() {
        f(); // warm-up
    }
    for _ in 0..iterations {
        for (i, (_, f)) in probes.iter_mut().enumerate() {
            let t = Instant::now();
            f();
            times[i].push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let stats: Vec<Stats> = times
        .into_iter()
        .map(|mut v| {
            v.sort_by(|a, b| a.total_cmp(b));
            Stats {
                median: v[v.len() / 2],
                p90: v[(v.len() * 9 / 10).min(v.len() - 1)],
            }
        })
        .collect();
    let baseline = stats[0].median;
    for (i, ((name, _), s)) in probes.iter().zip(&stats).enumerate() {
        let ratio = if i == 0 {
            "  (1.00)".to_string()
        } else {
            format!("{:>7.2}x", s.median / baseline)
        };
        println!(
            "  {name:<58} median {:>8.2} ms   p90 {:>8.2} ms {ratio}",
            s.median, s.p90
        );
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "10000,100000".into())
        .split(',')
        .map(|s| s.parse().expect("--sizes"))
        .collect();
    let iterations: usize = arg("--iterations").map_or(15, |s| s.parse().expect("--iterations"));
    let node_exporter = [
        "/usr/bin/prometheus-node-exporter",
        "/usr/local/bin/node_exporter",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());

    for size in sizes {
        let holder = common::sockload::hold_tcp(size / 2).expect("open connections");
        std::thread::sleep(Duration::from_millis(500));
        let mut tcp = 0usize;
        let mut d = DiagSocket::open().expect("netlink");
        for f in Family::ALL {
            tcp += d
                .dump_raw(
                    DumpRequest::ByFamily(Protocol::Tcp, f),
                    ALL_STATES,
                    0,
                    &mut |_| Ok(()),
                )
                .unwrap();
        }
        println!(
            "\n== {} held connections: {tcp} TCP sockets in the table ({iterations} iterations)",
            holder.connections
        );

        let mut d2 = DiagSocket::open().expect("netlink");
        let ns = Netns::own("/proc".as_ref(), "/sys".as_ref(), true);
        let netlink = SocketSource::new(SourceMode::Netlink);
        let auto = SocketSource::new(SourceMode::Auto);
        let scraper = Scraper::new(vec![Box::new(SocketsCollector)], "/proc".into());
        let proc = SocketSource::new(SourceMode::Proc);
        let tcp_only = SocketNeeds::all_states(&[Protocol::Tcp]);
        // The real binary over HTTP: latency and memory.
        let e = common::Exporter::start(&["--collector.disable-defaults", "--collector.sockets"]);
        let node = node_exporter.map(|bin| {
            let port = common::free_port();
            let child = Command::new(bin)
                .args([
                    "--collector.disable-defaults",
                    "--collector.tcpstat",
                    &format!("--web.listen-address=127.0.0.1:{port}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start node_exporter");
            let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(addr).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            (child, addr)
        });

        let mut probes: Vec<Probe<'_>> = vec![
            (
                "kernel: netlink dump of TCP v4+v6 (one walk), not even read",
                Box::new(|| {
                    d2.dump_raw(DumpRequest::TcpBothFamilies, ALL_STATES, 0, &mut |_| Ok(()))
                        .unwrap();
                }),
            ),
            (
                "exporter: TCP via netlink, decoded and aggregated",
                Box::new(|| {
                    let mut errors = Vec::new();
                    let mut n = 0u64;
                    netlink.for_each_inet(
                        &ns,
                        &[Protocol::Tcp],
                        &tcp_only,
                        &mut errors,
                        &mut |s| n += u64::from(s.state),
                    );
                    assert!(errors.is_empty() && n > 0);
                }),
            ),
            (
                "exporter: sockets collector, all protocols + unix (auto)",
                Box::new(|| {
                    let mut errors = Vec::new();
                    sockets::read_stats(&auto, &ns, &mut errors);
                    assert!(errors.is_empty());
                }),
            ),
            (
                "exporter: full scrape + text encoding (sockets only)",
                Box::new(|| assert!(encode(scraper.scrape(None), Format::Text).len() > 1000)),
            ),
            (
                "exporter: sockets collector via /proc/net text",
                Box::new(|| {
                    let mut errors = Vec::new();
                    sockets::read_stats(&proc, &ns, &mut errors);
                    assert!(errors.is_empty());
                }),
            ),
            (
                "netstat_exporter binary: GET /metrics over HTTP",
                Box::new(|| assert_eq!(e.get("/metrics").status, 200)),
            ),
        ];
        if let Some((_, addr)) = &node {
            let addr = *addr;
            probes.push((
                "node_exporter --collector.tcpstat: GET /metrics",
                Box::new(move || assert_eq!(common::http_get(addr, "/metrics", &[]).status, 200)),
            ));
        }
        measure_interleaved(iterations, &mut probes);
        drop(probes);
        println!(
            "  netstat_exporter process after {} scrapes: VmRSS {} kB, VmHWM (peak RSS) {} kB",
            iterations + 1,
            common::status_kb(e.pid(), "VmRSS:"),
            common::status_kb(e.pid(), "VmHWM:")
        );
        drop(e);
        if let Some((mut child, _)) = node {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(holder);
    }
}
