//! The landing page in a real headless browser: Debian's chromium driven by chromedriver over
//! the W3C WebDriver HTTP API (loopback only). Skips loudly when chromium or chromedriver is
//! missing, fails under CI=true (.ci/run installs them).
//!
//! Screenshots go to target/test-artifacts/landing.png and landing-phone.png.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use browser::{Browser, NamedListener};
use common::Exporter;

/// A process name a local user could pick to attack the page (at most 15 bytes).
const HOSTILE_NAME: &str = "<b>pwn</b>&'\"";

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

/// Rows of a table as objects column key -> cell text, plus `_class` (the row's class) and
/// `_children` (element children of the process cell, for the escaping check).
const ROWS_JS: &str = r#"
const rows = [];
for (const tr of document.querySelectorAll('#' + arguments[0] + ' tbody tr:not(.empty)')) {
  const r = { _class: tr.className };
  for (const td of tr.cells) r[td.dataset.col] = td.textContent;
  const p = tr.querySelector('td[data-col="process"]');
  r._process_tags = p ? Array.from(p.querySelectorAll('*')).map(e => e.tagName + '.' + e.className) : [];
  rows.push(r);
}
return rows;
"#;

fn rows(b: &Browser, table: &str) -> Vec<Value> {
    b.call(
        "POST",
        "execute/sync",
        Some(json!({ "script": ROWS_JS, "args": [table] })),
    )
    .as_array()
    .cloned()
    .unwrap_or_default()
}

fn column(rows: &[Value], key: &str) -> Vec<String> {
    rows.iter()
        .map(|r| r[key].as_str().unwrap_or_default().to_string())
        .collect()
}

fn wait_tables(b: &Browser) {
    b.wait_for(
        "the listener and interface tables",
        Duration::from_secs(20),
        "return document.querySelectorAll('#listeners tbody tr:not(.empty)').length > 0 \
         && document.querySelectorAll('#interfaces tbody tr:not(.empty)').length > 0",
    );
}

// ---------------------------------------------------------------------------------------------

