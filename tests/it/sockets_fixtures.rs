//! Golden-output tests of the sockets collector on captured /proc trees, including broken
//! ones: IPv6 disabled, empty files, garbage lines, a truncated last line, a missing file.

use crate::common;

use common::{assert_golden, families_with_prefix, fixtures, run_once, sample};

const FAMILIES: &[&str] = &[
    "netstat_sockets",
    "netstat_unix_sockets",
    "netstat_socket_",
    "netstat_scrape_errors_total",
    "netstat_scrape_collector_success",
];

/// Run the binary on a fixture tree; return the full text and its stderr.
fn scrape(case: &str) -> (String, String) {
    let root = fixtures().join("sockets").join(case).join("proc");
    let out = run_once(&[
        "--collector.disable-defaults",
        "--collector.sockets",
        &format!("--path.procfs={}", root.display()),
    ]);
    assert!(out.status.success(), "{case}: exit {:?}", out.status);
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn golden(case: &str) -> (String, String) {
    let (text, stderr) = scrape(case);
    assert_golden(
        &fixtures().join("sockets").join(case).join("expected.prom"),
        &families_with_prefix(&text, FAMILIES),
    );
    (text, stderr)
}

fn success(text: &str) -> Option<f64> {
    sample(
        text,
        "netstat_scrape_collector_success",
        &[("collector", "sockets")],
    )
}

#[test]
fn basic_capture() {
    let (text, stderr) = golden("basic");
    assert_eq!(success(&text), Some(1.0), "{stderr}");
    assert!(stderr.is_empty(), "no log lines expected: {stderr}");
    // Spot checks against the capture (see tests/fixtures/sockets/basic/proc/net).
    let tcp4 = |state| {
        sample(
            &text,
            "netstat_sockets",
            &[("protocol", "tcp"), ("family", "ipv4"), ("state", state)],
        )
    };
    assert_eq!(tcp4("time_wait"), Some(3.0));
    assert_eq!(tcp4("close_wait"), Some(1.0));
    assert_eq!(tcp4("fin_wait2"), Some(1.0));
    let q = sample(
        &text,
        "netstat_socket_queued_bytes",
        &[
            ("protocol", "tcp"),
            ("family", "ipv4"),
            ("queue", "receive"),
        ],
    );
    assert_eq!(
        q,
        Some(1235.0),
        "1234 unread bytes + the CLOSE_WAIT socket's FIN"
    );
}

#[test]
fn ipv6_disabled_is_not_an_error() {
    let (text, stderr) = golden("ipv6_disabled");
    assert_eq!(success(&text), Some(1.0), "{stderr}");
    let v6 = sample(
        &text,
        "netstat_sockets",
        &[("protocol", "tcp"), ("family", "ipv6"), ("state", "listen")],
    );
    assert_eq!(v6, Some(0.0), "ipv6 series stay, at zero");
}

#[test]
fn garbage_lines_are_skipped_and_counted() {
    let (text, stderr) = golden("garbage");
    assert_eq!(success(&text), Some(0.0));
    let errs = |src| {
        sample(
            &text,
            "netstat_scrape_errors_total",
            &[("collector", "sockets"), ("source", src)],
        )
    };
    assert_eq!(errs("net/tcp"), Some(2.0));
    assert_eq!(errs("net/tcp6"), Some(1.0));
    assert_eq!(errs("net/udp"), Some(1.0));
    assert_eq!(errs("net/unix"), Some(1.0));
    // Every log line names the file and line.
    assert!(stderr.contains("net/tcp:12: "), "{stderr}");
    assert!(
        stderr.contains("net/udp:4: ") && stderr.contains("truncated last line"),
        "{stderr}"
    );
    // The good lines of the same files are still counted.
    let listen = sample(
        &text,
        "netstat_sockets",
        &[("protocol", "tcp"), ("family", "ipv4"), ("state", "listen")],
    );
    assert_eq!(listen, Some(2.0));
}

#[test]
fn empty_file_is_an_error_header_only_is_not() {
    let (text, stderr) = golden("empty");
    assert_eq!(success(&text), Some(0.0));
    assert!(stderr.contains("empty file"), "{stderr}");
    assert_eq!(
        sample(
            &text,
            "netstat_scrape_errors_total",
            &[("collector", "sockets"), ("source", "net/tcp")]
        ),
        Some(1.0)
    );
    assert!(
        !text.contains("source=\"net/udp\""),
        "header-only udp is fine"
    );
}

#[test]
fn missing_ipv4_table_is_an_error_and_nothing_else_is_lost() {
    let (text, stderr) = golden("missing_tcp");
    assert_eq!(success(&text), Some(0.0));
    assert!(stderr.contains("does not exist"), "{stderr}");
    // Everything else still there.
    assert!(text.contains("netstat_exporter_build_info{"));
    assert_eq!(
        sample(
            &text,
            "netstat_sockets",
            &[
                ("protocol", "udp"),
                ("family", "ipv4"),
                ("state", "connected")
            ]
        ),
        Some(1.0)
    );
}

#[test]
fn nonexistent_procfs_still_answers() {
    let out = run_once(&["--path.procfs=/nonexistent/proc"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(success(&text), Some(0.0));
    assert!(text.contains("netstat_exporter_build_info{"));
}
