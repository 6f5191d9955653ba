//! Live tests of connection health (RTT gauge histograms, retransmitting connections), with
//! the default flags plus `--collector.connections.health` (the one switch; off by default for
//! its cost): a listener on loopback and a process named with prctl holding 5
//! connections to it. The exporter's histograms must equal what `ss -ti` reports for the same
//! sockets, bucketed the same way, on both sides (the listener's accepted connections and the
//! client's outbound ones); the exposition must pass `promtool check metrics`, and OpenMetrics
//! must carry the same buckets as a `gaugehistogram`.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::delayline::DelayLine;
use common::netns::TestNetns;
use common::sockload::hold_clients;
use common::{require_root, require_tool, run_once, sample, Exporter};

/// The switch (health is off by default).
const HEALTH: &str = "--collector.connections.health";

/// The exporter's bucket bounds, microseconds (src/collectors/health.rs; repeated here on
/// purpose: a change of the exposed buckets must be a visible change of this test).
const BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000,
    1_024_000, 2_048_000, 4_096_000,
];

fn le_label(bound_us: u64) -> String {
    format!("{}", bound_us as f64 / 1e6)
}

/// A free port below the ephemeral range (so the outbound series is labelled with it).
fn fixed_port_listener() -> TcpListener {
    for port in 21_000..30_000u16 {
        if let Ok(l) = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)) {
            return l;
        }
    }
    panic!("no free port in 21000..30000");
}

/// Per established socket matching the `ss` filter: (rtt in us, retransmitting now), from
/// `ss -tin`: `rtt:<ms>/<var>` and `retrans:<in flight>/<total>` (shown when not zero).
fn ss_health(filter: &[&str]) -> Vec<(u64, bool)> {
    ss_health_in(None, filter)
}

/// [`ss_health`] in the namespace `ns` (`ip netns exec`), or here.
fn ss_health_in(ns: Option<&TestNetns>, filter: &[&str]) -> Vec<(u64, bool)> {
    let mut args = vec!["-H", "-tin", "state", "established"];
    args.extend_from_slice(filter);
    let out = match ns {
        None => Command::new("ss").args(&args).output(),
        Some(ns) => Command::new("ip")
            .args(["netns", "exec", ns.name.as_str(), "ss"])
            .args(&args)
            .output(),
    }
    .expect("run ss");
    assert!(out.status.success(), "ss {args:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = Vec::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            continue; // the address line; its details follow on the next one
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_string)
        };
        let rtt_us = field("rtt:")
            .and_then(|r| r.split('/').next()?.parse::<f64>().ok())
            .map_or(0, |ms| (ms * 1000.0).round() as u64);
        let retrans = field("retrans:")
            .and_then(|r| r.split('/').next()?.parse::<u64>().ok())
            .unwrap_or(0);
        v.push((rtt_us, retrans > 0));
    }
    v
}

/// Cumulative bucket counts (BOUNDS_US then +Inf) of RTTs in us.
fn cumulative(rtts: &[u64]) -> Vec<u64> {
    let mut out: Vec<u64> = BOUNDS_US
        .iter()
        .map(|b| rtts.iter().filter(|r| **r <= *b).count() as u64)
        .collect();
    out.push(rtts.len() as u64);
    out
}

