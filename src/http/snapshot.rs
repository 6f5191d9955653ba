//! `GET /api/v1/snapshot`: one scrape's metric families as a typed JSON document, what the
//! landing page shows. The conversion is a pure function of the families that the scrape
//! produced (the same coalesced scrape that serves `/metrics`); see docs/landing.md for the
//! schema.

use std::collections::HashMap;

use serde::Serialize;

use crate::collectors::{connections, health, inbound, interfaces, listeners, sockets};
use crate::metrics::{label, MetricFamily, Part, Sample, Value};
use crate::self_metrics::{BUILD_INFO, COLLECTOR_DURATION, COLLECTOR_SUCCESS, PROCESS_START};

/// Version of the snapshot schema (bumped on incompatible changes).
pub const SCHEMA_VERSION: u32 = 1;

/// One series per network namespace read (`--netns=all`; the own namespace with netns="").
const NETNS_INFO: &str = crate::self_metrics::NETNS_INFO.name;

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
    /// True when an expected-listeners file is configured (then `unexpected` of an inbound row
    /// is a bool: its listener's entry may name the `remote_networks` allowed to connect).
    pub inbound_policy: bool,
    /// Inbound sockets by series (empty without the listeners collector).
    pub inbound: Vec<InboundRow>,
    /// Inbound sockets in folded series (null without the listeners collector).
    pub inbound_folded: Option<u64>,
    /// Distinct remote addresses of inbound sockets, per remote network and namespace.
    pub inbound_sources: Vec<InboundSources>,
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
    /// The owning process's container and pod ("" for a host process).
    pub container_id: String,
    pub pod_uid: String,
    /// Health of the series' established connections (`--collector.connections.health`), on
    /// its `established` row only (null elsewhere, and without health).
    #[serde(flatten)]
    pub health: RowHealth,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

/// RTT quantiles (as `histogram_quantile()` computes them from the gauge histogram) and the
/// connections retransmitting now; null without `--collector.connections.health` or without
/// established connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RowHealth {
    pub rtt_p50_seconds: Option<f64>,
    pub rtt_p99_seconds: Option<f64>,
    pub retransmitting: Option<u64>,
}

/// One series of `netstat_inbound_connections`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundRow {
    pub protocol: String,
    /// The listener's port, or `other` (folded).
    pub port: String,
    pub service: String,
    pub process: String,
    pub remote_network: String,
    pub state: String,
    pub count: u64,
    /// Null without an expected-listeners file.
    pub unexpected: Option<bool>,
    pub container_id: String,
    pub pod_uid: String,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

/// One series of `netstat_inbound_sources`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundSources {
    pub remote_network: String,
    pub count: u64,
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
    /// The owning process's container and pod ("" for a host process).
    pub container_id: String,
    pub pod_uid: String,
    /// TCP: health of the connections it accepted (`--collector.connections.health`).
    #[serde(flatten)]
    pub health: RowHealth,
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

/// The values of labels `names` of a sample, in that order.
fn labels_of(s: &Sample, names: &[&str]) -> Vec<String> {
    names.iter().map(|k| label(s, k).to_string()).collect()
}

/// Quantile `q` of one gauge histogram series from its cumulative buckets `(le, count)` sorted
/// by `le` (the last `+Inf`), exactly as Prometheus' `histogram_quantile()` interpolates: None
/// without observations.
pub fn bucket_quantile(q: f64, buckets: &[(f64, u64)]) -> Option<f64> {
    let (&(_, total), _) = buckets.split_last()?;
    if total == 0 || buckets.len() < 2 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total as f64;
    let b = buckets
        .iter()
        .position(|&(_, c)| c as f64 >= rank)
        .unwrap_or(buckets.len() - 1);
    if b == buckets.len() - 1 {
        // In the +Inf bucket: the highest finite bound, as Prometheus answers.
        return Some(buckets[b - 1].0);
    }
    let (start, below) = if b == 0 {
        (0.0, 0)
    } else {
        (buckets[b - 1].0, buckets[b - 1].1)
    };
    let (end, upto) = buckets[b];
    let count = (upto - below) as f64;
    Some(start + (end - start) * ((rank - below as f64) / count))
}

