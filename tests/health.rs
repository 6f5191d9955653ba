//! Live tests of connection health (RTT gauge histograms, retransmitting connections) with
//! the DEFAULT flags: a listener on loopback and a process named with prctl holding 5
//! connections to it. The exporter's histograms must equal what `ss -ti` reports for the same
//! sockets, bucketed the same way, on both sides (the listener's accepted connections and the
//! client's outbound ones); the exposition must pass `promtool check metrics`, and OpenMetrics
//! must carry the same buckets as a `gaugehistogram`.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::sockload::hold_clients;
use common::{require_tool, run_once, sample, Exporter};

/// The exporter's bucket bounds, microseconds (src/collectors/health.rs; repeated here on
/// purpose: a change of the exposed buckets must be a visible change of this test).
const BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000,
    512_000, 1_024_000, 2_048_000, 4_096_000,
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
    let mut args = vec!["-H", "-tin", "state", "established"];
    args.extend_from_slice(filter);
    let out = Command::new("ss").args(&args).output().expect("run ss");
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
    assert_eq!((ss_out.len(), ss_in.len()), (5, 5), "ss sees the 5 connections");

    let out = run_once(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();

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
        sample(&text, "netstat_outbound_connections_retransmitting", &outbound),
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
        sample(&text, "netstat_listener_connections_retransmitting", &listener),
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
    let e = Exporter::start(&[]);
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