#[test]
fn landing_page_shows_listeners_and_interfaces_live() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let started = Instant::now();
    // Held by this test process: shown with the test binary's process name.
    let own = TcpListener::bind("127.0.0.1:0").unwrap();
    let own_port = own.local_addr().unwrap().port();
    // Held by a child with a hostile name; the only listener the policy below does not allow.
    let hostile = NamedListener::spawn(HOSTILE_NAME);
    let policy_dir = common::TempDir::new("policy");
    let policy = policy_dir.0.join("expected.yml");
    let mut allowed = String::from("listeners:\n");
    if hostile.port > 1 {
        allowed.push_str(&format!("  - port: \"1-{}\"\n", hostile.port - 1));
    }
    if hostile.port < 65535 {
        allowed.push_str(&format!("  - port: \"{}-65535\"\n", hostile.port + 1));
    }
    std::fs::write(&policy, allowed).unwrap();
    let exporter = Exporter::start(&[&format!(
        "--collector.listeners.expected={}",
        policy.display()
    )]);

    browser.goto(&format!("http://{}/?refresh=1", exporter.addr));
    wait_tables(&browser);

    // The test's own listener, with its process name.
    let comm = own_comm();
    let port = own_port.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let own_row = loop {
        let ls = rows(&browser, "listeners");
        if let Some(r) = ls.iter().find(|r| r["port"] == json!(port)) {
            if r["process"] == json!(comm) {
                break r.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no listener row for port {port} with process {comm:?}: {ls:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(own_row["protocol"], "tcp");
    assert_eq!(own_row["address"], "127.0.0.1");
    assert_eq!(
        own_row["_class"], "",
        "the own listener is expected by the policy"
    );

    // The hostile name shows literally, as text: no element was created from it.
    let ls = rows(&browser, "listeners");
    let h = ls
        .iter()
        .find(|r| r["port"] == json!(hostile.port.to_string()))
        .unwrap_or_else(|| panic!("no row for the hostile listener: {ls:#?}"));
    assert_eq!(h["process"], json!(format!("{HOSTILE_NAME} unexpected")));
    assert_eq!(h["_process_tags"], json!(["SPAN.badge"]));
    assert_eq!(h["_class"], "unexpected");
    let note = browser.exec("return document.getElementById('listeners-note').textContent");
    assert_eq!(note, "1 unexpected by policy");
    assert_eq!(
        browser.exec("return document.querySelectorAll('#listeners b').length"),
        0
    );

    // netstat -i: the loopback row.
    let ifs = rows(&browser, "interfaces");
    let lo = ifs
        .iter()
        .find(|r| r["device"] == "lo")
        .unwrap_or_else(|| panic!("no lo row: {ifs:#?}"));
    assert_eq!(lo["mtu"], "65536");
    assert!(lo["flags"].as_str().unwrap().contains('L'), "{lo}");
    for k in ["rx_ok", "tx_ok", "rx_err", "tx_drp"] {
        assert!(lo[k].as_str().unwrap().parse::<u64>().is_ok(), "{k}: {lo}");
    }

    // It refreshes by itself, and rates appear from the second snapshot on.
    browser.wait_for(
        "three refreshes",
        Duration::from_secs(20),
        "return Number(document.body.dataset.refreshes) >= 3",
    );
    let lo = rows(&browser, "interfaces")
        .into_iter()
        .find(|r| r["device"] == "lo")
        .unwrap();
    assert!(
        lo["rx_pps"].as_str().unwrap().parse::<f64>().is_ok(),
        "rate: {lo}"
    );
    assert!(lo["rx_bps"].as_str().unwrap().ends_with("/s"), "rate: {lo}");
    let status = browser.exec("return document.getElementById('status').dataset.state");
    assert_eq!(status, "ok");
    let uptime = browser.exec("return document.getElementById('uptime').textContent");
    assert!(uptime.as_str().unwrap().ends_with('s'), "uptime {uptime}");
    let chips = browser.exec(
        "return Array.from(document.querySelectorAll('#collectors .chip.ok')).map(c => c.dataset.collector)",
    );
    let enabled: Vec<&str> = netstat_exporter::collectors::REGISTRY
        .iter()
        .filter(|d| d.default_enabled)
        .map(|d| d.name)
        .collect();
    assert_eq!(chips, json!(enabled));

    // Sorting: by port ascending at first; a click reverses, another restores.
    let ports = |b: &Browser| -> Vec<u32> {
        column(&rows(b, "listeners"), "port")
            .iter()
            .map(|p| p.parse().unwrap())
            .collect()
    };
    let asc = ports(&browser);
    assert!(asc.windows(2).all(|w| w[0] <= w[1]), "{asc:?}");
    browser.click("#listeners th[data-key=port] button");
    let desc = ports(&browser);
    assert!(desc.windows(2).all(|w| w[0] >= w[1]), "{desc:?}");
    assert_eq!(
        browser.exec("return document.querySelector('#listeners th[data-key=port]').getAttribute('aria-sort')"),
        "descending"
    );
    browser.click("#interfaces th[data-key=device] button");
    let devices = column(&rows(&browser, "interfaces"), "device");
    let mut sorted = devices.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(devices, sorted, "interfaces by name, descending");
    browser.click("#interfaces th[data-key=device] button");
    // The sort survives a refresh.
    let n = browser.exec("return Number(document.body.dataset.refreshes)");
    browser.wait_for(
        "another refresh",
        Duration::from_secs(10),
        &format!("return Number(document.body.dataset.refreshes) > {n}"),
    );
    let desc = ports(&browser);
    assert!(desc.windows(2).all(|w| w[0] >= w[1]), "{desc:?}");
    browser.click("#listeners th[data-key=port] button");

    // Pause stops the refreshes, resume restarts them.
    browser.click("#pause");
    let paused_at = browser.exec("return Number(document.body.dataset.refreshes)");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        browser.exec("return Number(document.body.dataset.refreshes)"),
        paused_at
    );
    assert_eq!(
        browser.exec("return document.getElementById('status').dataset.state"),
        "paused"
    );
    assert_eq!(
        browser.exec("return document.getElementById('pause').textContent"),
        "Resume"
    );
    browser.click("#pause");
    browser.wait_for(
        "a refresh after resume",
        Duration::from_secs(10),
        &format!("return Number(document.body.dataset.refreshes) > {paused_at}"),
    );

    // Links: the telemetry path and the docs.
    assert_eq!(
        browser.exec("return document.getElementById('metrics-link').getAttribute('href')"),
        "/metrics"
    );

    // Desktop screenshot, tall enough for the whole page.
    let height = browser
        .exec("return document.documentElement.scrollHeight")
        .as_u64()
        .unwrap();
    browser.resize(1280, (height as u32 + 140).clamp(800, 4000));
    std::thread::sleep(Duration::from_millis(300));
    browser.screenshot(&artifacts().join("landing.png"));

    // Phone width: the page fits, the tables scroll inside their boxes.
    browser.resize(390, 844);
    browser.wait_for(
        "the phone layout",
        Duration::from_secs(5),
        "return window.innerWidth <= 400",
    );
    std::thread::sleep(Duration::from_millis(300));
    let fits = browser.exec(
        "return [document.documentElement.scrollWidth, window.innerWidth, \
         document.querySelector('#interfaces').parentElement.scrollWidth > \
         document.querySelector('#interfaces').parentElement.clientWidth]",
    );
    assert!(
        fits[0].as_u64().unwrap() <= fits[1].as_u64().unwrap(),
        "page wider than the phone: {fits}"
    );
    assert_eq!(fits[2], true, "the interface table scrolls in its box");
    browser.screenshot(&artifacts().join("landing-phone.png"));

    browser.assert_no_console_errors();
    drop(own);
    eprintln!("browser test took {:?}", started.elapsed());
}

/// With `--collector.connections.health`: RTT quantiles and retransmitting counts in the
/// listener and outbound tables, and the Inbound table, for connections the test holds.
#[test]
fn landing_page_shows_health_and_inbound() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let clients: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap())
        .collect();
    let accepted: Vec<std::net::TcpStream> = (0..3).map(|_| listener.accept().unwrap().0).collect();
    let exporter = Exporter::start(&["--collector.connections.health"]);
    browser.goto(&format!("http://{}/?refresh=1", exporter.addr));
    wait_tables(&browser);
    let comm = own_comm();
    // An RTT cell: loopback, so under a millisecond ("0.05 ms").
    let loopback_rtt = |cell: &Value| {
        let t = cell.as_str().unwrap_or_default();
        t.strip_suffix(" ms")
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|ms| ms > 0.0 && ms < 1.0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ls = rows(&browser, "listeners");
        let out = rows(&browser, "outbound");
        let inb = rows(&browser, "inbound");
        let l = ls.iter().find(|r| r["port"] == json!(port));
        // The test's clients: outbound to its own port (the remote port of an ephemeral
        // listener port may be shown as a number or "ephemeral"), owned by this process.
        let o = out.iter().find(|r| {
            r["process"] == json!(comm)
                && r["state"] == "established"
                && r["remote_network"] == "loopback"
        });
        let i = inb
            .iter()
            .find(|r| r["port"] == json!(port) && r["state"] == "established");
        let ok = l.is_some_and(|l| {
            loopback_rtt(&l["rtt_p50_seconds"])
                && loopback_rtt(&l["rtt_p99_seconds"])
                && l["retransmitting"] == "0"
        }) && o.is_some_and(|o| loopback_rtt(&o["rtt_p50_seconds"]))
            && i.is_some_and(|i| {
                i["remote_network"] == "loopback"
                    && i["count"] == "3"
                    && i["process"] == json!(comm)
            });
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "port {port}: listener {l:#?}, outbound {o:#?}, inbound {inb:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let note = browser.exec("return document.getElementById('inbound-note').textContent");
    assert!(note.as_str().unwrap().contains("inbound sockets"), "{note}");
    assert!(
        note.as_str().unwrap().contains("loopback"),
        "sources per network: {note}"
    );
    browser.assert_no_console_errors();
    drop((clients, accepted));
}

#[test]
fn landing_page_follows_the_telemetry_path() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let exporter = Exporter::start(&["--web.telemetry-path=/x/metrics"]);
    browser.goto(&format!("http://{}/", exporter.addr));
    wait_tables(&browser);
    assert_eq!(
        browser.exec("return document.getElementById('metrics-link').getAttribute('href')"),
        "/x/metrics"
    );
    // The links resolve: the telemetry path serves metrics, the docs link serves the docs.
    assert_eq!(exporter.get("/x/metrics").status, 200);
    let docs = browser
        .exec("return document.querySelector('footer a[href=\"docs/landing\"]').href")
        .as_str()
        .unwrap()
        .to_string();
    let docs_path = docs.split_once(&exporter.addr.to_string()).unwrap().1;
    let r = exporter.get(docs_path);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("/api/v1/snapshot"));
    browser.assert_no_console_errors();
}

