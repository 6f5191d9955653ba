//! `GET /api/v1/snapshot`: one scrape's metric families as a typed JSON document, what the
//! landing page shows. The conversion is a pure function of the families that the scrape
//! produced (the same coalesced scrape that serves `/metrics`); see docs/landing.md for the
//! schema.

use std::collections::HashMap;

use serde::Serialize;

use crate::collectors::{connections, interfaces, listeners, sockets};
use crate::metrics::{label, MetricFamily, Sample, Value};
use crate::scrape::{BUILD_INFO, COLLECTOR_DURATION, COLLECTOR_SUCCESS, PROCESS_START};

/// Version of the snapshot schema (bumped on incompatible changes).
pub const SCHEMA_VERSION: u32 = 1;

/// One series per network namespace read (`--netns=all`; the own namespace with netns="").
const NETNS_INFO: &str = crate::scrape::NETNS_INFO.name;

/// Everything the landing page shows, from one scrape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub schema: u32,
    pub version: String,
    pub revision: String,
    pub rustc: String,
    /// When the snapshot was taken, unix seconds.
    pub time: f64,
    /// Exporter start, unix seconds (null when process metrics are unavailable).
    pub start_time_seconds: Option<f64>,
    pub uptime_seconds: Option<f64>,
    pub collectors: Vec<CollectorStatus>,
    pub sockets: Vec<SocketCount>,
    pub unix_sockets: Vec<UnixSocketCount>,
    /// True when an expected-listeners file is configured (then `unexpected` is a bool).
    pub expected_listeners_policy: bool,
    pub listeners: Vec<ListenerRow>,
    /// Listeners left out by --collector.listeners.max (null without the listeners collector).
    pub listeners_dropped: Option<u64>,
    pub interfaces: Vec<InterfaceRow>,
    /// True when the expected file has a connections: policy (then `unexpected` is a bool).
    pub outbound_policy: bool,
    /// Outbound sockets by series (empty without the connections collector).
    pub outbound: Vec<OutboundRow>,
    /// Sockets in folded series (null without the connections collector).
    pub outbound_folded: Option<u64>,
    /// The network namespaces read (`netstat_netns_info`; empty with --netns=self).
    pub namespaces: Vec<NamespaceRow>,
}

/// One series of `netstat_netns_info`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamespaceRow {
    /// The namespace's inode number in decimal; "" for the exporter's own namespace.
    pub netns: String,
    /// Its name under /run/netns ("" when none).
    pub name: String,
    /// The full id of the container that owns it ("" when none).
    pub container_id: String,
    /// The uid of the Kubernetes pod that owns it ("" when none).
    pub pod_uid: String,
}

