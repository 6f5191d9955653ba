//! Collector `interfaces`: fixture golden tests, and live tests in network namespaces the
//! test creates and removes (veth pairs, UDP traffic sent from a thread that joined the
//! namespace, promisc and down/up toggles, namespace deletion), compared with
//! `<sysfs>/class/net/<dev>/statistics/*`, `ip -s link` and `netstat -i`.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::netns::{must, TestNetns};
use common::*;
use netstat_exporter::collectors::interfaces::{DeviceFilter, InterfacesCollector};
use netstat_exporter::collectors::SimpleCollector;
use netstat_exporter::config::Config;
use netstat_exporter::source::netns::Netns as Namespace;

// ---------------------------------------------------------------- fixtures

fn fixture_args(case: &str) -> (String, String) {
    let dir = fixtures().join("interfaces").join(case);
    (
        format!("--path.procfs={}", dir.join("proc").display()),
        format!("--path.sysfs={}", dir.join("sys").display()),
    )
}

/// Run the exporter on a fixture case; returns (interface families, success value, stderr).
fn run_fixture(case: &str, extra: &[&str]) -> (String, f64, String) {
    let (procfs, sysfs) = fixture_args(case);
    let mut args = vec![
        "--collector.disable-defaults",
        "--collector.interfaces",
        procfs.as_str(),
        sysfs.as_str(),
    ];
    args.extend_from_slice(extra);
    let out = run_once(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exporter failed: {stderr}");
    let success = sample(
        &stdout,
        "netstat_scrape_collector_success",
        &[("collector", "interfaces")],
    )
    .expect("success series");
    (
        families_with_prefix(&stdout, &["netstat_interface"]),
        success,
        stderr,
    )
}

fn golden(case: &str, name: &str, text: &str) {
    assert_golden(&fixtures().join("interfaces").join(case).join(name), text);
}

#[test]
fn fixture_basic() {
    let (text, success, stderr) = run_fixture("basic", &[]);
    assert_eq!(success, 1.0, "{stderr}");
    golden("basic", "expected.prom", &text);
    // Spot checks of what the golden file must say.
    let s = |n, l: &[(&str, &str)]| sample(&text, n, l);
    assert_eq!(
        s(
            "netstat_interface_bytes_total",
            &[("device", "verylongname123"), ("direction", "receive")]
        ),
        Some(u64::MAX as f64)
    );
    assert!(text.contains(
        "netstat_interface_bytes_total{device=\"verylongname123\",direction=\"receive\"} 18446744073709551615\n"
    ));
    assert!(text.contains("device=\"eth0.100\""));
    assert!(text.contains("netstat_interface_mtu_bytes{device=\"eth0:1\"} 1500\n"));
    // gone0 has no sysfs directory: counters only.
    assert!(s("netstat_interface_packets_total", &[("device", "gone0")]).is_some());
    assert!(s("netstat_interface_info", &[("device", "gone0")]).is_none());
    // ifb0 is down without carrier/speed files: flags yes, carrier and speed absent.
    assert_eq!(
        s(
            "netstat_interface_flag",
            &[("device", "ifb0"), ("flag", "up")]
        ),
        Some(0.0)
    );
    assert!(s("netstat_interface_carrier", &[("device", "ifb0")]).is_none());
    assert!(s(
        "netstat_interface_speed_bytes",
        &[("device", "verylongname123")]
    )
    .is_none());
    assert_eq!(
        s("netstat_interface_speed_bytes", &[("device", "eth0")]),
        Some(125_000_000.0)
    );
    assert_eq!(
        s(
            "netstat_interface_flag",
            &[("device", "eth0.100"), ("flag", "promisc")]
        ),
        Some(1.0)
    );
    for (dev, letters) in [
        ("lo", "LRU"),
        ("eth0", "BMRU"),
        ("eth0.100", "BMPRU"),
        ("verylongname123", "ABMPU"),
        ("ppp0", "MOPRU"),
        ("ifb0", "BO"),
    ] {
        assert!(
            text.contains(&format!(
                "netstat_interface_info{{device=\"{dev}\",flags=\"{letters}\""
            )),
            "{dev} should have flags {letters}:\n{text}"
        );
    }
}

#[test]
fn fixture_old_kernel_layouts() {
    let (text, success, stderr) = run_fixture("old_kernel", &[]);
    assert_eq!(success, 1.0, "{stderr}");
    golden("old_kernel", "expected.prom", &text);
    assert!(!text.contains("netstat_interface_compressed_packets"));
    assert!(!text.contains("netstat_interface_receive_multicast_packets"));
    // No operstate file: the raw RUNNING bit of `flags` is used.
    assert_eq!(info_flags(&text, "eth0").as_deref(), Some("BMRU"));
    assert_eq!(info_flags(&text, "lo").as_deref(), Some("LRU"));
    assert!(sample(&text, "netstat_interface_carrier", &[("device", "eth0")]).is_none());
    let (text, success, stderr) = run_fixture("linux20", &[]);
    assert_eq!(success, 1.0, "{stderr}");
    golden("linux20", "expected.prom", &text);
    assert!(!text.contains("netstat_interface_bytes"));
    assert_eq!(
        sample(
            &text,
            "netstat_interface_packets_total",
            &[
                ("device", "eth0"),
                ("direction", "transmit"),
                ("outcome", "overrun")
            ]
        ),
        Some(9.0)
    );
}

#[test]
fn fixture_garbage_reports_lines_and_keeps_the_rest() {
    let (text, success, stderr) = run_fixture("garbage", &[]);
    assert_eq!(success, 0.0);
    golden("garbage", "expected.prom", &text);
    let dev = fixtures().join("interfaces/garbage/proc/net/dev");
    // The scraper logs the first errors of a scrape one by one.
    assert!(
        stderr.contains(&format!("{}:3:", dev.display())),
        "{stderr}"
    );
    // All of them, with path and line, from the collector itself.
    let (procfs, sysfs) = fixture_args("garbage");
    let config =
        Config::from_args(["netstat_exporter", procfs.as_str(), sysfs.as_str()]).expect("config");
    let ns = Namespace::own(&config.procfs, &config.sysfs, false);
    let errors = InterfacesCollector::new(DeviceFilter::default())
        .collect(&ns)
        .errors;
    let where_: Vec<String> = errors
        .iter()
        .map(|e| {
            let file = e.location.rsplit('/').take(2).collect::<Vec<_>>();
            format!("{}/{}:{}", file[1], file[0], e.line.unwrap_or(0))
        })
        .collect();
    assert_eq!(
        where_,
        [
            "net/dev:3",
            "net/dev:5",
            "net/dev:6",
            "net/dev:7",
            "net/dev:8",
            "net/dev:10",
            "eth3/mtu:1",
            "eth3/flags:1",
            "eth3/carrier:1",
            "eth3/speed:1",
        ]
        .map(String::from)
        .to_vec(),
        "{errors:#?}"
    );
    assert!(errors
        .iter()
        .all(|e| e.location.starts_with(&*fixtures().to_string_lossy())));
    // eth3 is fine in /proc/net/dev; its sysfs mtu/flags/carrier/speed are garbage.
    assert_eq!(
        sample(
            &text,
            "netstat_interface_packets_total",
            &[
                ("device", "eth3"),
                ("direction", "transmit"),
                ("outcome", "ok")
            ]
        ),
        Some(20.0)
    );
    assert!(sample(&text, "netstat_interface_mtu_bytes", &[("device", "eth3")]).is_none());
    // eth0's line is short: no counters, but its sysfs series are still there.
    assert!(sample(
        &text,
        "netstat_interface_packets_total",
        &[("device", "eth0")]
    )
    .is_none());
    assert_eq!(
        sample(&text, "netstat_interface_mtu_bytes", &[("device", "eth0")]),
        Some(1500.0)
    );
    // The duplicate lo line did not produce duplicate series.
    assert_eq!(
        text.matches("netstat_interface_mtu_bytes{device=\"lo\"}")
            .count(),
        1
    );
    assert_eq!(
        sample(
            &text,
            "netstat_interface_packets_total",
            &[
                ("device", "lo"),
                ("direction", "receive"),
                ("outcome", "ok")
            ]
        ),
        Some(29.0)
    );
}

#[test]
fn fixture_missing_proc_net_dev() {
    let (text, success, stderr) = run_fixture("missing", &[]);
    assert_eq!(success, 0.0);
    assert_eq!(text, "");
    assert!(stderr.contains("net/dev"), "{stderr}");
}

#[test]
fn fixture_device_filters() {
    let (text, success, _) =
        run_fixture("basic", &["--collector.interfaces.device-include=eth0.*"]);
    assert_eq!(success, 1.0);
    golden("basic", "expected-include.prom", &text);
    let devices = devices_in(&text);
    assert_eq!(
        devices,
        ["eth0", "eth0.100", "eth0:1"].map(String::from).to_vec()
    );
    let (text, _, _) = run_fixture(
        "basic",
        &["--collector.interfaces.device-exclude=eth0.*|lo"],
    );
    let devices = devices_in(&text);
    assert_eq!(
        devices,
        ["gone0", "ifb0", "ppp0", "verylongname123"]
            .map(String::from)
            .to_vec()
    );
    let out = run_once(&[
        "--collector.interfaces.device-include=a",
        "--collector.interfaces.device-exclude=b",
    ]);
    assert!(
        !out.status.success(),
        "both filters must be a startup error"
    );
}

/// Sorted set of `device` label values in a text exposition.
fn devices_in(text: &str) -> Vec<String> {
    let mut set = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(rest) = line.split("device=\"").nth(1) {
            if let Some(end) = rest.find('"') {
                set.insert(rest[..end].to_string());
            }
        }
    }
    set.into_iter().collect()
}

