//! Live tests of the socket-destroy counters (`src/flows.rs`) with default flags: a burst of
//! 20,000 short loopback connections (connect, send 1,000 bytes, receive 500, close) made
//! between two scrapes by a client that knows its own numbers. The listener's inbound key and
//! the client's outbound key must each gain exactly 20,000 closes and exactly the bytes the
//! client sent and received (mirrored on the listener's side), with nothing lost. Then
//! connects to a closed port count as refused, and inside a test namespace read with
//! `--netns=all` the same burst, and a burst closed with SO_LINGER 0, count exactly too.
//! (One kernel limit: the end that closes first may be freed before the peer's FIN arrives,
//! and its received bytes then count one short; see `assert_active_closer_received`.) Every
//! close order (client first, server first, both, SO_LINGER 0 on either side, a peer that
//! never closes) is checked for its exact expected bytes on both keys, and short-lived
//! listeners for their one `destroy_only` entry in the change log.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::netns::TestNetns;
use common::{require_root, sample, Exporter};

const CONNECTIONS: usize = 20_000;
const SENT: usize = 1_000;
const RECEIVED: usize = 500;

/// A free port below the ephemeral range (so the outbound series is labelled with it).
fn fixed_port_listener() -> TcpListener {
    fixed_port_listener_from(21_000)
}

/// [`fixed_port_listener`] at `from` or above.
fn fixed_port_listener_from(from: u16) -> TcpListener {
    for port in from..30_000u16 {
        if let Ok(l) = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)) {
            return l;
        }
    }
    panic!("no free port in 21000..30000");
}

/// Serve `listener` on `threads` threads until `stop`: read 1,000 bytes, answer 500, read
/// until the client closes (or resets), close.
fn serve(
    listener: &TcpListener,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true).unwrap();
    (0..threads)
        .map(|_| {
            let l = listener.try_clone().unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut c = match l.accept() {
                        Ok((c, _)) => c,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(1));
                            continue;
                        }
                        Err(e) => panic!("accept: {e}"),
                    };
                    c.set_nonblocking(false).unwrap();
                    let mut b = [0u8; SENT];
                    if c.read_exact(&mut b).is_err() {
                        continue;
                    }
                    let _ = c.write_all(&[7u8; RECEIVED]);
                    let mut rest = [0u8; 64];
                    while matches!(c.read(&mut rest), Ok(n) if n > 0) {}
                }
            })
        })
        .collect()
}

/// `n` connections to `to` from `threads` threads: send 1,000 bytes, read 500, close (with
/// SO_LINGER 0: a reset, which makes the kernel clear the client's remote port and counters).
fn burst(to: SocketAddr, n: usize, threads: usize, linger0: bool) {
    std::thread::scope(|s| {
        for t in 0..threads {
            let count = n / threads + usize::from(t < n % threads);
            s.spawn(move || {
                for _ in 0..count {
                    let mut c = TcpStream::connect(to).expect("connect");
                    c.write_all(&[1u8; SENT]).unwrap();
                    let mut b = [0u8; RECEIVED];
                    c.read_exact(&mut b).unwrap();
                    if linger0 {
                        set_linger0(&c);
                    }
                }
            });
        }
    });
}

fn set_linger0(c: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd, pointer and length of a linger.
    let rc = unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// The counters of one key (labels matched as a subset; 0 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    closed: u64,
    sent: u64,
    received: u64,
}

fn counts(text: &str, side: &str, labels: &[(&str, &str)]) -> Counts {
    counts_by(side, |name, extra| {
        let mut l = labels.to_vec();
        l.extend(extra);
        sample(text, name, &l).unwrap_or(0.0) as u64
    })
}

/// A key's counters, each read by `v(family, extra label)`.
fn counts_by(side: &str, v: impl Fn(&str, Option<(&str, &str)>) -> u64) -> Counts {
    Counts {
        closed: v(&format!("netstat_{side}_connections_closed_total"), None),
        sent: v(
            &format!("netstat_{side}_bytes_total"),
            Some(("direction", "sent")),
        ),
        received: v(
            &format!("netstat_{side}_bytes_total"),
            Some(("direction", "received")),
        ),
    }
}

/// The received bytes of the end that closed first (the client here): the kernel may free its
/// socket in FIN-WAIT-2 before the peer's FIN arrives, and the destroy message does not say
/// whether a FIN was counted in `tcpi_bytes_received`, so such a connection counts one byte
/// short (documented). Never more than received, at most one byte short per connection.
fn assert_active_closer_received(got: u64, connections: u64, per: u64, what: &str) {
    let exact = connections * per;
    assert!(
        got <= exact && exact - got <= connections,
        "{what}: received {got}, expected {exact} less at most one byte per connection"
    );
    if got != exact {
        eprintln!(
            "{what}: {} connections freed before the peer's FIN",
            exact - got
        );
    }
}

/// The counters of every series matching `labels` (a subset), summed: a key whose listener
/// was named in one scrape and not in another has two series.
fn counts_sum(text: &str, side: &str, labels: &[(&str, &str)]) -> Counts {
    counts_by(side, |name, extra| {
        let mut l = labels.to_vec();
        l.extend(extra);
        sum_matching(text, name, &l) as u64
    })
}

