//! Issue 7 hardening, end to end against the binary (and in-process where a test collector is
//! needed): TLS and mutual TLS with certificates generated here (rcgen), basic auth, extra
//! headers, web config reload (file change, SIGHUP, broken file), startup errors, load
//! shedding (503), scrape timeouts, refused bodies and oversized heads, slowloris.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use common::{exporter_bin, http_get, sample, Exporter, HttpResponse, TempDir};
use netstat_exporter::collectors::{Collected, Collector, SimpleCollector};
use netstat_exporter::metrics::MetricFamily;
use netstat_exporter::scrape::Scraper;
use netstat_exporter::source::netns::Netns;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A CA that signs server and client certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {name}"));
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }
    fn pem(&self) -> String {
        self.cert.pem()
    }
    /// (certificate PEM, key PEM)
    fn issue(&self, sans: &[&str], client: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn fixture_args() -> Vec<String> {
    vec![
        format!(
            "--path.procfs={}",
            common::fixtures().join("sockets/basic/proc").display()
        ),
        "--collector.disable-defaults".into(),
        "--collector.sockets".into(),
    ]
}

fn start_with_config(config: &Path, extra: &[&str]) -> Exporter {
    let mut args = fixture_args();
    args.push(format!("--web.config.file={}", config.display()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    Exporter::start(&refs)
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn bcrypt_hash(pass: &str) -> String {
    // Cost 4 keeps the tests fast; the format is the same as htpasswd -B output.
    bcrypt::hash(pass, 4).unwrap()
}

/// GET over TLS, trusting `ca_pem`, optionally presenting a client certificate. Err: the
/// handshake or the request failed.
fn tls_get(
    addr: SocketAddr,
    path: &str,
    ca_pem: &str,
    client: Option<&(String, String)>,
) -> Result<HttpResponse, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Servers commonly close without close_notify; what was read is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    if raw.is_empty() {
        return Err("empty response".into());
    }
    Ok(common::parse_response(&raw))
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kill the exporter and return what it logged.
fn stop_and_log(e: Exporter) -> String {
    e.stop_and_log()
}

// ---------------------------------------------------------------------------------------------
// TLS

#[test]
fn tls_serves_metrics_and_plain_http_gets_nothing() {
    let dir = TempDir::new("tls");
    let ca = Ca::new("a");
    let (cert, key) = ca.issue(&["localhost", "127.0.0.1"], false);
    dir.write("server.crt", &cert);
    dir.write("server.key", &key);
    // Relative file names are relative to the config file, as in exporter-toolkit.
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\n",
    );
    let e = start_with_config(&cfg, &[]);
    let r = tls_get(e.addr, "/metrics", &ca.pem(), None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        sample(
            &r.text(),
            "netstat_scrape_collector_success",
            &[("collector", "sockets")]
        ),
        Some(1.0)
    );
    // Plain HTTP on the TLS port: no HTTP answer.
    let mut s = TcpStream::connect(e.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !buf.starts_with(b"HTTP/1.1 200"),
        "plain HTTP got an answer"
    );
    // A client that does not trust the CA fails the handshake.
    assert!(tls_get(e.addr, "/metrics", &Ca::new("other").pem(), None).is_err());
    // Handshake failures are debug-level, not per-request noise at info.
    let log = stop_and_log(e);
    assert!(!log.contains("TLS handshake failed"), "{log}");
}

#[test]
fn tls13_only_and_cipher_suites() {
    let dir = TempDir::new("tls13");
    let ca = Ca::new("a");
    let (cert, key) = ca.issue(&["localhost"], false);
    dir.write("s.crt", &cert);
    dir.write("s.key", &key);
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: true\n",
    );
    let e = start_with_config(&cfg, &[]);
    assert_eq!(
        tls_get(e.addr, "/healthz", &ca.pem(), None).unwrap().status,
        200
    );
}

#[test]
fn mutual_tls_require_and_verify() {
    let dir = TempDir::new("mtls");
    let ca = Ca::new("server");
    let clients = Ca::new("clients");
    let (cert, key) = ca.issue(&["localhost"], false);
    dir.write("s.crt", &cert);
    dir.write("s.key", &key);
    dir.write("clients.crt", &clients.pem());
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n",
    );
    let e = start_with_config(&cfg, &[]);
    let good = clients.issue(&["prometheus"], true);
    let r = tls_get(e.addr, "/metrics", &ca.pem(), Some(&good)).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        tls_get(e.addr, "/metrics", &ca.pem(), None).is_err(),
        "no client certificate must be refused"
    );
    let stranger = Ca::new("stranger").issue(&["prometheus"], true);
    assert!(
        tls_get(e.addr, "/metrics", &ca.pem(), Some(&stranger)).is_err(),
        "a client certificate from another CA must be refused"
    );
}

