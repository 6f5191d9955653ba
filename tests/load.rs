//! Load test (the only long test: about 35 s). 200 keep-alive connections hammer /metrics on
//! loopback for 30 s against the real exporter binary with its default collectors reading the
//! live /proc and netlink. Passes when: no 5xx other than the documented 503 shedding
//! (--web.max-requests, default 40), no connection error, the exporter is still alive and
//! serving afterwards, and its peak RSS (VmHWM) stays bounded. Prints request counts and
//! p50/p90/p99/max latencies.
//!
//! `LOAD_SECONDS` and `LOAD_CONNECTIONS` change the duration and connection count.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::Exporter;

/// Peak RSS allowed for the exporter after the run.
const MAX_RSS_KIB: u64 = 256 * 1024;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Read one response from a keep-alive connection: (status, body length).
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, usize)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
            if k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked") {
                chunked = true;
            }
        }
    }
    if chunked {
        let mut total = 0;
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            let mut buf = vec![0u8; size + 2];
            r.read_exact(&mut buf)?;
            total += size;
            if size == 0 {
                return Ok((status, total));
            }
        }
    }
    let n = length.ok_or_else(|| std::io::Error::other("no content-length"))?;
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    Ok((status, n))
}

#[derive(Default)]
struct Tally {
    ok: Vec<Duration>,
    shed: Vec<Duration>,
    other: Vec<u16>,
    errors: Vec<String>,
}

fn client(addr: SocketAddr, until: Instant, start: Arc<Barrier>) -> Tally {
    let mut t = Tally::default();
    let connect = || -> std::io::Result<BufReader<TcpStream>> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        Ok(BufReader::new(s))
    };
    start.wait();
    let mut conn = match connect() {
        Ok(c) => c,
        Err(e) => {
            t.errors.push(format!("connect: {e}"));
            return t;
        }
    };
    while Instant::now() < until {
        let begin = Instant::now();
        let sent = conn
            .get_mut()
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: load\r\n\r\n");
        let res = sent.and_then(|_| read_response(&mut conn));
        let took = begin.elapsed();
        match res {
            Ok((200, n)) if n > 1000 => t.ok.push(took),
            Ok((503, _)) => {
                t.shed.push(took);
                // Shed clients back off a little, as Prometheus would until the next scrape.
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok((s, _)) => t.other.push(s),
            Err(e) => {
                t.errors.push(e.to_string());
                match connect() {
                    Ok(c) => conn = c,
                    Err(_) => return t,
                }
            }
        }
    }
    t
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn two_hundred_connections_for_thirty_seconds() {
    let seconds = env_or("LOAD_SECONDS", 30);
    let connections = env_or("LOAD_CONNECTIONS", 200) as usize;
    let e = Exporter::start(&["--log.level=warn"]);
    let addr = e.addr;
    let rss_before = vm_hwm_kib(e.pid());
    let start = Arc::new(Barrier::new(connections + 1));
    let until = Instant::now() + Duration::from_secs(seconds) + Duration::from_millis(500);
    let handles: Vec<_> = (0..connections)
        .map(|_| {
            let start = start.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || client(addr, until, start))
                .unwrap()
        })
        .collect();
    start.wait();
    let begin = Instant::now();
    let mut all = Tally::default();
    for h in handles {
        let t = h.join().unwrap();
        all.ok.extend(t.ok);
        all.shed.extend(t.shed);
        all.other.extend(t.other);
        all.errors.extend(t.errors);
    }
    let wall = begin.elapsed();
    all.ok.sort();
    all.shed.sort();
    let rss = vm_hwm_kib(e.pid());
    println!(
        "load: {connections} connections, {:.1} s: {} x 200 ({:.0}/s), {} x 503, {} other, {} errors",
        wall.as_secs_f64(),
        all.ok.len(),
        all.ok.len() as f64 / wall.as_secs_f64(),
        all.shed.len(),
        all.other.len(),
        all.errors.len()
    );
    println!(
        "load: 200 latency p50 {:?} p90 {:?} p99 {:?} max {:?}; 503 latency p50 {:?} p99 {:?}",
        percentile(&all.ok, 0.5),
        percentile(&all.ok, 0.9),
        percentile(&all.ok, 0.99),
        all.ok.last().copied().unwrap_or_default(),
        percentile(&all.shed, 0.5),
        percentile(&all.shed, 0.99),
    );
    println!("load: exporter VmHWM {rss_before} KiB before, {rss} KiB after");
    assert!(
        all.errors.is_empty(),
        "connection errors: {:?}",
        &all.errors[..all.errors.len().min(10)]
    );
    assert!(all.other.is_empty(), "unexpected statuses: {:?}", all.other);
    assert!(all.ok.len() as u64 >= seconds, "too few successful scrapes");
    assert!(rss < MAX_RSS_KIB, "peak RSS {rss} KiB");
    // 503 is immediate shedding, not queuing.
    assert!(percentile(&all.shed, 0.99) < Duration::from_secs(1));
    // Still alive and serving.
    let r = e.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        common::sample(
            &r.text(),
            "netstat_scrape_collector_success",
            &[("collector", "sockets")]
        ),
        Some(1.0)
    );
}