/// The sum of every series of `name` whose labels include `labels`.
fn sum_matching(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    text.lines()
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, lbl) = series.split_once('{')?;
            let lbl = lbl.trim_end_matches('}');
            (n == name && want.iter().all(|w| lbl.split(',').any(|kv| kv == w)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

fn lost(text: &str, netns: &[(&str, &str)]) -> f64 {
    sample(text, "netstat_socket_destroy_lost_total", netns).expect("lost_total exported")
}

/// Scrape until `done` holds (the subscriber has read the burst's messages), at most 30 s;
/// returns the last scrape.
fn scrape_until(e: &Exporter, done: impl Fn(&str) -> bool) -> String {
    scrape_until_for(e, Duration::from_secs(30), done)
}

/// [`scrape_until`], at most `patience` (a debug build's scrape takes seconds on a host with
/// tens of thousands of sockets).
fn scrape_until_for(e: &Exporter, patience: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + patience;
    loop {
        let text = e.get("/metrics").text();
        if done(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn twenty_thousand_short_connections_counted_exactly() {
    if !require_root() {
        return;
    }
    let listener = fixed_port_listener();
    let addr = listener.local_addr().unwrap();
    let port = addr.port().to_string();
    let e = Exporter::start(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let servers = serve(&listener, 4, stop.clone());
    let out_key = [
        ("remote_port", port.as_str()),
        ("remote_network", "loopback"),
        ("process", "unknown"),
    ];
    let in_key = [("port", port.as_str()), ("remote_network", "loopback")];
    let before = e.get("/metrics").text();
    assert_eq!(lost(&before, &[]), 0.0);
    let out0 = counts(&before, "outbound", &out_key);
    let in0 = counts(&before, "inbound", &in_key);

    burst(addr, CONNECTIONS, 4, false);

    let n = CONNECTIONS as u64;
    let after = scrape_until(&e, |t| {
        counts(t, "outbound", &out_key).closed >= out0.closed + n
            && counts(t, "inbound", &in_key).closed >= in0.closed + n
    });
    stop.store(true, Ordering::Relaxed);
    for s in servers {
        s.join().unwrap();
    }
    let out1 = counts(&after, "outbound", &out_key);
    let in1 = counts(&after, "inbound", &in_key);
    assert_eq!(lost(&after, &[]), 0.0, "messages lost");
    assert_eq!(
        (out1.closed - out0.closed, out1.sent - out0.sent),
        (n, n * SENT as u64),
        "client's outbound key"
    );
    assert_active_closer_received(
        out1.received - out0.received,
        n,
        RECEIVED as u64,
        "client's outbound key",
    );
    assert_eq!(
        (
            in1.closed - in0.closed,
            in1.sent - in0.sent,
            in1.received - in0.received
        ),
        (n, n * RECEIVED as u64, n * SENT as u64),
        "listener's inbound key"
    );
    // The listener is named (the inbound key carries its process: this test).
    let me = std::fs::read_to_string("/proc/self/comm").unwrap();
    let named = counts(
        &after,
        "inbound",
        &[("port", port.as_str()), ("process", me.trim())],
    );
    assert_eq!(
        named.closed - in0.closed,
        n,
        "inbound key named after the listener's owner"
    );
    // Nothing more arrives later: exact, not just at least.
    std::thread::sleep(Duration::from_secs(2));
    let again = e.get("/metrics").text();
    assert_eq!(counts(&again, "outbound", &out_key), out1);
    assert_eq!(counts(&again, "inbound", &in_key), in1);
}

#[test]
fn connects_to_a_closed_port_count_as_refused() {
    if !require_root() {
        return;
    }
    let e = Exporter::start(&[]);
    let key = [
        ("remote_port", "unknown"),
        ("remote_network", "loopback"),
        ("reason", "refused"),
    ];
    let get = |t: &str| sample(t, "netstat_outbound_connect_failures_total", &key).unwrap_or(0.0);
    let before = get(&e.get("/metrics").text());
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for _ in 0..100 {
        assert!(TcpStream::connect(closed).is_err());
    }
    let text = scrape_until(&e, |t| get(t) >= before + 100.0);
    // Other processes of the host may be refused on loopback meanwhile: at least ours.
    assert!(
        get(&text) - before >= 100.0,
        "{} refused",
        get(&text) - before
    );
}

#[test]
fn test_namespace_with_netns_all_normal_and_linger_zero() {
    if !require_root() {
        return;
    }
    let ns = TestNetns::new("fl");
    let inode = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .unwrap()
        .ino()
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let (listener, servers) = ns.run(|| {
        let l = TcpListener::bind("127.0.0.1:2222").unwrap();
        let s = serve(&l, 4, stop.clone());
        (l, s)
    });
    let addr = listener.local_addr().unwrap();
    let include = format!("--netns.include={}", ns.name);
    let e = Exporter::start(&["--netns=all", &include]);
    let nsl = ("netns", inode.as_str());
    let out_key = [("remote_port", "2222"), ("remote_network", "loopback"), nsl];
    let unknown_key = [
        ("remote_port", "unknown"),
        ("remote_network", "loopback"),
        nsl,
    ];
    let in_key = [("port", "2222"), nsl];
    let before = e.get("/metrics").text();
    assert_eq!(lost(&before, &[nsl]), 0.0);
    let n = CONNECTIONS as u64;

    ns.run(|| burst(addr, CONNECTIONS, 4, false));
    // Outbound messages wait up to 200 ms for a listener to claim them: wait for both.
    let text = scrape_until(&e, |t| {
        counts(t, "inbound", &in_key).closed >= n && counts_sum(t, "outbound", &out_key).closed >= n
    });
    assert_eq!(lost(&text, &[nsl]), 0.0, "messages lost");
    let outbound = counts_sum(&text, "outbound", &out_key);
    assert_eq!((outbound.closed, outbound.sent), (n, n * SENT as u64));
    assert_active_closer_received(outbound.received, n, RECEIVED as u64, "outbound key");
    assert_eq!(
        counts(&text, "inbound", &in_key),
        Counts {
            closed: n,
            sent: n * RECEIVED as u64,
            received: n * SENT as u64
        }
    );

    // SO_LINGER 0: the client's end is reset; the kernel clears its remote port and zeroes
    // its counters before the message is sent, so the client's closes count under
    // remote_port="unknown" without bytes (or, for a connection a pass happened to see
    // alive, under the port that pass saw, still without bytes). The listener's end keeps
    // everything; it received a reset instead of a FIN, which the destroy message does not
    // tell apart: its received bytes count one less per connection (documented).
    ns.run(|| burst(addr, CONNECTIONS, 4, true));
    let text = scrape_until(&e, |t| {
        counts(t, "inbound", &in_key).closed >= 2 * n
            && counts_sum(t, "outbound", &unknown_key).closed
                + counts_sum(t, "outbound", &out_key).closed
                >= 2 * n
    });
    stop.store(true, Ordering::Relaxed);
    for s in servers {
        s.join().unwrap();
    }
    assert_eq!(lost(&text, &[nsl]), 0.0, "messages lost");
    let (unknown, port) = (
        counts_sum(&text, "outbound", &unknown_key),
        counts_sum(&text, "outbound", &out_key),
    );
    assert_eq!(unknown.closed + port.closed, 2 * n, "{unknown:?} {port:?}");
    assert_eq!((unknown.sent, unknown.received), (0, 0));
    assert_eq!(port.sent, n * SENT as u64, "the aborted ones add no bytes");
    if port.closed > n {
        eprintln!(
            "{} aborted connections seen alive by a pass",
            port.closed - n
        );
    }
    let inbound = counts(&text, "inbound", &in_key);
    assert_eq!(inbound.closed, 2 * n);
    assert_eq!(inbound.sent, 2 * n * RECEIVED as u64);
    assert_eq!(inbound.received, n * SENT as u64 + n * (SENT as u64 - 1));
    drop(listener);
}

/// Failed connects, counted by reason, in a namespace nothing else uses: 100 connects to a
/// closed port are 100 `refused`; connects into a delay line that drops everything (with
/// `tcp_syn_retries=1` in the client's namespace) are `timeout`, with their remote port when
/// the connect was non-blocking (the kernel keeps it) and `unknown` after a blocking one
/// (whose failure path clears it).
#[test]
fn failed_connects_by_reason_in_a_test_namespace() {
    if !require_root() {
        return;
    }
    let ns = TestNetns::new("ff");
    ns.exec(&["sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"]);
    let host = Ipv4Addr::new(10, 213, 27, 1);
    let _line = common::delayline::DelayLine::new(
        &ns,
        "ff",
        host,
        Ipv4Addr::new(10, 213, 27, 2),
        Duration::from_millis(5),
        1.0,
    );
    let inode = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .unwrap()
        .ino()
        .to_string();
    let include = format!("--netns.include={}", ns.name);
    let e = Exporter::start(&["--netns=all", &include]);
    let _ = e.get("/metrics");
    let nsl = ("netns", inode.as_str());
    let failures = |t: &str, port: &str, network: &str, reason: &str| {
        sample(
            t,
            "netstat_outbound_connect_failures_total",
            &[
                ("remote_port", port),
                ("remote_network", network),
                ("reason", reason),
                nsl,
            ],
        )
        .unwrap_or(0.0) as u64
    };
    ns.run(|| {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        for _ in 0..100 {
            assert!(TcpStream::connect(closed).is_err());
        }
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(move || nonblocking_connect_times_out(SocketAddrV4::new(host, 5432)));
            }
            for _ in 0..2 {
                s.spawn(move || {
                    let err = TcpStream::connect(SocketAddrV4::new(host, 5432)).unwrap_err();
                    assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT), "{err}");
                });
            }
        });
    });
    let text = scrape_until(&e, |t| {
        failures(t, "5432", "private", "timeout") >= 3
            && failures(t, "unknown", "private", "timeout") >= 2
            && failures(t, "unknown", "loopback", "refused") >= 100
    });
    assert_eq!(failures(&text, "unknown", "loopback", "refused"), 100);
    assert_eq!(failures(&text, "5432", "private", "timeout"), 3);
    assert_eq!(failures(&text, "unknown", "private", "timeout"), 2);
    assert_eq!(failures(&text, "unknown", "private", "refused"), 0);
    // Failed connects are not closed connections.
    assert_eq!(
        counts(&text, "outbound", &[("remote_network", "private"), nsl]).closed,
        0
    );
    assert_eq!(lost(&text, &[nsl]), 0.0);
}

/// A non-blocking connect to `to`, waited for until the kernel gives up (ETIMEDOUT), then
/// closed.
fn nonblocking_connect_times_out(to: SocketAddrV4) {
    // SAFETY: plain socket calls on a fresh fd, closed at the end.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        assert!(fd >= 0);
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_port = to.port().to_be();
        a.sin_addr.s_addr = u32::from_ne_bytes(to.ip().octets());
        let rc = libc::connect(
            fd,
            (&a as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert!(rc < 0 && *libc::__errno_location() == libc::EINPROGRESS);
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        assert_eq!(libc::poll(&mut p, 1, 20_000), 1, "connect did not end");
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        );
        assert_eq!(err, libc::ETIMEDOUT);
        libc::close(fd);
    }
}

/// Every counter series of the destroy stream in a scrape: (name and labels) -> value.
fn counter_series(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.starts_with("netstat_outbound_connections_closed_total")
                    || l.starts_with("netstat_outbound_bytes_total")
                    || l.starts_with("netstat_outbound_retransmitted_segments_total")
                    || l.starts_with("netstat_inbound_connections_closed_total")
                    || l.starts_with("netstat_inbound_bytes_total")
                    || l.starts_with("netstat_inbound_retransmitted_segments_total")
                    || l.starts_with("netstat_outbound_connect_failures_total")
                    || l.starts_with("netstat_socket_destroy_"))
        })
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// 60 s of mixed churn (holders of long-lived connections made and dropped, short
/// connections, refused connects), scraped every second by two exporters: one with the
/// default flags, one with a tiny receive buffer (forced losses) and health (live traffic in
/// the counters). In every sample of either,
/// no counter decreases and no series disappears; the forced one counts its losses.
#[test]
fn counters_never_decrease_under_churn_even_with_losses() {
    if !require_root() {
        return;
    }
    let listener = fixed_port_listener();
    let addr = listener.local_addr().unwrap();
    let normal = Exporter::start(&[]);
    // Forced losses, and with health the live connections' traffic in the counters too: a
    // live socket whose destroy message is lost must not make its series decrease.
    let lossy = Exporter::start(&[
        "--collector.connections.flows.receive-buffer=4096",
        "--collector.connections.health",
    ]);
    let _ = (normal.get("/metrics"), lossy.get("/metrics"));
    let stop = Arc::new(AtomicBool::new(false));
    let servers = serve(&listener, 4, stop.clone());
    // The churn stops first (between rounds), then the servers: a client must never wait
    // for a server that is gone.
    let stop_churn = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop_churn.clone();
        std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Long-lived connections (in forked holders) that close together.
                let held = common::sockload::hold_tcp(2_000).expect("hold");
                burst(addr, 2_000, 2, rounds.is_multiple_of(3));
                let closed = TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap();
                for _ in 0..20 {
                    let _ = TcpStream::connect(closed);
                }
                drop(held);
                rounds += 1;
            }
            rounds
        })
    };
    let mut last: [std::collections::BTreeMap<String, f64>; 2] = Default::default();
    let sample = |last: &mut [std::collections::BTreeMap<String, f64>; 2]| {
        for (i, e) in [&normal, &lossy].into_iter().enumerate() {
            let now = counter_series(&e.get("/metrics").text());
            for (series, before) in &last[i] {
                match now.get(series) {
                    None => panic!("exporter {i}: series disappeared: {series}"),
                    Some(v) => assert!(
                        v >= before,
                        "exporter {i}: {series} went from {before} to {v}"
                    ),
                }
            }
            last[i] = now;
        }
    };
    let mut samples = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        sample(&mut last);
        samples += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    stop_churn.store(true, Ordering::Relaxed);
    let rounds = churn.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    for s in servers {
        s.join().unwrap();
    }
    // The last messages (and those waiting for a listener) are in after a moment.
    std::thread::sleep(Duration::from_secs(2));
    sample(&mut last);
    assert!(
        samples >= 30 && rounds >= 3,
        "{samples} samples, {rounds} rounds"
    );
    let value = |i: usize, prefix: &str| -> f64 {
        last[i]
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && !k.contains("netns="))
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(
        value(0, "netstat_socket_destroy_lost_total"),
        0.0,
        "default buffer lost messages"
    );
    assert!(
        value(1, "netstat_socket_destroy_lost_total") > 0.0,
        "the tiny buffer lost nothing"
    );
    // Both saw the churn; the lossy one counted less.
    let closed = |i| value(i, "netstat_inbound_connections_closed_total");
    // Each round closes 2,000 connections to the test's listener and 2,000 held ones.
    assert!(
        closed(0) >= (rounds * 2_000) as f64,
        "{} closes for {rounds} rounds",
        closed(0)
    );
    assert!(closed(1) < closed(0), "{} vs {}", closed(1), closed(0));
    eprintln!(
        "{samples} samples, {rounds} rounds; closes counted {} (default) vs {} (4 KiB buffer, {} overruns)",
        closed(0),
        closed(1),
        value(1, "netstat_socket_destroy_lost_total")
    );
}