/// No browser needed: the page and its JSON are protected like /metrics.
#[test]
fn basic_auth_protects_the_page_and_the_snapshot() {
    let dir = common::TempDir::new("auth");
    let cfg = dir.0.join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&cfg, format!("basic_auth_users:\n  admin: {hash}\n")).unwrap();
    let e = Exporter::start(&[&format!("--web.config.file={}", cfg.display())]);
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:s3cret")
    );
    for path in ["/api/v1/snapshot", "/", "/assets/app.js", "/metrics"] {
        let r = e.get(path);
        assert_eq!(r.status, 401, "{path} without credentials");
        assert!(r.header("www-authenticate").is_some());
        let r = common::http_get(e.addr, path, &[("Authorization", &good)]);
        assert_eq!(r.status, 200, "{path} with credentials");
    }
    let r = common::http_get(e.addr, "/api/v1/snapshot", &[("Authorization", &good)]);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["listeners"].is_array());
}

// ---------------------------------------------------------------------------------------------
// Rates of the socket-destroy counters (closed/s, failed/s, sent/s, received/s).

/// Records what every refresh rendered (run before the page's scripts): the rows of the
/// outbound and inbound tables (only those of `window.__port` once the test sets it), their
/// notes, and the snapshot's time and counters, in `window.__renders`.
const RENDERS_HOOK: &str = r#"
(() => {
  window.__renders = [];
  const keep = (r) => !window.__port || r.port === window.__port || r.remote_port === window.__port;
  const rows = (id) => Array.from(document.querySelectorAll('#' + id + ' tbody tr:not(.empty)')).map((tr) => {
    const r = { _class: tr.className };
    for (const td of tr.cells) r[td.dataset.col] = td.textContent;
    return r;
  }).filter(keep);
  const flows = (v) => (v || []).filter((f) => keep({ port: String(f.port), remote_port: String(f.remote_port) }));
  document.addEventListener("netstat:snapshot", (e) => {
    const s = e.detail.snapshot;
    window.__renders.push({
      refreshes: e.detail.refreshes,
      time: s.time,
      outbound_flows: flows(s.outbound_flows),
      inbound_flows: flows(s.inbound_flows),
      outbound: rows("outbound"),
      inbound: rows("inbound"),
      outbound_note: document.getElementById("outbound-note").textContent,
      inbound_note: document.getElementById("inbound-note").textContent,
    });
    if (window.__renders.length > 100) window.__renders.shift();
  });
})();
"#;

