//! Live test of the inbound series: clients in two namespaces the test makes, on two networks
//! named in a networks file, connect to a listener of the test's namespace. The inbound series
//! split by remote_network and equal `ss -tn`; a source that appears after the first scrape
//! counts as new; a policy allowing only one network flags the other, and the shipped alert's
//! expression returns it in a live Prometheus.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;

use common::netns::{must, TestNetns, Veth};
use common::{require_root, require_tool, sample, Exporter, TempDir};

/// One client namespace on its own /30: host side .1 (or .5), namespace side .2 (or .6).
struct Client {
    _veth: Veth,
    ns: TestNetns,
    addr: Ipv4Addr,
}

fn client(tag: &str, host: &str, addr: Ipv4Addr) -> Client {
    let ns = TestNetns::new(tag);
    let veth = Veth::new(&ns, tag);
    must("ip", &["addr", "add", host, "dev", &veth.host]);
    must("ip", &["link", "set", &veth.host, "up"]);
    ns.ip(&["addr", "add", &format!("{addr}/30"), "dev", &veth.peer]);
    ns.ip(&["link", "set", &veth.peer, "up"]);
    Client {
        _veth: veth,
        ns,
        addr,
    }
}

fn ss_count(port: u16, from: Ipv4Addr) -> f64 {
    let out = Command::new("ss")
        .args([
            "-H",
            "-tn",
            "state",
            "established",
            "sport",
            "=",
            &format!(":{port}"),
            "dst",
            &from.to_string(),
        ])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&out.stdout).lines().count() as f64
}

fn fixed_port_listener() -> TcpListener {
    for port in 30_100..31_000u16 {
        if let Ok(l) = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)) {
            return l;
        }
    }
    panic!("no free port");
}

