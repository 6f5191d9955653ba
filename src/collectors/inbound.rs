//! Who connects in: the connections accepted by the listeners, by listener port, service and
//! process, remote network and state (`netstat_inbound_connections`), the mirror of the
//! outbound family. Fed by the listeners collector's pass (a non-listening TCP socket whose
//! local port belongs to a listener of its namespace is inbound), with the same named networks
//! and built-in classes, the same kind of folding cap (`--collector.listeners.inbound-max`,
//! totals conserved) and the same bounded memory of remote addresses as the outbound
//! destinations, for counting new sources. The expected file's `listeners:` entries may name
//! the `remote_networks` allowed to connect (`netstat_inbound_unexpected`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::expected::ExpectedListeners;
use crate::metrics::{Desc, MetricFamily};
use crate::networks::{unmap, Networks};
use crate::source::inet::{InetSocket, TCP_NEW_SYN_RECV, TCP_STATE_NAMES, TCP_SYN_RECV};

use super::connections::Destinations;
use super::listeners::{Listener, ListenerKey};
use super::rows::{self, InboundRow, InboundSources};
use super::{BuildContext, Collected};

/// The labels of an inbound series without its state: the listener's port, service and owner
/// (process, and the owning process's container and pod from its cgroup: empty for a host
/// process) and the remote network.
const KEY: &[&str] = &[
    "protocol",
    "port",
    "service",
    "process",
    "remote_network",
    "container_id",
    "pod_uid",
];

pub static INBOUND: Desc = Desc::gauge(
    "netstat_inbound_connections",
    &[
        "protocol",
        "port",
        "service",
        "process",
        "remote_network",
        "container_id",
        "pod_uid",
        "state",
    ],
    "TCP sockets accepted by (or being accepted by) a listener of this host, by the listener's port (other when folded), its /etc/services name, its process (unknown when it cannot be seen, other when folded), the remote network (a named network, else loopback, link_local, private, multicast, public), the owning process's container_id and Kubernetes pod_uid from its cgroup (empty for a host process or when folded) and the TCP state. The sum is the number of inbound sockets.",
);
pub static FOLDED: Desc = Desc::gauge(
    "netstat_inbound_connections_folded",
    &[],
    "Inbound sockets counted in the folded series (port=\"other\", process=\"other\") because there were more series than --collector.listeners.inbound-max.",
);
pub static SOURCES: Desc = Desc::gauge(
    "netstat_inbound_sources",
    &["remote_network"],
    "Distinct remote addresses of inbound sockets now.",
);
pub static NEW_SOURCES: Desc = Desc::counter(
    "netstat_inbound_new_sources",
    &["remote_network"],
    "Remote addresses of inbound sockets not seen within --collector.connections.destination-memory (the first collection of a namespace is the baseline and counts none; the memory holds at most --collector.connections.destination-capacity addresses). A public address that starts reaching the SSH listener shows up here.",
);
pub static UNEXPECTED: Desc = Desc::gauge(
    "netstat_inbound_unexpected",
    KEY,
    "1 for every inbound series (without its state) whose remote network no listeners: entry of the expected file allows for its listener (remote_networks); container_id and pod_uid name the listener owner's container and pod (the alert shows the pod).",
);
pub static UNEXPECTED_CONNECTIONS: Desc = Desc::gauge(
    "netstat_inbound_unexpected_connections",
    &[],
    "Inbound sockets whose remote network no listeners: entry of the expected file allows.",
);

pub fn metrics() -> [&'static Desc; 6] {
    [
        &INBOUND,
        &FOLDED,
        &SOURCES,
        &NEW_SOURCES,
        &UNEXPECTED,
        &UNEXPECTED_CONNECTIONS,
    ]
}

/// Its flag, one of the listeners collector's.
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct InboundFlags {
    #[arg(
        id = "collector.listeners.inbound-max",
        long = "collector.listeners.inbound-max",
        value_name = "N",
        default_value = "1000",
        help = "Export at most this many netstat_inbound_connections series per network namespace: beyond it the smallest are folded into one series per protocol, remote network and state (port=\"other\", process=\"other\"), so the sum stays the number of inbound sockets."
    )]
    max: usize,
}

/// What the listeners collector keeps for inbound connections across scrapes.
pub struct Inbound {
    networks: Networks,
    max: usize,
    sources: Mutex<Destinations>,
}