fn renders(b: &Browser) -> Vec<Value> {
    b.exec("return window.__renders")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A rate cell as a number per second ("–": None): `0.50`, `3.0 KiB/s`, `2.5 MiB/s`.
fn parse_rate(cell: &Value) -> Option<f64> {
    let t = cell.as_str()?;
    if t == "–" {
        return None;
    }
    let (n, unit) = t.split_once(' ').unwrap_or((t, ""));
    let scale = match unit {
        "" | "B/s" => 1.0,
        "KiB/s" => 1024.0,
        "MiB/s" => 1024.0 * 1024.0,
        "GiB/s" => 1024.0 * 1024.0 * 1024.0,
        _ => panic!("rate cell {t:?}"),
    };
    Some(
        n.parse::<f64>()
            .unwrap_or_else(|_| panic!("rate cell {t:?}"))
            * scale,
    )
}

/// A free TCP port on 127.0.0.1 below the ephemeral range (so the client's outbound key is
/// labelled with it), from a start that differs between runs (other tests and agents make
/// connections to ports of that range at the same time).
fn fixed_port_listener() -> TcpListener {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id();
    let start = 23_000 + (seed % 6_000) as u16;
    (start..30_000)
        .chain(23_000..start)
        .find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
        .expect("a free port in 23000..30000")
}

/// The sum of `counter` over the snapshot rows of `section` whose `field` is `port`.
fn flow_sum(rows: &Value, field: &str, port: &str, counter: &str) -> u64 {
    rows.as_array()
        .into_iter()
        .flatten()
        .filter(|r| r[field].as_str() == Some(port))
        .map(|r| r[counter].as_u64().unwrap())
        .sum()
}

/// The sum of the rate cells `col` of the table rows whose `field` is `port` (None: none has a
/// value).
fn rate_sum(rows: &Value, field: &str, port: &str, col: &str) -> Option<f64> {
    rows.as_array()
        .into_iter()
        .flatten()
        .filter(|r| r[field].as_str() == Some(port))
        .filter_map(|r| parse_rate(&r[col]))
        .fold(None, |a, v| Some(a.unwrap_or(0.0) + v))
}

/// Short loopback connections made between two polls of the page (default flags): the page
/// shows their closed/s, sent/s and received/s on the listener's inbound key (a row of its own:
/// no socket of it is open at a poll) and on the client's outbound key (matched by remote port:
/// its process is `unknown`, the socket is gone when the kernel reports it). Every rate the page
/// shows is what the two snapshots it polled say (Δcounter/Δtime), and over the polls the
/// snapshots' counters gained exactly what the test did.
#[test]
fn landing_page_shows_rates_of_short_connections() {
    const N: u64 = 20;
    const SENT: usize = 1_000;
    const ANSWER: usize = 3_000;
    const REFRESH: f64 = 2.0;
    let Some(browser) = Browser::start() else {
        return;
    };
    browser.before_each_page(RENDERS_HOOK);
    let listener = fixed_port_listener();
    let port = listener.local_addr().unwrap().port().to_string();
    let exporter = Exporter::start(&[]);
    browser.goto(&format!("http://{}/?refresh={REFRESH}", exporter.addr));
    wait_tables(&browser);
    browser.exec(&format!("window.__port = {port:?}; return true"));
    let heads = |table: &str| {
        browser.exec(&format!(
            "return Array.from(document.querySelectorAll('#{table} thead th')).map(th => th.textContent)"
        ))
    };
    let out_heads = heads("outbound");
    for h in ["closed/s", "failed/s", "sent/s", "received/s"] {
        assert!(
            out_heads.as_array().unwrap().contains(&json!(h)),
            "{out_heads}"
        );
    }
    let in_heads = heads("inbound");
    assert!(!in_heads.as_array().unwrap().contains(&json!("failed/s")));
    browser.wait_for(
        "two refreshes",
        Duration::from_secs(20),
        "return Number(document.body.dataset.refreshes) >= 2",
    );
    // Nothing counted on the port yet.
    let before: Value = serde_json::from_slice(&exporter.get("/api/v1/snapshot").body).unwrap();
    assert_eq!(
        flow_sum(&before["inbound_flows"], "port", &port, "closed"),
        0
    );

    // Right after a poll: N connections, each sends SENT bytes, gets ANSWER back, closes
    // (the client first).
    let r = browser
        .exec("return Number(document.body.dataset.refreshes)")
        .as_u64()
        .unwrap();
    browser.wait_for(
        "a poll",
        Duration::from_secs(20),
        &format!("return Number(document.body.dataset.refreshes) > {r}"),
    );
    let server = std::thread::spawn(move || {
        for _ in 0..N {
            let (mut c, _) = listener.accept().unwrap();
            let mut b = [0u8; SENT];
            c.read_exact(&mut b).unwrap();
            c.write_all(&[7u8; ANSWER]).unwrap();
            let mut rest = [0u8; 64];
            while matches!(c.read(&mut rest), Ok(n) if n > 0) {}
        }
        listener
    });
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>().unwrap()));
    for _ in 0..N {
        let mut c = std::net::TcpStream::connect(to).unwrap();
        c.write_all(&[1u8; SENT]).unwrap();
        let mut b = [0u8; ANSWER];
        c.read_exact(&mut b).unwrap();
    }
    let listener = server.join().unwrap();

    // The counters are complete (the snapshot says so), then two more polls of the page.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let v: Value = serde_json::from_slice(&exporter.get("/api/v1/snapshot").body).unwrap();
        if flow_sum(&v["inbound_flows"], "port", &port, "closed") >= N
            && flow_sum(&v["outbound_flows"], "remote_port", &port, "closed") >= N
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "port {port}: {} {}",
            v["inbound_flows"],
            v["outbound_flows"]
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let n = browser
        .exec("return Number(document.body.dataset.refreshes)")
        .as_u64()
        .unwrap();
    browser.wait_for(
        "two more polls",
        Duration::from_secs(20),
        &format!(
            "return Number(document.body.dataset.refreshes) >= {}",
            n + 2
        ),
    );

    // Exactly what the test did: the listener's end closed second, its bytes are exact; the
    // client's received bytes may be one short per connection (tests/flows.rs).
    let inb = &after["inbound_flows"];
    let out = &after["outbound_flows"];
    assert_eq!(flow_sum(inb, "port", &port, "closed"), N, "{inb}");
    assert_eq!(flow_sum(inb, "port", &port, "received"), N * SENT as u64);
    assert_eq!(flow_sum(inb, "port", &port, "sent"), N * ANSWER as u64);
    assert_eq!(flow_sum(out, "remote_port", &port, "closed"), N, "{out}");
    assert_eq!(flow_sum(out, "remote_port", &port, "failed"), 0);
    assert_eq!(flow_sum(out, "remote_port", &port, "sent"), N * SENT as u64);
    let received = flow_sum(out, "remote_port", &port, "received");
    assert!(
        received <= N * ANSWER as u64 && N * ANSWER as u64 - received <= N,
        "{received}"
    );

    // Every poll: the page's rates are the two snapshots' differences over their times.
    let seen = renders(&browser);
    assert!(seen.len() >= 4, "{seen:#?}");
    let (mut in_closed, mut out_closed) = (0, 0);
    let (mut in_shown, mut out_shown) = (false, false);
    for w in seen.windows(2) {
        let (p, s) = (&w[0], &w[1]);
        assert_eq!(
            s["refreshes"].as_u64(),
            p["refreshes"].as_u64().map(|r| r + 1)
        );
        let dt = s["time"].as_f64().unwrap() - p["time"].as_f64().unwrap();
        assert!(dt >= REFRESH * 0.5, "polls {dt} s apart");
        let sides = [
            ("inbound", "port", &["closed", "sent", "received"][..]),
            (
                "outbound",
                "remote_port",
                &["closed", "failed", "sent", "received"][..],
            ),
        ];
        for (side, field, counters) in sides {
            let flows = format!("{side}_flows");
            for c in counters {
                let delta =
                    flow_sum(&s[&flows], field, &port, c) - flow_sum(&p[&flows], field, &port, c);
                let want = delta as f64 / dt;
                let col = format!("{c}_rate");
                let got = rate_sum(&s[side], field, &port, &col);
                if flow_sum(&s[&flows], field, &port, "closed") == 0 {
                    // No key yet: nothing, or 0 on an open socket's row of the same key.
                    assert_eq!(got.unwrap_or(0.0), 0.0, "{side} {c}: no key yet: {s:#}");
                    continue;
                }
                let got = got.unwrap_or_else(|| panic!("{side} {c}: no rate shown: {s:#}"));
                assert!(
                    (got - want).abs() <= want * 0.06 + 0.01,
                    "{side} {c}: shown {got}/s, the snapshots say {want}/s ({delta} in {dt} s): {s:#}"
                );
                if *c == "closed" {
                    // Plausible: at most the N connections in one poll.
                    assert!(got <= N as f64 / (REFRESH * 0.5) * 1.06, "{side}: {got}");
                }
            }
            let delta = flow_sum(&s[&flows], field, &port, "closed")
                - flow_sum(&p[&flows], field, &port, "closed");
            if side == "inbound" {
                in_closed += delta;
            } else {
                out_closed += delta;
            }
            if delta > 0 {
                let rows = s[side].as_array().unwrap();
                let shown: Vec<&Value> = rows
                    .iter()
                    .filter(|r| parse_rate(&r["closed_rate"]).is_some_and(|v| v > 0.0))
                    .collect();
                assert!(!shown.is_empty(), "{s:#}");
                for r in &shown {
                    assert!(parse_rate(&r["sent_rate"]).unwrap() > 0.0, "{r}");
                    assert!(parse_rate(&r["received_rate"]).unwrap() > 0.0, "{r}");
                    if side == "inbound" {
                        // No socket of the key is open: a row of its own.
                        assert_eq!((&r["state"], &r["count"]), (&json!("closed"), &json!("0")));
                        in_shown = true;
                    } else {
                        assert_eq!(r["failed_rate"], "0", "{r}");
                        out_shown = true;
                    }
                }
                eprintln!("{side} poll {}: {shown:?}", s["refreshes"]);
                let note = s[format!("{side}_note")].as_str().unwrap();
                assert!(note.contains("closed/s"), "{note}");
            }
        }
    }
    assert!(in_shown && out_shown, "rates shown: {seen:#?}");
    assert_eq!(in_closed, N, "Δclosed over the polls, inbound");
    assert_eq!(out_closed, N, "Δclosed over the polls, outbound");

    // The rate columns sort, the cells without a value last.
    browser.click("#inbound th[data-key=closed_rate] button");
    let col: Vec<Option<f64>> = rows(&browser, "inbound")
        .iter()
        .map(|r| parse_rate(&r["closed_rate"]))
        .collect();
    let values: Vec<f64> = col.iter().map_while(|v| *v).collect();
    assert!(col[values.len()..].iter().all(Option::is_none), "{col:?}");
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{col:?}");
    assert_eq!(
        browser.exec("return document.querySelector('#inbound th[data-key=closed_rate]').getAttribute('aria-sort')"),
        "descending"
    );
    browser.assert_no_console_errors();
    drop(listener);
}

