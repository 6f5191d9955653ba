//! `/api/v1/events` against the binary (and in process for the request limits): schema,
//! `since` cursor, capacity bound and drop counter, partial scrapes, the same auth and limits
//! as /metrics, and one structured log line per event (logfmt and JSON).

use crate::common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use common::{http_get, sample, Exporter, TempDir};

/// Listeners only, owners found at once (a walk per scrape at most every 100 ms), and no
/// watch: these tests prove the events made from the difference between scrapes
/// (`--watch.interval=0`); tests/watch.rs proves the watch with default flags.
const ARGS: &[&str] = &[
    "--collector.disable-defaults",
    "--collector.listeners",
    "--collector.interfaces",
    "--collector.listeners.walk-interval=100ms",
    "--watch.interval=0",
];

fn events(e: &Exporter, since: u64) -> Value {
    let r = e.get(&format!("/api/v1/events?since={since}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r
        .header("content-security-policy")
        .is_some_and(|c| c.contains("default-src 'self'")));
    serde_json::from_slice(&r.body).expect("events JSON")
}

fn scrape(e: &Exporter, query: &str) -> String {
    let r = e.get(&format!("/metrics{query}"));
    assert_eq!(r.status, 200);
    r.text()
}

/// Longer than the walk interval of ARGS: the next scrape walks /proc/*/fd for new owners.
fn settle() {
    std::thread::sleep(Duration::from_millis(150));
}

fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

/// Events of `kind` about listening port `port` (other tests and processes on the host open
/// listeners too: only ours count).
fn for_port<'a>(page: &'a Value, kind: &str, port: u16) -> Vec<&'a Value> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind && e["port"] == port)
        .collect()
}

#[test]
fn schema_cursor_and_counters() {
    let e = Exporter::start(ARGS);
    // Only the start-up collection (the baseline) so far: an empty log, and reading it
    // scrapes nothing.
    for _ in 0..3 {
        let p = events(&e, 0);
        assert_eq!(p["schema"], 1);
        assert_eq!(p["scrapes"], 1);
        assert_eq!(p["capacity"], 1000);
        assert_eq!(p["dropped"], 0);
        assert_eq!(p["oldest"], Value::Null);
        assert_eq!(p["truncated"], false);
        assert_eq!(p["next"], 0);
        assert_eq!(p["events"], Value::Array(vec![]));
        assert!(p["time"].as_f64().unwrap() > 1.6e9);
    }
    // Baseline: the listeners open at start-up (the exporter's own) are not "opened".
    scrape(&e, "");
    let base = events(&e, 0);
    assert_eq!(base["scrapes"], 2);
    assert!(for_port(&base, "listener_opened", e.addr.port()).is_empty());

    // A new listener: opened, with port, process and user.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    settle();
    let text = scrape(&e, "");
    let p = events(&e, 0);
    assert_eq!(p["scrapes"], 3);
    let opened = for_port(&p, "listener_opened", port);
    assert_eq!(opened.len(), 1, "{p:#}");
    let ev = opened[0];
    for (k, want) in [
        ("protocol", "tcp"),
        ("family", "ipv4"),
        ("address", "127.0.0.1"),
        ("netns", ""),
        ("severity", "info"),
        ("user", "root"),
    ] {
        assert_eq!(ev[k], want, "{k}: {ev}");
    }
    assert_eq!(ev["process"], own_comm().as_str(), "{ev}");
    assert_eq!(ev["scrape"], 3);
    assert_eq!(ev["unexpected"], Value::Null, "no policy");
    assert!(ev["seq"].as_u64().unwrap() >= 1);
    assert!(ev["time"].as_f64().unwrap() > 1.6e9);
    assert!(ev["service"].is_string());
    let opened_total = sample(
        &text,
        "netstat_events_total",
        &[("kind", "listener_opened")],
    );
    assert!(opened_total >= Some(1.0), "{opened_total:?}");
    assert_eq!(
        sample(&text, "netstat_events_total", &[("kind", "netns_vanished")]),
        Some(0.0),
        "every kind is present"
    );
    assert_eq!(
        sample(&text, "netstat_events_dropped_total", &[]),
        Some(0.0)
    );

    // The cursor: nothing at or before `next` comes back.
    let cursor = p["next"].as_u64().unwrap();
    assert_eq!(
        cursor,
        p["events"].as_array().unwrap().last().unwrap()["seq"]
    );
    let again = events(&e, cursor);
    assert!(for_port(&again, "listener_opened", port).is_empty());
    assert!(again["next"].as_u64().unwrap() >= cursor);

    // A collect[] selection is a partial view: never observed, not even when it holds the
    // listeners ...
    drop(l);
    let observed = events(&e, cursor)["scrapes"].clone();
    scrape(&e, "?collect[]=interfaces");
    scrape(&e, "?collect[]=listeners");
    let p = events(&e, cursor);
    assert!(for_port(&p, "listener_closed", port).is_empty(), "{p:#}");
    assert_eq!(p["scrapes"], observed, "{p:#}");
    // ... the next scrape of every collector closes it.
    scrape(&e, "");
    let p = events(&e, cursor);
    let closed = for_port(&p, "listener_closed", port);
    assert_eq!(closed.len(), 1, "{p:#}");
    assert!(closed[0]["seq"].as_u64().unwrap() > cursor);
    assert_eq!(closed[0]["process"], own_comm().as_str());
    // ?limit pages.
    let r = e.get("/api/v1/events?since=0&limit=1");
    let one: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    assert_eq!(one["next"], one["events"][0]["seq"]);
}