#[test]
fn inbound_by_remote_network_new_sources_and_policy() {
    if !require_root() || !require_tool("ip") || !require_tool("ss") {
        return;
    }
    // A subnet of its own per run: TIME_WAIT sockets of an earlier run (60 s) from the same
    // addresses would make them known sources already.
    let net = (std::process::id() % 200 + 20) as u8;
    let a = client(
        "ia",
        &format!("10.213.{net}.1/30"),
        Ipv4Addr::new(10, 213, net, 2),
    );
    let b = client(
        "ib",
        &format!("10.213.{net}.5/30"),
        Ipv4Addr::new(10, 213, net, 6),
    );
    let listener = fixed_port_listener();
    let port = listener.local_addr().unwrap().port();
    let dir = TempDir::new("inbound");
    let networks = dir.write(
        "networks.yml",
        &format!("networks:\n  lab_a: [\"10.213.{net}.0/30\"]\n  lab_b: [\"10.213.{net}.4/30\"]\n"),
    );
    let expected = dir.write(
        "expected.yml",
        &format!("listeners:\n  - port: \"1-{}\"\n  - port: {port}\n    remote_networks: [lab_a]\n  - port: \"{}-65535\"\n", port - 1, port + 1),
    );
    let e = Exporter::start(&[
        &format!("--collector.connections.networks={}", networks.display()),
        &format!("--collector.listeners.expected={}", expected.display()),
    ]);
    let new_sources = |text: &str, net: &str| {
        sample(
            text,
            "netstat_inbound_new_sources_total",
            &[("remote_network", net)],
        )
        .unwrap_or_else(|| panic!("no netstat_inbound_new_sources_total for {net}:\n{text}"))
    };
    // Before any client: the namespace's first collection (the exporter's start-up one or
    // this scrape) is the baseline, which counts no source as new.
    let zero = e.get("/metrics").text();
    let to = SocketAddrV4::new(Ipv4Addr::new(10, 213, net, 1), port);
    let _from_a: Vec<TcpStream> =
        a.ns.run(|| (0..3).map(|_| TcpStream::connect(to).unwrap()).collect());
    // lab_a's address is new once (3 connections, one address), then remembered.
    // A source already seen (a socket of an earlier run still in TIME_WAIT) is not new.
    let sources = |text: &str, net: &str| {
        sample(text, "netstat_inbound_sources", &[("remote_network", net)]).unwrap_or(0.0)
    };
    let first = e.get("/metrics").text();
    let a_new = if sources(&zero, "lab_a") == 0.0 {
        1.0
    } else {
        0.0
    };
    assert_eq!(
        new_sources(&first, "lab_a"),
        new_sources(&zero, "lab_a") + a_new
    );
    let to_b = SocketAddrV4::new(Ipv4Addr::new(10, 213, net, 5), port);
    let _from_b: Vec<TcpStream> =
        b.ns.run(|| (0..2).map(|_| TcpStream::connect(to_b).unwrap()).collect());
    let mut accepted = Vec::new();
    for _ in 0..5 {
        accepted.push(listener.accept().unwrap());
    }

    let before = (ss_count(port, a.addr), ss_count(port, b.addr));
    let text = e.get("/metrics").text();
    let after = (ss_count(port, a.addr), ss_count(port, b.addr));
    assert_eq!(before, after, "the connections are stable");
    assert_eq!(before, (3.0, 2.0));
    let p = port.to_string();
    for (net, n) in [("lab_a", before.0), ("lab_b", before.1)] {
        let labels = [
            ("protocol", "tcp"),
            ("port", p.as_str()),
            ("remote_network", net),
            ("state", "established"),
        ];
        assert_eq!(
            sample(&text, "netstat_inbound_connections", &labels),
            Some(n),
            "{net}\n{text}"
        );
        assert_eq!(
            sample(&text, "netstat_inbound_sources", &[("remote_network", net)]),
            Some(1.0)
        );
    }
    // lab_b's address appeared since: one new source; lab_a's is remembered, not new again.
    let b_new = if sources(&first, "lab_b") == 0.0 {
        1.0
    } else {
        0.0
    };
    assert_eq!(
        new_sources(&text, "lab_b"),
        new_sources(&first, "lab_b") + b_new
    );
    assert_eq!(new_sources(&text, "lab_a"), new_sources(&first, "lab_a"));
    // The policy allows only lab_a on this port.
    let flagged = |net: &str| {
        sample(
            &text,
            "netstat_inbound_unexpected",
            &[("port", p.as_str()), ("remote_network", net)],
        )
    };
    assert_eq!(flagged("lab_b"), Some(1.0));
    assert_eq!(flagged("lab_a"), None);
    // netstat_listener_connections stays as it is: the established connections of the listener.
    assert_eq!(
        sample(
            &text,
            "netstat_listener_connections",
            &[("address", "0.0.0.0"), ("port", p.as_str())]
        ),
        Some(5.0)
    );

    if !require_tool("prometheus") {
        return;
    }
    let prom = common::prometheus::Prometheus::start(&[e.addr], 1);
    prom.wait_for_scrapes(2, 1);
    let alerts = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/alerts.yml"
    ))
    .unwrap();
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&alerts).unwrap();
    let expr = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .find(|r| r["alert"].as_str() == Some("NetstatUnexpectedInboundSource"))
        .and_then(|r| r["expr"].as_str())
        .expect("alert NetstatUnexpectedInboundSource in alerts.yml")
        .to_string();
    let result = prom.query(&expr).unwrap();
    let ours: Vec<_> = result
        .iter()
        .filter(|r| r["metric"]["port"].as_str() == Some(p.as_str()))
        // Only this run's networks: sockets of an earlier run may linger in TIME_WAIT.
        .filter(|r| {
            matches!(
                r["metric"]["remote_network"].as_str(),
                Some("lab_a") | Some("lab_b")
            )
        })
        .collect();
    assert_eq!(ours.len(), 1, "{result:?}");
    assert_eq!(ours[0]["metric"]["remote_network"].as_str(), Some("lab_b"));
    drop(accepted);
}