// ---------------------------------------------------------------- live helpers

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn cmd(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

/// A namespace of the test's own (tests/common/netns.rs: removed on drop, even when the test
/// fails), loopback down as the kernel makes it, without IPv6 autoconfiguration chatter (DAD, MLD, router solicitations): the
/// counters must move only by the traffic the test sends.
fn quiet_netns(tag: &str) -> TestNetns {
    let ns = TestNetns::bare(&format!("if{tag}"));
    ns.exec(&[
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
    ]);
    ns
}

/// What these tests do in a namespace besides what tests/common/netns.rs offers.
trait InterfacesNs {
    /// One `--once` scrape by the exporter running inside this namespace.
    fn scrape_once(&self) -> String;
    /// Wait until `dev`'s operstate is `want` (or, with a leading `!`, is no longer it).
    fn wait_operstate(&self, dev: &str, want: &str);
}

impl InterfacesNs for TestNetns {
    fn scrape_once(&self) -> String {
        self.exec(&[
            exporter_bin(),
            "--once",
            "--collector.disable-defaults",
            "--collector.interfaces",
        ])
    }

    fn wait_operstate(&self, dev: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.exec(&["cat", &format!("/sys/class/net/{dev}/operstate")]);
            let now = out.trim();
            let done = match want.strip_prefix('!') {
                Some(not) => now != not,
                None => now == want,
            };
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{dev} operstate {} never became {want}",
                out.trim()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

const SUBNET: &str = "10.213.7";
const MAC_A: &str = "02:00:0a:d5:07:01";
const MAC_B: &str = "02:00:0a:d5:07:02";

/// Two namespaces joined by a veth pair (`va` in a, `vb` in b), addressed, with static
/// neighbour entries (no ARP) and IPv6 off: a quiet link.
struct Pair {
    // Field order = drop order: the namespaces go last.
    a: TestNetns,
    b: TestNetns,
    va: String,
    vb: String,
}

fn pair() -> Pair {
    let a = quiet_netns("a");
    let b = quiet_netns("b");
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    // Names in their own namespaces cannot clash; pid+seq keep them unique anyway.
    let va = format!("va{}_{n}", std::process::id() % 100000);
    let vb = format!("vb{}_{n}", std::process::id() % 100000);
    a.ip(&[
        "link", "add", &va, "address", MAC_A, "type", "veth", "peer", "name", &vb, "address",
        MAC_B, "netns", &b.name,
    ]);
    a.ip(&["addr", "add", &format!("{SUBNET}.1/24"), "dev", &va]);
    b.ip(&["addr", "add", &format!("{SUBNET}.2/24"), "dev", &vb]);
    a.ip(&[
        "neigh",
        "add",
        &format!("{SUBNET}.2"),
        "lladdr",
        MAC_B,
        "dev",
        &va,
        "nud",
        "permanent",
    ]);
    b.ip(&[
        "neigh",
        "add",
        &format!("{SUBNET}.1"),
        "lladdr",
        MAC_A,
        "dev",
        &vb,
        "nud",
        "permanent",
    ]);
    a.ip(&["link", "set", "dev", &va, "up"]);
    b.ip(&["link", "set", "dev", &vb, "up"]);
    a.wait_operstate(&va, "up");
    b.wait_operstate(&vb, "up");
    Pair { a, b, va, vb }
}

fn live_ok() -> bool {
    require_root() && require_tool("ip")
}

/// `<sysfs>/class/net/<dev>/statistics/*` read inside the namespace.
fn sysfs_stats(ns: &TestNetns, dev: &str) -> BTreeMap<String, u64> {
    let out = ns.exec(&[
        "sh",
        "-c",
        &format!("cd /sys/class/net/{dev}/statistics && grep -H . *"),
    ]);
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().parse().expect("stat value")))
        .collect()
}

/// What `ip -s link show dev X` prints: RX bytes packets errors dropped missed mcast, TX bytes
/// packets errors dropped carrier collsns.
fn ip_stats(ns: &TestNetns, dev: &str) -> BTreeMap<String, u64> {
    let out = ns.ip(&["-s", "link", "show", "dev", dev]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let mut m = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let dir = if l.starts_with("RX:") {
            "rx"
        } else if l.starts_with("TX:") {
            "tx"
        } else {
            continue;
        };
        let names: Vec<&str> = l.split_whitespace().skip(1).collect();
        let values: Vec<&str> = lines[i + 1].split_whitespace().collect();
        for (n, v) in names.iter().zip(values) {
            m.insert(format!("{dir}_{n}"), v.parse().expect("ip -s value"));
        }
    }
    m
}

/// One row of `netstat -ia`.
#[derive(Debug, Clone, PartialEq)]
struct NetstatRow {
    mtu: u64,
    /// RX-OK RX-ERR RX-DRP RX-OVR TX-OK TX-ERR TX-DRP TX-OVR
    cols: [u64; 8],
    flags: String,
}

fn parse_netstat_i(out: &str) -> BTreeMap<String, NetstatRow> {
    let mut m = BTreeMap::new();
    for l in out.lines().skip(2) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 11 {
            continue;
        }
        let mut cols = [0u64; 8];
        for (i, c) in cols.iter_mut().enumerate() {
            *c = f[2 + i].parse().expect("netstat column");
        }
        m.insert(
            f[0].to_string(),
            NetstatRow {
                mtu: f[1].parse().expect("mtu"),
                cols,
                flags: f[10..].join(" "),
            },
        );
    }
    m
}

