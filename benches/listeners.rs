//! Listener collector cost with 1000 listeners and 100k established sockets: the steady-state
//! scrape, the process attribution cost once its cache is warm, and the cost of a full walk
//! of /proc/*/fd.
//!
//! Run: `cargo bench --bench listeners` (as root, to see other processes' fds).
//! Options after `--`: `--listeners 1000 --connections 50000 --iterations 15`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use netstat_exporter::collectors::listeners::ListenerTable;
use netstat_exporter::config::Config;
use netstat_exporter::scrape::Scraper;
use netstat_exporter::source::inet::{state_bit, Protocol, TCP_LISTEN};
use netstat_exporter::source::netns::Netns;
use netstat_exporter::source::procfd::OwnerResolver;
use netstat_exporter::source::sockets::{SocketNeeds, SocketSource, SourceMode};

fn report(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  {name:<55} median {:>8.2} ms   p90 {:>8.2} ms",
        v[v.len() / 2],
        v[(v.len() * 9 / 10).min(v.len() - 1)]
    );
}

fn time(iterations: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..iterations)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn main() {
    let n_listeners = common::arg_usize("--listeners", 1000);
    let n_conns = common::arg_usize("--connections", 50_000);
    let iterations = common::arg_usize("--iterations", 15);
    let _listeners = common::sockload::hold_listeners(n_listeners).expect("listeners");
    let _conns = common::sockload::hold_tcp(n_conns).expect("connections");
    std::thread::sleep(Duration::from_millis(500));

    let source = SocketSource::new(SourceMode::Auto);
    let ns = Netns::own("/proc".as_ref(), "/sys".as_ref(), true);
    let mut table = ListenerTable::default();
    let mut errors = Vec::new();
    let mut listen = SocketNeeds::NONE;
    listen.states[Protocol::Tcp.index()] = state_bit(TCP_LISTEN);
    source.for_each_inet(&ns, &[Protocol::Tcp], &listen, &mut errors, &mut |s| {
        table.add(s)
    });
    let inodes: Vec<u64> = table
        .listeners
        .values()
        .flat_map(|a| a.inodes.iter().copied())
        .collect();
    let fds: usize = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_dir(e.path().join("fd")).ok())
        .map(|d| d.count())
        .sum();
    println!(
        "\n== {} TCP listeners, {} held connections ({} sockets), {fds} fds on the host, {iterations} iterations",
        inodes.len(),
        n_conns,
        2 * n_conns
    );

    let config = Config::from_args([
        "netstat_exporter",
        "--collector.disable-defaults",
        "--collector.listeners",
    ])
    .unwrap();
    let scraper = Scraper::from_config(&config).unwrap();
    let ok = |f: &[netstat_exporter::metrics::MetricFamily]| {
        f.iter()
            .find(|f| f.name == "netstat_scrape_collector_success")
            .is_some_and(|f| f.samples.iter().all(|s| s.value.as_f64() == 1.0))
    };
    let first = Instant::now();
    assert!(ok(&scraper.scrape_with_timeout(None, None)));
    println!(
        "  first scrape (walks /proc/*/fd)                        {:>8.2} ms",
        first.elapsed().as_secs_f64() * 1000.0
    );
    report(
        "steady-state listeners scrape (cache warm)",
        time(iterations, || {
            assert!(ok(&scraper.scrape_with_timeout(None, None)))
        }),
    );

    let warm = OwnerResolver::new("/proc", Duration::from_secs(3600));
    warm.resolve(&inodes, &mut errors);
    report(
        "attribution only, cache warm (1 readlink per listener)",
        time(iterations, || {
            warm.resolve(&inodes, &mut errors);
        }),
    );
    let s = warm.stats();
    assert_eq!(s.walks, 1, "warm cache must not walk again");
    report(
        "attribution only, full walk of /proc/*/fd (cold cache)",
        time(iterations.min(7), || {
            let cold = OwnerResolver::new("/proc", Duration::ZERO);
            let owners = cold.resolve(&inodes, &mut errors);
            // Listeners of processes in other pid namespaces stay unresolved.
            assert!(
                owners.len() + 5 >= inodes.len(),
                "{} of {}",
                owners.len(),
                inodes.len()
            );
        }),
    );
    assert!(errors.is_empty(), "{errors:?}");
}
