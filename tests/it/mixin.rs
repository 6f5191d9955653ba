//! The monitoring mixin (deploy/mixin/) is the source of the shipped dashboard and alert rules:
//! rendered with a real jsonnet implementation (PyPI `jsonnet`, the C++ one, module `_jsonnet`)
//! and default _config it must equal dashboards/*.json and deploy/prometheus/alerts.yml, both
//! as data and byte for byte as deploy/mixin/render.py writes them. Overriding `_config` must
//! reach every alert and the dashboard.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::{require_python_module, require_tool, TempDir};
use serde_json::Value;

const REGENERATE: &str = "run `python3 deploy/mixin/render.py` and commit the result";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Evaluate a jsonnet snippet with deploy/mixin on the import path.
fn jsonnet(snippet: &str) -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import _jsonnet, sys; print(_jsonnet.evaluate_snippet('snippet', sys.argv[1], jpathdir=[sys.argv[2]]))",
            snippet,
        ])
        .arg(repo().join("deploy/mixin"))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "jsonnet failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("jsonnet output is JSON")
}

fn render(overrides: &str) -> (BTreeMap<String, Value>, Value) {
    let v = jsonnet(&format!(
        "local m = (import 'mixin.libsonnet') + {overrides}; \
         {{ dashboards: m.grafanaDashboards, alerts: m.prometheusAlerts, config: m._config }}"
    ));
    let dashboards = v["dashboards"]
        .as_object()
        .expect("grafanaDashboards is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (dashboards, v["alerts"].clone())
}

/// First path at which two JSON values differ.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_difference(u, v, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                    (u, v) => return Some(format!("{path}.{k}: {u:?} vs {v:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => {
            let show = |v: &Value| {
                let s = v.to_string();
                s.chars().take(300).collect::<String>()
            };
            Some(format!(
                "{path}:\n  mixin:   {}\n  shipped: {}",
                show(a),
                show(b)
            ))
        }
    }
}

fn shipped_dashboards() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(repo().join("dashboards")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&p).unwrap();
            out.insert(
                p.file_name().unwrap().to_str().unwrap().to_string(),
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            );
        }
    }
    out
}

fn shipped_alerts() -> Value {
    let text = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("alerts.yml")
}