const NETSTAT_COLS: [(&str, &str); 8] = [
    ("receive", "ok"),
    ("receive", "error"),
    ("receive", "drop"),
    ("receive", "overrun"),
    ("transmit", "ok"),
    ("transmit", "error"),
    ("transmit", "drop"),
    ("transmit", "overrun"),
];

/// The exporter's view of one device as a netstat -i row.
fn exporter_row(text: &str, dev: &str) -> Option<NetstatRow> {
    let mtu = sample(text, "netstat_interface_mtu_bytes", &[("device", dev)])? as u64;
    let mut cols = [0u64; 8];
    for (c, (direction, outcome)) in cols.iter_mut().zip(NETSTAT_COLS) {
        *c = sample(
            text,
            "netstat_interface_packets_total",
            &[
                ("device", dev),
                ("direction", direction),
                ("outcome", outcome),
            ],
        )? as u64;
    }
    Some(NetstatRow {
        mtu,
        cols,
        flags: info_flags(text, dev)?,
    })
}

fn info_flags(text: &str, dev: &str) -> Option<String> {
    let prefix = format!("netstat_interface_info{{device=\"{dev}\",flags=\"");
    let line = text.lines().find(|l| l.starts_with(&prefix))?;
    let rest = &line[prefix.len()..];
    Some(rest[..rest.find('"')?].to_string())
}