#[test]
fn verify_client_cert_if_given_and_require_any() {
    let dir = TempDir::new("mtls2");
    let ca = Ca::new("server");
    let clients = Ca::new("clients");
    let (cert, key) = ca.issue(&["localhost"], false);
    dir.write("s.crt", &cert);
    dir.write("s.key", &key);
    dir.write("clients.crt", &clients.pem());
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: clients.crt\n",
    );
    let e = start_with_config(&cfg, &[]);
    assert_eq!(
        tls_get(e.addr, "/healthz", &ca.pem(), None).unwrap().status,
        200
    );
    let good = clients.issue(&["p"], true);
    assert_eq!(
        tls_get(e.addr, "/healthz", &ca.pem(), Some(&good))
            .unwrap()
            .status,
        200
    );
    let stranger = Ca::new("stranger").issue(&["p"], true);
    assert!(tls_get(e.addr, "/healthz", &ca.pem(), Some(&stranger)).is_err());
    drop(e);

    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  client_auth_type: RequireAnyClientCert\n",
    );
    let e = start_with_config(&cfg, &[]);
    assert!(tls_get(e.addr, "/healthz", &ca.pem(), None).is_err());
    assert_eq!(
        tls_get(e.addr, "/healthz", &ca.pem(), Some(&stranger))
            .unwrap()
            .status,
        200
    );
}

#[test]
fn certificate_rotation_is_picked_up_without_restart() {
    let dir = TempDir::new("rotate");
    let ca1 = Ca::new("one");
    let ca2 = Ca::new("two");
    let (c1, k1) = ca1.issue(&["localhost"], false);
    dir.write("s.crt", &c1);
    dir.write("s.key", &k1);
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n",
    );
    let e = start_with_config(&cfg, &[]);
    assert!(tls_get(e.addr, "/healthz", &ca1.pem(), None).is_ok());
    let (c2, k2) = ca2.issue(&["localhost"], false);
    // Key first, then certificate: in between the pair does not match and the old one stays.
    dir.write("s.key", &k2);
    std::thread::sleep(Duration::from_millis(50));
    dir.write("s.crt", &c2);
    wait_until("the new certificate", Duration::from_secs(15), || {
        tls_get(e.addr, "/healthz", &ca2.pem(), None).is_ok()
    });
    assert!(tls_get(e.addr, "/healthz", &ca1.pem(), None).is_err());
}

// ---------------------------------------------------------------------------------------------
// Basic auth and headers