/// How a close-order test ends its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseOrder {
    /// The client closes; the server reads the end of stream 300 ms later and closes.
    ClientFirst,
    /// The server closes; the client reads the end of stream 300 ms later and closes.
    ServerFirst,
    /// Both shut down their sending side, read the end of stream, close.
    Both,
    /// The client closes with SO_LINGER 0 (a reset); the server closes after.
    ClientLinger0,
    /// The server closes with SO_LINGER 0; the client closes after.
    ServerLinger0,
    /// The client closes; the server never does while the counters are read (it closes at
    /// the end, after reading nothing).
    PeerNeverCloses,
}

fn read_to_end(c: &mut TcpStream) {
    let mut b = [0u8; 64];
    while matches!(c.read(&mut b), Ok(n) if n > 0) {}
}

/// A connection to `listener` (at `addr`), accepted: the client has sent 1,000 bytes and
/// received 500. (client, server).
fn exchanged_pair(listener: &TcpListener, addr: SocketAddr) -> (TcpStream, TcpStream) {
    let mut c = TcpStream::connect(addr).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    c.write_all(&[1u8; SENT]).unwrap();
    let mut b = [0u8; SENT];
    s.read_exact(&mut b).unwrap();
    s.write_all(&[2u8; RECEIVED]).unwrap();
    let mut b = [0u8; RECEIVED];
    c.read_exact(&mut b).unwrap();
    (c, s)
}