/// Replaces the outbound and inbound sections of the page's snapshots (when the URL has
/// `flows=1`) by a script of six polls: their times (from a fixed origin), the exporter's
/// start time, the socket rows and the counters.
const FLOWS_INJECT: &str = r#"
(() => {
  if (!location.search.includes("flows=1")) return;
  const real = window.fetch.bind(window);
  const K = 1024, M = 1024 * 1024;
  const out = (remote_port, process, c) => Object.assign({ protocol: "tcp", remote_port, service: "",
    remote_network: "public", process, container_id: "", pod_uid: "", closed: 0, sent: 0, received: 0,
    retransmits: 0, failed: 0, failed_refused: 0, failed_timeout: 0, netns: "" }, c);
  const inb = (port, process, c) => Object.assign({ protocol: "tcp", port, service: "ssh", process,
    remote_network: "private", closed: 0, sent: 0, received: 0, retransmits: 0, netns: "" }, c);
  const sock = (remote_port, process, state, count) => ({ protocol: "tcp", remote_port, service: "",
    remote_network: "public", process, state, count, unexpected: null, container_id: "", pod_uid: "",
    rtt_p50_seconds: null, rtt_p99_seconds: null, retransmitting: null, netns: "" });
  const isock = (port, process, state, count) => ({ protocol: "tcp", port, service: "ssh", process,
    remote_network: "private", state, count, unexpected: null, container_id: "", pod_uid: "", netns: "" });
  const A = (c) => out("443", "curl", c);
  const F = (n) => out("unknown", "unknown", { failed: n, failed_refused: n });
  const C = (closed, sent) => out("8443", "unknown", { closed, sent });
  const B = (c) => inb("22", "sshd", c);
  // [seconds since the first poll, exporter start, outbound counters, inbound counters]
  const steps = [
    [0, 1000, [A({ closed: 10, sent: 1000, received: 5000 }), F(2)], [B({ closed: 100, sent: 1, received: 1 })]],
    // +10 s: A 1/s, 0.5 failed/s, 10 KiB/s sent, 3 MiB/s received; F 0.2 failed/s; C new.
    [10, 1000, [A({ closed: 20, failed: 5, failed_timeout: 5, sent: 1000 + 10 * 10 * K, received: 5000 + 10 * 3 * M }), F(4), C(1, 30)],
      [B({ closed: 100, sent: 1 + 10 * 5 * K, received: 1 })]],
    // +10 s: A's closed went down; nothing else moved.
    [20, 1000, [A({ closed: 5, failed: 5, failed_timeout: 5, sent: 1000 + 10 * 10 * K, received: 5000 + 10 * 3 * M }), F(4), C(1, 30)],
      [B({ closed: 100, sent: 1 + 10 * 5 * K, received: 1 })]],
    // A restart (another start time): no rates at all.
    [30, 2000, [A({ closed: 5 }), F(4), C(1, 30)], [B({ closed: 100 })]],
    // A minute later: 2 and 1 connections a minute, 3 bytes.
    [90, 2000, [A({ closed: 7, sent: 3 }), F(4), C(2, 30)], [B({ closed: 100 })]],
  ];
  let n = 0;
  window.fetch = async (url, opts) => {
    const resp = await real(url, opts);
    if (!String(url).startsWith("api/v1/snapshot")) return resp;
    const snap = await resp.json();
    const last = n >= steps.length;
    const [t, start, o, i] = steps[Math.min(n, steps.length - 1)];
    // After the script: the last poll again, 10 s later each time.
    snap.time = 1800000000 + t + (last ? 10 * (n - steps.length + 1) : 0);
    n++;
    snap.start_time_seconds = start;
    snap.outbound = [sock("443", "curl", "established", 2), sock("443", "curl", "time_wait", 5), sock("5432", "psql", "established", 1),
      Object.assign(sock("53", "resolver", "connected", 1), { protocol: "udp" })];
    snap.inbound = [isock("22", "sshd", "close_wait", 1), isock("22", "sshd", "established", 1)];
    snap.outbound_flows = o;
    snap.inbound_flows = i;
    snap.flows_netns = [""];
    return new Response(JSON.stringify(snap), { status: 200, headers: { "Content-Type": "application/json" } });
  };
})();
"#;

