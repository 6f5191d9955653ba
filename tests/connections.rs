//! Live tests of the connections collector: a namespace made by the test (veth, addresses in
//! 10.213.9.0/29) runs servers on 6667, 23 and 443 (and a 443 whose accept queue is full);
//! processes named with prctl (ircbot, telnet, curl) connect to them from the test's
//! namespace. The exporter's outbound series must equal what `ss -tanp` shows for the same
//! moment, inbound connections must not count, services, networks and the policy must be
//! right, folding must conserve the total, and new destinations must count once.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::netns::{TestNetns, Veth};
use common::sockload::hold_clients;
use common::{require_root, require_tool, run_once, sample, Exporter, TempDir};

const HOST: Ipv4Addr = Ipv4Addr::new(10, 213, 9, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 213, 9, 2);
/// Its listener on 443 has a full accept queue.
const FULL: Ipv4Addr = Ipv4Addr::new(10, 213, 9, 3);
/// Appears later, for the new-destination count.
const LATER: Ipv4Addr = Ipv4Addr::new(10, 213, 9, 4);

/// A TCP listener with the given backlog (std's is fixed at 128).
fn listen(addr: SocketAddrV4, backlog: i32) -> OwnedFd {
    // SAFETY: plain socket calls on a fresh fd that OwnedFd then owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            4,
        );
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_port = addr.port().to_be();
        a.sin_addr.s_addr = u32::from_ne_bytes(addr.ip().octets());
        let rc = libc::bind(
            fd,
            (&a as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0, "bind {addr}: {}", std::io::Error::last_os_error());
        assert_eq!(libc::listen(fd, backlog), 0);
        OwnedFd::from_raw_fd(fd)
    }
}

/// The lab: namespace, veth, addresses, servers, and a client inside the namespace connected
/// to a listener of the test's own namespace (an inbound connection there).
struct Lab {
    _servers: Vec<OwnedFd>,
    _inbound: (TcpListener, TcpStream, TcpStream),
    _veth: Veth,
    _ns: TestNetns,
    dir: TempDir,
}

