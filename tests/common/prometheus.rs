//! A real Prometheus server (Debian package `prometheus`) for end-to-end tests: its own free
//! loopback port, its TSDB in a temporary directory, a generated config with one job
//! "netstat-exporter" (the job name alerts.yml and the dashboard expect), and as rule file a
//! copy of deploy/prometheus/alerts.yml in which every `for:` is shortened.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml_ng::Value;

use super::{free_port, http_get, TempDir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub const JOB: &str = "netstat-exporter";
/// What the test copy of alerts.yml uses for every `for:`.
pub const SHORT_FOR: &str = "5s";

/// deploy/prometheus/alerts.yml with every `for:` set to [`SHORT_FOR`].
pub fn alerts_with_short_for() -> String {
    let text = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    let re = regex::Regex::new(r"(?m)^(\s+)for: \S+\s*$").unwrap();
    assert!(re.is_match(&text));
    re.replace_all(&text, format!("${{1}}for: {SHORT_FOR}").as_str())
        .into_owned()
}

/// A Prometheus server scraping `targets` (job "netstat-exporter") every second and evaluating
/// the shortened alerts.yml every second. Killed and its directory removed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Prometheus {
    pub fn start(targets: &[SocketAddr], scrape_interval_s: u64) -> Prometheus {
        let dir = TempDir::new("prometheus");
        std::fs::write(dir.path().join("alerts.yml"), alerts_with_short_for()).unwrap();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: {scrape_interval_s}s\n  scrape_timeout: {scrape_interval_s}s\n  evaluation_interval: 1s\n\
             rule_files:\n  - alerts.yml\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", p.log());
            }
            if std::net::TcpStream::connect(addr).is_ok()
                && http_get(addr, "/-/ready", &[]).status == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path, parsed (JSON is YAML; serde_yaml_ng is the crate's YAML parser).
    pub fn api(&self, path_and_query: &str) -> Value {
        let r = http_get(self.addr, path_and_query, &[]);
        serde_yaml_ng::from_str(&r.text())
            .unwrap_or_else(|e| panic!("{path_and_query}: {e}: {}", r.text()))
    }

    /// Instant query: Ok(result list) or Err(error text).
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let v = self.api(&format!("/api/v1/query?query={q}"));
        if v["status"].as_str() != Some("success") {
            return Err(format!(
                "{}: {}",
                v["errorType"].as_str().unwrap_or("?"),
                v["error"].as_str().unwrap_or("?")
            ));
        }
        Ok(v["data"]["result"]
            .as_sequence()
            .cloned()
            .unwrap_or_default())
    }

    pub fn value(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr).ok()?;
        r.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Wait until Prometheus has scraped every target `n` times.
    pub fn wait_for_scrapes(&self, n: usize, targets: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let counts = self
                .query(&format!("count_over_time(up{{job=\"{JOB}\"}}[5m])"))
                .unwrap_or_default();
            let ok = counts.len() == targets
                && counts.iter().all(|c| {
                    c["value"][1]
                        .as_str()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(|v| v >= n as f64)
                });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {n} scrapes after 60 s: {counts:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
