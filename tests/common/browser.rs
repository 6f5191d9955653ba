//! A headless chromium driven by chromedriver over the W3C WebDriver HTTP API (loopback only),
//! and a TCP listener held by a forked child with a chosen process name. The same as in
//! tests/landing_browser.rs, plus Chrome DevTools Protocol commands (downloads, scripts run
//! before the page's own). Include with `#[path = "common/browser.rs"] mod browser;`.
#![allow(dead_code)]

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

use super::common;

// ---------------------------------------------------------------------------------------------
// A tiny blocking HTTP client for the WebDriver JSON API.

pub fn http_json(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
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
        // A signal (the test's own children exiting) may interrupt the read: read again.
        let n = match s.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r.expect("read from chromedriver"),
        };
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

pub struct Browser {
    driver: Child,
    port: u16,
    session: Option<String>,
    dir: PathBuf,
}

pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// None (after a loud SKIP line) when chromium or chromedriver is missing outside CI.
    pub fn start() -> Option<Browser> {
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

    /// A Chrome DevTools Protocol command through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call(
            "POST",
            "goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
    }

    /// Let downloads go to `dir` without asking.
    pub fn allow_downloads(&self, dir: &Path) {
        self.cdp(
            "Browser.setDownloadBehavior",
            json!({ "behavior": "allow", "downloadPath": dir.display().to_string() }),
        );
    }

    /// Run `script` in every page before the page's own scripts.
    pub fn before_each_page(&self, script: &str) {
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": script }),
        );
    }

    /// The browser's own directory (removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn call(&self, method: &str, suffix: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}/{suffix}", self.session.as_ref().unwrap());
        let (status, v) = http_json(self.port, method, &path, body.as_ref());
        assert_eq!(status, 200, "{method} {suffix}: {v}");
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "url", Some(json!({ "url": url })));
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    pub fn exec(&self, script: &str) -> Value {
        self.call(
            "POST",
            "execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Poll `script` (a function body returning a value) until it returns something truthy.
    pub fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Value {
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

    pub fn click(&self, css: &str) {
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

    pub fn screenshot(&self, path: &Path) {
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
    pub fn console(&self) -> Vec<Value> {
        let v = self.call("POST", "se/log", Some(json!({ "type": "browser" })));
        v.as_array().cloned().unwrap_or_default()
    }

    pub fn assert_no_console_errors(&self) {
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

pub struct NamedListener {
    pid: libc::pid_t,
    ctl: RawFd,
    pub port: u16,
}

impl NamedListener {
    pub fn spawn(name: &str) -> NamedListener {
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