impl Lab {
    fn new() -> Lab {
        let ns = TestNetns::new("cn");
        let veth = Veth::new(&ns, "c");
        common::netns::must("ip", &["addr", "add", "10.213.9.1/29", "dev", &veth.host]);
        common::netns::must("ip", &["link", "set", &veth.host, "up"]);
        for a in ["10.213.9.2/29", "10.213.9.3/29", "10.213.9.4/29"] {
            ns.ip(&["addr", "add", a, "dev", &veth.peer]);
        }
        ns.ip(&["link", "set", &veth.peer, "up"]);
        let servers = ns.run(|| {
            let mut v = Vec::new();
            for port in [6667, 23, 443] {
                v.push(listen(SocketAddrV4::new(SERVER, port), 16));
            }
            v.push(listen(SocketAddrV4::new(FULL, 443), 0));
            v.push(listen(SocketAddrV4::new(LATER, 443), 16));
            v
        });
        // Wait for the link (no DAD for IPv4: carrier is enough).
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(
            &SocketAddrV4::new(SERVER, 443).into(),
            Duration::from_millis(200),
        )
        .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the lab's servers never answered"
            );
        }
        let host_listener = TcpListener::bind((HOST, 0)).unwrap();
        let target = host_listener.local_addr().unwrap();
        let client = ns.run(|| TcpStream::connect(target).unwrap());
        let (accepted, _) = host_listener.accept().unwrap();
        let dir = TempDir::new("connections");
        dir.write("networks.yml", "networks:\n  lab: [\"10.213.9.0/29\"]\n");
        dir.write("expected.yml", "connections:\n  - remote_port: 443\n");
        std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
        std::fs::write(
            dir.join("rootfs/etc/services"),
            "ircd 6667/tcp\ntelnet 23/tcp\nhttps 443/tcp\n",
        )
        .unwrap();
        std::fs::copy("/etc/passwd", dir.join("rootfs/etc/passwd")).unwrap();
        Lab {
            _servers: servers,
            _inbound: (host_listener, client, accepted),
            _veth: veth,
            _ns: ns,
            dir,
        }
    }

    /// The port of the test's own listener, which the lab's client connected to.
    fn inbound_port(&self) -> u16 {
        self._inbound.0.local_addr().unwrap().port()
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut v = vec![
            "--collector.disable-defaults".to_string(),
            "--collector.connections".to_string(),
            format!(
                "--collector.connections.networks={}",
                self.dir.join("networks.yml").display()
            ),
            format!(
                "--collector.listeners.expected={}",
                self.dir.join("expected.yml").display()
            ),
            format!("--path.rootfs={}", self.dir.join("rootfs").display()),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn once(&self, extra: &[&str]) -> String {
        let args = self.args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_once(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

type Counts = BTreeMap<(String, String, String), u64>;

/// (process, remote port, state) -> sockets to the lab, from `ss -tanp` in the test's
/// namespace; sockets on local port `inbound_port` (the test's listener) are inbound.
fn ss_counts(inbound_port: u16) -> Counts {
    let out = common::netns::must("ss", &["-tanpH"]);
    let mut m = Counts::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            continue;
        }
        let Some((peer, port)) = f[4].rsplit_once(':') else {
            continue;
        };
        if f[3].ends_with(&format!(":{inbound_port}")) {
            continue;
        }
        if ![SERVER, FULL, LATER].iter().any(|a| a.to_string() == peer) {
            continue;
        }
        let state = common::ss_state(f[0]);
        let process = line
            .split("((\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("unknown");
        *m.entry((process.to_string(), port.to_string(), state))
            .or_default() += 1;
    }
    m
}

/// The same from the exporter's lab series.
fn exporter_counts(text: &str) -> Counts {
    let mut m = Counts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("netstat_outbound_connections{") else {
            continue;
        };
        let (labels, value) = rest.rsplit_once("} ").unwrap();
        let get = |k: &str| {
            labels
                .split("\",")
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        if get("remote_network") != "lab" {
            continue;
        }
        *m.entry((get("process"), get("remote_port"), get("state")))
            .or_default() += value.parse::<u64>().unwrap();
    }
    m
}

fn total(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("netstat_outbound_connections{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

fn lab_targets(addr: Ipv4Addr, port: u16, n: usize) -> Vec<SocketAddrV4> {
    vec![SocketAddrV4::new(addr, port); n]
}

#[test]
fn outbound_series_equal_ss_and_the_policy_flags_ircbot_and_telnet() {
    if !require_root() || !require_tool("ip") || !require_tool("ss") {
        return;
    }
    let lab = Lab::new();
    let _irc = hold_clients("ircbot", &lab_targets(SERVER, 6667, 2)).unwrap();
    let _telnet = hold_clients("telnet", &lab_targets(SERVER, 23, 1)).unwrap();
    let mut curl = lab_targets(SERVER, 443, 3);
    curl.extend(lab_targets(FULL, 443, 3));
    let _curl = hold_clients("curl", &curl).unwrap();
    // Handshakes done; the two beyond the full queue keep retrying in SYN-SENT.
    std::thread::sleep(Duration::from_millis(500));

    // ss before and after the scrape must agree: a stable moment.
    let (before, text, after) = loop {
        let before = ss_counts(lab.inbound_port());
        let text = lab.once(&[]);
        let after = ss_counts(lab.inbound_port());
        if before == after {
            break (before, text, after);
        }
    };
    assert_eq!(before, after);
    let got = exporter_counts(&text);
    assert_eq!(got, before, "exporter vs ss -tanp:\n{text}");
    let key = |p: &str, port: &str, s: &str| (p.to_string(), port.to_string(), s.to_string());
    assert_eq!(got.get(&key("ircbot", "6667", "established")), Some(&2));
    assert_eq!(got.get(&key("telnet", "23", "established")), Some(&1));
    assert_eq!(got.get(&key("curl", "443", "established")), Some(&4));
    assert_eq!(got.get(&key("curl", "443", "syn_sent")), Some(&2));
    // The inbound connection from the lab to the test's listener is not outbound: nothing of
    // the test's own process goes to the lab.
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert!(got.keys().all(|(p, _, _)| p != comm.trim()), "{got:?}");

    // Services and networks.
    for (process, port, service) in [
        ("ircbot", "6667", "ircd"),
        ("telnet", "23", "telnet"),
        ("curl", "443", "https"),
    ] {
        let labels = [
            ("process", process),
            ("remote_port", port),
            ("service", service),
            ("remote_network", "lab"),
            ("protocol", "tcp"),
        ];
        assert!(
            sample(&text, "netstat_outbound_connections", &labels).is_some(),
            "{labels:?}\n{text}"
        );
    }
    // The policy allows only 443.
    for (process, port, service) in [("ircbot", "6667", "ircd"), ("telnet", "23", "telnet")] {
        let labels = [
            ("process", process),
            ("remote_port", port),
            ("service", service),
            ("remote_network", "lab"),
        ];
        assert_eq!(
            sample(&text, "netstat_outbound_unexpected", &labels),
            Some(1.0),
            "{labels:?}\n{text}"
        );
    }
    assert!(
        sample(&text, "netstat_outbound_unexpected", &[("process", "curl")]).is_none(),
        "{text}"
    );
    assert!(sample(&text, "netstat_outbound_unexpected_connections", &[]).unwrap() >= 3.0);
    assert_eq!(
        sample(
            &text,
            "netstat_outbound_destinations",
            &[("remote_network", "lab")]
        ),
        Some(2.0)
    );

    // Folding conserves the total: the same moment with at most 2 series.
    let (unfolded, folded) = loop {
        let a = lab.once(&[]);
        let b = lab.once(&["--collector.connections.max=2"]);
        let c = lab.once(&[]);
        if total(&a) == total(&c) {
            break (a, b);
        }
    };
    assert_eq!(total(&folded), total(&unfolded), "{folded}");
    let series = folded
        .lines()
        .filter(|l| l.starts_with("netstat_outbound_connections{"))
        .count();
    assert!(
        series <= 2 || folded.contains("remote_port=\"other\""),
        "{folded}"
    );
    let n_folded = sample(&folded, "netstat_outbound_connections_folded", &[]).unwrap();
    assert!(n_folded > 0.0);
    let others: f64 = folded
        .lines()
        .filter(|l| {
            l.starts_with("netstat_outbound_connections{") && l.contains("process=\"other\"")
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(others, n_folded);
}

#[test]
fn a_new_destination_counts_once() {
    if !require_root() || !require_tool("ip") {
        return;
    }
    let lab = Lab::new();
    let _first = hold_clients("curl", &lab_targets(SERVER, 443, 1)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let args = lab.args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&args);
    let new = |text: &str| {
        sample(
            text,
            "netstat_outbound_new_destinations_total",
            &[("remote_network", "lab")],
        )
        .unwrap()
    };
    // The start-up collection was the baseline: SERVER is not new.
    let t0 = e.get("/metrics").text();
    assert_eq!(new(&t0), 0.0, "{t0}");
    let _second = hold_clients("curl", &lab_targets(LATER, 443, 1)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t1 = e.get("/metrics").text();
    assert_eq!(new(&t1), 1.0, "{t1}");
    // Connecting again to a known address: no change.
    let _third = hold_clients("curl", &lab_targets(LATER, 443, 1)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t2 = e.get("/metrics").text();
    assert_eq!(new(&t2), 1.0, "{t2}");
    assert_eq!(
        sample(
            &t2,
            "netstat_outbound_destinations",
            &[("remote_network", "lab")]
        ),
        Some(2.0)
    );
}

/// The shipped alert's expression, from alerts.yml.
fn alert_expr(name: &str) -> String {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml"),
    )
    .unwrap();
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    v["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .find(|r| r["alert"].as_str() == Some(name))
        .and_then(|r| r["expr"].as_str())
        .unwrap_or_else(|| panic!("no alert {name}"))
        .to_string()
}

#[test]
fn the_shipped_alert_names_ircbot_and_telnet_in_a_live_prometheus() {
    if !require_root() || !require_tool("ip") || !require_tool("prometheus") {
        return;
    }
    let lab = Lab::new();
    let _irc = hold_clients("ircbot", &lab_targets(SERVER, 6667, 2)).unwrap();
    let _telnet = hold_clients("telnet", &lab_targets(SERVER, 23, 1)).unwrap();
    let _curl = hold_clients("curl", &lab_targets(SERVER, 443, 2)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let args = lab.args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&args);
    let prom = common::prometheus::Prometheus::start(&[e.addr], 1);
    prom.wait_for_scrapes(3, 1);
    let expr = alert_expr("NetstatUnexpectedOutboundConnection");
    let result = prom.query(&expr).expect("the alert expression parses");
    let lab_flagged: BTreeMap<String, String> = result
        .iter()
        .filter(|r| r["metric"]["remote_network"].as_str() == Some("lab"))
        .map(|r| {
            (
                r["metric"]["process"].as_str().unwrap_or("").to_string(),
                r["metric"]["remote_port"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = [
        ("ircbot".to_string(), "6667".to_string()),
        ("telnet".to_string(), "23".to_string()),
    ]
    .into();
    assert_eq!(lab_flagged, want, "{result:?}");
    // And the alert fires (its `for:` is shortened in the test copy of the rules).
    let deadline = Instant::now() + Duration::from_secs(30);
    let firing = "ALERTS{alertname=\"NetstatUnexpectedOutboundConnection\",alertstate=\"firing\",remote_network=\"lab\"}";
    loop {
        let n = prom.query(firing).map(|r| r.len()).unwrap_or(0);
        if n == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alert not firing for ircbot and telnet: {:?}",
            prom.query(firing)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
