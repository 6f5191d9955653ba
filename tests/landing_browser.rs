//! The landing page in a real headless browser: Debian's chromium driven by chromedriver over
//! the W3C WebDriver HTTP API (loopback only). Skips loudly when chromium or chromedriver is
//! missing, fails under CI=true (.ci/run installs them).
//!
//! Screenshots go to target/test-artifacts/landing.png and landing-phone.png.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{IntoRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use common::Exporter;

/// A process name a local user could pick to attack the page (at most 15 bytes).
const HOSTILE_NAME: &str = "<b>pwn</b>&'\"";

// ---------------------------------------------------------------------------------------------
// A tiny blocking HTTP client for the WebDriver JSON API.

fn http_json(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect(addr).expect("connect to chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if body.is_some() {
        req.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
    req.push_str(&payload);
    s.write_all(req.as_bytes()).unwrap();
    // chromedriver may keep the connection open: read by Content-Length (or chunks).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let (status, body) = loop {
        let n = s.read(&mut buf).expect("read from chromedriver");
        raw.extend_from_slice(&buf[..n]);
        let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            assert!(n > 0, "chromedriver closed the connection early");
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let rest = &raw[split + 4..];
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let complete = match length {
            Some(len) => rest.len() >= len,
            None if head.contains("transfer-encoding: chunked") => rest.ends_with(b"0\r\n\r\n"),
            None => n == 0,
        };
        if complete {
            let body = match length {
                Some(len) => rest[..len].to_vec(),
                None if head.contains("transfer-encoding: chunked") => dechunk(rest),
                None => rest.to_vec(),
            };
            break (status, body);
        }
        assert!(n > 0, "chromedriver closed the connection early");
    };
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "bad JSON from chromedriver ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        })
    };
    (status, value)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// chromedriver + chromium, cleaned up on drop even when the test fails.

static BROWSERS: AtomicUsize = AtomicUsize::new(0);

struct Browser {
    driver: Child,
    port: u16,
    session: Option<String>,
    dir: PathBuf,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// None (after a loud SKIP line) when chromium or chromedriver is missing outside CI.
    fn start() -> Option<Browser> {
        if !common::require_tool("chromium") || !common::require_tool("chromedriver") {
            return None;
        }
        let n = BROWSERS.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "netstat-exporter-browser-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("profile")).unwrap();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let port = common::free_port();
        // Its own process group: chromium and its helpers are killed with it on drop.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let mut b = Browser {
            driver,
            port,
            session: None,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http_json(port, "GET", "/status", None).1["value"]["ready"] == json!(true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = b.dir.join("profile");
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": [
                            "--headless=new", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--disable-extensions", "--hide-scrollbars",
                            "--force-color-profile=srgb", "--lang=en-US",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let (status, v) = http_json(port, "POST", "/session", Some(&caps));
        assert_eq!(status, 200, "new session: {v}");
        b.session = Some(v["value"]["sessionId"].as_str().unwrap().to_string());
        b.resize(1280, 1000);
        Some(b)
    }

    fn call(&self, method: &str, suffix: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}/{suffix}", self.session.as_ref().unwrap());
        let (status, v) = http_json(self.port, method, &path, body.as_ref());
        assert_eq!(status, 200, "{method} {suffix}: {v}");
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "url", Some(json!({ "url": url })));
    }

    fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    fn exec(&self, script: &str) -> Value {
        self.call(
            "POST",
            "execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Poll `script` (a function body returning a value) until it returns something truthy.
    fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.exec(script);
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if Instant::now() >= deadline {
                let state = self.exec(
                    "return document.getElementById('status').textContent + ' | ' + \
                     document.getElementById('error').textContent",
                );
                panic!("timed out waiting for {what} (page status: {state})");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn click(&self, css: &str) {
        let el = self.call(
            "POST",
            "element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        let id = el[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("element id for {css}: {el}"))
            .to_string();
        self.call("POST", &format!("element/{id}/click"), Some(json!({})));
    }

    fn screenshot(&self, path: &Path) {
        let b64 = self.call("GET", "screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Browser console entries since the last call.
    fn console(&self) -> Vec<Value> {
        let v = self.call("POST", "se/log", Some(json!({ "type": "browser" })));
        v.as_array().cloned().unwrap_or_default()
    }

    fn assert_no_console_errors(&self) {
        let entries = self.console();
        let severe: Vec<&Value> = entries
            .iter()
            .filter(|e| e["level"] == json!("SEVERE"))
            .collect();
        assert!(severe.is_empty(), "JavaScript/console errors: {severe:#?}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            // Quits chromium; ignore failures, the group kill below is the backstop.
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = s.write_all(
                    format!(
                        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                    )
                    .as_bytes(),
                );
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            }
        }
        let pgid = self.driver.id() as libc::pid_t;
        // SAFETY: signalling the process group we created for chromedriver.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
        if std::thread::panicking() {
            eprintln!(
                "chromedriver log: {}",
                std::fs::read_to_string(self.dir.join("chromedriver.log")).unwrap_or_default()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// A TCP listener owned by a forked child with a chosen process name.

struct NamedListener {
    pid: libc::pid_t,
    ctl: RawFd,
    port: u16,
}

impl NamedListener {
    fn spawn(name: &str) -> NamedListener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let fd = l.into_raw_fd();
        let cname = std::ffi::CString::new(name).unwrap();
        let mut ctl = [0 as libc::c_int; 2];
        // SAFETY: pipe/fork; the child only calls async-signal-safe functions (close, prctl,
        // read, _exit) and allocates nothing.
        unsafe {
            assert_eq!(libc::pipe(ctl.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                // Keep only the listener and the control pipe: the other tests' sockets must
                // stay owned by this test process alone.
                for other in 3..4096 {
                    if other != fd && other != ctl[0] {
                        libc::close(other);
                    }
                }
                libc::prctl(libc::PR_SET_NAME, cname.as_ptr() as libc::c_ulong, 0, 0, 0);
                let mut b = 0u8;
                while libc::read(ctl[0], (&mut b as *mut u8).cast(), 1) > 0 {}
                libc::_exit(0);
            }
            libc::close(ctl[0]);
            libc::close(fd);
            NamedListener {
                pid,
                ctl: ctl[1],
                port,
            }
        }
    }
}

impl Drop for NamedListener {
    fn drop(&mut self) {
        // SAFETY: our pipe end and our child.
        unsafe {
            libc::close(self.ctl);
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

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
