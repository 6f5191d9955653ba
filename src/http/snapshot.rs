//! `GET /api/v1/snapshot`: one scrape as a typed JSON document, what the landing page shows.
//! It is made from the typed rows of the scrape (crate::collectors::rows: what the scrape's
//! metric families were rendered from; the same coalesced scrape that serves `/metrics`),
//! never by reading label strings back; see docs/landing.md for the schema.

use serde::Serialize;

pub use crate::collectors::health::bucket_quantile;
use crate::collectors::rows::Scraped;
pub use crate::collectors::rows::{
    CollectorStatus, FlowInRow, FlowOutRow, InboundRow, InboundSources, InterfaceRow, ListenerRow,
    NamespaceRow, OutboundRow, RowHealth, SocketCount, UnixSocketCount,
};

/// Version of the snapshot schema (bumped on incompatible changes).
pub const SCHEMA_VERSION: u32 = 1;

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
    /// The socket-destroy counters of closed outbound connections and failed connects, one
    /// row per key without state (empty without `--collector.connections.flows`).
    pub outbound_flows: Vec<FlowOutRow>,
    /// The socket-destroy counters of closed inbound connections, one row per key.
    pub inbound_flows: Vec<FlowInRow>,
    /// The namespaces whose counters `outbound_flows` and `inbound_flows` hold ("" for the
    /// exporter's own): a key of one of them without a row has counted nothing yet.
    pub flows_netns: Vec<String>,
    /// The network namespaces read (`netstat_netns_info`; empty with --netns=self).
    pub namespaces: Vec<NamespaceRow>,
}

