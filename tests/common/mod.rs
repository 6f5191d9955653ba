//! Helpers shared by the integration tests: tool checks, running the exporter binary,
//! a tiny HTTP client, golden files.
#![allow(dead_code)]

pub mod delayline;
pub mod netns;
pub mod oci;
pub mod prometheus;
pub mod sockload;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn exporter_bin() -> &'static str {
    env!("CARGO_BIN_EXE_netstat_exporter")
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// An `ss` state name (ESTAB, SYN-SENT, FIN-WAIT-1 ...) as the kernel and the exporter name it
/// (established, syn_sent, fin_wait1 ...).
pub fn ss_state(name: &str) -> String {
    match name {
        "ESTAB" => "established".to_string(),
        "FIN-WAIT-1" => "fin_wait1".to_string(),
        "FIN-WAIT-2" => "fin_wait2".to_string(),
        other => other.to_ascii_lowercase().replace('-', "_"),
    }
}

/// Benchmarks: the value of `--NAME N` on the command line, or `default`.
pub fn arg_usize(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect(name))
}

/// Benchmarks: the median of some measurements.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Benchmarks: a `kB` field of `/proc/<pid>/status` (VmRSS:, VmHWM:), 0 when absent.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .trim_end_matches(" kB")
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// True when `tool` is on PATH. When it is not: under CI=true the test fails; locally it
/// prints a loud SKIP line and the caller returns early.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    if in_ci() {
        panic!("required tool `{tool}` is missing under CI=true (.ci/run must install it)");
    }
    eprintln!("\n*** SKIPPED: `{tool}` is not installed; run .ci/run to install it ***\n");
    false
}

/// True when running as root (network namespaces, other users' sockets). Same rules as
/// [`require_tool`].
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if in_ci() {
        panic!("this test needs root under CI=true");
    }
    eprintln!("\n*** SKIPPED: this test needs root ***\n");
    false
}

/// A fresh directory under the system temp dir (unique per process and call), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "netstat_exporter-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Write `name` by write-then-rename, as config management tools do; returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        let p = self.join(name);
        std::fs::rename(&tmp, &p).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the exporter with `--once` and the given flags.
pub fn run_once(args: &[&str]) -> Output {
    Command::new(exporter_bin())
        .arg("--once")
        .args(args)
        .output()
        .expect("run netstat_exporter --once")
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An exporter process serving on a loopback port; killed on drop.
pub struct Exporter {
    pub child: Child,
    pub addr: SocketAddr,
    /// What the exporter logged (stderr), read all along by a thread: an exporter whose log
    /// nobody read would block on a full pipe after 64 KiB and stop answering.
    log: Arc<Mutex<Vec<u8>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

/// The most of an exporter's log kept for a test (the rest is read and dropped).
const LOG_KEPT: usize = 8 << 20;

/// Read `from` until its end into `log` (at most [`LOG_KEPT`] bytes kept).
fn drain_log(
    mut from: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                    let room = LOG_KEPT.saturating_sub(l.len()).min(n);
                    l.extend_from_slice(&buf[..room]);
                }
            }
        }
    })
}

/// Whether process `pid` holds the TCP socket listening on 127.0.0.1:`port` (its inode from
/// /proc/net/tcp among the process's fds).
fn holds_listener(pid: u32, port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inode = table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 9 && f[1] == want && f[3] == "0A").then(|| f[9].to_string())
    });
    let Some(inode) = inode else {
        return false;
    };
    let link = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|d| {
        d.filter_map(|e| e.ok())
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == link))
    })
}

impl Exporter {
    /// Start the exporter on a free loopback port and wait until it listens there. The port
    /// is free when chosen, but another test may take it before the exporter binds it: then
    /// the exporter exits (address in use) and is started again on another port. A connect
    /// alone could reach that other test's listener, so the listening socket must be the
    /// exporter's own.
    pub fn start(args: &[&str]) -> Exporter {
        Exporter::start_in(&[], args)
    }

    /// The same, started through `wrapper` (a command that ends by exec'ing its arguments,
    /// such as `unshare --mount ...`: the exporter keeps the wrapper's pid).
    pub fn start_in(wrapper: &[&str], args: &[&str]) -> Exporter {
        for _ in 0..5 {
            let port = free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut command = match wrapper.split_first() {
                Some((program, rest)) => {
                    let mut c = Command::new(program);
                    c.args(rest).arg(exporter_bin());
                    c
                }
                None => Command::new(exporter_bin()),
            };
            let mut child = command
                .arg(format!("--web.listen-address={addr}"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn exporter");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                // Something listens there; then (a table read: slow with many sockets) is it ours?
                if TcpStream::connect(addr).is_ok() && holds_listener(child.id(), port) {
                    let log = Arc::new(Mutex::new(Vec::new()));
                    let drain = child.stderr.take().map(|e| drain_log(e, log.clone()));
                    return Exporter {
                        child,
                        addr,
                        log,
                        drain,
                    };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    assert!(
                        err.contains("in use"),
                        "exporter exited ({status}) before listening on {addr}:\n{err}"
                    );
                    eprintln!("port {port} was taken meanwhile: starting the exporter again");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "exporter did not start on {addr}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free port for the exporter after 5 tries");
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        http_get(self.addr, path, &[])
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Exporter {
    /// Stop the exporter and return everything it logged.
    pub fn stop_and_log(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&log).into_owned()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Minimal HTTP/1.1 GET with `Connection: close` (no client crate needed for tests).
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

/// Status, headers and body of a raw HTTP/1.1 response (Content-Length or chunked).
pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").expect("chunk size");
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..nl])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Value of the sample `name{labels...}` in a text exposition (labels matched as a subset).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (n, lbl) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| lbl.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        {
            return value.parse().ok();
        }
    }
    None
}

/// Lines of `text` that belong to the metric families named with one of `prefixes`, in order.
/// Used to compare golden output without timing-dependent self metrics.
pub fn families_with_prefix(text: &str, prefixes: &[&str]) -> String {
    text.lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            prefixes.iter().any(|p| name.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Compare `actual` with the golden file; `UPDATE_GOLDEN=1` rewrites it instead.
pub fn assert_golden(path: &Path, actual: &str) {
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "golden mismatch for {}\n--- expected\n{expected}\n--- actual\n{actual}\n(run with UPDATE_GOLDEN=1 to accept)",
            path.display()
        );
    }
}

/// True when `python3` can import `module` (installed from PyPI as `pip_name`). Same rules as
/// [`require_tool`]: under CI=true a missing module fails the test, locally it is a loud skip.
pub fn require_python_module(module: &str, pip_name: &str) -> bool {
    if !require_tool("python3") {
        return false;
    }
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    if in_ci() {
        panic!("python module `{module}` is missing under CI=true (.ci/run must pip install {pip_name})");
    }
    eprintln!("\n*** SKIPPED: python module `{module}` missing; pip install {pip_name} (or run .ci/run) ***\n");
    false
}