impl Inbound {
    pub fn new(
        flags: &InboundFlags,
        ctx: &BuildContext,
        expected: Option<&ExpectedListeners>,
    ) -> Result<Self, String> {
        let networks = match ctx.networks_file() {
            Some(p) => Networks::load(p)?,
            None => Networks::default(),
        };
        // A misspelt network in the policy would flag everything: refuse it at start-up.
        if let Some(x) = expected {
            let known: BTreeSet<&str> = (0..networks.len()).map(|i| networks.name(i)).collect();
            for e in &x.entries {
                for n in e.remote_networks.iter().flatten() {
                    if !known.contains(n.as_str()) {
                        return Err(format!(
                            "expected file: remote_networks names {n:?}, which is neither a named network (--collector.connections.networks) nor a built-in class ({})",
                            known.into_iter().collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
            }
        }
        let (memory, capacity) = ctx.remote_memory()?;
        Ok(Inbound {
            networks,
            max: flags.max.max(1),
            sources: Mutex::new(Destinations::new(memory, capacity)),
        })
    }

    /// One collection in the namespace labelled `ns`.
    pub fn begin(&self, ns: &str) -> InboundPass<'_> {
        InboundPass {
            inbound: self,
            ns: ns.to_string(),
            now: Instant::now(),
            counts: FxHashMap::default(),
            addresses: FxHashMap::default(),
        }
    }

    /// After every namespace of a scrape: forget the namespaces that are gone (`read`: see
    /// `Collector::end_scrape`).
    pub fn end_scrape(&self, read: &BTreeSet<String>) {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain_namespaces(read);
    }
}

/// A series while aggregating: the listener, the remote network class, the state.
type RawKey = (ListenerKey, u16, u8);

/// One namespace's inbound sockets, counted while the pass streams.
pub struct InboundPass<'a> {
    inbound: &'a Inbound,
    ns: String,
    now: Instant,
    counts: FxHashMap<RawKey, u64>,
    /// Remote address -> network class.
    addresses: FxHashMap<IpAddr, u16>,
}

/// A rendered series key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    pub protocol: &'static str,
    /// The listener's port, or `other` (folded).
    pub port: String,
    pub service: String,
    pub process: String,
    pub remote_network: String,
    /// The listener owner's container and pod (empty for a host process, or when folded).
    pub container_id: String,
    pub pod_uid: String,
    pub state: &'static str,
}

impl InboundPass<'_> {
    /// A non-listening TCP socket of the listener `key`.
    pub fn add(&mut self, key: ListenerKey, s: &InetSocket) {
        // Many connections share a peer: classify each address once per collection.
        let networks = &self.inbound.networks;
        let network = *self
            .addresses
            .entry(unmap(s.remote))
            .or_insert_with(|| networks.classify(s.remote) as u16);
        let state = if s.state == TCP_NEW_SYN_RECV {
            TCP_SYN_RECV
        } else {
            s.state
        };
        *self.counts.entry((key, network, state)).or_default() += 1;
    }

    /// Make the rows and render them into `out`, naming each listener from `listeners` (the
    /// resolved ones; a listener left out by the listeners' selection shows its port with
    /// process `unknown`).
    pub fn finish(
        self,
        out: &mut Collected,
        listeners: &[Listener],
        services: &crate::source::etc::Services,
        attribution: bool,
        expected: Option<&ExpectedListeners>,
    ) {
        let by_key: FxHashMap<ListenerKey, &Listener> =
            listeners.iter().map(|l| (l.key, l)).collect();
        let networks = &self.inbound.networks;
        let mut series: BTreeMap<SeriesKey, u64> = BTreeMap::new();
        let mut unexpected: BTreeSet<SeriesKey> = BTreeSet::new();
        let mut unexpected_sockets = 0u64;
        for ((key, network, state), n) in &self.counts {
            let l = by_key.get(key);
            let process = match (attribution, l.and_then(|l| l.process.as_deref())) {
                (false, _) => "",
                (true, Some(p)) => p,
                (true, None) => "unknown",
            };
            let service = match l {
                Some(l) => l.service.clone(),
                None => services
                    .get(&(key.port, "tcp".to_string()))
                    .cloned()
                    .unwrap_or_default(),
            };
            let k = SeriesKey {
                protocol: key.protocol.name(),
                port: key.port.to_string(),
                service,
                process: process.to_string(),
                remote_network: networks.name(usize::from(*network)).to_string(),
                container_id: l
                    .map(|l| l.identity.container_id.clone())
                    .unwrap_or_default(),
                pod_uid: l.map(|l| l.identity.pod_uid.clone()).unwrap_or_default(),
                state: TCP_STATE_NAMES
                    .get(usize::from(*state))
                    .copied()
                    .unwrap_or("unknown"),
            };
            if let Some(x) = expected {
                let owner = l.and_then(|l| l.process.as_deref());
                if !x.allows_inbound(
                    key.protocol,
                    key.address,
                    key.port,
                    owner,
                    &k.remote_network,
                ) {
                    unexpected_sockets += n;
                    unexpected.insert(SeriesKey {
                        state: "",
                        ..k.clone()
                    });
                }
            }
            *series.entry(k).or_default() += n;
        }
        let (series, folded) = fold(series, self.inbound.max);
        let news = self
            .inbound
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(&self.ns, self.now, &self.addresses, networks.len());
        let mut per_class = vec![0u64; networks.len()];
        for class in self.addresses.values() {
            per_class[usize::from(*class)] += 1;
        }
        let rows = series
            .iter()
            .map(|(k, n)| InboundRow {
                protocol: k.protocol.into(),
                port: k.port.clone(),
                service: k.service.clone(),
                process: k.process.clone(),
                remote_network: k.remote_network.clone(),
                state: k.state.into(),
                count: *n,
                unexpected: expected.is_some().then(|| {
                    unexpected.contains(&SeriesKey {
                        state: "",
                        ..k.clone()
                    })
                }),
                container_id: k.container_id.clone(),
                pod_uid: k.pod_uid.clone(),
                netns: String::new(),
            })
            .collect();
        let sources = per_class
            .iter()
            .enumerate()
            .map(|(i, n)| InboundSources {
                remote_network: networks.name(i).to_string(),
                count: *n,
                netns: String::new(),
            })
            .collect();
        let rows = rows::Inbound {
            rows,
            folded,
            policy: expected.is_some(),
            sources,
        };
        out.families
            .extend(render(&rows, &news, &unexpected, unexpected_sockets));
        out.rows.inbound = Some(rows);
    }
}

