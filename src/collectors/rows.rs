//! Typed rows: what the collectors found, one row per series, with the namespace as a typed
//! field. The collectors build them where they build their families (and render those
//! families from them where a row holds everything a family needs); the JSON snapshot
//! (`/api/v1/snapshot`) and the change log are derived from the rows, never by reading
//! label strings back. The row types are the snapshot's (docs/landing.md): serialized as
//! they are.
//!
//! A part is None when no collector produced it in a run (collector not selected, disabled,
//! timed out), Some (maybe empty) when it ran.

use serde::Serialize;

use super::health::Health;
use crate::source::netdev::{Column, Counters};

/// Interface flags whose changes are events (`lower_up` is the carrier;
/// `interfaces::watched` reads their values from an [`InterfaceRow`]).
pub const WATCHED_FLAGS: [&str; 4] = ["up", "running", "lower_up", "promisc"];

/// Everything the rows of one run (or one collection) hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub sockets: Option<Vec<SocketCount>>,
    pub unix_sockets: Option<Vec<UnixSocketCount>>,
    pub listeners: Option<Listeners>,
    pub interfaces: Option<Vec<InterfaceRow>>,
    pub outbound: Option<Outbound>,
    pub inbound: Option<Inbound>,
    /// The socket-destroy counters (`crate::flows`, `--collector.connections.flows`) of the
    /// namespaces the connections collector read with a subscriber.
    pub flows: Option<Flows>,
    /// TCP listeners the kernel's socket-destroy stream saw close lately (`crate::flows`),
    /// for the change log; not part of the snapshot.
    pub gone_listeners: Vec<GoneListener>,
}

/// A TCP listener whose socket the kernel freed (its destroy message: remote port 0, remote
/// address unspecified, local port the listening one), as the connections collector hands
/// it to the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct GoneListener {
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub address: String,
    pub port: u16,
    /// Its service name from /etc/services ("" when none).
    pub service: String,
    /// Unix seconds when the message was read.
    pub time: f64,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

/// The listeners collector's rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listeners {
    pub rows: Vec<ListenerRow>,
    /// Listeners left out by --collector.listeners.max (of the first namespace read: the
    /// exporter's own).
    pub dropped: u64,
    /// An expected-listeners file is configured (then `unexpected` is Some).
    pub policy: bool,
}

/// The connections collector's rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outbound {
    pub rows: Vec<OutboundRow>,
    /// Sockets in folded series (of the exporter's own namespace).
    pub folded: u64,
    /// The expected file has a connections: policy.
    pub policy: bool,
    /// The series (without state) the policy does not allow, before folding:
    /// `netstat_outbound_unexpected`.
    pub unexpected: Vec<OutboundKey>,
}

/// The inbound rows (made by the listeners collector).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inbound {
    pub rows: Vec<InboundRow>,
    /// Sockets in folded series (of the exporter's own namespace).
    pub folded: u64,
    /// An expected-listeners file is configured (then `unexpected` is Some).
    pub policy: bool,
    pub sources: Vec<InboundSources>,
}

/// One series of `netstat_sockets`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SocketCount {
    pub protocol: String,
    pub family: String,
    pub state: String,
    pub count: u64,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

/// One series of `netstat_unix_sockets`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnixSocketCount {
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub count: u64,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

/// The health of a row's established TCP connections (`--collector.connections.health`):
/// the RTT gauge histogram and the connections retransmitting now, from which
/// `netstat_*_rtt_seconds` and `netstat_*_connections_retransmitting` are rendered
/// (`health::render_rows`). The snapshot shows it as `rtt_p50_seconds` and `rtt_p99_seconds`
/// (as `histogram_quantile()` computes them from the rendered buckets) and `retransmitting`,
/// all null without health or without established connections (then no series either).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowHealth {
    /// None without health or without established connections.
    pub rtt: Option<Health>,
}

impl RowHealth {
    /// The health of a group, kept only when it has connections (an idle listener has
    /// nothing to measure).
    pub fn of(h: Option<&Health>) -> RowHealth {
        RowHealth {
            rtt: h.filter(|h| h.count() > 0).cloned(),
        }
    }

    pub fn rtt_p50_seconds(&self) -> Option<f64> {
        self.rtt.as_ref().and_then(|h| h.quantile(0.5))
    }

    pub fn rtt_p99_seconds(&self) -> Option<f64> {
        self.rtt.as_ref().and_then(|h| h.quantile(0.99))
    }

    pub fn retransmitting(&self) -> Option<u64> {
        self.rtt.as_ref().map(|h| h.retransmitting)
    }
}