fn exported_buckets(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<u64> {
    let mut les: Vec<String> = BOUNDS_US.iter().map(|b| le_label(*b)).collect();
    les.push("+Inf".into());
    les.iter()
        .map(|le| {
            let mut l = labels.to_vec();
            l.push(("le", le));
            sample(text, &format!("{name}_bucket"), &l)
                .unwrap_or_else(|| panic!("{name}_bucket{l:?} missing")) as u64
        })
        .collect()
}

struct Lab {
    port: u16,
    _listener: TcpListener,
    _accepted: Vec<TcpStream>,
    _clients: common::sockload::Holder,
}

impl Lab {
    fn new() -> Lab {
        let listener = fixed_port_listener();
        let port = listener.local_addr().unwrap().port();
        let target = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let clients = hold_clients("rttprobe", &[target; 5]).expect("client holder");
        let mut accepted = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while accepted.len() < 5 && Instant::now() < deadline {
            match listener.accept() {
                Ok((s, _)) => accepted.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        assert_eq!(accepted.len(), 5, "the 5 client connections were accepted");
        Lab {
            port,
            _listener: listener,
            _accepted: accepted,
            _clients: clients,
        }
    }
}

#[test]
fn rtt_histograms_and_retransmitting_equal_ss_on_loopback() {
    if !require_tool("ss") {
        return;
    }
    let lab = Lab::new();
    let port = lab.port.to_string();
    let dport = format!(":{port}");
    // Idle connections: no new RTT sample arrives, so ss and the exporter see the same values.
    let ss_out = ss_health(&["dst", "127.0.0.1", "dport", "=", &dport]);
    let ss_in = ss_health(&["src", "127.0.0.1", "sport", "=", &dport]);
    assert_eq!(
        (ss_out.len(), ss_in.len()),
        (5, 5),
        "ss sees the 5 connections"
    );

    let out = run_once(&[HEALTH]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // Off by default: the same sockets, no health series without the switch.
    let default = run_once(&[]);
    let default = String::from_utf8_lossy(&default.stdout);
    assert!(default.contains("netstat_outbound_connections{"));
    assert!(!default.contains("_rtt_seconds") && !default.contains("_retransmitting"));

    let outbound = [
        ("protocol", "tcp"),
        ("remote_port", port.as_str()),
        ("remote_network", "loopback"),
        ("process", "rttprobe"),
    ];
    let rtts: Vec<u64> = ss_out.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        exported_buckets(&text, "netstat_outbound_rtt_seconds", &outbound),
        cumulative(&rtts),
        "outbound buckets = ss -ti rtt of the same sockets ({rtts:?} us)"
    );
    assert_eq!(
        sample(&text, "netstat_outbound_rtt_seconds_count", &outbound),
        Some(5.0)
    );
    let sum = sample(&text, "netstat_outbound_rtt_seconds_sum", &outbound).unwrap();
    let ss_sum: u64 = rtts.iter().sum();
    // ss prints milliseconds with 3 decimals: 1 us per socket of rounding.
    assert!(
        (sum * 1e6 - ss_sum as f64).abs() <= 5.0,
        "sum {sum} s vs ss {ss_sum} us"
    );
    assert_eq!(
        sample(
            &text,
            "netstat_outbound_connections_retransmitting",
            &outbound
        ),
        Some(ss_out.iter().filter(|(_, r)| *r).count() as f64)
    );

    let listener = [
        ("protocol", "tcp"),
        ("address", "127.0.0.1"),
        ("port", port.as_str()),
    ];
    let rtts: Vec<u64> = ss_in.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        exported_buckets(&text, "netstat_listener_rtt_seconds", &listener),
        cumulative(&rtts),
        "listener buckets = ss -ti rtt of the accepted sockets ({rtts:?} us)"
    );
    assert_eq!(
        sample(
            &text,
            "netstat_listener_connections_retransmitting",
            &listener
        ),
        Some(ss_in.iter().filter(|(_, r)| *r).count() as f64)
    );
    // Loopback: every RTT is under 1 ms.
    let le_1ms = [listener.to_vec(), vec![("le", "0.001")]].concat();
    assert_eq!(
        sample(&text, "netstat_listener_rtt_seconds_bucket", &le_1ms),
        Some(5.0)
    );

    if require_tool("promtool") {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
            "promtool: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn openmetrics_exposes_a_gaugehistogram() {
    let lab = Lab::new();
    let port = lab.port.to_string();
    let e = Exporter::start(&[HEALTH]);
    let r = common::http_get(
        e.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains("# TYPE netstat_listener_rtt_seconds gaugehistogram\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE netstat_outbound_rtt_seconds gaugehistogram\n"));
    assert!(text.ends_with("# EOF\n") && text.matches("# EOF").count() == 1);
    let listener = [("address", "127.0.0.1"), ("port", port.as_str())];
    assert_eq!(
        sample(&text, "netstat_listener_rtt_seconds_gcount", &listener),
        Some(5.0)
    );
    let inf = [listener.to_vec(), vec![("le", "+Inf")]].concat();
    assert_eq!(
        sample(&text, "netstat_listener_rtt_seconds_bucket", &inf),
        Some(5.0)
    );
    // The text format of the same exporter: a classic histogram (see docs/collectors.md).
    let t = e.get("/metrics").text();
    assert!(t.contains("# TYPE netstat_listener_rtt_seconds histogram\n"));
}

/// A live Prometheus scraping the exporter (it asks for OpenMetrics, so it ingests the
/// gaugehistogram) computes the RTT quantiles of the loopback connections with
/// `histogram_quantile()` over the `_bucket` series, without `rate()`.
#[test]
fn prometheus_histogram_quantile_over_the_gauge_buckets() {
    if !require_tool("prometheus") {
        return;
    }
    let lab = Lab::new();
    let port = lab.port.to_string();
    let e = Exporter::start(&[HEALTH]);
    let p = common::prometheus::Prometheus::start(&[e.addr], 1);
    p.wait_for_scrapes(2, 1);
    // Ingested from OpenMetrics: the gaugehistogram's count series is _gcount.
    let gcount =
        format!("netstat_listener_rtt_seconds_gcount{{address=\"127.0.0.1\",port=\"{port}\"}}");
    assert_eq!(p.value(&gcount), Some(5.0), "{}", p.log());
    for series in [
        format!(
            "netstat_outbound_rtt_seconds_bucket{{remote_port=\"{port}\",process=\"rttprobe\"}}"
        ),
        format!("netstat_listener_rtt_seconds_bucket{{address=\"127.0.0.1\",port=\"{port}\"}}"),
    ] {
        for q in ["0.5", "0.99"] {
            let expr = format!("histogram_quantile({q}, sum by (le) ({series}))");
            let v = p.value(&expr).unwrap_or_else(|| panic!("{expr}: no value"));
            assert!(
                v > 0.0 && v <= 0.001,
                "{expr} = {v}: loopback RTT is under 1 ms"
            );
        }
    }
}

/// The sum of every sample `name{labels...}` (labels matched as a subset).
fn sum_samples(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, lbl) = series.split_once('{').unwrap_or((series, ""));
            let lbl = lbl.trim_end_matches('}');
            (n == name
                && labels
                    .iter()
                    .all(|(k, v)| lbl.split(',').any(|kv| kv == format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

const LINE_HOST: Ipv4Addr = Ipv4Addr::new(10, 213, 21, 1);
const LINE_NS: Ipv4Addr = Ipv4Addr::new(10, 213, 21, 2);
/// Below the ephemeral range: the outbound series carries it as remote_port.
const DELAYED_PORT: u16 = 7070;

fn wait_established(filter: &[&str], n: usize) -> Vec<(u64, bool)> {
    wait_established_in(None, filter, n)
}

/// As [`wait_established`], in `ns`: a server's socket is established only when the client's
/// last handshake ACK has crossed the delay line, 40 ms after the client's.
fn wait_established_in(ns: Option<&TestNetns>, filter: &[&str], n: usize) -> Vec<(u64, bool)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = ss_health_in(ns, filter);
        if v.len() >= n || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn netns_inode(ns: &TestNetns) -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/run/netns/{}", ns.name))
        .unwrap()
        .ino()
        .to_string()
}

/// The delay line holds every packet 40 ms each way (80 ms RTT): a process named with prctl
/// holds 5 connections through it to a server in the namespace, another 5 on loopback. The
/// outbound RTT histogram of the delayed port has every socket between 64 and 128 ms, the
/// loopback one under 1 ms, both equal to `ss -ti` bucketed; with `--netns=all` the
/// namespace's listener shows the same RTT from its side; a live Prometheus computes the
/// median with histogram_quantile() between 0.064 and 0.128 s.
#[test]
fn rtt_through_an_80_ms_delay_line() {
    if !require_root() || !require_tool("ip") || !require_tool("ss") {
        return;
    }
    let ns = TestNetns::new("hd");
    let _line = DelayLine::new(
        &ns,
        "hd",
        LINE_HOST,
        LINE_NS,
        Duration::from_millis(40),
        0.0,
    );
    let _server = ns.run(|| TcpListener::bind(SocketAddrV4::new(LINE_NS, DELAYED_PORT)).unwrap());
    let local = Lab::new();
    let _slow = hold_clients("rttslow", &[SocketAddrV4::new(LINE_NS, DELAYED_PORT); 5])
        .expect("client holder");
    let port = DELAYED_PORT.to_string();
    let dport = format!(":{port}");
    let ss_out = wait_established(&["dst", "10.213.21.2", "dport", "=", &dport], 5);
    assert_eq!(ss_out.len(), 5, "5 connections through the delay line");
    let ss_in = wait_established_in(Some(&ns), &["src", "10.213.21.2", "sport", "=", &dport], 5);
    assert_eq!(ss_in.len(), 5);
    for (rtt, _) in ss_out.iter().chain(&ss_in) {
        assert!(
            (64_000..=128_000).contains(rtt),
            "ss rtt {rtt} us through the 80 ms line"
        );
    }

    let out = run_once(&[HEALTH, "--netns=all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let delayed = [
        ("protocol", "tcp"),
        ("remote_port", port.as_str()),
        ("remote_network", "private"),
        ("process", "rttslow"),
    ];
    let rtts: Vec<u64> = ss_out.iter().map(|(r, _)| *r).collect();
    let buckets = exported_buckets(&text, "netstat_outbound_rtt_seconds", &delayed);
    assert_eq!(
        buckets,
        cumulative(&rtts),
        "delayed port = ss -ti bucketed ({rtts:?} us)"
    );
    let le_064 = [delayed.to_vec(), vec![("le", "0.064")]].concat();
    let le_128 = [delayed.to_vec(), vec![("le", "0.128")]].concat();
    assert_eq!(
        sample(&text, "netstat_outbound_rtt_seconds_bucket", &le_064),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "netstat_outbound_rtt_seconds_bucket", &le_128),
        Some(5.0)
    );
    let local_port = local.port.to_string();
    let loopback = [
        ("remote_port", local_port.as_str()),
        ("process", "rttprobe"),
        ("le", "0.001"),
    ];
    assert_eq!(
        sample(&text, "netstat_outbound_rtt_seconds_bucket", &loopback),
        Some(5.0)
    );

    // The namespace's listener, from its side.
    let inode = netns_inode(&ns);
    let listener = [
        ("address", "10.213.21.2"),
        ("port", port.as_str()),
        ("netns", inode.as_str()),
    ];
    let rtts: Vec<u64> = ss_in.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        exported_buckets(&text, "netstat_listener_rtt_seconds", &listener),
        cumulative(&rtts),
        "the namespace's listener = ss -ti in the namespace ({rtts:?} us)"
    );
    assert_eq!(
        sample(
            &text,
            "netstat_listener_connections_retransmitting",
            &listener
        ),
        Some(0.0)
    );

    if !require_tool("prometheus") {
        return;
    }
    let e = Exporter::start(&[HEALTH]);
    let p = common::prometheus::Prometheus::start(&[e.addr], 1);
    p.wait_for_scrapes(2, 1);
    let expr = format!(
        "histogram_quantile(0.5, sum by (le) (netstat_outbound_rtt_seconds_bucket{{remote_port=\"{port}\",process=\"rttslow\"}}))"
    );
    let v = p
        .value(&expr)
        .unwrap_or_else(|| panic!("{expr}: no value\n{}", p.log()));
    assert!((0.064..=0.128).contains(&v), "{expr} = {v}");
}

/// 5% loss on the line and bulk senders: the exporter's retransmitting count is not zero and
/// agrees with the sockets `ss -ti` shows with retransmissions in flight just before and just
/// after (one pass of skew either way).
#[test]
fn retransmitting_under_loss_agrees_with_ss() {
    if !require_root() || !require_tool("ip") || !require_tool("ss") {
        return;
    }
    let ns = TestNetns::new("hl");
    let _line = DelayLine::new(
        &ns,
        "hl",
        Ipv4Addr::new(10, 213, 21, 5),
        Ipv4Addr::new(10, 213, 21, 6),
        Duration::from_millis(10),
        0.05,
    );
    const BULK_PORT: u16 = 7071;
    let server = ns.run(|| {
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::new(10, 213, 21, 6), BULK_PORT)).unwrap()
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The sink: accept and drain (the sockets were made in the namespace; reading them works
    // from any thread).
    let sink = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            server.set_nonblocking(true).unwrap();
            let mut conns: Vec<TcpStream> = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((c, _)) = server.accept() {
                    c.set_nonblocking(true).unwrap();
                    conns.push(c);
                }
                let mut idle = true;
                for c in &mut conns {
                    use std::io::Read;
                    if let Ok(n) = c.read(&mut buf) {
                        idle &= n == 0;
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut c =
                    TcpStream::connect(SocketAddrV4::new(Ipv4Addr::new(10, 213, 21, 6), BULK_PORT))
                        .unwrap();
                c.set_write_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let chunk = vec![0x5au8; 1 << 16];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = c.write(&chunk);
                }
            })
        })
        .collect();
    let e = Exporter::start(&[HEALTH]);
    let port = BULK_PORT.to_string();
    let dport = format!(":{port}");
    let filter = ["dst", "10.213.21.6", "dport", "=", dport.as_str()];
    let mut seen_nonzero = 0;
    let mut problems = Vec::new();
    let count = || ss_health(&filter).iter().filter(|(_, r)| *r).count() as f64;
    for _ in 0..20 {
        // The state flips within milliseconds under loss: ss runs before, during and after the
        // scrape, and the exporter's pass (somewhere in that window) must lie within what ss
        // saw in it, give or take one socket.
        let before = count();
        let scraping = std::sync::atomic::AtomicBool::new(true);
        let (text, during) = std::thread::scope(|sc| {
            let watcher = sc.spawn(|| {
                let mut seen = Vec::new();
                while scraping.load(std::sync::atomic::Ordering::Relaxed) {
                    seen.push(count());
                }
                seen
            });
            let text = e.get("/metrics").text();
            scraping.store(false, std::sync::atomic::Ordering::Relaxed);
            (text, watcher.join().unwrap())
        });
        let after = count();
        let got = sum_samples(
            &text,
            "netstat_outbound_connections_retransmitting",
            &[("remote_port", &port)],
        );
        let window = during.iter().copied().chain([before, after]);
        let lo = window.clone().fold(f64::INFINITY, f64::min) - 1.0;
        let hi = window.fold(f64::NEG_INFINITY, f64::max) + 1.0;
        if !(lo..=hi).contains(&got) {
            problems.push(format!(
                "exporter {got}, ss {before} before, {during:?} during and {after} after"
            ));
        }
        if got > 0.0 {
            seen_nonzero += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    sink.join().unwrap();
    assert!(
        seen_nonzero > 0,
        "no retransmitting connection seen under 5% loss"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}