#[test]
fn mixin_renders_to_the_shipped_dashboards_and_alerts() {
    if !require_python_module("_jsonnet", "jsonnet") {
        return;
    }
    let (dashboards, alerts) = render("{}");
    let shipped = shipped_dashboards();
    assert_eq!(
        dashboards.keys().collect::<Vec<_>>(),
        shipped.keys().collect::<Vec<_>>(),
        "grafanaDashboards and dashboards/*.json name different files: {REGENERATE}"
    );
    let mut problems = Vec::new();
    for (name, d) in &dashboards {
        if let Some(diff) = first_difference(d, &shipped[name], "") {
            problems.push(format!(
                "dashboards/{name} differs from the mixin at {diff}"
            ));
        }
    }
    if let Some(diff) = first_difference(&alerts, &shipped_alerts(), "") {
        problems.push(format!(
            "deploy/prometheus/alerts.yml differs from the mixin at {diff}"
        ));
    }
    assert!(problems.is_empty(), "{}\n{REGENERATE}", problems.join("\n"));

    // Byte for byte as render.py writes them (formatting and header included).
    let dir = TempDir::new("mixin-render");
    let out = Command::new("python3")
        .arg(repo().join("deploy/mixin/render.py"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "render.py --out failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<String> = shipped.keys().map(|n| format!("dashboards/{n}")).collect();
    files.push("deploy/prometheus/alerts.yml".into());
    for f in files {
        let fresh = std::fs::read_to_string(dir.join(&f)).unwrap();
        let committed = std::fs::read_to_string(repo().join(&f)).unwrap();
        if let Some((n, (a, b))) = fresh
            .lines()
            .zip(committed.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!(
                "{f} line {}: rendered {a:?}, committed {b:?}\n{REGENERATE}",
                n + 1
            );
        }
        assert_eq!(fresh, committed, "{f}: {REGENERATE}");
    }
}

#[test]
fn config_overrides_reach_every_alert_and_the_dashboard() {
    if !require_python_module("_jsonnet", "jsonnet") {
        return;
    }
    let (dashboards, alerts) = render(
        r#"{ _config+:: {
            netstatExporterSelector: 'job="edge-netstat", cluster="eu1"',
            promiscuousInterfaceExcludeRegex: 'kube-bridge',
            timeWaitThreshold: 123456,
            timeWaitFor: '42m',
            acceptQueueFillRatio: 0.95,
            interfaceOverrunRatio: 0.002,
            dashboardUid: 'custom-uid',
            dashboardTitle: 'Custom netstat',
            netnsInfoJoinLabels: 'cluster, job, instance',
            netnsInfoLabels: 'pod_uid',
        } }"#,
    );
    let rules: Vec<&Value> = alerts["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    // Every shipped alert, with the override.
    let shipped: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let shipped_rules: usize = shipped["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_sequence().unwrap().len())
        .sum();
    assert!(shipped_rules >= 15);
    assert_eq!(rules.len(), shipped_rules);
    let rule = |name: &str| -> &Value {
        rules
            .iter()
            .find(|r| r["alert"] == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    for r in &rules {
        let expr = r["expr"].as_str().unwrap();
        assert!(
            expr.contains(r#"job="edge-netstat", cluster="eu1""#),
            "{}: selector not applied: {expr}",
            r["alert"]
        );
        assert!(!expr.contains("netstat-exporter"), "{expr}");
    }
    let tw = rule("NetstatTcpTimeWaitPileUp");
    assert!(tw["expr"].as_str().unwrap().contains("> 123456"));
    assert_eq!(tw["for"], "42m");
    let desc = tw["annotations"]["description"].as_str().unwrap();
    assert!(desc.contains("123456") && desc.contains("42m"), "{desc}");
    let aq = rule("NetstatListenerAcceptQueueNearLimit");
    assert!(aq["expr"].as_str().unwrap().contains("> 0.95"));
    assert!(aq["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("over 95% of its limit"));
    let ov = rule("NetstatInterfaceOverruns");
    assert!(ov["expr"].as_str().unwrap().contains("> 0.002"));
    assert!(ov["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("More than 0.2% of the packets"));
    assert!(rule("NetstatInterfacePromiscuous")["expr"]
        .as_str()
        .unwrap()
        .contains(r#"device!~"kube-bridge""#));

    // The alerts on per-namespace series join netstat_netns_info with the overridden labels;
    // the exporter's own alerts do not.
    for name in [
        "NetstatInterfaceErrors",
        "NetstatInterfaceDrops",
        "NetstatInterfaceOverruns",
        "NetstatInterfacePromiscuous",
        "NetstatListenerAcceptQueueNearLimit",
        "NetstatTcpListenOverflows",
        "NetstatUnexpectedListener",
        "NetstatUnexpectedOutboundConnection",
        "NetstatSocketQueueBacklog",
        "NetstatTcpTimeWaitPileUp",
        "NetstatTcpCloseWaitPileUp",
        "NetstatUdpReceiveBufferErrors",
    ] {
        let expr = rule(name)["expr"].as_str().unwrap();
        assert!(
            expr.contains("* on (cluster, job, instance, netns) group_left (pod_uid)")
                && expr.contains("or ignoring (pod_uid)"),
            "{name}: {expr}"
        );
        let summary = rule(name)["annotations"]["summary"].as_str().unwrap();
        assert!(summary.contains("$labels.pod_uid"), "{name}: {summary}");
    }
    for name in ["NetstatExporterDown", "NetstatExporterCollectorFailed"] {
        assert!(!rule(name)["expr"]
            .as_str()
            .unwrap()
            .contains("netstat_netns_info"));
    }

    let d = &dashboards["netstat_exporter.json"];
    assert_eq!(d["uid"], "custom-uid");
    assert_eq!(d["title"], "Custom netstat");
    // Thresholds shared with the alerts: the accept-queue red line and the TIME_WAIT stat.
    let text = d.to_string();
    assert!(
        text.contains(r#""color":"red","value":0.95"#),
        "accept queue threshold"
    );
    assert!(
        text.contains(r#""color":"orange","value":123456"#),
        "TIME_WAIT threshold"
    );

    // The overridden rules are still valid Prometheus rules.
    if require_tool("promtool") {
        let dir = TempDir::new("mixin-override");
        let f = dir.join("alerts.yml");
        std::fs::write(&f, serde_json::to_string_pretty(&alerts).unwrap()).unwrap();
        let out = Command::new("promtool")
            .args(["check", "rules"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool check rules:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