impl Serialize for RowHealth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RowHealth", 3)?;
        st.serialize_field("rtt_p50_seconds", &self.rtt_p50_seconds())?;
        st.serialize_field("rtt_p99_seconds", &self.rtt_p99_seconds())?;
        st.serialize_field("retransmitting", &self.retransmitting())?;
        st.end()
    }
}

/// One listener (`netstat_listener_info` and its per-listener series).
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

/// One interface of the interfaces collector: its `/proc/net/dev` counters and what sysfs
/// says about its link. The `netstat_interface_*` families are rendered from it
/// (`interfaces::render`); the snapshot's interface table (one row of `netstat -i`, plus
/// bytes: [`InterfaceRow::serialize`]) and the change log's interface events are derived
/// from it.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceRow {
    pub device: String,
    /// Its `/proc/net/dev` columns (None when its line was bad; a column None when the
    /// kernel's layout has no such column).
    pub counters: Option<Counters>,
    /// Its sysfs attributes (None when its directory is gone): then it has no
    /// `netstat_interface_info` series and the change log does not know it.
    pub link: Option<LinkRow>,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

/// What sysfs says about an interface's link, as the families show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkRow {
    pub mtu: Option<u64>,
    /// The flags as `SIOCGIFFLAGS` shows them (`interfaces::effective_flags`; None when the
    /// `flags` file was unreadable).
    pub flags: Option<u32>,
    /// The `netstat -i` Flg letters of `flags` ("" when unknown).
    pub letters: String,
    pub operstate: Option<String>,
    /// The hardware address.
    pub address: Option<String>,
    /// The link type as `ip link` names it.
    pub link_type: Option<String>,
    pub carrier: Option<bool>,
    /// The link speed in bytes per second (None when the driver reports none).
    pub speed_bytes: Option<u64>,
}

/// The `netstat -i` packet columns of the snapshot's interface table, in its order: RX-OK
/// RX-ERR RX-DRP RX-OVR TX-OK TX-ERR TX-DRP TX-OVR.
pub const NETSTAT_I_COLUMNS: [Column; 8] = [
    Column::RxPackets,
    Column::RxErrs,
    Column::RxDrop,
    Column::RxFifo,
    Column::TxPackets,
    Column::TxErrs,
    Column::TxDrop,
    Column::TxFifo,
];

impl InterfaceRow {
    /// One `/proc/net/dev` column (None when not read).
    pub fn counter(&self, col: Column) -> Option<u64> {
        self.counters.as_ref().and_then(|c| c.get(col))
    }

    /// Whether the snapshot's interface table shows it: it has a `netstat -i` column, a
    /// byte counter or its sysfs attributes.
    pub fn in_table(&self) -> bool {
        self.link.is_some()
            || NETSTAT_I_COLUMNS
                .iter()
                .chain(&[Column::RxBytes, Column::TxBytes])
                .any(|col| self.counter(*col).is_some())
    }

    /// The MTU (None when unknown).
    pub fn mtu(&self) -> Option<u64> {
        self.link.as_ref().and_then(|l| l.mtu)
    }

    /// The `netstat -i` Flg letters ("" when unknown).
    pub fn letters(&self) -> &str {
        self.link.as_ref().map_or("", |l| l.letters.as_str())
    }

    /// The operstate (None when unknown or empty).
    pub fn operstate(&self) -> Option<&str> {
        self.link
            .as_ref()
            .and_then(|l| l.operstate.as_deref())
            .filter(|o| !o.is_empty())
    }
}

/// The snapshot's view of an [`InterfaceRow`] (docs/landing.md): one row of `netstat -i`,
/// plus bytes; a counter not read is 0.
#[derive(Serialize)]
struct InterfaceTableRow<'a> {
    device: &'a str,
    mtu: Option<u64>,
    flags: &'a str,
    operstate: Option<&'a str>,
    rx_ok: u64,
    rx_err: u64,
    rx_drp: u64,
    rx_ovr: u64,
    tx_ok: u64,
    tx_err: u64,
    tx_drp: u64,
    tx_ovr: u64,
    rx_bytes: u64,
    tx_bytes: u64,
    netns: &'a str,
}

impl Serialize for InterfaceRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let [rx_ok, rx_err, rx_drp, rx_ovr, tx_ok, tx_err, tx_drp, tx_ovr] =
            NETSTAT_I_COLUMNS.map(|col| self.counter(col).unwrap_or(0));
        InterfaceTableRow {
            device: &self.device,
            mtu: self.mtu(),
            flags: self.letters(),
            operstate: self.operstate(),
            rx_ok,
            rx_err,
            rx_drp,
            rx_ovr,
            tx_ok,
            tx_err,
            tx_drp,
            tx_ovr,
            rx_bytes: self.counter(Column::RxBytes).unwrap_or(0),
            tx_bytes: self.counter(Column::TxBytes).unwrap_or(0),
            netns: &self.netns,
        }
        .serialize(s)
    }
}