/// One series of `netstat_outbound_connections`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboundRow {
    pub protocol: String,
    pub remote_port: String,
    pub service: String,
    pub remote_network: String,
    pub process: String,
    pub state: String,
    pub count: u64,
    /// Null without a connections: policy.
    pub unexpected: Option<bool>,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorStatus {
    pub name: String,
    pub success: bool,
    pub duration_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SocketCount {
    pub protocol: String,
    pub family: String,
    pub state: String,
    pub count: u64,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnixSocketCount {
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub count: u64,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerRow {
    pub protocol: String,
    pub family: String,
    pub address: String,
    pub port: u16,
    pub service: String,
    /// Owning process name; "unknown" when unresolved, "" when attribution is off.
    pub process: String,
    pub user: String,
    pub sockets: u64,
    /// TCP only (null for UDP).
    pub accept_queue: Option<u64>,
    /// TCP only, and null when the kernel does not report it.
    pub accept_queue_limit: Option<u64>,
    /// TCP only (null for UDP).
    pub connections: Option<u64>,
    /// UDP only (null for TCP).
    pub receive_queue_bytes: Option<u64>,
    /// UDP only, when the kernel reports it.
    pub drops: Option<u64>,
    /// Null without an expected-listeners file.
    pub unexpected: Option<bool>,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

/// One row of `netstat -i`, plus bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterfaceRow {
    pub device: String,
    pub mtu: Option<u64>,
    /// The netstat -i Flg letters ("" when unknown).
    pub flags: String,
    pub operstate: Option<String>,
    pub rx_ok: u64,
    pub rx_err: u64,
    pub rx_drp: u64,
    pub rx_ovr: u64,
    pub tx_ok: u64,
    pub tx_err: u64,
    pub tx_drp: u64,
    pub tx_ovr: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

fn int(v: Value) -> u64 {
    match v {
        Value::Int(i) => i,
        Value::Float(f) if f.is_finite() && f >= 0.0 => f as u64,
        Value::Float(_) => 0,
    }
}

fn samples<'a>(families: &'a [MetricFamily], name: &'a str) -> impl Iterator<Item = &'a Sample> {
    families
        .iter()
        .filter(move |f| f.name == name)
        .flat_map(|f| f.samples.iter())
}

fn has_family(families: &[MetricFamily], name: &str) -> bool {
    families.iter().any(|f| f.name == name)
}

/// protocol, family, address, port, netns: two namespaces may listen on the same address.
type ListenerKey = (String, String, String, String, String);

fn listener_key(s: &Sample) -> ListenerKey {
    (
        label(s, "protocol").to_string(),
        label(s, "family").to_string(),
        label(s, "address").to_string(),
        label(s, "port").to_string(),
        label(s, "netns").to_string(),
    )
}

/// Per-listener values of `name`, keyed by protocol/family/address/port/netns.
fn listener_values(families: &[MetricFamily], name: &str) -> HashMap<ListenerKey, u64> {
    samples(families, name)
        .map(|s| (listener_key(s), int(s.value)))
        .collect()
}

impl Snapshot {
    /// Convert one scrape's families; `now` is the current time in unix seconds.
    pub fn from_families(families: &[MetricFamily], now: f64) -> Snapshot {
        let build = samples(families, BUILD_INFO.name).next();
        let build_label = |k: &str, default: &str| {
            build
                .map(|s| label(s, k).to_string())
                .unwrap_or_else(|| default.to_string())
        };
        let start_time_seconds = samples(families, PROCESS_START.name)
            .next()
            .map(|s| s.value.as_f64());
        let uptime_seconds = start_time_seconds.map(|t| (now - t).max(0.0));
        let expected = has_family(families, listeners::UNEXPECTED_COUNT.name);
        Snapshot {
            schema: SCHEMA_VERSION,
            version: build_label("version", crate::scrape::VERSION),
            revision: build_label("revision", crate::scrape::REVISION),
            rustc: build_label("rustc", crate::scrape::RUSTC),
            time: now,
            start_time_seconds,
            uptime_seconds,
            collectors: collectors(families),
            sockets: samples(families, sockets::SOCKETS.name)
                .map(|s| SocketCount {
                    protocol: label(s, "protocol").into(),
                    family: label(s, "family").into(),
                    state: label(s, "state").into(),
                    count: int(s.value),
                    netns: label(s, "netns").into(),
                })
                .collect(),
            unix_sockets: samples(families, sockets::UNIX_SOCKETS.name)
                .map(|s| UnixSocketCount {
                    kind: label(s, "type").into(),
                    state: label(s, "state").into(),
                    count: int(s.value),
                    netns: label(s, "netns").into(),
                })
                .collect(),
            expected_listeners_policy: expected,
            listeners: listeners(families, expected),
            listeners_dropped: samples(families, listeners::DROPPED.name)
                .next()
                .map(|s| int(s.value)),
            interfaces: interfaces(families),
            outbound_policy: has_family(families, connections::UNEXPECTED_CONNECTIONS.name),
            outbound: outbound(families),
            outbound_folded: samples(families, connections::FOLDED.name)
                .next()
                .map(|s| int(s.value)),
            namespaces: samples(families, NETNS_INFO)
                .map(|s| NamespaceRow {
                    netns: label(s, "netns").into(),
                    name: label(s, "name").into(),
                    container_id: label(s, "container_id").into(),
                    pod_uid: label(s, "pod_uid").into(),
                })
                .collect(),
        }
    }
}

fn outbound(families: &[MetricFamily]) -> Vec<OutboundRow> {
    let policy = has_family(families, connections::UNEXPECTED_CONNECTIONS.name);
    let key = |s: &Sample| {
        [
            "protocol",
            "remote_port",
            "service",
            "remote_network",
            "process",
            "netns",
        ]
        .map(|k| label(s, k).to_string())
    };
    let flagged: std::collections::HashSet<[String; 6]> =
        samples(families, connections::UNEXPECTED.name)
            .map(key)
            .collect();
    samples(families, connections::OUTBOUND.name)
        .map(|s| OutboundRow {
            protocol: label(s, "protocol").into(),
            remote_port: label(s, "remote_port").into(),
            service: label(s, "service").into(),
            remote_network: label(s, "remote_network").into(),
            process: label(s, "process").into(),
            state: label(s, "state").into(),
            count: int(s.value),
            unexpected: policy.then(|| flagged.contains(&key(s))),
            netns: label(s, "netns").into(),
        })
        .collect()
}

fn collectors(families: &[MetricFamily]) -> Vec<CollectorStatus> {
    let durations: HashMap<&str, f64> = samples(families, COLLECTOR_DURATION.name)
        .map(|s| (label(s, "collector"), s.value.as_f64()))
        .collect();
    samples(families, COLLECTOR_SUCCESS.name)
        .map(|s| {
            let name = label(s, "collector");
            CollectorStatus {
                name: name.into(),
                success: s.value.as_f64() == 1.0,
                duration_seconds: durations.get(name).copied().unwrap_or(0.0),
            }
        })
        .collect()
}

fn listeners(families: &[MetricFamily], expected: bool) -> Vec<ListenerRow> {
    let sockets = listener_values(families, listeners::SOCKETS.name);
    let accept_queue = listener_values(families, listeners::ACCEPT_QUEUE.name);
    let limit = listener_values(families, listeners::ACCEPT_QUEUE_LIMIT.name);
    let connections = listener_values(families, listeners::CONNECTIONS.name);
    let rqueue = listener_values(families, listeners::RECEIVE_QUEUE_BYTES.name);
    let drops = listener_values(families, listeners::DROPS.name);
    let unexpected = listener_values(families, listeners::UNEXPECTED.name);
    samples(families, listeners::INFO.name)
        .map(|s| {
            let key = listener_key(s);
            let get = |m: &HashMap<ListenerKey, u64>| m.get(&key).copied();
            ListenerRow {
                protocol: key.0.clone(),
                family: key.1.clone(),
                address: key.2.clone(),
                port: key.3.parse().unwrap_or(0),
                service: label(s, "service").into(),
                process: label(s, "process").into(),
                user: label(s, "user").into(),
                sockets: get(&sockets).unwrap_or(1),
                accept_queue: get(&accept_queue),
                accept_queue_limit: get(&limit),
                connections: get(&connections),
                receive_queue_bytes: get(&rqueue),
                drops: get(&drops),
                unexpected: expected.then(|| get(&unexpected).is_some_and(|v| v > 0)),
                netns: key.4.clone(),
            }
        })
        .collect()
}

fn interfaces(families: &[MetricFamily]) -> Vec<InterfaceRow> {
    let mut rows: Vec<InterfaceRow> = Vec::new();
    // Keyed by (netns, device): every namespace has its own lo and eth0.
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut row = |rows: &mut Vec<InterfaceRow>, s: &Sample| -> usize {
        let (netns, device) = (label(s, "netns"), label(s, "device"));
        *index
            .entry((netns.to_string(), device.to_string()))
            .or_insert_with(|| {
                rows.push(InterfaceRow {
                    device: device.to_string(),
                    mtu: None,
                    flags: String::new(),
                    operstate: None,
                    rx_ok: 0,
                    rx_err: 0,
                    rx_drp: 0,
                    rx_ovr: 0,
                    tx_ok: 0,
                    tx_err: 0,
                    tx_drp: 0,
                    tx_ovr: 0,
                    rx_bytes: 0,
                    tx_bytes: 0,
                    netns: netns.to_string(),
                });
                rows.len() - 1
            })
    };
    for s in samples(families, interfaces::PACKETS.name) {
        let i = row(&mut rows, s);
        let r = &mut rows[i];
        let v = int(s.value);
        let slot = match (label(s, "direction"), label(s, "outcome")) {
            ("receive", "ok") => &mut r.rx_ok,
            ("receive", "error") => &mut r.rx_err,
            ("receive", "drop") => &mut r.rx_drp,
            ("receive", "overrun") => &mut r.rx_ovr,
            ("transmit", "ok") => &mut r.tx_ok,
            ("transmit", "error") => &mut r.tx_err,
            ("transmit", "drop") => &mut r.tx_drp,
            ("transmit", "overrun") => &mut r.tx_ovr,
            _ => continue,
        };
        *slot = v;
    }
    for s in samples(families, interfaces::BYTES.name) {
        let i = row(&mut rows, s);
        match label(s, "direction") {
            "receive" => rows[i].rx_bytes = int(s.value),
            "transmit" => rows[i].tx_bytes = int(s.value),
            _ => {}
        }
    }
    for s in samples(families, interfaces::MTU.name) {
        let i = row(&mut rows, s);
        rows[i].mtu = Some(int(s.value));
    }
    for s in samples(families, interfaces::INFO.name) {
        let i = row(&mut rows, s);
        rows[i].flags = label(s, "flags").into();
        let op = label(s, "operstate");
        rows[i].operstate = (!op.is_empty()).then(|| op.to_string());
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricFamily as F;

    fn lbl(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    fn key(port: &str) -> Vec<(&'static str, &str)> {
        vec![
            ("protocol", "tcp"),
            ("family", "ipv4"),
            ("address", "0.0.0.0"),
            ("port", port),
        ]
    }

    fn families(expected: bool) -> Vec<F> {
        let k22 = key("22");
        let udp = vec![
            ("protocol", "udp"),
            ("family", "ipv6"),
            ("address", "::"),
            ("port", "53"),
        ];
        let info = |k: &[(&'static str, &str)], svc: &str, proc_: &str| {
            let mut l = k.to_vec();
            l.extend([("service", svc), ("process", proc_), ("user", "root")]);
            lbl(&l)
        };
        let mut v = vec![
            F::gauge("netstat_sockets", "")
                .with(
                    lbl(&[("protocol", "tcp"), ("family", "ipv4"), ("state", "listen")]),
                    2u64,
                )
                .with(
                    lbl(&[
                        ("protocol", "udp"),
                        ("family", "ipv6"),
                        ("state", "unconnected"),
                    ]),
                    1u64,
                ),
            F::gauge("netstat_unix_sockets", "")
                .with(lbl(&[("type", "stream"), ("state", "connected")]), 6u64),
            F::gauge("netstat_listener_info", "")
                .with(info(&k22, "ssh", "sshd"), 1u64)
                .with(info(&udp, "domain", "<b>x</b>"), 1u64),
            F::gauge("netstat_listener_sockets", "")
                .with(lbl(&k22), 2u64)
                .with(lbl(&udp), 1u64),
            F::gauge("netstat_listener_accept_queue", "").with(lbl(&k22), 3u64),
            F::gauge("netstat_listener_accept_queue_limit", "").with(lbl(&k22), 128u64),
            F::gauge("netstat_listener_connections", "").with(lbl(&k22), 5u64),
            F::gauge("netstat_listener_receive_queue_bytes", "").with(lbl(&udp), 768u64),
            F::counter("netstat_listener_drops", "").with(lbl(&udp), 9u64),
            F::gauge("netstat_listeners_dropped", "").with(vec![], 0u64),
        ];
        if expected {
            v.push(F::gauge("netstat_listeners_unexpected", "").with(vec![], 1u64));
            v.push(
                F::gauge("netstat_listener_unexpected", "").with(info(&udp, "domain", "x"), 1u64),
            );
        }
        let mut packets = F::counter("netstat_interface_packets", "");
        for (i, (dir, outcome)) in [
            ("receive", "ok"),
            ("receive", "error"),
            ("receive", "drop"),
            ("receive", "overrun"),
            ("transmit", "ok"),
            ("transmit", "error"),
            ("transmit", "drop"),
            ("transmit", "overrun"),
        ]
        .into_iter()
        .enumerate()
        {
            packets.push(
                lbl(&[("device", "lo"), ("direction", dir), ("outcome", outcome)]),
                (i as u64 + 1) * 10,
            );
        }
        v.push(packets);
        v.push(
            F::counter("netstat_interface_bytes", "")
                .with(lbl(&[("device", "lo"), ("direction", "receive")]), 1000u64)
                .with(lbl(&[("device", "lo"), ("direction", "transmit")]), 2000u64),
        );
        v.push(
            F::gauge("netstat_interface_mtu_bytes", "").with(lbl(&[("device", "lo")]), 65536u64),
        );
        v.push(F::gauge("netstat_interface_info", "").with(
            lbl(&[
                ("device", "lo"),
                ("flags", "LRU"),
                ("operstate", "unknown"),
                ("address", "00:00:00:00:00:00"),
                ("type", "loopback"),
            ]),
            1u64,
        ));
        v.push(
            F::gauge("netstat_scrape_collector_duration_seconds", "")
                .with(lbl(&[("collector", "sockets")]), 0.25)
                .with(lbl(&[("collector", "listeners")]), 0.5),
        );
        v.push(
            F::gauge("netstat_scrape_collector_success", "")
                .with(lbl(&[("collector", "sockets")]), true)
                .with(lbl(&[("collector", "listeners")]), false),
        );
        v.push(F::gauge("netstat_exporter_build_info", "").with(
            lbl(&[("version", "9.9.9"), ("revision", "abc"), ("rustc", "1.0")]),
            1u64,
        ));
        v.push(F::gauge("process_start_time_seconds", "").with(vec![], 1000.5));
        v
    }

    #[test]
    fn converts_every_section() {
        let s = Snapshot::from_families(&families(false), 1100.5);
        assert_eq!(s.schema, SCHEMA_VERSION);
        assert_eq!((s.version.as_str(), s.revision.as_str()), ("9.9.9", "abc"));
        assert_eq!(s.uptime_seconds, Some(100.0));
        assert_eq!(s.start_time_seconds, Some(1000.5));
        assert_eq!(
            s.collectors,
            vec![
                CollectorStatus {
                    name: "sockets".into(),
                    success: true,
                    duration_seconds: 0.25
                },
                CollectorStatus {
                    name: "listeners".into(),
                    success: false,
                    duration_seconds: 0.5
                },
            ]
        );
        assert_eq!(s.sockets.len(), 2);
        assert_eq!(s.sockets[0].state, "listen");
        assert_eq!(s.sockets[0].count, 2);
        assert_eq!(s.unix_sockets[0].kind, "stream");
        assert_eq!(s.unix_sockets[0].count, 6);
        assert!(!s.expected_listeners_policy);
        assert_eq!(s.listeners_dropped, Some(0));
        assert_eq!(
            s.listeners[0],
            ListenerRow {
                protocol: "tcp".into(),
                family: "ipv4".into(),
                address: "0.0.0.0".into(),
                port: 22,
                service: "ssh".into(),
                process: "sshd".into(),
                user: "root".into(),
                sockets: 2,
                accept_queue: Some(3),
                accept_queue_limit: Some(128),
                connections: Some(5),
                receive_queue_bytes: None,
                drops: None,
                unexpected: None,
                netns: String::new(),
            }
        );
        let udp = &s.listeners[1];
        assert_eq!(
            udp.process, "<b>x</b>",
            "kept verbatim: escaping is the page's job"
        );
        assert_eq!(
            (
                udp.accept_queue,
                udp.connections,
                udp.receive_queue_bytes,
                udp.drops
            ),
            (None, None, Some(768), Some(9))
        );
        assert_eq!(
            s.interfaces,
            vec![InterfaceRow {
                device: "lo".into(),
                mtu: Some(65536),
                flags: "LRU".into(),
                operstate: Some("unknown".into()),
                rx_ok: 10,
                rx_err: 20,
                rx_drp: 30,
                rx_ovr: 40,
                tx_ok: 50,
                tx_err: 60,
                tx_drp: 70,
                tx_ovr: 80,
                rx_bytes: 1000,
                tx_bytes: 2000,
                netns: String::new(),
            }]
        );
        assert!(
            s.namespaces.is_empty(),
            "no netstat_netns_info: --netns=self"
        );
        assert!(s.sockets.iter().all(|r| r.netns.is_empty()));
    }

    #[test]
    fn namespaces_and_per_namespace_rows_are_kept_apart() {
        // --netns=all: the own namespace (no netns label) and a pod's, each with the same
        // listener 0.0.0.0:22 and its own lo.
        let pod = "4026532001";
        let mut l22 = key("22");
        let mut l22_pod = key("22");
        l22_pod.push(("netns", pod));
        let with = |k: &[(&'static str, &str)], extra: &[(&'static str, &str)]| {
            let mut l = k.to_vec();
            l.extend_from_slice(extra);
            lbl(&l)
        };
        l22.extend([("service", "ssh"), ("process", "sshd"), ("user", "root")]);
        let fams = vec![
            F::gauge(NETNS_INFO, "")
                .with(
                    lbl(&[
                        ("netns", ""),
                        ("name", ""),
                        ("container_id", ""),
                        ("pod_uid", ""),
                    ]),
                    1u64,
                )
                .with(
                    lbl(&[
                        ("netns", pod),
                        ("name", "cni-1"),
                        ("container_id", "ab12"),
                        ("pod_uid", "5f0c4c8e-2a3b-4c5d-8e9f-0a1b2c3d4e5f"),
                    ]),
                    1u64,
                ),
            F::gauge("netstat_listener_info", "")
                .with(lbl(&l22), 1u64)
                .with(
                    with(
                        &l22_pod,
                        &[("service", "ssh"), ("process", "dropbear"), ("user", "app")],
                    ),
                    1u64,
                ),
            F::gauge("netstat_listener_accept_queue", "")
                .with(lbl(&key("22")), 1u64)
                .with(lbl(&l22_pod), 7u64),
            F::gauge("netstat_interface_mtu_bytes", "")
                .with(lbl(&[("device", "lo")]), 65536u64)
                .with(lbl(&[("device", "lo"), ("netns", pod)]), 1500u64),
            F::gauge("netstat_sockets", "").with(
                lbl(&[
                    ("protocol", "tcp"),
                    ("family", "ipv4"),
                    ("state", "listen"),
                    ("netns", pod),
                ]),
                1u64,
            ),
            F::gauge("netstat_unix_sockets", "").with(
                lbl(&[("type", "stream"), ("state", "connected"), ("netns", pod)]),
                2u64,
            ),
        ];
        let s = Snapshot::from_families(&fams, 1.0);
        assert_eq!(s.namespaces.len(), 2);
        assert_eq!(s.namespaces[0].netns, "");
        assert_eq!(
            s.namespaces[1],
            NamespaceRow {
                netns: pod.into(),
                name: "cni-1".into(),
                container_id: "ab12".into(),
                pod_uid: "5f0c4c8e-2a3b-4c5d-8e9f-0a1b2c3d4e5f".into(),
            }
        );
        let l: Vec<(&str, &str, Option<u64>)> = s
            .listeners
            .iter()
            .map(|r| (r.netns.as_str(), r.process.as_str(), r.accept_queue))
            .collect();
        assert_eq!(l, vec![("", "sshd", Some(1)), (pod, "dropbear", Some(7))]);
        let i: Vec<(&str, &str, Option<u64>)> = s
            .interfaces
            .iter()
            .map(|r| (r.netns.as_str(), r.device.as_str(), r.mtu))
            .collect();
        assert_eq!(i, vec![("", "lo", Some(65536)), (pod, "lo", Some(1500))]);
        assert_eq!(s.sockets[0].netns, pod);
        assert_eq!(s.unix_sockets[0].netns, pod);
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(
            j["namespaces"][1]["pod_uid"],
            "5f0c4c8e-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
        );
        assert_eq!(j["listeners"][1]["netns"], pod);
        assert_eq!(j["interfaces"][0]["netns"], "");
    }

    #[test]
    fn unexpected_is_a_bool_only_with_a_policy() {
        let s = Snapshot::from_families(&families(true), 1100.5);
        assert!(s.expected_listeners_policy);
        assert_eq!(s.listeners[0].unexpected, Some(false));
        assert_eq!(s.listeners[1].unexpected, Some(true));
    }

    #[test]
    fn missing_collectors_give_empty_sections_and_nulls() {
        let s = Snapshot::from_families(&[], 5.0);
        assert!(s.collectors.is_empty() && s.listeners.is_empty() && s.interfaces.is_empty());
        assert_eq!(s.uptime_seconds, None);
        assert_eq!(s.listeners_dropped, None);
        assert_eq!(s.version, crate::scrape::VERSION);
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["uptime_seconds"].is_null());
        assert!(json["listeners"].as_array().unwrap().is_empty());
    }

    #[test]
    fn json_field_names_and_types() {
        let s = Snapshot::from_families(&families(true), 1100.5);
        let j = serde_json::to_value(&s).unwrap();
        assert!(j["time"].is_f64());
        assert_eq!(j["unix_sockets"][0]["type"], "stream");
        let l = &j["listeners"][1];
        assert_eq!(l["port"], 53);
        assert!(l["accept_queue"].is_null());
        assert_eq!(l["unexpected"], true);
        let i = &j["interfaces"][0];
        for k in [
            "rx_ok", "rx_err", "rx_drp", "rx_ovr", "tx_ok", "tx_err", "tx_drp", "tx_ovr",
            "rx_bytes", "tx_bytes", "mtu",
        ] {
            assert!(i[k].is_u64(), "{k}");
        }
        assert_eq!(i["flags"], "LRU");
    }

    #[test]
    fn big_counters_stay_exact_and_floats_are_clamped() {
        assert_eq!(int(Value::Int(u64::MAX)), u64::MAX);
        assert_eq!(int(Value::Float(-1.0)), 0);
        assert_eq!(int(Value::Float(f64::NAN)), 0);
        assert_eq!(int(Value::Float(3.9)), 3);
    }
}