/// `n` connections to a listener of its own: each client sends 1,000 bytes and receives 500,
/// then the pair is closed in `order`. Returns the listener's port and, for
/// [`CloseOrder::PeerNeverCloses`], the server ends still open.
fn close_in_order(order: CloseOrder, n: usize) -> (TcpListener, Vec<TcpStream>) {
    let listener = fixed_port_listener();
    let addr = listener.local_addr().unwrap();
    let pairs: Vec<_> = (0..n).map(|_| exchanged_pair(&listener, addr)).collect();
    // Longer than any delayed ACK (200 ms at most): the end that closed first has had its
    // FIN acknowledged alone, and the kernel has freed it in FIN-WAIT-2.
    let later = || std::thread::sleep(Duration::from_millis(300));
    let (mut clients, mut servers): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
    let mut held = Vec::new();
    match order {
        CloseOrder::ClientFirst => {
            clients.clear();
            later();
            for s in &mut servers {
                read_to_end(s);
            }
        }
        CloseOrder::ServerFirst => {
            servers.clear();
            later();
            for c in &mut clients {
                read_to_end(c);
            }
        }
        CloseOrder::Both => {
            for (c, s) in clients.iter().zip(&servers) {
                c.shutdown(std::net::Shutdown::Write).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
            }
            for (c, s) in clients.iter_mut().zip(servers.iter_mut()) {
                read_to_end(c);
                read_to_end(s);
            }
        }
        CloseOrder::ClientLinger0 => {
            for c in &clients {
                set_linger0(c);
            }
            clients.clear();
            later();
        }
        CloseOrder::ServerLinger0 => {
            for s in &servers {
                set_linger0(s);
            }
            servers.clear();
            later();
        }
        CloseOrder::PeerNeverCloses => {
            clients.clear();
            later();
            held = std::mem::take(&mut servers);
        }
    }
    drop(clients);
    drop(servers);
    (listener, held)
}