/// The page's rate arithmetic and formatting, on scripted snapshots: the first poll shows
/// `–`; rates go on a key's established row (its other rows `–`), a key with counters and no
/// open socket gets a row of its own (state closed, count 0), a key with sockets and no
/// counters shows 0 (a UDP one `–`); a counter that went down and a restart show `–`, never
/// a negative rate; a key new since the last poll counts from 0; small rates keep two
/// significant digits.
#[test]
fn landing_page_rates_from_scripted_counters() {
    let Some(browser) = Browser::start() else {
        return;
    };
    browser.before_each_page(RENDERS_HOOK);
    browser.before_each_page(FLOWS_INJECT);
    let exporter = Exporter::start(&[]);
    browser.goto(&format!("http://{}/?refresh=1&flows=1", exporter.addr));
    browser.wait_for(
        "six polls",
        Duration::from_secs(30),
        "return window.__renders.length >= 6",
    );
    let seen = renders(&browser);
    // (table, key, state) -> the rate cells, per poll.
    let cells = |poll: usize, table: &str, key: &str, state: &str, cols: &[&str]| -> Vec<String> {
        let field = if table == "inbound" {
            "port"
        } else {
            "remote_port"
        };
        let rows = seen[poll][table].as_array().unwrap();
        let r = rows
            .iter()
            .find(|r| r[field] == key && r["state"] == state)
            .unwrap_or_else(|| panic!("poll {poll}: no {table} row {key} {state}: {rows:#?}"));
        cols.iter()
            .map(|c| r[format!("{c}_rate")].as_str().unwrap().to_string())
            .collect()
    };
    let out = ["closed", "failed", "sent", "received"];
    let inb = ["closed", "sent", "received"];
    let dash = |n: usize| vec!["–".to_string(); n];
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    // First poll: no rates; the failures-only key has its own row, muted.
    assert_eq!(cells(0, "outbound", "443", "established", &out), dash(4));
    assert_eq!(cells(0, "outbound", "unknown", "closed", &out), dash(4));
    assert_eq!(cells(0, "inbound", "22", "established", &inb), dash(3));
    let f = seen[0]["outbound"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["remote_port"] == "unknown")
        .unwrap();
    assert_eq!((&f["count"], &f["_class"]), (&json!("0"), &json!("zero")));

    // Second poll, 10 s later.
    assert_eq!(
        cells(1, "outbound", "443", "established", &out),
        s(&["1.0", "0.50", "10.0 KiB/s", "3.0 MiB/s"])
    );
    assert_eq!(cells(1, "outbound", "443", "time_wait", &out), dash(4));
    // UDP has no such counters.
    assert_eq!(cells(1, "outbound", "53", "connected", &out), dash(4));
    assert_eq!(
        cells(1, "outbound", "5432", "established", &out),
        s(&["0", "0", "0 B/s", "0 B/s"])
    );
    assert_eq!(
        cells(1, "outbound", "unknown", "closed", &out),
        s(&["0", "0.20", "0 B/s", "0 B/s"])
    );
    assert_eq!(
        cells(1, "outbound", "8443", "closed", &out),
        s(&["0.10", "0", "3.0 B/s", "0 B/s"])
    );
    assert_eq!(
        cells(1, "inbound", "22", "established", &inb),
        s(&["0", "5.0 KiB/s", "0 B/s"])
    );
    assert_eq!(cells(1, "inbound", "22", "close_wait", &inb), dash(3));
    let rows1 = seen[1]["outbound"].as_array().unwrap();
    let row = |port: &str| {
        rows1
            .iter()
            .find(|r| r["remote_port"] == port && r["state"] == "closed")
            .unwrap()
    };
    assert_eq!(row("8443")["count"], "0");
    assert_eq!(row("8443")["process"], "unknown");
    assert_eq!(row("8443")["_class"], "", "moving: not muted");
    let failed = rows1
        .iter()
        .find(|r| r["remote_port"] == "unknown")
        .unwrap();
    assert_eq!(failed["failed_rate"], "0.20");
    assert!(failed["_class"] == "", "{failed}");
    let note = seen[1]["outbound_note"].as_str().unwrap();
    assert!(
        note.contains("9 outbound sockets · 1.1 closed/s · 0.70 failed/s"),
        "{note}"
    );
    assert!(
        seen[1]["inbound_note"]
            .as_str()
            .unwrap()
            .contains("0 closed/s"),
        "{}",
        seen[1]["inbound_note"]
    );

    // Third: A's counter went down (restarted): no rate, never a negative one.
    assert_eq!(
        cells(2, "outbound", "443", "established", &out),
        s(&["–", "0", "0 B/s", "0 B/s"])
    );
    assert_eq!(
        cells(2, "outbound", "8443", "closed", &out),
        s(&["0", "0", "0 B/s", "0 B/s"])
    );
    // Fourth: another exporter start: nothing.
    for (port, state) in [
        ("443", "established"),
        ("5432", "established"),
        ("8443", "closed"),
    ] {
        assert_eq!(cells(3, "outbound", port, state, &out), dash(4), "{port}");
    }
    assert_eq!(cells(3, "inbound", "22", "established", &inb), dash(3));
    // Fifth, a minute later: small rates keep two digits.
    assert_eq!(
        cells(4, "outbound", "443", "established", &out),
        s(&["0.033", "0", "0.050 B/s", "0 B/s"])
    );
    assert_eq!(cells(4, "outbound", "8443", "closed", &out)[0], "0.017");
    browser.assert_no_console_errors();
}