impl Snapshot {
    /// Convert one scrape; `now` is the current time in unix seconds.
    pub fn from_scraped(scraped: &Scraped, now: f64) -> Snapshot {
        let rows = &scraped.rows;
        let start_time_seconds = scraped.start_time_seconds;
        let listeners = rows.listeners.as_ref();
        let outbound = rows.outbound.as_ref();
        let inbound = rows.inbound.as_ref();
        let flows = rows.flows.as_ref();
        Snapshot {
            schema: SCHEMA_VERSION,
            version: crate::self_metrics::VERSION.into(),
            revision: crate::self_metrics::REVISION.into(),
            rustc: crate::self_metrics::RUSTC.into(),
            time: now,
            start_time_seconds,
            uptime_seconds: start_time_seconds.map(|t| (now - t).max(0.0)),
            collectors: scraped.collectors.clone(),
            sockets: rows.sockets.clone().unwrap_or_default(),
            unix_sockets: rows.unix_sockets.clone().unwrap_or_default(),
            expected_listeners_policy: listeners.is_some_and(|l| l.policy),
            listeners: listeners.map(|l| l.rows.clone()).unwrap_or_default(),
            listeners_dropped: listeners.map(|l| l.dropped),
            interfaces: rows
                .interfaces
                .iter()
                .flatten()
                .filter(|r| r.in_table())
                .cloned()
                .collect(),
            outbound_policy: outbound.is_some_and(|o| o.policy),
            outbound: outbound.map(|o| o.rows.clone()).unwrap_or_default(),
            outbound_folded: outbound.map(|o| o.folded),
            inbound_policy: inbound.is_some_and(|i| i.policy),
            inbound: inbound.map(|i| i.rows.clone()).unwrap_or_default(),
            inbound_folded: inbound.map(|i| i.folded),
            inbound_sources: inbound.map(|i| i.sources.clone()).unwrap_or_default(),
            outbound_flows: flows.map(|f| f.outbound.clone()).unwrap_or_default(),
            inbound_flows: flows.map(|f| f.inbound.clone()).unwrap_or_default(),
            flows_netns: flows.map(|f| f.namespaces.clone()).unwrap_or_default(),
            namespaces: scraped.namespaces.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::health::{Health, Probe};
    use crate::collectors::interfaces::{self, Interface, FLAGS};
    use crate::collectors::listeners::{self, ListenerAgg, ListenerKey, RenderOptions};
    use crate::collectors::rows::{self, Rows};
    use crate::collectors::sockets::{self, SocketStats};
    use crate::collectors::{connections, inbound};
    use crate::expected::ExpectedListeners;
    use crate::source::etc::{Services, Users};
    use crate::source::inet::{
        Family, InetSocket, Protocol, UnixSocket, UnixState, UnixType, TCP_CLOSE, TCP_LISTEN,
    };
    use crate::source::netdev::{Column, Counters, SysAttrs};
    use crate::source::procfd::Owner;
    use rustc_hash::FxHashMap;
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    fn sock(protocol: Protocol, family: Family, state: u8, addr: &str, port: u16) -> InetSocket {
        InetSocket {
            protocol,
            family,
            state,
            local: addr.parse().unwrap(),
            local_port: port,
            remote: addr.parse().unwrap(),
            remote_port: 0,
            rx_queue: 0,
            tx_queue: 0,
            uid: 0,
            inode: u64::from(port) * 10,
            cookie: 0,
            drops: None,
            tcp: None,
        }
    }

    fn tcp22() -> ListenerKey {
        ListenerKey {
            protocol: Protocol::Tcp,
            family: Family::Ipv4,
            address: "0.0.0.0".parse().unwrap(),
            port: 22,
        }
    }

    /// The listeners 0.0.0.0:22 (tcp, two sockets) and [::]:53 (udp), through the listeners
    /// collector's own functions (names, owners, policy, rows).
    fn listener_rows(expected: bool, healths: Option<&FxHashMap<ListenerKey, Health>>) -> Rows {
        let ssh = ListenerAgg {
            sockets: 2,
            inodes: vec![220, 221],
            accept_queue: 3,
            accept_queue_limit: 128,
            connections: 5,
            ..ListenerAgg::default()
        };
        let dns_key = ListenerKey {
            protocol: Protocol::Udp,
            family: Family::Ipv6,
            address: "::".parse().unwrap(),
            port: 53,
        };
        let dns = ListenerAgg {
            sockets: 1,
            inodes: vec![530],
            receive_queue_bytes: 768,
            drops: Some(9),
            ..ListenerAgg::default()
        };
        let mut services = Services::new();
        services.insert((22, "tcp".into()), "ssh".into());
        services.insert((53, "udp".into()), "domain".into());
        let mut users = Users::new();
        users.insert(0, "root".into());
        let owner = |pid, comm: &str| Owner {
            pid,
            comm: comm.into(),
            identity: Default::default(),
        };
        let owners: HashMap<u64, Owner> = [(220, owner(7, "sshd")), (530, owner(8, "<b>x</b>"))]
            .into_iter()
            .collect();
        let x = ExpectedListeners::parse("listeners:\n  - port: 22\n", "x").unwrap();
        let ls = listeners::resolve_names(
            vec![(tcp22(), ssh), (dns_key, dns)],
            &services,
            &users,
            &owners,
            expected.then_some(&x),
        );
        let opts = RenderOptions {
            limits: true,
            attribution: true,
            expected,
        };
        Rows {
            listeners: Some(rows::Listeners {
                rows: listeners::rows(&ls, opts, healths),
                dropped: 0,
                policy: expected,
            }),
            ..Rows::default()
        }
    }

    fn lo() -> Interface {
        let mut c = Counters::default();
        let packets = [
            Column::RxPackets,
            Column::RxErrs,
            Column::RxDrop,
            Column::RxFifo,
            Column::TxPackets,
            Column::TxErrs,
            Column::TxDrop,
            Column::TxFifo,
        ];
        for (i, col) in packets.into_iter().enumerate() {
            c.set(col, (i as u64 + 1) * 10);
        }
        c.set(Column::RxBytes, 1000);
        c.set(Column::TxBytes, 2000);
        let bit = |name| FLAGS.iter().find(|(f, _)| *f == name).unwrap().1;
        Interface {
            name: "lo".into(),
            counters: Some(c),
            sys: Some(SysAttrs {
                mtu: Some(65536),
                flags: Some(bit("up") | bit("loopback") | bit("running")),
                operstate: Some("unknown".into()),
                address: Some("00:00:00:00:00:00".into()),
                arp_type: Some(772),
                ..SysAttrs::default()
            }),
        }
    }

    /// One scrape: sockets, listeners and interfaces made by the collectors' functions.
    fn scraped(expected: bool) -> Scraped {
        let mut stats = SocketStats::default();
        for _ in 0..2 {
            stats.add_inet(&sock(
                Protocol::Tcp,
                Family::Ipv4,
                TCP_LISTEN,
                "0.0.0.0",
                22,
            ));
        }
        stats.add_inet(&sock(Protocol::Udp, Family::Ipv6, TCP_CLOSE, "::", 53));
        for inode in 0..6 {
            stats.add_unix(&UnixSocket {
                kind: UnixType::Stream,
                state: UnixState::Connected,
                inode,
            });
        }
        let (counts, unix) = sockets::rows(&stats);
        let mut rows = listener_rows(expected, None);
        rows.sockets = Some(counts);
        rows.unix_sockets = Some(unix);
        rows.interfaces = Some(interfaces::rows(&[lo()]));
        let status = |name: &str, success, duration_seconds| CollectorStatus {
            name: name.into(),
            success,
            duration_seconds,
        };
        Scraped {
            rows,
            collectors: vec![
                status("sockets", true, 0.25),
                status("listeners", false, 0.5),
            ],
            namespaces: None,
            start_time_seconds: Some(1000.5),
            watch_ticks: None,
        }
    }

    fn count<'a>(s: &'a Snapshot, protocol: &str, family: &str, state: &str) -> &'a SocketCount {
        s.sockets
            .iter()
            .find(|r| {
                (r.protocol.as_str(), r.family.as_str(), r.state.as_str())
                    == (protocol, family, state)
            })
            .unwrap()
    }

