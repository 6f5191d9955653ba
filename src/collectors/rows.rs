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

/// Interface flags whose changes are events (`lower_up` is the carrier); an
/// [`InterfaceRow`] carries their values.
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

/// RTT quantiles (as `histogram_quantile()` computes them from the gauge histogram) and the
/// connections retransmitting now; null without `--collector.connections.health` or without
/// established connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RowHealth {
    pub rtt_p50_seconds: Option<f64>,
    pub rtt_p99_seconds: Option<f64>,
    pub retransmitting: Option<u64>,
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
    /// The values of [`WATCHED_FLAGS`] (`netstat_interface_flag`; None when unknown): for the
    /// change log, not in the snapshot.
    #[serde(skip)]
    pub watched: [Option<bool>; WATCHED_FLAGS.len()],
    /// Its sysfs attributes were read (it has a `netstat_interface_info` series): for the
    /// change log, which knows an interface by them.
    #[serde(skip)]
    pub attributes: bool,
    /// The netns label ("" for the exporter's own namespace).
    pub netns: String,
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