fn counter(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let v = sample(text, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing"));
    v as u64
}

fn flag(text: &str, dev: &str, f: &str) -> Option<f64> {
    sample(
        text,
        "netstat_interface_flag",
        &[("device", dev), ("flag", f)],
    )
}

/// Every counter of `dev` checked against sysfs statistics with the kernel's /proc/net/dev
/// formulas (net/core/net-procfs.c).
fn assert_matches_sysfs(text: &str, dev: &str, st: &BTreeMap<String, u64>) {
    let g = |k: &str| st[k];
    let p = |d: &str, o: &str| {
        counter(
            text,
            "netstat_interface_packets_total",
            &[("device", dev), ("direction", d), ("outcome", o)],
        )
    };
    let by_dir = |n: &str, d: &str| counter(text, n, &[("device", dev), ("direction", d)]);
    let one = |n: &str| counter(text, n, &[("device", dev)]);
    assert_eq!(p("receive", "ok"), g("rx_packets"), "{dev} RX-OK");
    assert_eq!(p("receive", "error"), g("rx_errors"), "{dev} RX-ERR");
    assert_eq!(
        p("receive", "drop"),
        g("rx_dropped") + g("rx_missed_errors"),
        "{dev} RX-DRP"
    );
    assert_eq!(p("receive", "overrun"), g("rx_fifo_errors"), "{dev} RX-OVR");
    assert_eq!(p("transmit", "ok"), g("tx_packets"), "{dev} TX-OK");
    assert_eq!(p("transmit", "error"), g("tx_errors"), "{dev} TX-ERR");
    assert_eq!(p("transmit", "drop"), g("tx_dropped"), "{dev} TX-DRP");
    assert_eq!(
        p("transmit", "overrun"),
        g("tx_fifo_errors"),
        "{dev} TX-OVR"
    );
    assert_eq!(
        by_dir("netstat_interface_bytes_total", "receive"),
        g("rx_bytes")
    );
    assert_eq!(
        by_dir("netstat_interface_bytes_total", "transmit"),
        g("tx_bytes")
    );
    assert_eq!(
        by_dir("netstat_interface_compressed_packets_total", "receive"),
        g("rx_compressed")
    );
    assert_eq!(
        by_dir("netstat_interface_compressed_packets_total", "transmit"),
        g("tx_compressed")
    );
    assert_eq!(
        one("netstat_interface_receive_frame_errors_total"),
        g("rx_length_errors") + g("rx_over_errors") + g("rx_crc_errors") + g("rx_frame_errors")
    );
    assert_eq!(
        one("netstat_interface_receive_multicast_packets_total"),
        g("multicast")
    );
    assert_eq!(
        one("netstat_interface_transmit_collisions_total"),
        g("collisions")
    );
    assert_eq!(
        one("netstat_interface_transmit_carrier_errors_total"),
        g("tx_carrier_errors")
            + g("tx_aborted_errors")
            + g("tx_window_errors")
            + g("tx_heartbeat_errors")
    );
}

fn assert_matches_ip(text: &str, dev: &str, ip: &BTreeMap<String, u64>) {
    let p = |d: &str, o: &str| {
        counter(
            text,
            "netstat_interface_packets_total",
            &[("device", dev), ("direction", d), ("outcome", o)],
        )
    };
    let bytes = |d: &str| {
        counter(
            text,
            "netstat_interface_bytes_total",
            &[("device", dev), ("direction", d)],
        )
    };
    assert_eq!(bytes("receive"), ip["rx_bytes"], "{ip:?}");
    assert_eq!(bytes("transmit"), ip["tx_bytes"], "{ip:?}");
    assert_eq!(p("receive", "ok"), ip["rx_packets"]);
    assert_eq!(p("transmit", "ok"), ip["tx_packets"]);
    assert_eq!(p("receive", "error"), ip["rx_errors"]);
    assert_eq!(p("transmit", "error"), ip["tx_errors"]);
    // ip shows dropped and missed apart; /proc/net/dev (and netstat -i) add them up.
    assert_eq!(p("receive", "drop"), ip["rx_dropped"] + ip["rx_missed"]);
    assert_eq!(p("transmit", "drop"), ip["tx_dropped"]);
    assert_eq!(
        counter(
            text,
            "netstat_interface_receive_multicast_packets_total",
            &[("device", dev)]
        ),
        ip["rx_mcast"]
    );
    assert_eq!(
        counter(
            text,
            "netstat_interface_transmit_collisions_total",
            &[("device", dev)]
        ),
        ip["tx_collsns"]
    );
}

/// The exporter's table equals `netstat -ia` for every device, run at a quiet moment.
fn assert_matches_netstat(text: &str, netstat: &str) {
    let table = parse_netstat_i(netstat);
    let devices: Vec<String> = table.keys().cloned().collect();
    assert_eq!(devices_in(text), devices, "same devices as netstat -ia");
    for (dev, row) in &table {
        assert_eq!(
            exporter_row(text, dev).as_ref(),
            Some(row),
            "{dev}: exporter vs netstat -ia\n{netstat}"
        );
    }
}

// ---------------------------------------------------------------- live tests

#[test]
fn live_counters_match_sysfs_ip_netstat_and_move_by_the_traffic() {
    if !live_ok() {
        return;
    }
    let p = pair();
    let (va, vb) = (p.va.as_str(), p.vb.as_str());
    let has_netstat = require_tool("netstat");

    let before = p.a.scrape_once();
    assert_eq!(
        sample(
            &before,
            "netstat_scrape_collector_success",
            &[("collector", "interfaces")]
        ),
        Some(1.0)
    );
    // The exporter reads its own namespace's /proc/net/dev: only lo and the veth end,
    // none of the host's interfaces.
    assert_eq!(devices_in(&before), vec!["lo".to_string(), p.va.clone()]);
    assert_matches_sysfs(&before, va, &sysfs_stats(&p.a, va));
    assert_matches_ip(&before, va, &ip_stats(&p.a, va));
    if has_netstat {
        assert_matches_netstat(&before, &p.a.exec(&["netstat", "-ia"]));
    }
    let before_b = p.b.scrape_once();

    // Traffic: N UDP datagrams of PAYLOAD bytes from a to b, with a receiver bound in b so
    // that no ICMP comes back.
    const N: u64 = 100;
    const PAYLOAD: usize = 100;
    let receiver =
        p.b.run(|| UdpSocket::bind(format!("{SUBNET}.2:7777")).expect("bind in b"));
    p.a.run(|| {
        let s = UdpSocket::bind(format!("{SUBNET}.1:0")).expect("bind in a");
        for _ in 0..N {
            s.send_to(&[0x5a; PAYLOAD], format!("{SUBNET}.2:7777"))
                .expect("send");
        }
    });
    // Let the datagrams arrive (veth delivers through the backlog, asynchronously).
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..N {
        receiver.recv(&mut buf).expect("datagram arrives");
    }

    let after = p.a.scrape_once();
    let after_b = p.b.scrape_once();
    assert_matches_sysfs(&after, va, &sysfs_stats(&p.a, va));
    assert_matches_ip(&after, va, &ip_stats(&p.a, va));
    assert_matches_sysfs(&after_b, vb, &sysfs_stats(&p.b, vb));
    assert_matches_ip(&after_b, vb, &ip_stats(&p.b, vb));
    if has_netstat {
        assert_matches_netstat(&after, &p.a.exec(&["netstat", "-ia"]));
        assert_matches_netstat(&after_b, &p.b.exec(&["netstat", "-ia"]));
    }

    let frame = (PAYLOAD + 8 + 20 + 14) as u64; // UDP + IPv4 + Ethernet headers
    let delta = |a: &str, b: &str, name: &str, labels: &[(&str, &str)]| {
        counter(b, name, labels) - counter(a, name, labels)
    };
    let pk = "netstat_interface_packets_total";
    let by = "netstat_interface_bytes_total";
    assert_eq!(
        delta(
            &before,
            &after,
            pk,
            &[("device", va), ("direction", "transmit"), ("outcome", "ok")]
        ),
        N
    );
    assert_eq!(
        delta(
            &before,
            &after,
            by,
            &[("device", va), ("direction", "transmit")]
        ),
        N * frame
    );
    assert_eq!(
        delta(
            &before,
            &after,
            pk,
            &[("device", va), ("direction", "receive"), ("outcome", "ok")]
        ),
        0
    );
    assert_eq!(
        delta(
            &before_b,
            &after_b,
            pk,
            &[("device", vb), ("direction", "receive"), ("outcome", "ok")]
        ),
        N
    );
    assert_eq!(
        delta(
            &before_b,
            &after_b,
            by,
            &[("device", vb), ("direction", "receive")]
        ),
        N * frame
    );
    assert_eq!(
        delta(
            &before_b,
            &after_b,
            pk,
            &[
                ("device", vb),
                ("direction", "receive"),
                ("outcome", "drop")
            ]
        ),
        0
    );

    // Attributes: veth reports 10 Gbit/s, a MAC, type ether.
    assert_eq!(
        sample(&after, "netstat_interface_speed_bytes", &[("device", va)]),
        Some(1.25e9)
    );
    assert!(after.contains(&format!(
        "netstat_interface_info{{device=\"{va}\",flags=\"BMRU\",operstate=\"up\",address=\"{MAC_A}\",type=\"ether\"}} 1"
    )), "{after}");
    // lo is down in a fresh namespace: L only, no carrier, no speed.
    assert_eq!(info_flags(&after, "lo").as_deref(), Some("L"));
    assert!(sample(&after, "netstat_interface_carrier", &[("device", "lo")]).is_none());
    drop(receiver);
}

#[test]
fn live_flags_follow_promisc_and_down_up() {
    if !live_ok() {
        return;
    }
    let p = pair();
    let va = p.va.as_str();
    let has_netstat = require_tool("netstat");
    // Scrape; check the flag series and letters, and netstat -ia's Flg for the same moment.
    let check = |letters: &str, want: &[(&str, f64)]| -> String {
        let t = p.a.scrape_once();
        assert_eq!(
            sample(
                &t,
                "netstat_scrape_collector_success",
                &[("collector", "interfaces")]
            ),
            Some(1.0),
            "EINVAL from carrier/speed of a down device is not an error"
        );
        assert_eq!(info_flags(&t, va).as_deref(), Some(letters), "{t}");
        for (f, v) in want {
            assert_eq!(flag(&t, va, f), Some(*v), "flag {f} with letters {letters}");
        }
        // Every flag series is always present.
        for f in [
            "up",
            "broadcast",
            "loopback",
            "pointopoint",
            "running",
            "noarp",
            "promisc",
            "allmulti",
            "multicast",
            "dormant",
            "lower_up",
        ] {
            assert!(flag(&t, va, f).is_some(), "flag {f} missing");
        }
        if has_netstat {
            let table = parse_netstat_i(&p.a.exec(&["netstat", "-ia"]));
            assert_eq!(table[va].flags, letters, "netstat -ia Flg");
        }
        t
    };

    let t = check(
        "BMRU",
        &[
            ("up", 1.0),
            ("running", 1.0),
            ("lower_up", 1.0),
            ("promisc", 0.0),
            ("broadcast", 1.0),
            ("multicast", 1.0),
            ("loopback", 0.0),
        ],
    );
    assert_eq!(
        sample(&t, "netstat_interface_carrier", &[("device", va)]),
        Some(1.0)
    );

    p.a.ip(&["link", "set", "dev", va, "promisc", "on"]);
    check("BMPRU", &[("promisc", 1.0), ("up", 1.0)]);
    p.a.ip(&["link", "set", "dev", va, "promisc", "off"]);
    check("BMRU", &[("promisc", 0.0)]);

    // Peer down: va stays up but loses its carrier: no R, like netstat.
    p.b.ip(&["link", "set", "dev", &p.vb, "down"]);
    // operstate becomes lowerlayerdown, or down when va's ifindex happens to equal its
    // peer's (they live in different namespaces): the kernel's RFC 2863 rule.
    p.a.wait_operstate(va, "!up");
    let t = check("BMU", &[("up", 1.0), ("running", 0.0), ("lower_up", 0.0)]);
    assert_eq!(
        sample(&t, "netstat_interface_carrier", &[("device", va)]),
        Some(0.0)
    );
    assert!(!t.contains(&format!("device=\"{va}\",flags=\"BMU\",operstate=\"up\"")));
    p.b.ip(&["link", "set", "dev", &p.vb, "up"]);
    p.a.wait_operstate(va, "up");
    check("BMRU", &[("running", 1.0)]);

    // Down: carrier and speed read EINVAL and are omitted.
    p.a.ip(&["link", "set", "dev", va, "down"]);
    p.a.wait_operstate(va, "down");
    let t = check("BM", &[("up", 0.0), ("running", 0.0), ("lower_up", 0.0)]);
    assert!(sample(&t, "netstat_interface_carrier", &[("device", va)]).is_none());
    assert!(sample(&t, "netstat_interface_speed_bytes", &[("device", va)]).is_none());
    p.a.ip(&["link", "set", "dev", va, "up"]);
    p.a.wait_operstate(va, "up");
    let t = check("BMRU", &[("up", 1.0), ("running", 1.0), ("lower_up", 1.0)]);
    assert_eq!(
        sample(&t, "netstat_interface_carrier", &[("device", va)]),
        Some(1.0)
    );
}

/// An exporter served inside a namespace; killed on drop.
struct NsExporter {
    child: Child,
}

impl Drop for NsExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn live_deleted_interfaces_vanish_from_the_next_scrape() {
    if !live_ok() {
        return;
    }
    let p = pair();
    let a = &p.a;
    a.ip(&["link", "set", "dev", "lo", "up"]);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let (vx, vy) = (format!("vx{n}"), format!("vy{n}"));
    a.ip(&["link", "add", &vx, "type", "veth", "peer", "name", &vy]);

    let addr: SocketAddr = "127.0.0.1:9958".parse().unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &a.name, exporter_bin()])
        .arg(format!("--web.listen-address={addr}"))
        .args(["--collector.disable-defaults", "--collector.interfaces"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn exporter in netns");
    let _exporter = NsExporter { child };
    let scrape = || {
        a.run(|| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(addr).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "exporter did not start in the namespace"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let r = http_get(addr, "/metrics", &[]);
            assert_eq!(r.status, 200);
            r.text()
        })
    };
    let success = |t: &str| {
        sample(
            t,
            "netstat_scrape_collector_success",
            &[("collector", "interfaces")],
        )
    };

    let t = scrape();
    assert_eq!(devices_in(&t), {
        let mut v = vec![p.va.clone(), "lo".to_string(), vx.clone(), vy.clone()];
        v.sort();
        v
    });

    // Deleting one end of a pair removes both.
    a.ip(&["link", "del", &vx]);
    let t = scrape();
    assert_eq!(success(&t), Some(1.0));
    let devs = devices_in(&t);
    assert!(!devs.contains(&vx) && !devs.contains(&vy), "{devs:?}");
    assert!(devs.contains(&p.va));

    // Deleting namespace b destroys vb and with it its peer va (asynchronously: the kernel
    // tears the namespace down in a work queue).
    let Pair { a: _, b, va, .. } = &p;
    must("ip", &["netns", "del", &b.name]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while cmd("ip", &["-n", &a.name, "link", "show", "dev", va])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "{va} survived the deletion of its peer's namespace"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = scrape();
    assert_eq!(success(&t), Some(1.0), "a vanished interface is no error");
    assert_eq!(devices_in(&t), vec!["lo".to_string()]);
    assert!(!t.contains(va.as_str()), "no stale series for {va}");
}

#[test]
fn host_table_matches_netstat_i() {
    if !require_tool("netstat") {
        return;
    }
    let out = run_once(&["--collector.disable-defaults", "--collector.interfaces"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let netstat = must("netstat", &["-ia"]);
    let table = parse_netstat_i(&netstat);
    // Other tests' namespaces do not show here; the host's devices are stable.
    assert_eq!(devices_in(&text), table.keys().cloned().collect::<Vec<_>>());
    for (dev, row) in &table {
        let mine = exporter_row(&text, dev).unwrap_or_else(|| panic!("{dev} missing"));
        assert_eq!(mine.mtu, row.mtu, "{dev} MTU");
        // Counters: equal up to the traffic between the two reads.
        for (i, (m, n)) in mine.cols.iter().zip(row.cols).enumerate() {
            assert!(
                m.abs_diff(n) <= 1000,
                "{dev} column {i}: exporter {m}, netstat {n}"
            );
        }
        // Flags: identical, except that the exporter's A/P are the effective
        // allmulti/promisc state (bridge ports, sniffers), netstat's the administrative one.
        if mine.flags != row.flags {
            let strip = |s: &str| s.replace(['A', 'P'], "");
            assert_eq!(strip(&mine.flags), strip(&row.flags), "{dev} flags");
            assert!(
                row.flags.chars().all(|c| mine.flags.contains(c)),
                "{dev} flags"
            );
        }
    }
}
