//! Live tests of the sockets collector: real sockets on loopback, compared with what `ss`
//! reports for the same moment, and netlink compared with /proc.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use netstat_exporter::collectors::sockets::{self, SocketStats};
use netstat_exporter::source::inet::{Family, Protocol, UnixState, UnixType, TCP_STATE_NAMES};
use netstat_exporter::source::netns::Netns;
use netstat_exporter::source::sockets::{SocketSource, SourceMode};

/// Tests here change the host's socket table: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

type Snapshot = BTreeMap<String, u64>;

fn read_stats(mode: SourceMode) -> SocketStats {
    let ns = Netns::own("/proc".as_ref(), "/sys".as_ref(), true);
    let mut errors = Vec::new();
    let stats = sockets::read_stats(&SocketSource::new(mode), &ns, &mut errors);
    assert!(errors.is_empty(), "{mode:?} source errors: {errors:?}");
    stats
}

/// The part of the exporter's view that `ss` can also show.
fn exporter_snapshot(mode: SourceMode) -> Snapshot {
    let st = read_stats(mode);
    let mut m = Snapshot::new();
    for f in Family::ALL {
        for (i, name) in TCP_STATE_NAMES.iter().enumerate().skip(1) {
            m.insert(format!("tcp/{}/{name}", f.name()), st.tcp[f.index()][i]);
        }
        for p in [Protocol::Udp, Protocol::Raw] {
            let d = st.dgram[p.index()][f.index()];
            m.insert(format!("{}/{}/connected", p.name(), f.name()), d[0]);
            m.insert(format!("{}/{}/unconnected", p.name(), f.name()), d[1]);
        }
        for p in [Protocol::Tcp, Protocol::Udp, Protocol::Raw] {
            let q = st.queues[p.index()][f.index()];
            m.insert(format!("q/{}/{}/receive", p.name(), f.name()), q[0].bytes);
            m.insert(format!("q/{}/{}/send", p.name(), f.name()), q[1].bytes);
            m.insert(
                format!("qmax/{}/{}/receive", p.name(), f.name()),
                q[0].max.into(),
            );
            m.insert(
                format!("qn/{}/{}/receive", p.name(), f.name()),
                q[0].nonempty,
            );
        }
    }
    for (t, kind) in UnixType::ALL.iter().enumerate() {
        for (s, state) in UnixState::ALL.iter().enumerate() {
            if matches!(
                state,
                UnixState::Listening | UnixState::Connected | UnixState::Unconnected
            ) {
                m.insert(
                    format!("unix/{}/{}", kind.name(), state.name()),
                    st.unix[t][s],
                );
            }
        }
    }
    m
}

fn ss(args: &[&str]) -> String {
    let out = Command::new("ss").args(args).output().expect("run ss");
    assert!(out.status.success(), "ss {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn ss_state(s: &str) -> &'static str {
    match s {
        "ESTAB" => "established",
        "SYN-SENT" => "syn_sent",
        "SYN-RECV" => "syn_recv",
        "FIN-WAIT-1" => "fin_wait1",
        "FIN-WAIT-2" => "fin_wait2",
        "TIME-WAIT" => "time_wait",
        "UNCONN" => "close",
        "CLOSE-WAIT" => "close_wait",
        "LAST-ACK" => "last_ack",
        "LISTEN" => "listen",
        "CLOSING" => "closing",
        other => panic!("unknown ss state {other}"),
    }
}

/// The same view, from `ss`.
fn ss_snapshot() -> Snapshot {
    let mut m = Snapshot::new();
    // Start from the exporter's key set at zero so both maps have the same keys.
    for f in Family::ALL {
        for name in TCP_STATE_NAMES.iter().skip(1) {
            m.insert(format!("tcp/{}/{name}", f.name()), 0);
        }
        for p in ["udp", "raw"] {
            m.insert(format!("{p}/{}/connected", f.name()), 0);
            m.insert(format!("{p}/{}/unconnected", f.name()), 0);
        }
        for p in ["tcp", "udp", "raw"] {
            for k in ["q", "qmax", "qn"] {
                m.insert(format!("{k}/{p}/{}/receive", f.name()), 0);
            }
            m.insert(format!("q/{p}/{}/send", f.name()), 0);
        }
    }
    for (flag, fam) in [("-4", "ipv4"), ("-6", "ipv6")] {
        for (proto_flag, proto) in [("-t", "tcp"), ("-u", "udp"), ("-w", "raw")] {
            for line in ss(&["-H", "-a", "-n", proto_flag, flag]).lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 3 {
                    continue;
                }
                let state = ss_state(f[0]);
                let key = if proto == "tcp" {
                    format!("tcp/{fam}/{state}")
                } else if state == "established" {
                    format!("{proto}/{fam}/connected")
                } else {
                    format!("{proto}/{fam}/unconnected")
                };
                *m.entry(key).or_default() += 1;
                if state != "listen" || proto != "tcp" {
                    let rq: u64 = f[1].parse().unwrap();
                    let sq: u64 = f[2].parse().unwrap();
                    *m.entry(format!("q/{proto}/{fam}/receive")).or_default() += rq;
                    *m.entry(format!("q/{proto}/{fam}/send")).or_default() += sq;
                    let max = m.entry(format!("qmax/{proto}/{fam}/receive")).or_default();
                    *max = (*max).max(rq);
                    if rq > 0 {
                        *m.entry(format!("qn/{proto}/{fam}/receive")).or_default() += 1;
                    }
                }
            }
        }
    }
    for kind in ["stream", "dgram", "seqpacket"] {
        for state in ["listening", "connected", "unconnected"] {
            m.insert(format!("unix/{kind}/{state}"), 0);
        }
    }
    for line in ss(&["-H", "-a", "-x"]).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let kind = match f[0] {
            "u_str" => "stream",
            "u_dgr" => "dgram",
            "u_seq" => "seqpacket",
            other => panic!("unknown unix netid {other}"),
        };
        let state = match f[1] {
            "LISTEN" => "listening",
            "ESTAB" => "connected",
            "UNCONN" => "unconnected",
            other => panic!("unexpected unix state {other}"),
        };
        *m.entry(format!("unix/{kind}/{state}")).or_default() += 1;
    }
    m
}

