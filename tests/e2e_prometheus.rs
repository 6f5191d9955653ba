//! End to end against a real Prometheus server (Debian package `prometheus`): the dashboard's
//! and the alert rules' PromQL return data from a live exporter, and an interface-errors alert
//! goes pending then firing when a fixture's error counters rise.
//!
//! Each test starts its own Prometheus on a free loopback port with its TSDB in a temporary
//! directory and a generated config: scrape_interval and evaluation_interval 1s, one job
//! "netstat-exporter" (the job name alerts.yml and the dashboard expect), and as rule file a
//! copy of deploy/prometheus/alerts.yml in which every `for:` is shortened to 5s (the only
//! change: thresholds and rate windows are those shipped). Only loopback traffic.
//!
//! Network namespaces: the exporter runs with `--netns=all`, and (as root, with `ip`) the test
//! makes a namespace of its own with a veth peer, a listener and a connection inside, so the
//! per-namespace panels have a namespace with something in it.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::netns::{TestNetns, Veth};
use common::{require_root, require_tool, Exporter, TempDir};
use serde_yaml_ng::Value;

use common::prometheus::{Prometheus, JOB, SHORT_FOR};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_file(rel: &str) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join(rel)).unwrap()).unwrap()
}

/// The alert rules of alerts.yml: (name, expr).
fn alert_rules() -> Vec<(String, String)> {
    let doc = yaml_file("deploy/prometheus/alerts.yml");
    let mut out = Vec::new();
    for g in doc["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            out.push((
                r["alert"].as_str().unwrap().to_string(),
                r["expr"].as_str().unwrap().trim().to_string(),
            ));
        }
    }
    out
}

/// Byte ranges of `expr` at nesting depth 0 (outside (), {}, [] and string literals).
fn depth0(expr: &str) -> Vec<bool> {
    let b = expr.as_bytes();
    let mut out = vec![false; b.len()];
    let mut depth = 0i32;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && q != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => depth -= 1,
            _ => out[i] = depth == 0,
        }
        i += 1;
    }
    out
}

/// The "signal" of an alert expression: what it compares against its threshold. An alert must
/// not fire on a healthy host, so the full expression usually returns nothing; its signal must
/// return data, or the alert could never fire (a wrong metric or label name).
/// `absent(X)` -> X; `A and B` -> signals of A and B; `A unless B` -> signal of A;
/// `X > 0.8` (last comparison at depth 0) -> X.
fn signals(expr: &str) -> Vec<String> {
    let e = expr.trim();
    if let Some(inner) = e.strip_prefix("absent(").and_then(|r| r.strip_suffix(')')) {
        return vec![inner.trim().to_string()];
    }
    let top = depth0(e);
    for (op, keep_right) in [(" and ", true), (" unless ", false)] {
        if let Some(pos) = e
            .match_indices(op)
            .map(|(p, _)| p)
            .find(|&p| top[p + 1..p + op.len() - 1].iter().all(|&t| t))
        {
            let mut v = signals(&e[..pos]);
            if keep_right {
                v.extend(signals(&e[pos + op.len()..]));
            }
            return v;
        }
    }
    let b = e.as_bytes();
    let mut cut = None;
    for i in 0..b.len() {
        if !top[i] {
            continue;
        }
        let two = &e[i..(i + 2).min(e.len())];
        let is_cmp = matches!(two, "==" | "!=" | ">=" | "<=")
            || ((b[i] == b'>' || b[i] == b'<') && b.get(i + 1) != Some(&b'='));
        let after_other = i > 0 && matches!(b[i - 1], b'=' | b'!' | b'<' | b'>');
        if is_cmp && !after_other {
            cut = Some(i);
        }
    }
    match cut {
        Some(i) => vec![e[..i].trim().to_string()],
        None => vec![e.to_string()],
    }
}

