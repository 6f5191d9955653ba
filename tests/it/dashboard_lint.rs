//! Lints the shipped dashboards (rendered from the mixin) with the rules of Grafana's
//! dashboard-linter, and the alert rules like `mixtool lint`, with no exceptions:
//!
//! - dashboard: a `datasource` variable (type datasource, Prometheus); `job` and `instance`
//!   query variables on `${datasource}`, multi-value with All, refreshed on time range change,
//!   `instance` filtered by `$job`; not editable; no hard-coded data source uid anywhere.
//! - panels: on `${datasource}`, a title, a description, a known unit, at least one query.
//! - queries: every selector filtered by `job=~"$job"` and `instance=~"$instance"`;
//!   `[$__rate_interval]` in every rate/irate/increase; every counter (`*_total`) inside
//!   rate/irate/increase.
//! - every metric a dashboard query or an alert reads exists in a full scrape of the built
//!   exporter with every collector and optional family on, so a renamed metric cannot leave
//!   a dead panel or an alert that never fires. Only `up` and `scrape_*`, which Prometheus
//!   itself writes, are not expected from the exporter. The scrape runs with `--netns=all`
//!   (the netstat_netns_* metrics need it).
//! - alerts: CamelCase names, severity critical|warning|info, a summary, a templated
//!   description, a `for:` window, every selector carries the mixin's job matcher, counters
//!   only inside rate/irate/increase.
//!
//! The PromQL walk below is a small tokenizer (selectors, functions, grouping clauses), tested
//! on its own by `promql_walk_finds_selectors_and_their_functions`.

use crate::common;

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ------------------------------------------------------------------- a small PromQL walker

/// One vector or range selector of a PromQL expression.
#[derive(Debug, Clone, PartialEq)]
struct Selector {
    name: String,
    /// (label, operator, value) with the value unquoted.
    matchers: Vec<(String, String, String)>,
    /// The text between `[` and `]` when it is a range selector (or a subquery's range).
    range: Option<String>,
    /// The function whose parentheses directly enclose the selector (`rate`, `sum`...).
    function: Option<String>,
}

const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "stdvar",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
];

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}
fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Index just past the string literal starting at `i` (quote at b[i]).
fn skip_string(b: &[u8], mut i: usize) -> usize {
    let q = b[i];
    i += 1;
    while i < b.len() && b[i] != q {
        if b[i] == b'\\' && q != b'`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Index just past the bracket group opened at `i`.
fn skip_group(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i);
                continue;
            }
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced brackets in {:?}", String::from_utf8_lossy(b));
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The matchers between `{` at b[i] and its `}`.
fn parse_matchers(expr: &str, open: usize, close: usize) -> Vec<(String, String, String)> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = open + 1;
    loop {
        i = skip_ws(b, i);
        if i >= close - 1 {
            break;
        }
        let start = i;
        while is_ident(b[i]) {
            i += 1;
        }
        let label = expr[start..i].to_string();
        i = skip_ws(b, i);
        let op_start = i;
        while matches!(b[i], b'=' | b'!' | b'~') {
            i += 1;
        }
        let op = expr[op_start..i].to_string();
        i = skip_ws(b, i);
        let end = skip_string(b, i);
        let value = expr[i + 1..end - 1].to_string();
        assert!(
            !label.is_empty() && !op.is_empty(),
            "cannot read the matchers of {expr:?}"
        );
        out.push((label, op, value));
        i = skip_ws(b, end);
        if i < close && b[i] == b',' {
            i += 1;
        }
    }
    out
}

