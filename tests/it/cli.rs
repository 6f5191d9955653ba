//! The binary as a user runs it: help, bad flags, --once, serving, address in use, SIGTERM,
//! and `promtool check metrics` on a real scrape.

use crate::common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{exporter_bin, http_get, Exporter};

#[test]
fn help_lists_the_flags() {
    let out = Command::new(exporter_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--web.listen-address",
        "--web.telemetry-path",
        "--collector.disable-defaults",
        "--collector.sockets",
        "--no-collector.sockets",
        "--collector.sockets.source",
        "--path.procfs",
        "--path.sysfs",
        "--path.rootfs",
        "--log.level",
        "--log.format",
        "--once",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn invalid_flags_exit_2_with_one_line() {
    for args in [
        &["--no-such-flag"][..],
        &["--log.level=loud"],
        &["--web.listen-address=nohost:1"],
        &["--collector.sockets.source=magic"],
    ] {
        let out = Command::new(exporter_bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("netstat_exporter: "), "{err}");
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn address_in_use_exits_1_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(exporter_bin())
        .arg(format!("--web.listen-address={addr}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("netstat_exporter: cannot listen on") && last.contains("in use"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn once_prints_a_scrape() {
    let out = common::run_once(&[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("# TYPE netstat_sockets gauge"));
    assert!(text.contains("netstat_exporter_build_info{version=\""));
    assert!(text.contains("process_resident_memory_bytes "));
    assert!(text.contains("process_cpu_seconds_total "));
}

#[test]
fn serves_and_stops_cleanly_on_sigterm() {
    let mut e = Exporter::start(&[]);
    let r = e.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .text()
        .contains("netstat_scrape_collector_success{collector=\"sockets\"} 1"));
    let r = http_get(e.addr, "/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(e.get("/healthz").text(), "ok");

    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(e.pid() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = e.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn several_listen_addresses() {
    let p1 = common::free_port();
    let p2 = common::free_port();
    let mut child = Command::new(exporter_bin())
        .arg(format!("--web.listen-address=127.0.0.1:{p1}"))
        .arg(format!("--web.listen-address=[::1]:{p2}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let a1 = format!("127.0.0.1:{p1}").parse().unwrap();
    let a2 = format!("[::1]:{p2}").parse().unwrap();
    while std::net::TcpStream::connect(a1).is_err() || std::net::TcpStream::connect(a2).is_err() {
        assert!(Instant::now() < deadline, "listeners did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http_get(a1, "/healthz", &[]).status, 200);
    assert_eq!(http_get(a2, "/healthz", &[]).status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn json_logs() {
    let out = Command::new(exporter_bin())
        .args(["--once", "--log.format=json", "--path.procfs=/nonexistent"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    let line = err
        .lines()
        .next()
        .expect("a warning about the missing files");
    assert!(
        line.starts_with('{') && line.contains("\"level\":\"WARN\""),
        "{err}"
    );
}

/// The whole exposition passes `promtool check metrics` with no warning at all.
#[test]
fn promtool_check_metrics_is_clean() {
    if !common::require_tool("promtool") {
        return;
    }
    let out = common::run_once(&[]);
    assert!(out.status.success());
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let res = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(res.status.success() && report.trim().is_empty(), "{report}");
}