/// Render the inbound rows (and the new sources per remote network, the series the policy
/// does not allow and their sockets): the one place where the inbound families are made.
fn render(
    rows: &rows::Inbound,
    news: &[u64],
    unexpected: &BTreeSet<SeriesKey>,
    unexpected_sockets: u64,
) -> Vec<MetricFamily> {
    let mut inbound = INBOUND.family();
    for r in &rows.rows {
        let labels = vec![
            ("protocol", r.protocol.clone()),
            ("port", r.port.clone()),
            ("service", r.service.clone()),
            ("process", r.process.clone()),
            ("remote_network", r.remote_network.clone()),
            ("container_id", r.container_id.clone()),
            ("pod_uid", r.pod_uid.clone()),
            ("state", r.state.clone()),
        ];
        inbound.push(labels, r.count);
    }
    let mut sources = SOURCES.family();
    let mut new = NEW_SOURCES.family();
    for (i, r) in rows.sources.iter().enumerate() {
        let net = vec![("remote_network", r.remote_network.clone())];
        sources.push(net.clone(), r.count);
        new.push(net, news.get(i).copied().unwrap_or(0));
    }
    let mut out = vec![
        inbound,
        FOLDED.family().with(vec![], rows.folded),
        sources,
        new,
    ];
    if rows.policy {
        let mut f = UNEXPECTED.family();
        for k in unexpected {
            f.push(key_labels(k), 1u64);
        }
        out.push(f);
        out.push(
            UNEXPECTED_CONNECTIONS
                .family()
                .with(vec![], unexpected_sockets),
        );
    }
    out
}

fn key_labels(k: &SeriesKey) -> Vec<(&'static str, String)> {
    vec![
        ("protocol", k.protocol.to_string()),
        ("port", k.port.clone()),
        ("service", k.service.clone()),
        ("process", k.process.clone()),
        ("remote_network", k.remote_network.clone()),
        ("container_id", k.container_id.clone()),
        ("pod_uid", k.pod_uid.clone()),
    ]
}

/// Keep at most `max` series: the largest stay, the rest are folded into one series per
/// (protocol, remote network, state) with port and process "other". Counts are conserved.
/// Returns the series and the number of sockets folded.
pub fn fold(series: BTreeMap<SeriesKey, u64>, max: usize) -> (BTreeMap<SeriesKey, u64>, u64) {
    super::connections::fold_keys(
        series,
        max,
        |k| (k.protocol, k.remote_network.clone(), k.state),
        |k| SeriesKey {
            protocol: k.protocol,
            port: "other".into(),
            service: String::new(),
            process: "other".into(),
            remote_network: k.remote_network,
            container_id: String::new(),
            pod_uid: String::new(),
            state: k.state,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: &str, net: &str, state: &'static str) -> SeriesKey {
        SeriesKey {
            protocol: "tcp",
            port: port.into(),
            service: String::new(),
            process: "sshd".into(),
            remote_network: net.into(),
            container_id: String::new(),
            pod_uid: String::new(),
            state,
        }
    }

    #[test]
    fn fold_conserves_totals_and_respects_the_cap() {
        let mut s = BTreeMap::new();
        for p in 0..10u64 {
            s.insert(key(&p.to_string(), "public", "established"), p + 1);
        }
        s.insert(key("22", "private", "established"), 100);
        let total: u64 = s.values().sum();
        let (out, folded) = fold(s.clone(), 4);
        assert!(out.len() <= 4, "{out:?}");
        assert_eq!(out.values().sum::<u64>(), total);
        assert_eq!(out.get(&key("22", "private", "established")), Some(&100));
        let other = SeriesKey {
            port: "other".into(),
            process: "other".into(),
            ..key("", "public", "established")
        };
        assert_eq!(out[&other], folded);
        assert_eq!(fold(s, 100).1, 0);
    }
}