/// An outbound series without its state (`netstat_outbound_unexpected`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboundKey {
    pub protocol: String,
    pub remote_port: String,
    pub service: String,
    pub remote_network: String,
    pub process: String,
    pub container_id: String,
    pub pod_uid: String,
    pub netns: String,
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

/// The socket-destroy counters of closed TCP connections (`crate::flows`), one row per key:
/// the families `netstat_{outbound,inbound}_connections_closed_total`,
/// `netstat_{outbound,inbound}_bytes_total`, `netstat_{outbound,inbound}_retransmitted_segments_total`
/// and `netstat_outbound_connect_failures_total` are rendered from these rows
/// (`crate::flows::render_rows`). Every counter only grows while the exporter runs (and the
/// namespace is read).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flows {
    /// Outbound keys, in the order of their labels.
    pub outbound: Vec<FlowOutRow>,
    /// Inbound keys, in the order of their labels.
    pub inbound: Vec<FlowInRow>,
    /// The namespaces whose counters these are (netns labels, "" for the exporter's own):
    /// a key of one of them that is not in the rows has counted nothing yet.
    pub namespaces: Vec<String>,
}

/// The counters of one outbound key: the labels of `netstat_outbound_connections` without
/// the state. A key with `closed` 0 has only failed connects (no closed, bytes or retransmit
/// series); a key with a failure count 0 has no series of that reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowOutRow {
    pub protocol: String,
    pub remote_port: String,
    pub service: String,
    pub remote_network: String,
    pub process: String,
    pub container_id: String,
    pub pod_uid: String,
    /// Connections closed (`netstat_outbound_connections_closed_total`).
    pub closed: u64,
    /// Payload bytes sent and received by those connections (`netstat_outbound_bytes_total`).
    pub sent: u64,
    pub received: u64,
    /// Segments they retransmitted (`netstat_outbound_retransmitted_segments_total`).
    pub retransmits: u64,
    /// Connects that failed, every reason (the sum of the two below).
    pub failed: u64,
    /// `netstat_outbound_connect_failures_total{reason="refused"}` and `{reason="timeout"}`.
    pub failed_refused: u64,
    pub failed_timeout: u64,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

impl FlowOutRow {
    /// The value of the label `name` of this key ("" for a name it does not have).
    pub fn label(&self, name: &str) -> &str {
        match name {
            "protocol" => &self.protocol,
            "remote_port" => &self.remote_port,
            "service" => &self.service,
            "remote_network" => &self.remote_network,
            "process" => &self.process,
            "container_id" => &self.container_id,
            "pod_uid" => &self.pod_uid,
            _ => "",
        }
    }

    /// Set the label `name` (ignored for a name it does not have).
    pub fn set_label(&mut self, name: &str, value: String) {
        match name {
            "protocol" => self.protocol = value,
            "remote_port" => self.remote_port = value,
            "service" => self.service = value,
            "remote_network" => self.remote_network = value,
            "process" => self.process = value,
            "container_id" => self.container_id = value,
            "pod_uid" => self.pod_uid = value,
            _ => {}
        }
    }
}

/// The counters of one inbound key: the labels of the inbound closed-connection families
/// (listener port, service and process, remote network).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowInRow {
    pub protocol: String,
    /// The listener's port, or `other` (beyond the cap of series).
    pub port: String,
    pub service: String,
    pub process: String,
    pub remote_network: String,
    /// Connections closed (`netstat_inbound_connections_closed_total`).
    pub closed: u64,
    /// Payload bytes sent and received by this host on them (`netstat_inbound_bytes_total`).
    pub sent: u64,
    pub received: u64,
    /// Segments retransmitted (`netstat_inbound_retransmitted_segments_total`).
    pub retransmits: u64,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
}

impl FlowInRow {
    /// The value of the label `name` of this key ("" for a name it does not have).
    pub fn label(&self, name: &str) -> &str {
        match name {
            "protocol" => &self.protocol,
            "port" => &self.port,
            "service" => &self.service,
            "process" => &self.process,
            "remote_network" => &self.remote_network,
            _ => "",
        }
    }

    /// Set the label `name` (ignored for a name it does not have).
    pub fn set_label(&mut self, name: &str, value: String) {
        match name {
            "protocol" => self.protocol = value,
            "port" => self.port = value,
            "service" => self.service = value,
            "process" => self.process = value,
            "remote_network" => self.remote_network = value,
            _ => {}
        }
    }
}