/// Every close order, checked against a client that knows its own numbers (1,000 bytes sent
/// and 500 received per connection), on the client's outbound key and the listener's inbound
/// key, with default flags. Sent bytes are exact in every order. Received bytes are exact
/// wherever the kernel counted the peer's FIN in `tcpi_bytes_received`; where it did not (an
/// end freed in FIN-WAIT-2 before the peer's FIN came, an end that got a reset instead of a
/// FIN) they are exactly one byte short per connection: the destroy message carries no sign
/// of the FIN (docs/collectors.md, "Payload bytes"). An end closed with SO_LINGER 0 has its
/// counters zeroed by the kernel and counts under remote_port="unknown" (outbound) without
/// bytes.
#[test]
fn every_close_order_counts_exact_sent_and_bounded_received_bytes() {
    if !require_root() {
        return;
    }
    const N: u64 = 20;
    const PATIENCE: Duration = Duration::from_secs(120);
    let e = Exporter::start(&[]);
    let (s, r) = (SENT as u64, RECEIVED as u64);
    let c = |closed: u64, sent: u64, received: u64| Counts {
        closed,
        sent,
        received,
    };
    let unknown = [
        ("remote_port", "unknown"),
        ("remote_network", "loopback"),
        ("process", "unknown"),
    ];
    // (order, outbound key's gain, inbound key's gain)
    let cases = [
        // The client, freed in FIN-WAIT-2, never counted the server's FIN: one short.
        (
            CloseOrder::ClientFirst,
            c(N, N * s, N * (r - 1)),
            c(N, N * r, N * s),
        ),
        (
            CloseOrder::ServerFirst,
            c(N, N * s, N * r),
            c(N, N * r, N * (s - 1)),
        ),
        (CloseOrder::Both, c(N, N * s, N * r), c(N, N * r, N * s)),
        // The client's end: zeroed, remote port cleared (below); the server got a reset.
        (
            CloseOrder::ClientLinger0,
            c(0, 0, 0),
            c(N, N * r, N * (s - 1)),
        ),
        // The server's end: zeroed; the client got a reset.
        (
            CloseOrder::ServerLinger0,
            c(N, N * s, N * (r - 1)),
            c(N, 0, 0),
        ),
        // The client: no FIN ever came. The server: not closed yet.
        (
            CloseOrder::PeerNeverCloses,
            c(N, N * s, N * (r - 1)),
            c(0, 0, 0),
        ),
    ];
    let diff = |a: Counts, b: Counts| {
        c(
            a.closed - b.closed,
            a.sent - b.sent,
            a.received - b.received,
        )
    };
    let mut listeners = Vec::new();
    for (order, want_out, want_in) in cases {
        let started = Instant::now();
        let before = e.get("/metrics").text();
        let unknown0 = counts_sum(&before, "outbound", &unknown);
        // Each case's listener stays open to the end: a port of its own.
        let (listener, held) = close_in_order(order, N as usize);
        let port = listener.local_addr().unwrap().port().to_string();
        listeners.push(listener);
        let out_key = [
            ("remote_port", port.as_str()),
            ("remote_network", "loopback"),
            ("process", "unknown"),
        ];
        let in_key = [("port", port.as_str()), ("remote_network", "loopback")];
        // A port may be used again by a later case: gains since `before`.
        let out0 = counts_sum(&before, "outbound", &out_key);
        let in0 = counts_sum(&before, "inbound", &in_key);
        let text = scrape_until_for(&e, PATIENCE, |t| {
            counts_sum(t, "outbound", &out_key).closed >= out0.closed + want_out.closed
                && counts_sum(t, "inbound", &in_key).closed >= in0.closed + want_in.closed
                && (order != CloseOrder::ClientLinger0
                    || counts_sum(t, "outbound", &unknown).closed >= unknown0.closed + N)
        });
        // Anything late would be in by now.
        std::thread::sleep(Duration::from_millis(500));
        let text = if want_in.closed == 0 || want_out.closed == 0 {
            e.get("/metrics").text()
        } else {
            text
        };
        assert_eq!(lost(&text, &[]), 0.0, "{order:?}: messages lost");
        // The end that closed first is freed in FIN-WAIT-2 before the peer's FIN when its
        // own FIN was acknowledged alone (the peer's delayed ACK came before the peer closed,
        // 300 ms later): one short. On a loaded host the ACK can come with the peer's FIN:
        // then it counted the FIN, exact. Either, never more.
        let check = |got: Counts, want: Counts, timing: bool, what: &str| {
            if timing && got != want {
                assert_eq!(
                    (got.closed, got.sent),
                    (want.closed, want.sent),
                    "{order:?}: {what}"
                );
                assert!(
                    got.received >= want.received && got.received <= want.received + N,
                    "{order:?}: {what}: {got:?}, expected {want:?} or up to one more per connection"
                );
                eprintln!(
                    "{order:?}: {what}: {} ends freed after the peer's FIN",
                    got.received - want.received
                );
            } else {
                assert_eq!(got, want, "{order:?}: {what}");
            }
        };
        check(
            diff(counts_sum(&text, "outbound", &out_key), out0),
            want_out,
            order == CloseOrder::ClientFirst,
            "the client's outbound key",
        );
        check(
            diff(counts_sum(&text, "inbound", &in_key), in0),
            want_in,
            order == CloseOrder::ServerFirst,
            "the listener's inbound key",
        );
        if order == CloseOrder::ClientLinger0 {
            // Other sockets of the host may be reset meanwhile: at least ours, never bytes.
            let got = diff(counts_sum(&text, "outbound", &unknown), unknown0);
            assert!(got.closed >= N, "{order:?}: {got:?}");
            assert_eq!((got.sent, got.received), (0, 0), "{order:?}: {got:?}");
        }
        if order == CloseOrder::PeerNeverCloses {
            // The server closes at last, its client's FIN unread: counted, exact.
            drop(held);
            let text = scrape_until_for(&e, PATIENCE, |t| {
                counts_sum(t, "inbound", &in_key).closed >= in0.closed + N
            });
            assert_eq!(
                diff(counts_sum(&text, "inbound", &in_key), in0),
                c(N, N * r, N * s),
                "{order:?}: the listener's inbound key once closed"
            );
        }
        eprintln!("{order:?}: as expected in {:?}", started.elapsed());
    }
}