    #[test]
    fn converts_every_section() {
        let s = Snapshot::from_scraped(&scraped(false), 1100.5);
        assert_eq!(s.schema, SCHEMA_VERSION);
        assert_eq!(
            (s.version.as_str(), s.revision.as_str()),
            (crate::self_metrics::VERSION, crate::self_metrics::REVISION)
        );
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
        // Every series of netstat_sockets, zeros included, as the collector renders them.
        assert_eq!(count(&s, "tcp", "ipv4", "listen").count, 2);
        assert_eq!(count(&s, "udp", "ipv6", "unconnected").count, 1);
        assert_eq!(s.sockets.iter().map(|r| r.count).sum::<u64>(), 3);
        let stream = s
            .unix_sockets
            .iter()
            .find(|r| r.kind == "stream" && r.state == "connected")
            .unwrap();
        assert_eq!(stream.count, 6);
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
            serde_json::to_value(&s.interfaces).unwrap(),
            serde_json::json!([{
                "device": "lo",
                "mtu": 65536,
                "flags": "LRU",
                "operstate": "unknown",
                "rx_ok": 10,
                "rx_err": 20,
                "rx_drp": 30,
                "rx_ovr": 40,
                "tx_ok": 50,
                "tx_err": 60,
                "tx_drp": 70,
                "tx_ovr": 80,
                "rx_bytes": 1000,
                "tx_bytes": 2000,
                "netns": "",
            }])
        );
        assert_eq!(
            interfaces::watched(&s.interfaces[0]),
            [Some(true), Some(true), Some(false), Some(false)]
        );
        assert!(s.namespaces.is_empty(), "no namespaces: --netns=self");
        assert!(s.sockets.iter().all(|r| r.netns.is_empty()));
    }

    /// The rows and the families come from the same place: what the snapshot shows is what
    /// /metrics says.
    #[test]
    fn rows_and_families_agree() {
        let scraped = scraped(true);
        let l = scraped.rows.listeners.as_ref().unwrap();
        let opts = RenderOptions {
            limits: true,
            attribution: true,
            expected: true,
        };
        let fams = listeners::render(&l.rows, 0, opts);
        let value = |name: &str, port: &str| {
            fams.iter()
                .find(|f| f.name == name)
                .and_then(|f| {
                    f.samples
                        .iter()
                        .find(|s| crate::metrics::label(s, "port") == port)
                })
                .map(|s| s.value.as_f64() as u64)
        };
        let s = Snapshot::from_scraped(&scraped, 0.0);
        for r in &s.listeners {
            let port = r.port.to_string();
            assert_eq!(Some(r.sockets), value(listeners::SOCKETS.name, &port));
            assert_eq!(r.accept_queue, value(listeners::ACCEPT_QUEUE.name, &port));
            assert_eq!(
                r.accept_queue_limit,
                value(listeners::ACCEPT_QUEUE_LIMIT.name, &port)
            );
            assert_eq!(r.drops, value(listeners::DROPS.name, &port));
            assert_eq!(
                r.unexpected == Some(true),
                value(listeners::UNEXPECTED.name, &port).is_some()
            );
        }
        let ifs = interfaces::render(scraped.rows.interfaces.as_deref().unwrap());
        let mtu = ifs.iter().find(|f| f.name == interfaces::MTU.name).unwrap();
        assert_eq!(
            s.interfaces[0].mtu(),
            Some(mtu.samples[0].value.as_f64() as u64)
        );
        let info = ifs
            .iter()
            .find(|f| f.name == interfaces::INFO.name)
            .unwrap();
        assert_eq!(
            crate::metrics::label(&info.samples[0], "flags"),
            s.interfaces[0].letters()
        );
    }

    #[test]
    fn namespaces_and_per_namespace_rows_are_kept_apart() {
        // --netns=all: the own namespace (no netns label) and a pod's, each with the same
        // listener 0.0.0.0:22 and its own lo; joined as the engine joins namespaces.
        let pod = "4026532001";
        let own = scraped(false);
        let mut rows = own.rows.clone();
        let mut other = scraped(false).rows;
        if let Some(l) = other.listeners.as_mut() {
            l.rows[0].process = "dropbear".into();
            l.rows[0].accept_queue = Some(7);
        }
        if let Some(i) = other.interfaces.as_mut() {
            if let Some(l) = i[0].link.as_mut() {
                l.mtu = Some(1500);
            }
        }
        other.set_netns(pod);
        rows.extend(other);
        let namespaces = vec![
            NamespaceRow {
                netns: String::new(),
                name: String::new(),
                container_id: String::new(),
                pod_uid: String::new(),
            },
            NamespaceRow {
                netns: pod.into(),
                name: "cni-1".into(),
                container_id: "ab12".into(),
                pod_uid: "5f0c4c8e-2a3b-4c5d-8e9f-0a1b2c3d4e5f".into(),
            },
        ];
        let scraped = Scraped {
            rows,
            namespaces: Some(namespaces.clone()),
            ..own
        };
        let s = Snapshot::from_scraped(&scraped, 1.0);
        assert_eq!(s.namespaces, namespaces);
        let l: Vec<(&str, &str, Option<u64>)> = s
            .listeners
            .iter()
            .filter(|r| r.port == 22)
            .map(|r| (r.netns.as_str(), r.process.as_str(), r.accept_queue))
            .collect();
        assert_eq!(l, vec![("", "sshd", Some(3)), (pod, "dropbear", Some(7))]);
        let i: Vec<(&str, &str, Option<u64>)> = s
            .interfaces
            .iter()
            .map(|r| (r.netns.as_str(), r.device.as_str(), r.mtu()))
            .collect();
        assert_eq!(i, vec![("", "lo", Some(65536)), (pod, "lo", Some(1500))]);
        assert_eq!(s.listeners_dropped, Some(0));
        let half = s.sockets.len() / 2;
        assert!(s.sockets[..half].iter().all(|r| r.netns.is_empty()));
        assert!(s.sockets[half..].iter().all(|r| r.netns == pod));
        assert_eq!(s.unix_sockets.last().unwrap().netns, pod);
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(
            j["namespaces"][1]["pod_uid"],
            "5f0c4c8e-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
        );
        assert_eq!(j["listeners"][2]["netns"], pod);
        assert_eq!(j["interfaces"][0]["netns"], "");
    }

    #[test]
    fn unexpected_is_a_bool_only_with_a_policy() {
        let s = Snapshot::from_scraped(&scraped(true), 1100.5);
        assert!(s.expected_listeners_policy);
        assert_eq!(s.listeners[0].unexpected, Some(false));
        assert_eq!(s.listeners[1].unexpected, Some(true));
    }

    #[test]
    fn missing_collectors_give_empty_sections_and_nulls() {
        let s = Snapshot::from_scraped(&Scraped::default(), 5.0);
        assert!(s.collectors.is_empty() && s.listeners.is_empty() && s.interfaces.is_empty());
        assert_eq!(s.uptime_seconds, None);
        assert_eq!(s.listeners_dropped, None);
        assert_eq!(s.outbound_folded, None);
        assert_eq!(s.inbound_folded, None);
        assert_eq!(s.version, crate::self_metrics::VERSION);
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["uptime_seconds"].is_null());
        assert!(json["listeners"].as_array().unwrap().is_empty());
    }

    #[test]
    fn json_field_names_and_types() {
        let s = Snapshot::from_scraped(&scraped(true), 1100.5);
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
        // What only the change log reads is not in the snapshot.
        assert!(["watched", "attributes", "counters", "link"]
            .iter()
            .all(|k| i.get(k).is_none()));
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

    /// Health made by the real aggregation reaches the listener and outbound rows (through
    /// the collectors' row functions), and inbound rows their section.
    #[test]
    fn health_and_inbound_rows() {
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
        let listener_health: FxHashMap<ListenerKey, Health> =
            [(tcp22(), slow)].into_iter().collect();
        let mut scraped = scraped(false);
        scraped.rows.listeners = listener_rows(false, Some(&listener_health)).listeners;
        let key = |state| connections::SeriesKey {
            protocol: Protocol::Tcp,
            remote_port: "5432".into(),
            service: String::new(),
            remote_network: "private".into(),
            process: "app".into(),
            state,
            container_id: String::new(),
            pod_uid: String::new(),
        };
        let series: BTreeMap<connections::SeriesKey, u64> =
            [(key("established"), 3), (key("time_wait"), 3)]
                .into_iter()
                .collect();
        let healths: BTreeMap<connections::SeriesKey, Health> =
            [(key(""), fast)].into_iter().collect();
        scraped.rows.outbound = Some(connections::rows(&series, 0, None, Some(&healths)));
        let inbound = inbound::SeriesKey {
            protocol: "tcp",
            port: "22".into(),
            service: "ssh".into(),
            process: "sshd".into(),
            remote_network: "public".into(),
            container_id: String::new(),
            pod_uid: "p1".into(),
            state: "established",
        };
        scraped.rows.inbound = Some(rows::Inbound {
            rows: vec![InboundRow {
                protocol: inbound.protocol.into(),
                port: inbound.port.clone(),
                service: inbound.service.clone(),
                process: inbound.process.clone(),
                remote_network: inbound.remote_network.clone(),
                state: inbound.state.into(),
                count: 7,
                unexpected: None,
                container_id: inbound.container_id.clone(),
                pod_uid: inbound.pod_uid.clone(),
                netns: String::new(),
            }],
            folded: 0,
            policy: false,
            sources: vec![InboundSources {
                remote_network: "public".into(),
                count: 2,
                netns: String::new(),
            }],
        });
        let s = Snapshot::from_scraped(&scraped, 1100.5);
        let ssh = s.listeners.iter().find(|l| l.port == 22).unwrap();
        // Every connection in (64 ms, 128 ms]: 0.064 + 0.064 * q.
        let p50 = ssh.health.rtt_p50_seconds().unwrap();
        assert!((p50 - 0.096).abs() < 1e-9, "{p50}");
        assert_eq!(ssh.health.retransmitting(), Some(5));
        let rows: Vec<&OutboundRow> = s
            .outbound
            .iter()
            .filter(|o| o.remote_port == "5432")
            .collect();
        assert_eq!(rows.len(), 2);
        for r in rows {
            if r.state == "established" {
                // (0, 100 us]: p50 = 50 us.
                assert!((r.health.rtt_p50_seconds().unwrap() - 0.00005).abs() < 1e-12);
                assert_eq!(r.health.retransmitting(), Some(0));
            } else {
                assert_eq!(r.health, RowHealth::default(), "{r:?}");
            }
        }
        assert!(!s.outbound_policy);
        assert_eq!(s.outbound[0].unexpected, None);
        assert_eq!(s.outbound_folded, Some(0));
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
        // The health families are rendered from the same rows.
        let [rtt, retransmitting] =
            listeners::render_health(&scraped.rows.listeners.as_ref().unwrap().rows);
        let port22 = |f: &crate::metrics::MetricFamily| {
            f.samples
                .iter()
                .filter(|s| crate::metrics::label(s, "port") == "22")
                .map(|s| (s.part, s.value.as_f64()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            port22(&retransmitting),
            vec![(crate::metrics::Part::Value, 5.0)]
        );
        assert_eq!(
            port22(&rtt).last(),
            Some(&(crate::metrics::Part::Count, 5.0))
        );
        assert!(rtt
            .samples
            .iter()
            .all(|s| crate::metrics::label(s, "port") == "22"));
        let [rtt, retransmitting] =
            connections::render_health(scraped.rows.outbound.as_ref().unwrap());
        assert_eq!(retransmitting.samples.len(), 1);
        assert_eq!(
            crate::metrics::label(&retransmitting.samples[0], "remote_port"),
            "5432"
        );
        assert_eq!(retransmitting.samples[0].value.as_f64(), 0.0);
        assert_eq!(rtt.samples.len(), 16 + 1 + 2);
        let j = serde_json::to_value(&s).unwrap();
        // Flattened: the health fields sit on the row itself.
        assert_eq!(j["listeners"][0]["retransmitting"], 5);
        assert!(j["listeners"][1]["rtt_p50_seconds"].is_null());
    }

    /// The socket-destroy counters: their rows per namespace reach the snapshot with their
    /// netns, the namespaces they cover too; without them the sections are empty.
    #[test]
    fn flows_rows_per_namespace() {
        let pod = "4026532001";
        let flows = |closed| rows::Flows {
            outbound: vec![rows::FlowOutRow {
                protocol: "tcp".into(),
                remote_port: "443".into(),
                remote_network: "public".into(),
                process: "unknown".into(),
                closed,
                sent: 100,
                received: 200,
                failed: 1,
                failed_timeout: 1,
                ..Default::default()
            }],
            inbound: vec![rows::FlowInRow {
                protocol: "tcp".into(),
                port: "22".into(),
                service: "ssh".into(),
                process: "sshd".into(),
                remote_network: "private".into(),
                closed,
                ..Default::default()
            }],
            namespaces: vec![String::new()],
        };
        let mut r = Rows {
            flows: Some(flows(3)),
            ..Rows::default()
        };
        let mut other = Rows {
            flows: Some(flows(4)),
            ..Rows::default()
        };
        other.set_netns(pod);
        r.extend(other);
        r.extend(Rows::default());
        let scraped = Scraped {
            rows: r,
            ..Scraped::default()
        };
        let s = Snapshot::from_scraped(&scraped, 1.0);
        assert_eq!(s.flows_netns, vec![String::new(), pod.to_string()]);
        let out: Vec<(&str, u64)> = s
            .outbound_flows
            .iter()
            .map(|r| (r.netns.as_str(), r.closed))
            .collect();
        assert_eq!(out, vec![("", 3), (pod, 4)]);
        assert_eq!(s.inbound_flows[1].netns, pod);
        let j = serde_json::to_value(&s).unwrap();
        let o = &j["outbound_flows"][0];
        for k in [
            "closed",
            "sent",
            "received",
            "retransmits",
            "failed",
            "failed_refused",
            "failed_timeout",
        ] {
            assert!(o[k].is_u64(), "{k}: {o}");
        }
        assert_eq!(o["remote_port"], "443");
        assert_eq!(j["inbound_flows"][0]["port"], "22");
        let none = Snapshot::from_scraped(&Scraped::default(), 1.0);
        assert!(none.outbound_flows.is_empty() && none.flows_netns.is_empty());
    }

    /// An outbound policy: a series it does not allow is flagged on its rows, and kept
    /// for the change log even when folding took its rows away.
    #[test]
    fn outbound_policy_rows() {
        let key = |port: &str| connections::SeriesKey {
            protocol: Protocol::Tcp,
            remote_port: port.into(),
            service: String::new(),
            remote_network: "public".into(),
            process: "curl".into(),
            state: "established",
            container_id: String::new(),
            pod_uid: String::new(),
        };
        let series: BTreeMap<connections::SeriesKey, u64> =
            [(key("443"), 1), (key("25"), 2)].into_iter().collect();
        let flagged: BTreeSet<connections::SeriesKey> = [
            connections::SeriesKey {
                state: "",
                ..key("25")
            },
            connections::SeriesKey {
                state: "",
                ..key("6667")
            },
        ]
        .into_iter()
        .collect();
        let mut scraped = Scraped::default();
        scraped.rows.outbound = Some(connections::rows(&series, 4, Some(&flagged), None));
        let s = Snapshot::from_scraped(&scraped, 0.0);
        assert!(s.outbound_policy);
        assert_eq!(s.outbound_folded, Some(4));
        let flags: Vec<(&str, Option<bool>)> = s
            .outbound
            .iter()
            .map(|r| (r.remote_port.as_str(), r.unexpected))
            .collect();
        assert_eq!(flags, vec![("25", Some(true)), ("443", Some(false))]);
        let o = scraped.rows.outbound.as_ref().unwrap();
        assert_eq!(
            o.unexpected.len(),
            2,
            "folded away or not, every flagged series"
        );
    }
}