#[test]
fn bad_parameters_and_capacity_flag() {
    let e = Exporter::start(ARGS);
    for q in ["since=-1", "since=abc", "limit=0", "limit=100000"] {
        let r = e.get(&format!("/api/v1/events?{q}"));
        assert_eq!(r.status, 400, "{q}");
        assert!(r.text().starts_with("invalid "), "{}", r.text());
    }
    // A cursor from a previous run of the exporter: start over.
    scrape(&e, "");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    scrape(&e, "");
    assert_eq!(
        for_port(&events(&e, 1_000_000), "listener_opened", port).len(),
        1
    );
    // --events.capacity=0: no change log.
    let off = Exporter::start(&[
        "--events.capacity=0",
        "--collector.disable-defaults",
        "--collector.listeners",
    ]);
    let r = off.get("/api/v1/events");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("--events.capacity=0"));
    assert!(!off.get("/metrics").text().contains("netstat_events_total"));
    // Out of range: a start-up error naming the flag.
    let out = common::run_once(&["--events.capacity=99999999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--events.capacity"));
}

#[test]
fn capacity_bounds_the_log_and_counts_the_dropped() {
    // Events from scrapes (no watch), so that each scrape's events are known when it returns.
    let e = Exporter::start(&[
        "--watch.interval=0",
        "--events.capacity=3",
        "--collector.disable-defaults",
        "--collector.listeners",
    ]);
    scrape(&e, "");
    let held = common::sockload::hold_listeners(6).expect("listeners");
    let text = scrape(&e, "");
    let p = events(&e, 0);
    assert_eq!(p["capacity"], 3);
    let evs = p["events"].as_array().unwrap();
    assert_eq!(evs.len(), 3, "{p:#}");
    let dropped = p["dropped"].as_u64().unwrap();
    assert!(dropped >= 3, "{p:#}");
    let last = p["next"].as_u64().unwrap();
    assert_eq!(p["oldest"].as_u64().unwrap(), last - 2);
    assert_eq!(p["truncated"], true);
    assert_eq!(
        events(&e, last - 3)["truncated"],
        false,
        "a client up to date with what is kept missed nothing"
    );
    assert_eq!(
        sample(&text, "netstat_events_dropped_total", &[]),
        Some(dropped as f64)
    );
    assert!(
        sample(
            &text,
            "netstat_events_total",
            &[("kind", "listener_opened")]
        ) >= Some(6.0)
    );
    drop(held);
    scrape(&e, "");
    let p = events(&e, 0);
    assert_eq!(p["events"].as_array().unwrap().len(), 3);
    assert!(p["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] == "listener_closed"));
}

#[test]
fn basic_auth_protects_the_events() {
    let dir = TempDir::new("events-auth");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let cfg = dir.write("web.yml", &format!("basic_auth_users:\n  admin: {hash}\n"));
    let e = Exporter::start(&[
        &format!("--web.config.file={}", cfg.display()),
        "--collector.disable-defaults",
        "--collector.listeners",
    ]);
    let good = "Basic YWRtaW46czNjcmV0"; // admin:s3cret
    let bad = "Basic YWRtaW46d3Jvbmc="; // admin:wrong
    for path in ["/api/v1/events", "/api/v1/events?since=0", "/metrics"] {
        let r = http_get(e.addr, path, &[]);
        assert_eq!(r.status, 401, "{path}");
        assert!(!r.text().contains("events"), "no data without auth");
        assert_eq!(
            http_get(e.addr, path, &[("Authorization", bad)]).status,
            401
        );
        assert_eq!(
            http_get(e.addr, path, &[("Authorization", good)]).status,
            200
        );
    }
}

// In process: the in-flight limit and the body refusal apply to /api/v1/events, and reading
// it does not wait for (or start) a scrape.
mod limits {
    use super::*;
    use netstat_exporter::collectors::listeners::INFO;
    use netstat_exporter::collectors::{Collected, SimpleCollector};
    use netstat_exporter::events::EventLog;
    use netstat_exporter::http::{router_with, HttpOptions};
    use netstat_exporter::scrape::Scraper;
    use netstat_exporter::source::netns::Netns;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Slow(Arc<AtomicUsize>);
    impl SimpleCollector for Slow {
        fn name(&self) -> &'static str {
            "listeners"
        }
        fn collect(&self, _ns: &Netns) -> Collected {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(600));
            Collected {
                families: vec![INFO.family()],
                errors: vec![],
                ..Collected::default()
            }
        }
    }

    async fn status(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> StatusCode {
        let mut req = Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        app.clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn in_flight_limit_and_body_refusal() {
        let runs = Arc::new(AtomicUsize::new(0));
        let scraper = Scraper::new(vec![Box::new(Slow(runs.clone()))], "/nonexistent".into())
            .with_events(Some(Arc::new(EventLog::new(10))));
        let app = router_with(
            Arc::new(scraper),
            "/metrics",
            HttpOptions {
                max_requests: 1,
                ..HttpOptions::default()
            },
        );
        // Reading the events is immediate and collects nothing.
        let t = std::time::Instant::now();
        assert_eq!(status(&app, "/api/v1/events", &[]).await, StatusCode::OK);
        assert!(t.elapsed() < Duration::from_millis(300));
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        let first = {
            let app = app.clone();
            tokio::spawn(async move { status(&app, "/metrics", &[]).await })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            status(&app, "/api/v1/events", &[]).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(first.await.unwrap(), StatusCode::OK);
        assert_eq!(
            status(&app, "/api/v1/events", &[("content-length", "5")]).await,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(status(&app, "/api/v1/events", &[]).await, StatusCode::OK);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// The log: one structured info line per event.

fn stop_and_log(e: Exporter) -> String {
    e.stop_and_log()
}

/// Open and close a listener between scrapes; returns its port and the exporter's log.
fn open_close(format: &str) -> (u16, String) {
    let mut args = ARGS.to_vec();
    let fmt = format!("--log.format={format}");
    args.push(&fmt);
    let e = Exporter::start(&args);
    scrape(&e, "");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    settle();
    scrape(&e, "");
    drop(l);
    scrape(&e, "");
    (port, stop_and_log(e))
}

#[test]
fn one_logfmt_line_per_event() {
    let (port, log) = open_close("logfmt");
    let comm = own_comm();
    for (kind, msg) in [
        ("listener_opened", "\"listener opened\""),
        ("listener_closed", "\"listener closed\""),
    ] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains(&format!("event={kind} ")) && l.contains(&format!(" port={port} "))
            })
            .collect();
        assert_eq!(lines.len(), 1, "{kind}: {log}");
        let line = lines[0];
        assert!(line.starts_with("ts="), "{line}");
        for field in [
            " level=info ".to_string(),
            format!(" msg={msg} "),
            " seq=".into(),
            " scrape=".into(),
            " severity=info ".into(),
            " netns=\"\" ".into(),
            " protocol=tcp ".into(),
            " family=ipv4 ".into(),
            " address=127.0.0.1 ".into(),
            format!(" process={comm} "),
            " user=root ".into(),
            " service=".into(),
        ] {
            assert!(line.contains(&field), "{field:?} in {line}");
        }
    }
}

#[test]
fn one_json_line_per_event() {
    let (port, log) = open_close("json");
    let comm = own_comm();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["fields"]["event"].is_string() && v["fields"]["port"] == port)
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|v| v["fields"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["listener_opened", "listener_closed"], "{log}");
    for v in &events {
        assert_eq!(v["level"], "INFO");
        let f = &v["fields"];
        assert_eq!(f["protocol"], "tcp");
        assert_eq!(f["address"], "127.0.0.1");
        assert_eq!(f["process"], comm.as_str());
        assert_eq!(f["netns"], "");
        assert!(
            f["seq"].as_u64().is_some() && f["scrape"].as_u64().is_some(),
            "{f}"
        );
        assert!(f["message"].as_str().unwrap().starts_with("listener "));
    }
    assert!(events[1]["fields"]["seq"].as_u64() > events[0]["fields"]["seq"].as_u64());
}