/// The change log's `listener_*` events of `port`: (kind, seen) in order.
fn listener_events(e: &Exporter, port: u16) -> Vec<(String, Option<String>)> {
    let page: serde_json::Value =
        serde_json::from_str(&e.get("/api/v1/events?since=0").text()).expect("events JSON");
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|ev| ev["port"] == port && ev["netns"] == "")
        .map(|ev| {
            (
                ev["kind"].as_str().unwrap_or("").to_string(),
                ev["seen"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// With default flags (the watch every second): listeners that live 20 ms, too short for the
/// watch, enter the change log once each, `listener_closed` with `seen="destroy_only"`, from
/// their socket-destroy messages. A listener the watch saw is reported opened and closed by
/// the watch, and not again from its destroy message.
#[test]
fn short_lived_listeners_enter_the_change_log_once() {
    if !require_root() {
        return;
    }
    let e = Exporter::start(&[]);
    let _ = e.get("/metrics"); // the baseline
    let watched = fixed_port_listener();
    let watched_port = watched.local_addr().unwrap().port();
    let mut short: Vec<u16> = Vec::new();
    for _ in 0..5 {
        // Five listeners, five ports (a port freed is free again).
        let l = fixed_port_listener_from(short.last().map_or(watched_port, |p| *p) + 1);
        short.push(l.local_addr().unwrap().port());
        std::thread::sleep(Duration::from_millis(20));
        drop(l);
        std::thread::sleep(Duration::from_millis(100));
    }
    // The watch sees this one (several ticks), then it closes.
    std::thread::sleep(Duration::from_secs(3));
    drop(watched);
    // The change log takes a destroy message 3 s (two watch intervals and a second) after it;
    // events come with scrapes.
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = |e: &Exporter| {
        short.iter().all(|p| {
            listener_events(e, *p)
                .iter()
                .any(|k| k.0 == "listener_closed")
        }) && listener_events(e, watched_port).len() >= 2
    };
    loop {
        let _ = e.get("/metrics");
        if done(&e) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // Later scrapes add nothing.
    std::thread::sleep(Duration::from_secs(4));
    let _ = e.get("/metrics");
    let closed = |s: Option<&str>| ("listener_closed".to_string(), s.map(str::to_string));
    let opened = ("listener_opened".to_string(), None);
    let mut destroy_only = 0;
    for p in &short {
        let ev = listener_events(&e, *p);
        // Once: from the destroy stream, or (if a tick happened to see it) from the watch.
        if ev == [closed(Some("destroy_only"))] {
            destroy_only += 1;
        } else {
            assert_eq!(ev, [opened.clone(), closed(None)], "port {p}");
        }
    }
    assert!(
        destroy_only >= 4,
        "{destroy_only} of 5 short listeners recorded destroy_only"
    );
    assert_eq!(
        listener_events(&e, watched_port),
        [opened, closed(None)],
        "the watched listener, reported by the watch only"
    );
}

/// This process's name, as the exporter labels its sockets.
fn my_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string()
}

/// Connections a scrape saw close under what that scrape knew of them, with default flags:
/// their owner (a destroy message has no inode, so no owner of its own) and their remote
/// port, which the kernel clears when a connection is aborted with SO_LINGER 0 (then the
/// message counts none of the bytes: the kernel zeroed them).
#[test]
fn connections_a_scrape_saw_close_under_their_owner_and_port() {
    if !require_root() {
        return;
    }
    const N: usize = 30;
    let listener = fixed_port_listener_from(23_000);
    let addr = listener.local_addr().unwrap();
    let port = addr.port().to_string();
    let me = my_comm();
    let e = Exporter::start(&[]);
    let (mut clients, mut servers): (Vec<_>, Vec<_>) =
        (0..2 * N).map(|_| exchanged_pair(&listener, addr)).unzip();
    let key = [
        ("remote_port", port.as_str()),
        ("remote_network", "loopback"),
        ("process", me.as_str()),
    ];
    let unknown_port = [("remote_port", "unknown"), ("process", me.as_str())];
    // A scrape sees them alive, owned by this process (the owners of new sockets are found
    // by a walk, which a scrape makes when one is due: at most every 30 s by default).
    let live = |t: &str| {
        sample(
            t,
            "netstat_outbound_connections",
            &[
                ("remote_port", port.as_str()),
                ("process", me.as_str()),
                ("state", "established"),
            ],
        )
    };
    let seen = scrape_until_for(&e, Duration::from_secs(60), |t| {
        live(t) == Some((2 * N) as f64)
    });
    assert_eq!(live(&seen), Some((2 * N) as f64), "a scrape saw them");
    let k0 = counts(&seen, "outbound", &key);
    let u0 = counts_sum(&seen, "outbound", &unknown_port);
    // N closed normally (the server reads the end, then closes), N with SO_LINGER 0.
    let aborted = clients.split_off(N);
    for c in &aborted {
        set_linger0(c);
    }
    drop(aborted);
    drop(clients);
    for s in &mut servers {
        read_to_end(s);
    }
    drop(servers);
    let n = N as u64;
    let text = scrape_until(&e, |t| {
        counts(t, "outbound", &key).closed >= k0.closed + 2 * n
    });
    let k1 = counts(&text, "outbound", &key);
    assert_eq!(
        (k1.closed - k0.closed, k1.sent - k0.sent),
        (2 * n, n * SENT as u64),
        "closed and sent under the owner and the port (the aborted ones without bytes): {k0:?} -> {k1:?}; without the port {:?} -> {:?}",
        u0,
        counts_sum(&text, "outbound", &unknown_port)
    );
    assert_active_closer_received(
        k1.received - k0.received,
        n,
        RECEIVED as u64,
        "received under the owner and the port",
    );
    assert_eq!(
        counts_sum(&text, "outbound", &unknown_port),
        u0,
        "none of them lost its port"
    );
    assert_eq!(lost(&text, &[]), 0.0);
}

/// A blocking connect a scrape saw in SYN-SENT and that is then refused counts under its
/// remote port (the kernel clears the remote port on that failure path; the scrape
/// remembered it by the socket's cookie), even when the refusal comes while that scrape is
/// still looking for owners. The refusal comes through a delay line (RTT 800 ms, under the
/// 1 s of the first SYN retransmission) from a namespace the test makes, where nothing
/// listens on the port. Default flags. (Its process is what that scrape knew: often
/// `unknown` for a socket seconds old, whose owner is found by a later walk.)
#[test]
fn a_refused_connect_a_scrape_saw_in_syn_sent_keeps_its_port() {
    if !require_root() {
        return;
    }
    const N: usize = 10;
    let ns = TestNetns::new("fs");
    let peer = Ipv4Addr::new(10, 213, 29, 2);
    let _line = common::delayline::DelayLine::new(
        &ns,
        "fs",
        Ipv4Addr::new(10, 213, 29, 1),
        peer,
        Duration::from_millis(400),
        0.0,
    );
    let e = Exporter::start(&[]);
    let _ = e.get("/metrics");
    // Summed over processes: nothing else connects to the test's namespace.
    let failures = |t: &str, port: &str| {
        sum_matching(
            t,
            "netstat_outbound_connect_failures_total",
            &[
                ("remote_port", port),
                ("remote_network", "private"),
                ("reason", "refused"),
            ],
        ) as u64
    };
    // The scrape must read the kernel's table while the SYNs are on the line: a slow scrape
    // misses some, and then the attempt is made again on another port.
    for port in 6101u16..6104 {
        let p = port.to_string();
        let before = e.get("/metrics").text();
        let (f0, u0) = (failures(&before, &p), failures(&before, "unknown"));
        let connects: Vec<_> = (0..N)
            .map(|_| {
                std::thread::spawn(move || {
                    let t = Instant::now();
                    let err = TcpStream::connect(SocketAddrV4::new(peer, port)).unwrap_err();
                    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
                    t.elapsed()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let during = e.get("/metrics").text();
        let saw = sum_matching(
            &during,
            "netstat_outbound_connections",
            &[("remote_port", p.as_str()), ("state", "syn_sent")],
        ) as usize;
        for c in connects {
            let took = c.join().unwrap();
            assert!(took >= Duration::from_millis(700), "refused after {took:?}");
        }
        let text = scrape_until(&e, |t| {
            failures(t, &p) + failures(t, "unknown") >= f0 + u0 + N as u64
        });
        let (with_port, without) = (failures(&text, &p) - f0, failures(&text, "unknown") - u0);
        if saw < N {
            eprintln!("port {port}: the scrape saw {saw} of {N} connects in SYN-SENT ({with_port} counted with the port, {without} without); again");
            continue;
        }
        assert_eq!(
            (with_port, without),
            (N as u64, 0),
            "refused connects seen in SYN-SENT count under their port"
        );
        return;
    }
    panic!("no scrape saw all {N} connects in SYN-SENT in three attempts");
}

/// With `--collector.connections.health` (the dumps carry tcp_info), a counter is the closed
/// connections plus the live ones' traffic so far: a long connection's bytes show while it
/// lives, exactly, on the client's outbound key (under its process) and the listener's
/// inbound key, and when it closes they stay where they were (never counted twice, never
/// moved, never decreasing, in every scrape).
#[test]
fn with_health_live_connections_count_their_traffic_while_they_live() {
    if !require_root() {
        return;
    }
    const UP: usize = 1_000_000;
    const DOWN: usize = 300_000;
    let listener = fixed_port_listener_from(24_000);
    let addr = listener.local_addr().unwrap();
    let port = addr.port().to_string();
    let me = my_comm();
    let e = Exporter::start(&["--collector.connections.health"]);
    let out_key = [
        ("remote_port", port.as_str()),
        ("remote_network", "loopback"),
        ("process", me.as_str()),
    ];
    let in_key = [
        ("port", port.as_str()),
        ("remote_network", "loopback"),
        ("process", me.as_str()),
    ];
    let mut samples: Vec<(Counts, Counts)> = Vec::new();
    let mut scrape = |until: &dyn Fn(Counts, Counts) -> bool| -> (Counts, Counts) {
        // An owner walk comes at most every 30 s (the default interval): a new connection's
        // owner is named within 30 s.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t = e.get("/metrics").text();
            let s = (
                counts(&t, "outbound", &out_key),
                counts(&t, "inbound", &in_key),
            );
            samples.push(s);
            if until(s.0, s.1) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let (o0, i0) = scrape(&|_, _| true);
    assert_eq!((o0, i0), (Counts::default(), Counts::default()));

    let mut c = TcpStream::connect(addr).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    let reader = std::thread::spawn(move || {
        let mut b = vec![0u8; UP];
        s.read_exact(&mut b).unwrap();
        s.write_all(&vec![2u8; DOWN]).unwrap();
        s
    });
    c.write_all(&vec![1u8; UP]).unwrap();
    let mut b = vec![0u8; DOWN];
    c.read_exact(&mut b).unwrap();
    let mut s = reader.join().unwrap();
    let (up, down) = (UP as u64, DOWN as u64);
    let live_out = Counts {
        closed: 0,
        sent: up,
        received: down,
    };
    let live_in = Counts {
        closed: 0,
        sent: down,
        received: up,
    };
    // Alive: its traffic so far, exactly, once a scrape has found its owner.
    let (o, i) = scrape(&|o, i| o == live_out && i == live_in);
    assert_eq!((o, i), (live_out, live_in), "live traffic while it lives");

    // Ends: the client closes, the server reads the end and closes.
    drop(c);
    read_to_end(&mut s);
    drop(s);
    let closed = |c: Counts| Counts { closed: 1, ..c };
    let (o, i) = scrape(&|o, i| o.closed == 1 && i.closed == 1);
    assert_eq!(
        (o, i),
        (closed(live_out), closed(live_in)),
        "closed: the same traffic, counted once, under the same keys"
    );
    std::thread::sleep(Duration::from_secs(2));
    let (o, i) = scrape(&|_, _| true);
    assert_eq!((o, i), (closed(live_out), closed(live_in)), "and it stays");
    for w in samples.windows(2) {
        let (a, b) = (w[0], w[1]);
        for (x, y) in [(a.0, b.0), (a.1, b.1)] {
            assert!(
                y.closed >= x.closed && y.sent >= x.sent && y.received >= x.received,
                "decreased: {x:?} -> {y:?}"
            );
        }
    }
}