#[test]
fn signal_extraction() {
    assert_eq!(signals("absent(up{job=\"x\"})"), vec!["up{job=\"x\"}"]);
    assert_eq!(
        signals("(a / (b > 0)) > 0.8"),
        vec!["(a / (b > 0))".to_string()]
    );
    assert_eq!(signals("x{a!=\"b\"} == 1"), vec!["x{a!=\"b\"}"]);
    assert_eq!(signals("a > 1 and b >= 2"), vec!["a", "b"]);
    assert_eq!(signals("a > 1 unless b"), vec!["a"]);
    assert_eq!(signals("rate(x[5m])"), vec!["rate(x[5m])"]);
}

/// Substitute the dashboard's template variables as Grafana would for one job and instance.
fn substitute(expr: &str, instance: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "5s")
        .replace("$__range", "1m")
        .replace("${job}", JOB)
        .replace("$job", JOB)
        .replace("${instance}", &promql_regex(instance))
        .replace("$instance", &promql_regex(instance))
        // All of the namespace variables: .* (it matches the own namespace's empty netns).
        .replace("${netns}", ".*")
        .replace("$netns", ".*")
        .replace("${pod}", ".*")
        .replace("$pod", ".*")
}

#[test]
fn substitute_fills_every_dashboard_variable() {
    let q = substitute(
        r#"x{job=~"$job",instance=~"$instance",netns=~"$netns",pod_uid=~"${pod}"}[$__rate_interval]"#,
        "127.0.0.1:9958",
    );
    assert_eq!(
        q,
        r#"x{job=~"netstat-exporter",instance=~"127\\.0\\.0\\.1:9958",netns=~".*",pod_uid=~".*"}[1m]"#
    );
    assert!(!q.contains('$'));
}

/// `value` as a regular expression inside a PromQL string literal, as Grafana escapes a
/// multi-value variable: `127\\.0\\.0\\.1:9958`.
fn promql_regex(value: &str) -> String {
    regex::escape(value).replace('\\', "\\\\")
}