/// The health of every series of a health family pair (an RTT gauge histogram and its
/// retransmitting gauge), keyed by the values of labels `key` (which should end with `netns`).
fn healths(
    families: &[MetricFamily],
    rtt: &crate::metrics::Desc,
    retransmitting: &crate::metrics::Desc,
    key: &[&str],
) -> HashMap<Vec<String>, RowHealth> {
    let mut buckets: HashMap<Vec<String>, Vec<(f64, u64)>> = HashMap::new();
    for s in samples(families, rtt.name).filter(|s| s.part == Part::Bucket) {
        let le = match label(s, "le") {
            "+Inf" => f64::INFINITY,
            v => match v.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        buckets
            .entry(labels_of(s, key))
            .or_default()
            .push((le, int(s.value)));
    }
    let mut out: HashMap<Vec<String>, RowHealth> = HashMap::new();
    for (k, mut b) in buckets {
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        let h = out.entry(k).or_default();
        h.rtt_p50_seconds = bucket_quantile(0.5, &b);
        h.rtt_p99_seconds = bucket_quantile(0.99, &b);
    }
    for s in samples(families, retransmitting.name) {
        out.entry(labels_of(s, key)).or_default().retransmitting = Some(int(s.value));
    }
    out
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
            version: build_label("version", crate::self_metrics::VERSION),
            revision: build_label("revision", crate::self_metrics::REVISION),
            rustc: build_label("rustc", crate::self_metrics::RUSTC),
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
            inbound_policy: has_family(families, inbound::UNEXPECTED_CONNECTIONS.name),
            inbound: inbound(families),
            inbound_folded: samples(families, inbound::FOLDED.name)
                .next()
                .map(|s| int(s.value)),
            inbound_sources: samples(families, inbound::SOURCES.name)
                .map(|s| InboundSources {
                    remote_network: label(s, "remote_network").into(),
                    count: int(s.value),
                    netns: label(s, "netns").into(),
                })
                .collect(),
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

/// The labels of an outbound series without its state, and its namespace.
const OUTBOUND_KEY: &[&str] = &[
    "protocol",
    "remote_port",
    "service",
    "remote_network",
    "process",
    "container_id",
    "pod_uid",
    "netns",
];

fn outbound(families: &[MetricFamily]) -> Vec<OutboundRow> {
    let policy = has_family(families, connections::UNEXPECTED_CONNECTIONS.name);
    let flagged: std::collections::HashSet<Vec<String>> =
        samples(families, connections::UNEXPECTED.name)
            .map(|s| labels_of(s, OUTBOUND_KEY))
            .collect();
    let health = healths(
        families,
        &health::OUTBOUND_RTT,
        &health::OUTBOUND_RETRANSMITTING,
        OUTBOUND_KEY,
    );
    samples(families, connections::OUTBOUND.name)
        .map(|s| {
            let key = labels_of(s, OUTBOUND_KEY);
            let state = label(s, "state");
            OutboundRow {
                protocol: label(s, "protocol").into(),
                remote_port: label(s, "remote_port").into(),
                service: label(s, "service").into(),
                remote_network: label(s, "remote_network").into(),
                process: label(s, "process").into(),
                state: state.into(),
                count: int(s.value),
                unexpected: policy.then(|| flagged.contains(&key)),
                container_id: label(s, "container_id").into(),
                pod_uid: label(s, "pod_uid").into(),
                health: match state {
                    "established" => health.get(&key).cloned().unwrap_or_default(),
                    _ => RowHealth::default(),
                },
                netns: label(s, "netns").into(),
            }
        })
        .collect()
}

/// The labels of an inbound series without its state, and its namespace.
const INBOUND_KEY: &[&str] = &[
    "protocol",
    "port",
    "service",
    "process",
    "remote_network",
    "container_id",
    "pod_uid",
    "netns",
];

fn inbound(families: &[MetricFamily]) -> Vec<InboundRow> {
    let policy = has_family(families, inbound::UNEXPECTED_CONNECTIONS.name);
    let flagged: std::collections::HashSet<Vec<String>> =
        samples(families, inbound::UNEXPECTED.name)
            .map(|s| labels_of(s, INBOUND_KEY))
            .collect();
    samples(families, inbound::INBOUND.name)
        .map(|s| InboundRow {
            protocol: label(s, "protocol").into(),
            port: label(s, "port").into(),
            service: label(s, "service").into(),
            process: label(s, "process").into(),
            remote_network: label(s, "remote_network").into(),
            state: label(s, "state").into(),
            count: int(s.value),
            unexpected: policy.then(|| flagged.contains(&labels_of(s, INBOUND_KEY))),
            container_id: label(s, "container_id").into(),
            pod_uid: label(s, "pod_uid").into(),
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
    let health = healths(
        families,
        &health::LISTENER_RTT,
        &health::LISTENER_RETRANSMITTING,
        &["protocol", "family", "address", "port", "netns"],
    );
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
                container_id: label(s, "container_id").into(),
                pod_uid: label(s, "pod_uid").into(),
                health: health
                    .get(&[&key.0, &key.1, &key.2, &key.3, &key.4].map(|v| v.to_string())[..])
                    .cloned()
                    .unwrap_or_default(),
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
                container_id: String::new(),
                pod_uid: String::new(),
                health: RowHealth::default(),
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
        assert_eq!(s.version, crate::self_metrics::VERSION);
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

    /// Answers of Prometheus' histogram_quantile() (promql/quantile.go: linear interpolation in
    /// the bucket holding the rank, 0 as the lower edge of the first bucket, the highest finite
    /// bound for a rank in +Inf), worked out by hand.
    #[test]
    fn quantiles_interpolate_as_prometheus() {
        let inf = f64::INFINITY;
        let b = [(0.001, 0), (0.064, 2), (0.128, 10), (inf, 10)];
        // p50: rank 5 in (0.064, 0.128], 3 of its 8 -> 0.064 + 0.064 * 3/8.
        assert!((bucket_quantile(0.5, &b).unwrap() - 0.088).abs() < 1e-12);
        // p99: rank 9.9, 7.9 of 8.
        assert!((bucket_quantile(0.99, &b).unwrap() - (0.064 + 0.064 * 7.9 / 8.0)).abs() < 1e-12);
        // The first bucket starts at 0.
        let first = [(0.0001, 4), (0.00025, 4), (inf, 4)];
        assert!((bucket_quantile(0.5, &first).unwrap() - 0.00005).abs() < 1e-15);
        // A rank in +Inf: the highest finite bound.
        assert_eq!(bucket_quantile(0.99, &[(4.096, 1), (inf, 10)]), Some(4.096));
        // No observations, one bucket only, a quantile out of range: none.
        assert_eq!(bucket_quantile(0.5, &[(0.1, 0), (inf, 0)]), None);
        assert_eq!(bucket_quantile(0.5, &[(inf, 3)]), None);
        assert_eq!(bucket_quantile(1.5, &b), None);
    }

    /// Health and inbound families made by the real renderers (health::render, the inbound
    /// pass) reach the listener, outbound and inbound rows.
    #[test]
    fn health_and_inbound_rows() {
        use crate::collectors::health::{Health, Probe};
        let mut fast = Health::default();
        let mut slow = Health::default();
        for _ in 0..5 {
            fast.add(Probe {
                rtt_us: 50,
                retransmitting: false,
            });
            slow.add(Probe {
                rtt_us: 80_000,
                retransmitting: true,
            });
        }
        let listener = vec![
            ("protocol", "tcp".to_string()),
            ("family", "ipv4".to_string()),
            ("address", "0.0.0.0".to_string()),
            ("port", "22".to_string()),
        ];
        let out_key = |port: &str| {
            vec![
                ("protocol", "tcp".to_string()),
                ("remote_port", port.to_string()),
                ("service", String::new()),
                ("remote_network", "private".to_string()),
                ("process", "app".to_string()),
                ("container_id", String::new()),
                ("pod_uid", String::new()),
            ]
        };
        let mut fams = families(false);
        fams.extend(health::render(
            &health::LISTENER_RTT,
            &health::LISTENER_RETRANSMITTING,
            [(listener, &slow)].into_iter(),
        ));
        fams.extend(health::render(
            &health::OUTBOUND_RTT,
            &health::OUTBOUND_RETRANSMITTING,
            [(out_key("5432"), &fast)].into_iter(),
        ));
        for state in ["established", "time_wait"] {
            let mut l = out_key("5432");
            l.push(("state", state.to_string()));
            fams.push(connections::OUTBOUND.family().with(l, 3u64));
        }
        let mut inb = inbound::INBOUND.family();
        inb.push(
            vec![
                ("protocol", "tcp".to_string()),
                ("port", "22".to_string()),
                ("service", "ssh".to_string()),
                ("process", "sshd".to_string()),
                ("remote_network", "public".to_string()),
                ("container_id", String::new()),
                ("pod_uid", "p1".to_string()),
                ("state", "established".to_string()),
            ],
            7u64,
        );
        fams.push(inb);
        fams.push(inbound::FOLDED.family().with(vec![], 0u64));
        fams.push(
            inbound::SOURCES
                .family()
                .with(vec![("remote_network", "public".to_string())], 2u64),
        );
        let s = Snapshot::from_families(&fams, 1100.5);
        let ssh = s.listeners.iter().find(|l| l.port == 22).unwrap();
        // Every connection in (64 ms, 128 ms]: 0.064 + 0.064 * q.
        let p50 = ssh.health.rtt_p50_seconds.unwrap();
        assert!((p50 - 0.096).abs() < 1e-9, "{p50}");
        assert_eq!(ssh.health.retransmitting, Some(5));
        let rows: Vec<&OutboundRow> = s
            .outbound
            .iter()
            .filter(|o| o.remote_port == "5432")
            .collect();
        assert_eq!(rows.len(), 2);
        for r in rows {
            if r.state == "established" {
                // (0, 100 us]: p50 = 50 us.
                assert!((r.health.rtt_p50_seconds.unwrap() - 0.00005).abs() < 1e-12);
                assert_eq!(r.health.retransmitting, Some(0));
            } else {
                assert_eq!(r.health, RowHealth::default(), "{r:?}");
            }
        }
        assert_eq!(s.inbound.len(), 1);
        assert_eq!(
            (
                s.inbound[0].port.as_str(),
                s.inbound[0].pod_uid.as_str(),
                s.inbound[0].count
            ),
            ("22", "p1", 7)
        );
        assert_eq!(s.inbound[0].unexpected, None);
        assert!(!s.inbound_policy);
        assert_eq!(s.inbound_folded, Some(0));
        assert_eq!(s.inbound_sources[0].count, 2);
        let j = serde_json::to_value(&s).unwrap();
        // Flattened: the health fields sit on the row itself.
        assert_eq!(j["listeners"][0]["retransmitting"], 5);
        assert!(j["listeners"][1]["rtt_p50_seconds"].is_null());
    }

    #[test]
    fn big_counters_stay_exact_and_floats_are_clamped() {
        assert_eq!(int(Value::Int(u64::MAX)), u64::MAX);
        assert_eq!(int(Value::Float(-1.0)), 0);
        assert_eq!(int(Value::Float(f64::NAN)), 0);
        assert_eq!(int(Value::Float(3.9)), 3);
    }
}