/// One series of `netstat_inbound_sources`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundSources {
    pub remote_network: String,
    pub count: u64,
    pub netns: String,
}

/// Append `b`'s rows to `a`'s (`a` first: its scalars, those of the first namespace, stay).
fn join<T>(a: &mut Option<T>, b: Option<T>, f: impl FnOnce(&mut T, T)) {
    match (a.as_mut(), b) {
        (_, None) => {}
        (None, Some(b)) => *a = Some(b),
        (Some(a), Some(b)) => f(a, b),
    }
}

impl Rows {
    /// Add the rows of another namespace (or collector) after these.
    pub fn extend(&mut self, o: Rows) {
        join(&mut self.sockets, o.sockets, |a, b| a.extend(b));
        join(&mut self.unix_sockets, o.unix_sockets, |a, b| a.extend(b));
        join(&mut self.interfaces, o.interfaces, |a, b| a.extend(b));
        join(&mut self.listeners, o.listeners, |a, b| {
            a.rows.extend(b.rows);
            a.policy |= b.policy;
        });
        join(&mut self.outbound, o.outbound, |a, b| {
            a.rows.extend(b.rows);
            a.unexpected.extend(b.unexpected);
            a.policy |= b.policy;
        });
        join(&mut self.inbound, o.inbound, |a, b| {
            a.rows.extend(b.rows);
            a.sources.extend(b.sources);
            a.policy |= b.policy;
        });
        join(&mut self.flows, o.flows, |a, b| {
            a.outbound.extend(b.outbound);
            a.inbound.extend(b.inbound);
            a.namespaces.extend(b.namespaces);
        });
        self.gone_listeners.extend(o.gone_listeners);
    }

    /// Attach the namespace `label` to every row (what the scrape layer does for the
    /// families' `netns` label; "" for the exporter's own namespace).
    pub fn set_netns(&mut self, label: &str) {
        if label.is_empty() {
            return;
        }
        fn set<'a>(rows: impl Iterator<Item = &'a mut String>, label: &str) {
            for r in rows {
                *r = label.to_string();
            }
        }
        if let Some(v) = &mut self.sockets {
            set(v.iter_mut().map(|r| &mut r.netns), label);
        }
        if let Some(v) = &mut self.unix_sockets {
            set(v.iter_mut().map(|r| &mut r.netns), label);
        }
        if let Some(v) = &mut self.interfaces {
            set(v.iter_mut().map(|r| &mut r.netns), label);
        }
        if let Some(l) = &mut self.listeners {
            set(l.rows.iter_mut().map(|r| &mut r.netns), label);
        }
        if let Some(o) = &mut self.outbound {
            set(o.rows.iter_mut().map(|r| &mut r.netns), label);
            set(o.unexpected.iter_mut().map(|r| &mut r.netns), label);
        }
        if let Some(i) = &mut self.inbound {
            set(i.rows.iter_mut().map(|r| &mut r.netns), label);
            set(i.sources.iter_mut().map(|r| &mut r.netns), label);
        }
        if let Some(f) = &mut self.flows {
            set(f.outbound.iter_mut().map(|r| &mut r.netns), label);
            set(f.inbound.iter_mut().map(|r| &mut r.netns), label);
            set(f.namespaces.iter_mut(), label);
        }
        set(self.gone_listeners.iter_mut().map(|r| &mut r.netns), label);
    }
}

/// A collector's outcome in one scrape (`netstat_scrape_collector_success` and
/// `netstat_scrape_collector_duration_seconds`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorStatus {
    pub name: String,
    pub success: bool,
    pub duration_seconds: f64,
}

/// One network namespace read (`netstat_netns_info`).
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

/// What one scrape read, typed: the collectors' rows, each collector's outcome, the
/// namespaces read and the exporter's start. The snapshot and the change log are made from
/// this; the metric families of the same scrape are rendered from the same rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scraped {
    pub rows: Rows,
    /// The collectors of the scrape, in registry order.
    pub collectors: Vec<CollectorStatus>,
    /// The namespaces read (None without --netns=all, or when no collector of the scrape
    /// reads them).
    pub namespaces: Option<Vec<NamespaceRow>>,
    /// When the exporter started, unix seconds (None when unavailable).
    pub start_time_seconds: Option<f64>,
    /// Ticks the watch completed so far (None without the watch): the change log lets the
    /// watch report a listener first (see `crate::events`).
    pub watch_ticks: Option<u64>,
}
