//! The landing page's network-namespace selector (`--netns=all`) in a real headless chromium
//! (tests/common/browser.rs). The page's fetch of api/v1/snapshot is replaced (a script run
//! before the page's own, through DevTools) by the live snapshot plus three namespaces: a pod's
//! with a listener and an eth0 of its own, a Docker container's and an `ip netns` one. The
//! selector lists All, host and each namespace by name, pod uid or short container id; picking
//! one (a click on its option) filters the listener and interface tables and the cards, and
//! the choice survives refreshes. Without namespaces (--netns=self) the selector stays hidden.
//!
//! Needs chromium and chromedriver: skips loudly without them, fails under CI=true.
//! Screenshots: target/test-artifacts/netns-*.png.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use browser::Browser;
use common::Exporter;

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

const POD_NETNS: &str = "4026532001";
const POD_UID: &str = "5f0c4c8e-2a3b-4c5d-8e9f-0a1b2c3d4e5f";

/// Adds namespaces to the real snapshot when the page's URL has `inject=1`.
const INJECT: &str = r#"
(() => {
  if (!location.search.includes("inject=1")) return;
  const real = window.fetch.bind(window);
  window.fetch = async (url, opts) => {
    const resp = await real(url, opts);
    if (!String(url).startsWith("api/v1/snapshot")) return resp;
    const snap = await resp.json();
    snap.namespaces = [
      { netns: "", name: "", container_id: "", pod_uid: "" },
      { netns: "4026532001", name: "", container_id: "ab".repeat(32), pod_uid: "5f0c4c8e-2a3b-4c5d-8e9f-0a1b2c3d4e5f" },
      { netns: "4026532002", name: "", container_id: "0123456789abcdef".repeat(4), pod_uid: "" },
      { netns: "4026532003", name: "blue", container_id: "", pod_uid: "" },
    ];
    snap.listeners.push({ protocol: "tcp", family: "ipv4", address: "0.0.0.0", port: 8080,
      service: "http-alt", process: "<img src=x>cart", user: "app", sockets: 1, accept_queue: 0,
      accept_queue_limit: 4096, connections: 3, receive_queue_bytes: null, drops: null,
      unexpected: null, netns: "4026532001" });
    snap.listeners.push({ protocol: "udp", family: "ipv6", address: "::", port: 5353,
      service: "mdns", process: "avahi", user: "root", sockets: 1, accept_queue: null,
      accept_queue_limit: null, connections: null, receive_queue_bytes: 0, drops: 0,
      unexpected: null, netns: "4026532003" });
    snap.interfaces.push({ device: "eth0", mtu: 1450, flags: "BMRU", operstate: "up",
      rx_ok: 10, rx_err: 0, rx_drp: 0, rx_ovr: 0, tx_ok: 9, tx_err: 0, tx_drp: 0, tx_ovr: 0,
      rx_bytes: 1000, tx_bytes: 900, netns: "4026532001" });
    return new Response(JSON.stringify(snap), { status: 200, headers: { "Content-Type": "application/json" } });
  };
})();
"#;

