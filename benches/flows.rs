//! CPU of the socket-destroy subscribers (`src/flows.rs`): exporter CPU per 10,000 closed
//! connections per second. Two exporters run side by side on the same host during the same
//! load, one with the default flags and one with `--no-collector.connections.flows`, and are
//! not scraped during the window: the difference of their CPU is what reading, decoding and
//! counting the destroy messages costs (each loopback connection gives two messages, one per
//! end). The load is paced short loopback connections (connect, send 1,000 bytes, receive 500,
//! close) from this process.
//!
//! Run: `cargo bench --bench flows` (root not needed). Options after `--`:
//!   --rate 10000      connections per second asked for (the achieved rate is reported)
//!   --seconds 10      length of the window

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// utime + stime of `pid`, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of stat(5), counted from the state (field 3) here.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn serve(listener: TcpListener, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true).unwrap();
    (0..2)
        .map(|_| {
            let l = listener.try_clone().unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut c = match l.accept() {
                        Ok((c, _)) => c,
                        Err(_) => {
                            std::thread::sleep(Duration::from_micros(200));
                            continue;
                        }
                    };
                    c.set_nonblocking(false).unwrap();
                    let mut b = [0u8; 1000];
                    if c.read_exact(&mut b).is_err() {
                        continue;
                    }
                    let _ = c.write_all(&[7u8; 500]);
                    let mut rest = [0u8; 64];
                    while matches!(c.read(&mut rest), Ok(n) if n > 0) {}
                }
            })
        })
        .collect()
}

/// Paced connections at `rate` per second for `seconds`, from 2 threads; returns how many.
fn load(to: SocketAddr, rate: u64, seconds: u64) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let done = done.clone();
            s.spawn(move || {
                while Instant::now() < end {
                    // Ahead of the pace: wait.
                    let due = start
                        + Duration::from_secs_f64(
                            done.load(Ordering::Relaxed) as f64 / rate as f64,
                        );
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                        continue;
                    }
                    let Ok(mut c) = TcpStream::connect(to) else {
                        continue;
                    };
                    if c.write_all(&[1u8; 1000]).is_err() {
                        continue;
                    }
                    let mut b = [0u8; 500];
                    if c.read_exact(&mut b).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    done.load(Ordering::Relaxed)
}

fn main() {
    let rate: u64 = arg("--rate").and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let with = common::Exporter::start(&[]);
    let without = common::Exporter::start(&["--no-collector.connections.flows"]);
    // The first collection opens the subscriber.
    let _ = (with.get("/metrics"), without.get("/metrics"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let servers = serve(listener, stop.clone());

    let idle = |secs: u64| {
        let (a, b) = (cpu_seconds(with.pid()), cpu_seconds(without.pid()));
        std::thread::sleep(Duration::from_secs(secs));
        (cpu_seconds(with.pid()) - a, cpu_seconds(without.pid()) - b)
    };
    let (idle_with, idle_without) = idle(seconds);
    let (a, b) = (cpu_seconds(with.pid()), cpu_seconds(without.pid()));
    let t = Instant::now();
    let n = load(addr, rate, seconds);
    let elapsed = t.elapsed().as_secs_f64();
    // The subscriber's last messages, then read the CPU.
    std::thread::sleep(Duration::from_millis(500));
    let (load_with, load_without) = (cpu_seconds(with.pid()) - a, cpu_seconds(without.pid()) - b);
    stop.store(true, Ordering::Relaxed);
    for s in servers {
        s.join().unwrap();
    }
    let text = with.get("/metrics").text();
    let lost = common::sample(&text, "netstat_socket_destroy_lost_total", &[]).unwrap_or(-1.0);
    let messages =
        common::sample(&text, "netstat_socket_destroy_messages_total", &[]).unwrap_or(-1.0);

    let achieved = n as f64 / elapsed;
    let pct = |cpu: f64, secs: f64| cpu / secs * 100.0;
    println!("socket-destroy subscriber, {seconds} s windows, {achieved:.0} connections/s achieved (asked {rate}):");
    println!(
        "  idle:  default {:.2}% of a core, --no-collector.connections.flows {:.2}%",
        pct(idle_with, seconds as f64),
        pct(idle_without, seconds as f64)
    );
    println!(
        "  load:  default {:.2}% of a core, --no-collector.connections.flows {:.2}%",
        pct(load_with, elapsed),
        pct(load_without, elapsed)
    );
    let extra = pct(load_with - load_without, elapsed);
    println!(
        "  subscriber: {extra:.2}% of a core = {:.2}% per 10,000 closed connections/s; {messages} messages, {lost} lost",
        extra / achieved * 10_000.0
    );
}