fn diff(a: &Snapshot, b: &Snapshot) -> String {
    let mut out = String::new();
    for (k, v) in a {
        let w = b.get(k).copied().unwrap_or(u64::MAX);
        if *v != w {
            out.push_str(&format!("  {k}: {v} vs {w}\n"));
        }
    }
    out
}

/// Take ss / netlink / proc / ss snapshots until ss agrees with itself before and after
/// (a stable moment); then the exporter's sources must equal it exactly.
fn assert_matches_ss() -> Snapshot {
    let mut last = String::new();
    for _ in 0..30 {
        let before = ss_snapshot();
        let netlink = exporter_snapshot(SourceMode::Auto);
        let proc = exporter_snapshot(SourceMode::Proc);
        let after = ss_snapshot();
        if before != after {
            last = format!(
                "ss changed during the comparison:\n{}",
                diff(&before, &after)
            );
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if netlink == before && proc == before {
            return netlink;
        }
        last = format!(
            "netlink vs ss:\n{}proc vs ss:\n{}",
            diff(&netlink, &before),
            diff(&proc, &before)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("exporter and ss never agreed at a stable moment; last difference:\n{last}");
}

fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn tcp_udp_unix_states_and_queues_match_ss() {
    if !common::require_tool("ss") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());

    // TCP over IPv4: listener, established pairs, one in TIME_WAIT, one in CLOSE_WAIT.
    let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let a4 = l4.local_addr().unwrap();
    let c1 = TcpStream::connect(a4).unwrap();
    let (mut s1, _) = l4.accept().unwrap();
    // Unread data: s1 Recv-Q = 1000 bytes.
    let mut c1w = c1.try_clone().unwrap();
    c1w.write_all(&[7u8; 1000]).unwrap();

    // TIME_WAIT on the active closer.
    let tw_client = TcpStream::connect(a4).unwrap();
    let (mut tw_server, _) = l4.accept().unwrap();
    drop(tw_client);
    let mut buf = [0u8; 16];
    assert_eq!(tw_server.read(&mut buf).unwrap(), 0);
    drop(tw_server);

    // CLOSE_WAIT on the side that does not close.
    let cw_client = TcpStream::connect(a4).unwrap();
    let (cw_server, _) = l4.accept().unwrap();
    drop(cw_client);

    // IPv6 loopback and a dual-stack listener holding an IPv4-mapped connection.
    let l6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
    let c6 = TcpStream::connect(l6.local_addr().unwrap()).unwrap();
    let (s6, _) = l6.accept().unwrap();
    let dual = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
    let dport = dual.local_addr().unwrap().port();
    let mapped_client = TcpStream::connect(("127.0.0.1", dport)).unwrap();
    let (mapped_server, peer) = dual.accept().unwrap();
    assert!(
        matches!(peer, SocketAddr::V6(_)),
        "dual-stack accept gives a mapped v6 peer"
    );

    // UDP: unconnected with unread datagrams, connected, IPv6.
    let u_recv = UdpSocket::bind("127.0.0.1:0").unwrap();
    let u_send = UdpSocket::bind("127.0.0.1:0").unwrap();
    u_send.connect(u_recv.local_addr().unwrap()).unwrap();
    for _ in 0..3 {
        u_send.send(&[1u8; 200]).unwrap();
    }
    let u6 = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();

    // Unix: listener, connected pair, unbound datagram socket, one not yet accepted.
    let dir = std::env::temp_dir().join(format!("netstat_exporter_test_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let upath = dir.join("l.sock");
    let _ = std::fs::remove_file(&upath);
    let ul = UnixListener::bind(&upath).unwrap();
    let (ua, ub) = UnixStream::pair().unwrap();
    let ud = UnixDatagram::unbound().unwrap();
    let pending = UnixStream::connect(&upath).unwrap();
    settle();

    let seen = assert_matches_ss();
    eprintln!("exporter == ss: {seen:?}");
    // Our own sockets are counted (these lower bounds hold whatever else the host runs).
    assert!(seen["tcp/ipv4/listen"] >= 1);
    assert!(seen["tcp/ipv4/established"] >= 2);
    assert!(seen["tcp/ipv4/time_wait"] >= 1, "{seen:?}");
    assert!(seen["tcp/ipv4/close_wait"] >= 1, "{seen:?}");
    assert!(seen["tcp/ipv4/fin_wait2"] >= 1, "{seen:?}");
    assert!(seen["tcp/ipv6/listen"] >= 2);
    assert!(
        seen["tcp/ipv6/established"] >= 3,
        "v6 pair + mapped server side"
    );
    assert!(seen["q/tcp/ipv4/receive"] >= 1000);
    assert!(seen["qmax/tcp/ipv4/receive"] >= 1000);
    assert!(seen["udp/ipv4/connected"] >= 1);
    assert!(seen["udp/ipv4/unconnected"] >= 1);
    assert!(seen["udp/ipv6/unconnected"] >= 1);
    assert!(
        seen["q/udp/ipv4/receive"] >= 600,
        "3 datagrams of 200 bytes unread"
    );
    assert!(seen["unix/stream/listening"] >= 1);
    assert!(seen["unix/stream/connected"] >= 2);
    assert!(seen["unix/dgram/unconnected"] >= 1);
    // The connection waiting in the unix listener's queue: /proc shows it as connecting.
    let st = read_stats(SourceMode::Proc);
    assert!(st.unix[0][3] >= 1, "connecting unix stream socket");

    // Reading the data empties the queue again.
    let mut sink = vec![0u8; 1000];
    s1.read_exact(&mut sink).unwrap();
    settle();
    assert_matches_ss();

    drop((c1, c1w, s1, cw_server, c6, s6, mapped_client, mapped_server));
    drop((u_recv, u_send, u6, ul, ua, ub, ud, pending));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn send_queue_is_counted() {
    if !common::require_tool("ss") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    // The server never reads: once its receive buffer is full, the client's Send-Q fills.
    c.set_nonblocking(true).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    loop {
        match c.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 512 << 20, "never blocked");
    }
    settle();
    let seen = assert_matches_ss();
    assert!(seen["q/tcp/ipv4/send"] > 0, "{seen:?}");
    let st = read_stats(SourceMode::Auto);
    assert!(st.queues[0][0][1].nonempty >= 1);
    drop((c, s, l));
}

#[test]
fn thousands_of_connections_in_a_child_process() {
    if !common::require_tool("ss") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = read_stats(SourceMode::Auto).tcp[0][1];
    let holder = common::sockload::hold_tcp(4000).expect("hold connections");
    let seen = assert_matches_ss();
    assert!(seen["tcp/ipv4/established"] >= before.saturating_sub(50) + 8000);
    let via_proc = read_stats(SourceMode::Proc);
    assert!(via_proc.tcp[0][1] >= 8000);
    drop(holder);
}

#[test]
fn binary_reports_a_listener_it_can_see() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _l = TcpListener::bind("127.0.0.1:0").unwrap();
    for source in ["netlink", "proc", "auto"] {
        let out = common::run_once(&[
            "--collector.disable-defaults",
            "--collector.sockets",
            &format!("--collector.sockets.source={source}"),
        ]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let listen = common::sample(
            &text,
            "netstat_sockets",
            &[("protocol", "tcp"), ("family", "ipv4"), ("state", "listen")],
        )
        .unwrap();
        assert!(listen >= 1.0, "{source}: {listen}");
        let ok = common::sample(
            &text,
            "netstat_scrape_collector_success",
            &[("collector", "sockets")],
        );
        // Forced netlink fails on kernels without raw_diag (raw sockets); auto and proc
        // never do on a healthy host.
        if source != "netlink" {
            assert_eq!(ok, Some(1.0), "{source}:\n{text}");
        }
    }
}