/// The namespace of every row of a table's body (rows without one: "-").
fn row_netns(b: &Browser, table: &str) -> Vec<String> {
    let v = b.exec(&format!(
        "return Array.from(document.querySelectorAll('#{table} tbody tr')).map(tr => \
         tr.classList.contains('empty') ? '-' : (tr.dataset.netns ?? '?'))"
    ));
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn refreshes(b: &Browser) -> u64 {
    b.exec("return Number(document.body.dataset.refreshes)")
        .as_u64()
        .unwrap()
}

#[test]
fn namespace_selector_filters_the_tables() {
    let Some(b) = Browser::start() else {
        return;
    };
    b.before_each_page(INJECT);
    let exporter = Exporter::start(&[]);

    // --netns=self: the real snapshot has no namespaces, the selector stays hidden and every
    // row is in the own namespace.
    b.goto(&format!("http://{}/?refresh=1", exporter.addr));
    b.wait_for(
        "first refresh",
        Duration::from_secs(20),
        "return Number(document.body.dataset.refreshes) >= 1",
    );
    assert_eq!(
        b.exec("return document.getElementById('netns-pick').hidden"),
        json!(true)
    );
    let own = row_netns(&b, "listeners");
    assert!(
        !own.is_empty() && own.iter().all(|n| n.is_empty()),
        "{own:?}"
    );

    // Four namespaces: All, then host first, then by label.
    b.goto(&format!("http://{}/?refresh=1&inject=1", exporter.addr));
    b.wait_for(
        "the selector",
        Duration::from_secs(20),
        "return !document.getElementById('netns-pick').hidden",
    );
    let options = b.exec(
        "return Array.from(document.querySelectorAll('#netns-filter option')).map(o => [o.value, o.textContent])",
    );
    assert_eq!(
        options,
        json!([
            ["all", "All (4)"],
            ["", "host"],
            ["4026532003", "blue"],
            ["4026532002", "container 0123456789ab"],
            [POD_NETNS, format!("pod {POD_UID}")],
        ]),
        "{options}"
    );
    let all = row_netns(&b, "listeners");
    assert!(all.iter().any(|n| n == POD_NETNS), "{all:?}");
    assert!(all.iter().any(|n| n.is_empty()), "{all:?}");
    let n_all: usize = b
        .exec("return document.getElementById('n-listeners').textContent")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(n_all, all.len());

    // Pick the pod: only its listener and interface remain, the process name as text.
    b.click(&format!("#netns-filter option[value=\"{POD_NETNS}\"]"));
    b.wait_for(
        "the pod's rows only",
        Duration::from_secs(5),
        &format!(
            "return Array.from(document.querySelectorAll('#listeners tbody tr')).every(tr => tr.dataset.netns === '{POD_NETNS}')"
        ),
    );
    assert_eq!(row_netns(&b, "listeners"), vec![POD_NETNS.to_string()]);
    assert_eq!(row_netns(&b, "interfaces"), vec![POD_NETNS.to_string()]);
    let cells = b.exec(
        "const tr = document.querySelector('#listeners tbody tr'); \
         return [tr.querySelector('td[data-col=port]').textContent, \
                 tr.querySelector('td[data-col=process]').textContent, \
                 tr.querySelectorAll('img').length, tr.title]",
    );
    assert_eq!(
        cells,
        json!([
            "8080",
            "<img src=x>cart",
            0,
            format!("namespace: pod {POD_UID}")
        ])
    );
    assert_eq!(
        b.exec("return document.getElementById('n-listeners').textContent"),
        json!("1")
    );
    assert_eq!(
        b.exec("return document.getElementById('n-interfaces').textContent"),
        json!("1")
    );
    // The pick survives a refresh.
    let r = refreshes(&b);
    b.wait_for(
        "another refresh",
        Duration::from_secs(20),
        &format!("return Number(document.body.dataset.refreshes) > {r}"),
    );
    assert_eq!(
        b.exec("return document.getElementById('netns-filter').value"),
        json!(POD_NETNS)
    );
    assert_eq!(row_netns(&b, "listeners"), vec![POD_NETNS.to_string()]);
    std::fs::create_dir_all(artifacts()).unwrap();
    b.screenshot(&artifacts().join("netns-pod.png"));

    // The host: none of the injected rows; a namespace with no listener: the empty row.
    b.click("#netns-filter option[value=\"\"]");
    let host: Vec<String> = row_netns(&b, "listeners");
    assert!(
        !host.is_empty() && host.iter().all(|n| n.is_empty()),
        "{host:?}"
    );
    assert!(row_netns(&b, "interfaces").iter().all(|n| n.is_empty()));
    b.click("#netns-filter option[value=\"4026532002\"]");
    assert_eq!(row_netns(&b, "listeners"), vec!["-".to_string()]);
    // Back to All: every row again.
    b.click("#netns-filter option[value=\"all\"]");
    let again = row_netns(&b, "listeners");
    assert!(again.len() >= all.len() - 1, "{again:?} vs {all:?}");
    assert!(again.iter().any(|n| n == "4026532003"));
    b.screenshot(&artifacts().join("netns-all.png"));
    let errors: Vec<Value> = b.console();
    assert!(
        errors.iter().all(|e| e["level"] != json!("SEVERE")),
        "{errors:#?}"
    );
}