/// Every selector of `expr`, with the function that encloses it.
fn selectors(expr: &str) -> Vec<Selector> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    // One entry per open parenthesis: the function it belongs to, if any.
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut pending: Option<String> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            i = skip_string(b, i);
        } else if c == b'(' {
            stack.push(pending.take());
            i += 1;
        } else if c == b')' {
            stack.pop();
            i += 1;
        } else if c == b'[' {
            // A subquery range after a parenthesis: skip.
            i = skip_group(b, i);
        } else if c.is_ascii_digit() || c == b'.' {
            // Numbers and durations (offset 5m).
            while i < b.len() && (is_ident(b[i]) || b[i] == b'.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            let next = skip_ws(b, i);
            let followed_by_paren = next < b.len() && b[next] == b'(';
            if GROUPING.contains(&word) {
                if followed_by_paren {
                    i = skip_group(b, next);
                }
            } else if KEYWORDS.contains(&word) {
            } else if followed_by_paren {
                pending = Some(word.to_string());
            } else if AGGREGATIONS.contains(&word) {
                // `sum by (x) (...)`: the parenthesis after the clause is the aggregation's.
                pending = Some(word.to_string());
            } else {
                let mut sel = Selector {
                    name: word.to_string(),
                    matchers: Vec::new(),
                    range: None,
                    function: stack.last().cloned().flatten(),
                };
                let mut j = next;
                if j < b.len() && b[j] == b'{' {
                    let end = skip_group(b, j);
                    sel.matchers = parse_matchers(expr, j, end);
                    j = skip_ws(b, end);
                }
                if j < b.len() && b[j] == b'[' {
                    let end = skip_group(b, j);
                    sel.range = Some(expr[j + 1..end - 1].to_string());
                    j = end;
                }
                out.push(sel);
                i = j;
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn promql_walk_finds_selectors_and_their_functions() {
    let s = selectors(
        r#"sum by (instance, device) (rate(a_total{job=~"$job",x="a,b}"}[$__rate_interval])) / on (instance) group_left sum without (y) (b{job="j"}) or vector(0) > 0.5 and max(c offset 5m) unless min_over_time(d[10m:1m])"#,
    );
    let names: Vec<&str> = s.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, vec!["a_total", "b", "c", "d"]);
    assert_eq!(s[0].function.as_deref(), Some("rate"));
    assert_eq!(s[0].range.as_deref(), Some("$__rate_interval"));
    assert_eq!(
        s[0].matchers,
        vec![
            ("job".into(), "=~".into(), "$job".into()),
            ("x".into(), "=".into(), "a,b}".into())
        ]
    );
    assert_eq!(s[1].function.as_deref(), Some("sum"));
    assert_eq!(s[2].function.as_deref(), Some("max"));
    assert_eq!(s[3].function.as_deref(), Some("min_over_time"));
    assert_eq!(s[3].range.as_deref(), Some("10m:1m"));
    // And the rules below catch what they should.
    let bad = lint_query("sum(rate(x_total[5m])) + y_total", true);
    assert!(
        bad.iter().any(|p| p.contains("$__rate_interval")),
        "{bad:?}"
    );
    assert!(bad.iter().any(|p| p.contains("y_total")), "{bad:?}");
    assert!(bad.iter().any(|p| p.contains("$job")), "{bad:?}");
    let good = lint_query(
        r#"sum(increase(x_total{job=~"$job",instance=~"$instance"}[$__rate_interval]))"#,
        true,
    );
    assert!(good.is_empty(), "{good:?}");
}

const COUNTER_FUNCTIONS: &[&str] = &["rate", "irate", "increase"];

/// The dashboard-linter target rules for one query.
fn lint_query(expr: &str, dashboard: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for s in selectors(expr) {
        let has = |label: &str, op: &str, value: &str| {
            s.matchers
                .iter()
                .any(|(l, o, v)| l == label && o == op && v == value)
        };
        if dashboard {
            if !has("job", "=~", "$job") {
                problems.push(format!("{}: not filtered by job=~\"$job\"", s.name));
            }
            if !has("instance", "=~", "$instance") {
                problems.push(format!(
                    "{}: not filtered by instance=~\"$instance\"",
                    s.name
                ));
            }
        }
        let f = s.function.as_deref().unwrap_or("");
        if COUNTER_FUNCTIONS.contains(&f)
            && dashboard
            && s.range.as_deref() != Some("$__rate_interval")
        {
            problems.push(format!(
                "{f}({}[{}]): use [$__rate_interval]",
                s.name,
                s.range.as_deref().unwrap_or("")
            ));
        }
        if s.name.ends_with("_total") && !COUNTER_FUNCTIONS.contains(&f) {
            problems.push(format!(
                "counter {} not inside rate/irate/increase (in {f:?})",
                s.name
            ));
        }
    }
    problems
}

// ------------------------------------------------------------------- the full scrape

/// Sample names of one scrape of the built exporter with every collector and every optional
/// family on: an expected-listeners file that allows nothing here (so this test's own
/// listeners are unexpected), every raw protocol field, a TCP listener (accept queue and its
/// limit, over netlink) and a bound UDP socket (receive queue, drops); plus one scrape of an
/// empty procfs tree, for the error counter.
fn full_scrape_names() -> BTreeSet<String> {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    // An outbound connection (the client side), which the connections: policy does not allow.
    let client = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    let dir = common::TempDir::new("lint");
    let expected = dir.write(
        "expected.yml",
        "listeners:\n  - protocol: tcp\n    port: 1\nconnections:\n  - remote_port: 1\n",
    );
    let out = Command::new(common::exporter_bin())
        .arg("--once")
        .arg(format!(
            "--collector.listeners.expected={}",
            expected.display()
        ))
        .arg("--collector.protocols.fields=.*")
        .arg("--collector.connections.health")
        .arg("--netns=all")
        .output()
        .unwrap();
    drop((tcp, udp, client));
    assert!(
        out.status.success(),
        "--once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::from_utf8(out.stdout).unwrap();
    for c in netstat_exporter::collectors::REGISTRY
        .iter()
        .map(|d| d.name)
    {
        assert_eq!(
            common::sample(
                &text,
                "netstat_scrape_collector_success",
                &[("collector", c)]
            ),
            Some(1.0),
            "collector {c} did not succeed; the exporter said:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // netstat_scrape_errors_total exists once a collector met an error: one more scrape of an
    // empty procfs tree provokes it.
    let broken = Command::new(common::exporter_bin())
        .arg("--once")
        .arg(format!("--path.procfs={}", dir.path().display()))
        .arg("--netns=all")
        .output()
        .unwrap();
    assert!(broken.status.success());
    let broken = String::from_utf8(broken.stdout).unwrap();
    assert!(
        broken.contains("\nnetstat_scrape_errors_total{"),
        "{broken}"
    );
    text.push_str(&broken);
    text.push_str(&closed_connection_counters());
    let names: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    for must in [
        "netstat_netns_info",
        "netstat_netns",
        "netstat_netns_dropped",
    ] {
        assert!(
            names.contains(must),
            "--netns=all: the full scrape lacks {must}"
        );
    }
    for must in [
        "netstat_listener_unexpected",
        "netstat_outbound_unexpected",
        "netstat_listener_accept_queue_limit",
        "netstat_listener_drops_total",
        "netstat_protocol_field_total",
    ] {
        assert!(names.contains(must), "the full scrape lacks {must}");
    }
    names
}

/// The socket-destroy counters count what closes while the exporter runs (a `--once` scrape
/// has none): a served exporter, a connection closed and a connect refused meanwhile.
fn closed_connection_counters() -> String {
    let e = common::Exporter::start(&[]);
    // The subscriber opens with the first collection (answered once it is done).
    let _ = e.get("/metrics");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    drop((c, s));
    let port = l.local_addr().unwrap();
    drop(l);
    assert!(std::net::TcpStream::connect(port).is_err());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = e.get("/metrics").text();
        let done = [
            "netstat_outbound_connections_closed_total{",
            "netstat_inbound_connections_closed_total{",
            "netstat_outbound_connect_failures_total{",
        ]
        .iter()
        .all(|n| text.contains(n));
        if done || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// Series Prometheus writes itself for every target.
fn written_by_prometheus(name: &str) -> bool {
    name == "up" || name.starts_with("scrape_")
}

// ------------------------------------------------------------------- dashboards

fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(repo().join("dashboards")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            out.push((p.file_name().unwrap().to_str().unwrap().to_string(), v));
        }
    }
    assert!(!out.is_empty());
    out
}

/// Units Grafana knows (the ones a netstat dashboard can need; an unknown or empty one fails).
const UNITS: &[&str] = &[
    "none",
    "short",
    "percent",
    "percentunit",
    "bytes",
    "decbytes",
    "bits",
    "bps",
    "Bps",
    "binBps",
    "pps",
    "ops",
    "reqps",
    "rps",
    "wps",
    "s",
    "ms",
    "us",
    "ns",
    "dtdurations",
    "cps",
    "counts",
];

/// Every `datasource` anywhere in the dashboard must be the template variable.
fn hard_coded_datasources(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}.{k}");
                if k == "datasource" {
                    let uid = match x {
                        Value::Object(d) => d.get("uid").and_then(Value::as_str),
                        Value::String(s) => Some(s.as_str()),
                        _ => None,
                    };
                    if !matches!(uid, Some("${datasource}") | Some("$datasource")) {
                        out.push(format!("{p}: hard-coded data source {x}"));
                    }
                }
                hard_coded_datasources(x, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                hard_coded_datasources(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn dashboards_pass_the_dashboard_linter_rules() {
    let names = full_scrape_names();
    for (file, d) in dashboards() {
        let mut problems = Vec::new();
        let mut used = BTreeSet::new();
        if d["editable"] != Value::Bool(false) {
            problems.push("dashboard is editable (uneditable-dashboard)".to_string());
        }
        hard_coded_datasources(&d, "", &mut problems);

        let vars = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let var = |n: &str| vars.iter().find(|v| v["name"] == n).cloned();
        match var("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            other => problems.push(format!("no Prometheus `datasource` variable: {other:?}")),
        }
        for n in ["job", "instance"] {
            let Some(v) = var(n) else {
                problems.push(format!("no `{n}` variable"));
                continue;
            };
            if v["type"] != "query" || v["datasource"]["uid"] != "${datasource}" {
                problems.push(format!("`{n}`: not a query on ${{datasource}}"));
            }
            if v["multi"] != Value::Bool(true) || v["includeAll"] != Value::Bool(true) {
                problems.push(format!("`{n}`: must be multi-value with All"));
            }
            if v["refresh"] != 2 {
                problems.push(format!("`{n}`: refresh must be 2 (on time range change)"));
            }
            let q = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .unwrap_or("");
            let Some(args) = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
            else {
                problems.push(format!("`{n}`: query {q:?} is not label_values(...)"));
                continue;
            };
            let (series, label) = args.rsplit_once(',').unwrap();
            if label.trim() != n {
                problems.push(format!("`{n}`: lists label {label:?}"));
            }
            for s in selectors(series) {
                used.insert(s.name);
            }
            if n == "instance" && !series.contains("job=~\"$job\"") {
                problems.push("`instance` values are not filtered by $job".to_string());
            }
        }

        let mut n_panels = 0;
        for p in d["panels"].as_array().unwrap() {
            if p["type"] == "row" {
                continue;
            }
            n_panels += 1;
            let title = p["title"].as_str().unwrap_or("").to_string();
            let at = if title.is_empty() {
                format!("panel {}", p["id"])
            } else {
                format!("panel {title:?}")
            };
            if title.trim().is_empty() {
                problems.push(format!("{at}: no title"));
            }
            if p["description"]
                .as_str()
                .is_none_or(|s| s.trim().is_empty())
            {
                problems.push(format!("{at}: no description"));
            }
            match p["fieldConfig"]["defaults"]["unit"].as_str() {
                Some(u) if UNITS.contains(&u) => {}
                other => problems.push(format!("{at}: unit {other:?} is not a known unit")),
            }
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{at}: no queries"));
            }
            for t in &targets {
                let expr = t["expr"].as_str().unwrap_or("");
                if expr.trim().is_empty() {
                    problems.push(format!("{at}: empty query"));
                    continue;
                }
                for msg in lint_query(expr, true) {
                    problems.push(format!("{at}: {msg} in {expr}"));
                }
                for s in selectors(expr) {
                    used.insert(s.name);
                }
            }
        }
        assert!(n_panels >= 20, "{file}: {n_panels} panels");
        for m in &used {
            if !names.contains(m) && !written_by_prometheus(m) {
                problems.push(format!(
                    "metric {m} is not in a full scrape of the exporter"
                ));
            }
        }
        eprintln!(
            "{file}: {n_panels} panels, {} metrics, all in the full scrape: {}",
            used.len(),
            problems.is_empty()
        );
        assert!(problems.is_empty(), "{file}:\n{}", problems.join("\n"));
    }
}

// ------------------------------------------------------------------- alerts

#[test]
fn alerts_pass_the_mixtool_lint_rules_and_read_existing_metrics() {
    let names = full_scrape_names();
    let text = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
    let camel = regex::Regex::new(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+$").unwrap();
    let mut problems = Vec::new();
    let mut n = 0;
    for g in doc["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let Some(name) = r["alert"].as_str() else {
                continue;
            };
            n += 1;
            if !camel.is_match(name) {
                problems.push(format!("{name}: alert name is not CamelCase"));
            }
            match r["labels"]["severity"].as_str() {
                Some("critical" | "warning" | "info") => {}
                other => problems.push(format!("{name}: severity {other:?}")),
            }
            if r["annotations"]["summary"]
                .as_str()
                .is_none_or(|s| s.trim().is_empty())
            {
                problems.push(format!("{name}: no summary"));
            }
            match r["annotations"]["description"].as_str() {
                Some(d) if d.contains("{{") && d.contains("}}") => {}
                other => problems.push(format!("{name}: description not templated: {other:?}")),
            }
            if r["for"].as_str().is_none() {
                problems.push(format!("{name}: no `for:`"));
            }
            let expr = r["expr"].as_str().unwrap();
            for msg in lint_query(expr, false) {
                problems.push(format!("{name}: {msg}"));
            }
            for s in selectors(expr) {
                if !s
                    .matchers
                    .iter()
                    .any(|(l, o, v)| l == "job" && o == "=" && v == "netstat-exporter")
                {
                    problems.push(format!(
                        "{name}: {} lacks the mixin's job=\"netstat-exporter\"",
                        s.name
                    ));
                }
                if !names.contains(&s.name) && !written_by_prometheus(&s.name) {
                    problems.push(format!(
                        "{name}: metric {} is not in a full scrape of the exporter",
                        s.name
                    ));
                }
            }
        }
    }
    assert!(n >= 13, "{n} alerts");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