#[test]
fn basic_auth_401_and_success() {
    let dir = TempDir::new("auth");
    let cfg = dir.write(
        "web.yml",
        &format!(
            "basic_auth_users:\n  prometheus: {}\n  other: {}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n",
            bcrypt_hash("s3cret"),
            bcrypt_hash("x")
        ),
    );
    let e = start_with_config(&cfg, &[]);
    let cases: &[(&str, Option<String>, u16)] = &[
        ("/metrics", None, 401),
        ("/metrics", Some(basic("prometheus", "wrong")), 401),
        ("/metrics", Some(basic("nobody", "s3cret")), 401),
        ("/metrics", Some(basic("other", "s3cret")), 401),
        ("/metrics", Some("Bearer abc".into()), 401),
        ("/metrics", Some("Basic !!!notbase64".into()), 401),
        ("/", None, 401),
        ("/healthz", None, 401),
        ("/metrics", Some(basic("prometheus", "s3cret")), 200),
        ("/metrics", Some(basic("prometheus", "s3cret")), 200),
        ("/healthz", Some(basic("other", "x")), 200),
    ];
    for (path, auth, want) in cases {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let r = http_get(e.addr, path, &headers);
        assert_eq!(r.status, *want, "{path} {auth:?}");
        if *want == 401 {
            let www = r.header("www-authenticate").unwrap_or("");
            assert!(www.starts_with("Basic"), "{www}");
            assert!(!r.text().contains("netstat_"), "no data without auth");
        } else if *path == "/metrics" {
            assert!(r.text().contains("netstat_sockets"));
        }
        // Configured headers are on every response, 401 included.
        assert_eq!(r.header("x-frame-options"), Some("deny"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
}

#[test]
fn web_config_reload_on_change_and_sighup_keeps_old_on_error() {
    let dir = TempDir::new("reload");
    let cfg = dir.write(
        "web.yml",
        &format!("basic_auth_users:\n  p: {}\n", bcrypt_hash("one")),
    );
    let e = start_with_config(&cfg, &[]);
    let get = |pass: &str| {
        let a = basic("p", pass);
        http_get(e.addr, "/healthz", &[("Authorization", a.as_str())]).status
    };
    assert_eq!(get("one"), 200);
    // Changed file: picked up by polling.
    dir.write(
        "web.yml",
        &format!("basic_auth_users:\n  p: {}\n", bcrypt_hash("two")),
    );
    wait_until("the changed file", Duration::from_secs(15), || {
        get("two") == 200
    });
    assert_eq!(get("one"), 401);
    // Broken file: the old configuration stays in force.
    dir.write("web.yml", "basic_auth_users:\n  p: not-a-hash\n");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(get("two"), 200);
    dir.write("web.yml", "no_such_key: 1\n");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(get("two"), 200);
    // SIGHUP reloads at once (the poll interval is 2 s; this must not need it).
    dir.write(
        "web.yml",
        &format!("basic_auth_users:\n  p: {}\n", bcrypt_hash("three")),
    );
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(e.pid() as i32, libc::SIGHUP) };
    wait_until("SIGHUP reload", Duration::from_secs(5), || {
        get("three") == 200
    });
    // Auth removed entirely.
    dir.write("web.yml", "{}\n");
    wait_until("auth off", Duration::from_secs(15), || {
        http_get(e.addr, "/healthz", &[]).status == 200
    });
    let log = stop_and_log(e);
    assert!(log.contains("web config not reloaded"), "{log}");
    assert!(log.contains("basic_auth_users.p"), "{log}");
    assert!(log.contains("no_such_key"), "{log}");
    assert!(log.contains("web config reloaded"), "{log}");
}

#[test]
fn bad_web_configs_are_startup_errors_naming_the_key() {
    let dir = TempDir::new("bad");
    let cases: &[(&str, &str)] = &[
        (
            "tls_server_config:\n  cert_file: a\n  key_fil: b\n",
            "key_fil",
        ),
        (
            "basic_auth_users:\n  alice: hunter2\n",
            "basic_auth_users.alice",
        ),
        ("unknown_section: {}\n", "unknown_section"),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
            "missing.crt",
        ),
        ("http_server_config:\n  headers:\n    Server: x\n", "Server"),
        (
            "tls_server_config:\n  client_auth_type: Sometimes\n  cert_file: a\n  key_file: b\n",
            "tls_server_config",
        ),
        (": : :\n", "web config"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.write(&format!("bad{i}.yml"), text);
        let out = Command::new(exporter_bin())
            .arg(format!("--web.config.file={}", path.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{text:?}: {err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = Command::new(exporter_bin())
        .arg(format!(
            "--web.config.file={}",
            dir.join("nope.yml").display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------------
// Limits (in process, with a test collector)

/// A collector that sleeps, then reports how many collections it has run.
struct Slow {
    name: &'static str,
    delay: Duration,
    runs: Arc<AtomicUsize>,
}

impl SimpleCollector for Slow {
    fn name(&self) -> &'static str {
        self.name
    }
    fn collect(&self, _ns: &Netns) -> Collected {
        std::thread::sleep(self.delay);
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        Collected {
            families: vec![MetricFamily::gauge(
                if self.name == "sockets" {
                    "test_sockets_runs"
                } else {
                    "test_interfaces_runs"
                },
                "runs",
            )
            .with(vec![], n)],
            errors: vec![],
            ..Collected::default()
        }
    }
}

/// Serve `scraper` on a loopback port in a background runtime; stops when dropped.
struct InProcess {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    fn start(scraper: Scraper, max_requests: usize) -> InProcess {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let (atx, arx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                atx.send(l.local_addr().unwrap()).unwrap();
                let web = Arc::new(netstat_exporter::web_config::WebRuntime::disabled());
                let opts = netstat_exporter::http::HttpOptions {
                    max_requests,
                    timeout_offset: Duration::from_millis(500),
                    web: web.clone(),
                };
                let app = netstat_exporter::http::router_with(Arc::new(scraper), "/metrics", opts);
                netstat_exporter::server::serve_listener(l, app, web, rx).await;
            });
        });
        let addr = arx.recv().unwrap();
        InProcess {
            addr,
            stop: tx,
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn slow(name: &'static str, ms: u64) -> (Box<dyn Collector>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    (
        Box::new(Slow {
            name,
            delay: Duration::from_millis(ms),
            runs: runs.clone(),
        }),
        runs,
    )
}

#[test]
fn over_max_requests_is_503_at_once() {
    let (c, _) = slow("sockets", 1500);
    let srv = InProcess::start(Scraper::new(vec![c], "/proc".into()), 3);
    let addr = srv.addr;
    let handles: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = http_get(addr, "/metrics", &[]);
                (r.status, t.elapsed())
            })
        })
        .collect();
    let results: Vec<(u16, Duration)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let shed: Vec<_> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!(ok + shed.len(), 8, "{results:?}");
    assert!((3..=4).contains(&ok), "{results:?}");
    for (_, t) in &shed {
        assert!(
            *t < Duration::from_millis(1000),
            "503 must not queue: {t:?}"
        );
    }
}

#[test]
fn scrape_timeout_header_fails_only_the_slow_collector() {
    let (s, _) = slow("sockets", 3000);
    let (f, _) = slow("interfaces", 10);
    let srv = InProcess::start(Scraper::new(vec![s, f], "/proc".into()), 40);
    let t = Instant::now();
    let r = http_get(
        srv.addr,
        "/metrics",
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")],
    );
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    let text = r.text();
    assert_eq!(
        sample(
            &text,
            "netstat_scrape_collector_success",
            &[("collector", "sockets")]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "netstat_scrape_collector_success",
            &[("collector", "interfaces")]
        ),
        Some(1.0)
    );
    assert!(text.contains("test_interfaces_runs 1"), "{text}");
    assert!(!text.contains("test_sockets_runs"), "{text}");
    assert_eq!(
        sample(
            &text,
            "netstat_scrape_errors_total",
            &[("collector", "sockets"), ("source", "scrape_timeout")]
        ),
        Some(1.0)
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile clients (against the binary)

fn raw_request(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn bodies_and_huge_heads_are_refused() {
    let refs: Vec<String> = fixture_args();
    let refs: Vec<&str> = refs.iter().map(|s| s.as_str()).collect();
    let e = Exporter::start(&refs);
    let r = raw_request(
        e.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let r = raw_request(
        e.addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let mut big = b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..2000 {
        big.extend_from_slice(format!("X-Junk-{i}: {}\r\n", "a".repeat(60)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let r = raw_request(e.addr, &big);
    assert!(
        r.is_empty() || r.starts_with("HTTP/1.1 431") || r.starts_with("HTTP/1.1 400"),
        "{r}"
    );
    // Still healthy.
    assert_eq!(e.get("/metrics").status, 200);
}

#[test]
fn slowloris_clients_do_not_block_scrapes_and_are_dropped() {
    let refs: Vec<String> = fixture_args();
    let refs: Vec<&str> = refs.iter().map(|s| s.as_str()).collect();
    let e = Exporter::start(&refs);
    // 300 connections that send a request head one byte at a time, never finishing.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(e.addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        slow.push(s);
    }
    let begin = Instant::now();
    let mut served = 0;
    let mut worst = Duration::ZERO;
    while begin.elapsed() < Duration::from_secs(4) {
        for s in slow.iter_mut() {
            let _ = s.write_all(b"a");
        }
        let t = Instant::now();
        let r = e.get("/metrics");
        worst = worst.max(t.elapsed());
        assert_eq!(r.status, 200);
        served += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(served >= 10, "{served}");
    assert!(
        worst < Duration::from_secs(2),
        "scrape latency under slowloris: {worst:?}"
    );
    // The server drops them once the header read timeout (10 s) has passed.
    let mut probe = slow.pop().unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 256];
    let t = Instant::now();
    let n = probe.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        n == 0 || text.starts_with("HTTP/1.1 408"),
        "expected a close or 408, got {text:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "slow connection held for {:?}",
        t.elapsed()
    );
    println!("slowloris: {served} scrapes served with 300 slow connections open, worst {worst:?}");
}