/// Every PromQL expression of the dashboard: (where, expr).
fn dashboard_exprs() -> Vec<(String, String)> {
    let d = yaml_file("dashboards/netstat_exporter.json");
    let mut out = Vec::new();
    for v in d["templating"]["list"].as_sequence().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            // label_values(SELECTOR, LABEL) -> group by (LABEL) (SELECTOR)
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable query {q}"));
            let (sel, label) = inner.rsplit_once(',').unwrap();
            out.push((
                format!("variable ${}", v["name"].as_str().unwrap()),
                format!("group by ({}) ({})", label.trim(), sel.trim()),
            ));
        }
    }
    for p in d["panels"].as_sequence().unwrap() {
        for t in p["targets"].as_sequence().cloned().unwrap_or_default() {
            out.push((
                format!(
                    "panel {:?} target {}",
                    p["title"].as_str().unwrap(),
                    t["refId"].as_str().unwrap()
                ),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

#[test]
fn dashboard_and_alert_queries_return_data_from_a_live_prometheus() {
    if !require_tool("prometheus") {
        return;
    }
    let t0 = Instant::now();
    // Listeners of both kinds with something to show: a TCP listener with a queued connection
    // (accept queue 1) and a UDP socket with a datagram waiting.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let _queued = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"queued", udp.local_addr().unwrap())
        .unwrap();
    // An expected-listeners file that allows only tcp port 1: every real listener (ours,
    // Prometheus', the exporter's) is unexpected, so netstat_listener_unexpected has series.
    let tmp = TempDir::new("expected");
    let expected = tmp.path().join("expected.yml");
    // Its connections: section allows only port 1, so every outbound series is unexpected too.
    std::fs::write(
        &expected,
        "listeners:\n  - protocol: tcp\n    port: 1\nconnections:\n  - remote_port: 1\n",
    )
    .unwrap();
    let expected_flag = format!("--collector.listeners.expected={}", expected.display());
    // Connection health (off by default for its cost): the dashboard's RTT and retransmission
    // panels and NetstatConnectionsRetransmitting read it. Network namespaces (--netns=all):
    // a namespace of the test's own, with a veth peer (an interface), a listener and a
    // connection to it inside.
    let args: Vec<&str> = vec![
        &expected_flag,
        "--collector.connections.health",
        "--netns=all",
    ];
    let mut test_ns = None;
    if require_tool("ip") && require_root() {
        let ns = TestNetns::new("e2e");
        let veth = Veth::new(&ns, "e2e");
        ns.ip(&["link", "set", &veth.peer, "up"]);
        let (listener, client) = ns.run(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            (l, c)
        });
        let port = listener.local_addr().unwrap().port();
        let inode = std::fs::metadata(format!("/run/netns/{}", ns.name))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap();
        eprintln!(
            "test namespace {} (netns {inode}): listener on port {port}",
            ns.name
        );
        test_ns = Some((ns, veth, listener, client, inode, port));
    }
    let exporter = Exporter::start(&args);
    let instance = exporter.addr.to_string();
    // 1s scrapes, unless this host has so many sockets that a scrape of the (debug-built)
    // exporter takes longer: then an interval that leaves room for the exporter's own
    // timeout offset (--web.scrape-timeout-offset, 500ms), so that no collector times out.
    let mut slowest = Duration::ZERO;
    for _ in 0..2 {
        let t = Instant::now();
        assert_eq!(exporter.get("/metrics").status, 200);
        slowest = slowest.max(t.elapsed());
    }
    // A connection closed and a connect refused (counted from the socket-destroy stream, whose
    // subscriber the first collection opened): the closed-connection panels and
    // NetstatOutboundConnectFailures read them.
    {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        drop((c, s));
        let closed = l.local_addr().unwrap();
        drop(l);
        assert!(std::net::TcpStream::connect(closed).is_err());
    }
    let interval = ((slowest.as_secs_f64() * 2.0 + 1.0).ceil() as u64).clamp(1, 10);
    eprintln!("a scrape takes {slowest:?}: scrape_interval {interval}s");
    let prom = Prometheus::start(&[exporter.addr], interval);
    prom.wait_for_scrapes(5, 1);
    eprintln!("5 scrapes after {:?}", t0.elapsed());

    let mut failures = Vec::new();

    // The target is up and the scrapes went without errors.
    let targets = prom.api("/api/v1/targets?state=active");
    let active = targets["data"]["activeTargets"].as_sequence().unwrap();
    assert_eq!(active.len(), 1, "{targets:?}");
    assert_eq!(active[0]["health"].as_str(), Some("up"), "{:?}", active[0]);
    assert_eq!(active[0]["lastError"].as_str(), Some(""), "{:?}", active[0]);
    for (what, expr, want) in [
        ("target up", format!("min_over_time(up{{job=\"{JOB}\"}}[1m])"), 1.0),
        (
            "no collector failed in any scrape",
            format!("min(min_over_time(netstat_scrape_collector_success{{job=\"{JOB}\"}}[1m]))"),
            1.0,
        ),
        (
            "no scrape error counted",
            format!("sum(netstat_scrape_errors_total{{job=\"{JOB}\"}}) or vector(0)"),
            0.0,
        ),
        (
            "no sample rejected by Prometheus",
            format!(
                "sum(scrape_samples_scraped{{job=\"{JOB}\"}}) - sum(scrape_samples_post_metric_relabeling{{job=\"{JOB}\"}})"
            ),
            0.0,
        ),
    ] {
        let got = prom.value(&expr);
        if got != Some(want) {
            failures.push(format!("{what}: {expr} = {got:?}, want {want}"));
        }
    }
    assert!(
        prom.value(&format!("scrape_samples_scraped{{job=\"{JOB}\"}}"))
            .is_some_and(|v| v > 100.0),
        "scrape produced samples"
    );

    // The test's namespace is read: its info, its listener and its interface.
    if let Some((ns, veth, _, _, inode, port)) = &test_ns {
        for (what, expr) in [
            (
                "netns info",
                format!(
                    "netstat_netns_info{{job=\"{JOB}\",netns=\"{inode}\",name=\"{}\"}}",
                    ns.name
                ),
            ),
            (
                "listener in the namespace",
                format!("netstat_listener_info{{job=\"{JOB}\",netns=\"{inode}\",port=\"{port}\"}}"),
            ),
            (
                "veth peer in the namespace",
                format!(
                    "netstat_interface_info{{job=\"{JOB}\",netns=\"{inode}\",device=\"{}\"}}",
                    veth.peer
                ),
            ),
            (
                "own namespace without netns label",
                format!("netstat_netns_info{{job=\"{JOB}\",netns=\"\"}}"),
            ),
        ] {
            match prom.query(&expr) {
                Ok(r) if !r.is_empty() => {}
                other => failures.push(format!("{what}: {expr} = {other:?}")),
            }
        }
    }

    // Every dashboard expression parses and returns data.
    let exprs = dashboard_exprs();
    for (what, expr) in &exprs {
        let q = substitute(expr, &instance);
        match prom.query(&q) {
            Err(e) => failures.push(format!("{what}: does not run: {e}\n    {q}")),
            Ok(r) if r.is_empty() => failures.push(format!("{what}: no data\n    {q}")),
            Ok(_) => {}
        }
    }
    // The instance variable offers our exporter.
    let inst = prom
        .query(&format!(
            "group by (instance) (netstat_exporter_build_info{{job=~\"{JOB}\"}})"
        ))
        .unwrap();
    assert!(
        inst.iter()
            .any(|r| r["metric"]["instance"].as_str() == Some(&instance)),
        "{inst:?}"
    );

    // Every alert rule parses; the signal it compares with its threshold returns data.
    let rules = alert_rules();
    let mut n_signals = 0;
    for (name, expr) in &rules {
        if let Err(e) = prom.query(expr) {
            failures.push(format!("alert {name}: does not run: {e}\n    {expr}"));
            continue;
        }
        for sig in signals(expr) {
            n_signals += 1;
            match prom.query(&sig) {
                Err(e) => {
                    failures.push(format!("alert {name}: signal does not run: {e}\n    {sig}"))
                }
                Ok(r) if r.is_empty() => {
                    failures.push(format!("alert {name}: signal has no data\n    {sig}"))
                }
                Ok(_) => {}
            }
        }
    }
    // Prometheus loaded every rule and evaluates each without error.
    let api_rules = prom.api("/api/v1/rules?type=alert");
    let loaded: Vec<&Value> = api_rules["data"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .collect();
    if loaded.len() != rules.len() {
        failures.push(format!(
            "Prometheus loaded {} alert rules, alerts.yml has {}",
            loaded.len(),
            rules.len()
        ));
    }
    for r in &loaded {
        if r["health"].as_str() != Some("ok") {
            failures.push(format!(
                "alert {}: health {:?}, lastError {:?}",
                r["name"].as_str().unwrap_or("?"),
                r["health"].as_str(),
                r["lastError"].as_str()
            ));
        }
    }
    eprintln!(
        "{} dashboard expressions, {} alert rules ({} signals) checked in {:?}",
        exprs.len(),
        rules.len(),
        n_signals,
        t0.elapsed()
    );
    drop(udp);
    drop(test_ns);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Copy the e2e fixture tree (proc/net/dev and sys/class/net) into `dst`.
fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// /proc/net/dev with the given eth0 receive packets and errors (transmit and lo stay clean).
fn net_dev(rx_packets: u64, rx_errs: u64, lo_packets: u64) -> String {
    format!(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
         lo: {lb} {lo_packets} 0 0 0 0 0 0 {lb} {lo_packets} 0 0 0 0 0 0\n  \
         eth0: {rb} {rx_packets} {rx_errs} 0 0 0 0 0 {rb} {rx_packets} 0 0 0 0 0 0\n",
        lb = lo_packets * 100,
        rb = rx_packets * 1000,
    )
}

#[test]
fn interface_errors_alert_goes_pending_then_firing() {
    if !require_tool("prometheus") {
        return;
    }
    let t0 = Instant::now();
    let tmp = TempDir::new("netdev");
    copy_tree(&repo().join("tests/fixtures/e2e"), tmp.path());
    let dev = tmp.path().join("proc/net/dev");
    // Write then rename: the exporter never reads a half-written file.
    let write_dev = |rx: u64, errs: u64, lo: u64| {
        let t = tmp.path().join("proc/net/.dev.tmp");
        std::fs::write(&t, net_dev(rx, errs, lo)).unwrap();
        std::fs::rename(&t, &dev).unwrap();
    };
    write_dev(0, 0, 0);
    let procfs = format!("--path.procfs={}", tmp.path().join("proc").display());
    let sysfs = format!("--path.sysfs={}", tmp.path().join("sys").display());
    let exporter = Exporter::start(&[
        "--collector.disable-defaults",
        "--collector.interfaces",
        &procfs,
        &sysfs,
    ]);
    let prom = Prometheus::start(&[exporter.addr], 1);
    prom.wait_for_scrapes(2, 1);

    // From now on eth0 receives 400 packets/s of which 40 are errors (10% of packets, over
    // the 1% threshold); lo gets clean traffic; nothing is dropped or overrun.
    let (mut rx, mut errs, mut lo) = (0u64, 0u64, 0u64);
    let mut states: Vec<String> = Vec::new();
    let mut firing: Option<Value> = None;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut other_alerts = Vec::new();
    while firing.is_none() {
        assert!(
            Instant::now() < deadline,
            "NetstatInterfaceErrors not firing after 40 s; states seen: {states:?}\n{}",
            prom.log()
        );
        rx += 100;
        errs += 10;
        lo += 50;
        write_dev(rx, errs, lo);
        std::thread::sleep(Duration::from_millis(250));
        let alerts = prom.api("/api/v1/alerts");
        for a in alerts["data"]["alerts"].as_sequence().unwrap() {
            let l = &a["labels"];
            let name = l["alertname"].as_str().unwrap_or("");
            let is_ours = name == "NetstatInterfaceErrors"
                && l["device"].as_str() == Some("eth0")
                && l["direction"].as_str() == Some("receive");
            if !is_ours {
                let desc = format!(
                    "{name}{{device={:?},direction={:?}}} {}",
                    l["device"].as_str(),
                    l["direction"].as_str(),
                    a["state"].as_str().unwrap_or("")
                );
                if name.starts_with("NetstatInterface") && !other_alerts.contains(&desc) {
                    other_alerts.push(desc);
                }
                continue;
            }
            let state = a["state"].as_str().unwrap().to_string();
            if states.last() != Some(&state) {
                eprintln!(
                    "{:?}: NetstatInterfaceErrors eth0 receive {state}",
                    t0.elapsed()
                );
                states.push(state.clone());
            }
            if state == "firing" {
                firing = Some(a.clone());
            }
        }
    }
    assert_eq!(
        states,
        vec!["pending".to_string(), "firing".to_string()],
        "the alert must be seen pending (for: {SHORT_FOR}) before firing"
    );
    let a = firing.unwrap();
    assert_eq!(a["labels"]["severity"].as_str(), Some("warning"));
    assert_eq!(a["labels"]["job"].as_str(), Some(JOB));
    let summary = a["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("eth0 on ") && summary.contains("receive packets are errors"),
        "{summary}"
    );
    assert!(a["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("ethtool -S eth0"));
    // Nothing else about interfaces fires: lo and eth0's transmit side are clean, and there
    // are no drops or overruns.
    assert!(
        other_alerts.is_empty(),
        "unexpected interface alerts: {other_alerts:?}"
    );
    eprintln!("pending -> firing in {:?}", t0.elapsed());
}
