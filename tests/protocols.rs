//! Collector `protocols`: fixture (golden) tests over captures of two kernel generations and
//! broken files, and live tests that provoke the counters on loopback and compare the
//! exporter with the raw /proc files, nstat and netstat -s.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assert_golden, families_with_prefix, fixtures, require_tool, run_once, sample};
use netstat_exporter::collectors::protocols::{Spec, COUNTERS, GAUGES, TCP_CURRENT_ESTABLISHED};

/// Metric name prefixes of this collector.
const PREFIXES: &[&str] = &[
    "netstat_tcp_",
    "netstat_udp_",
    "netstat_udplite_",
    "netstat_ip_",
    "netstat_icmp_",
    "netstat_sockets_used",
    "netstat_sockets_in_use",
    "netstat_fragment_",
    "netstat_protocol_",
];

const ONLY_PROTOCOLS: [&str; 2] = ["--collector.disable-defaults", "--collector.protocols"];

fn page_size() -> i64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) }
}

struct Scrape {
    stdout: String,
    stderr: String,
}

fn scrape(extra: &[&str]) -> Scrape {
    let mut args: Vec<&str> = ONLY_PROTOCOLS.to_vec();
    args.extend_from_slice(extra);
    let out = run_once(&args);
    assert!(out.status.success(), "exporter failed: {out:?}");
    Scrape {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn success(text: &str) -> Option<f64> {
    sample(
        text,
        "netstat_scrape_collector_success",
        &[("collector", "protocols")],
    )
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn fixture_dir(case: &str) -> PathBuf {
    fixtures().join("protocols").join(case)
}

/// Run the collector over a fixture tree, compare with `<case>/<golden>` and return the
/// scrape for further assertions.
fn golden_case(case: &str, golden: &str, extra: &[&str], want_success: f64) -> Scrape {
    let dir = fixture_dir(case);
    let procfs = format!("--path.procfs={}", dir.join("proc").display());
    let mut args = vec![procfs.as_str()];
    args.extend_from_slice(extra);
    let s = scrape(&args);
    assert_eq!(
        success(&s.stdout),
        Some(want_success),
        "collector success for {case}; stderr:\n{}",
        s.stderr
    );
    let mine = families_with_prefix(&s.stdout, PREFIXES);
    assert!(!mine.is_empty(), "{case}: no protocol metrics at all");
    if page_size() == 4096 {
        assert_golden(&dir.join(golden), &mine);
    } else {
        eprintln!(
            "\n*** SKIPPED golden comparison for {case}: page size {} (golden files assume 4096) ***\n",
            page_size()
        );
    }
    s
}

#[test]
fn fixture_current_kernel() {
    let s = golden_case("current", "expected.prom", &[], 1.0);
    assert!(s.stderr.trim().is_empty(), "{}", s.stderr);
    let t = &s.stdout;
    // The capture has fields the exporter does not name (TCPAOGood, MPTcpExt ...): fine.
    assert!(sample(t, "netstat_tcp_receive_queue_drops_total", &[]).is_some());
    assert!(sample(t, "netstat_udp_memory_errors_total", &[("family", "ipv6")]).is_some());
    assert!(sample(t, "netstat_fragment_memory_bytes", &[("family", "ipv6")]).is_some());
    // No raw fields unless asked for.
    assert!(!t.contains("netstat_protocol_field"));
}

#[test]
fn fixture_current_kernel_raw_fields() {
    let s = golden_case(
        "current",
        "expected_fields.prom",
        &["--collector.protocols.fields=TcpExt_TCPSack.*|Ip6_InNoRoutes|Tcp_(MaxConn|RtoMin)|MPTcpExt_MPCurrEstab|IcmpMsg_.*|NoSuch_Field"],
        1.0,
    );
    let t = &s.stdout;
    assert!(
        sample(
            t,
            "netstat_protocol_field_total",
            &[("group", "TcpExt"), ("field", "TCPSackRecovery")]
        )
        .is_some(),
        "{t}"
    );
    assert_eq!(
        sample(
            t,
            "netstat_protocol_field_value",
            &[("group", "Tcp"), ("field", "MaxConn")]
        ),
        Some(-1.0)
    );
    assert!(sample(
        t,
        "netstat_protocol_field_total",
        &[("group", "Ip6"), ("field", "InNoRoutes")]
    )
    .is_some());
}

#[test]
fn fixture_old_kernel() {
    let s = golden_case("old_kernel", "expected.prom", &[], 1.0);
    let t = &s.stdout;
    assert_eq!(
        sample(t, "netstat_tcp_listen_overflows_total", &[]),
        Some(143.0)
    );
    assert_eq!(
        sample(t, "netstat_tcp_listen_drops_total", &[]),
        Some(151.0)
    );
    assert_eq!(
        sample(
            t,
            "netstat_udp_receive_buffer_errors_total",
            &[("family", "ipv4")]
        ),
        Some(58.0)
    );
    assert_eq!(
        sample(t, "netstat_tcp_memory_bytes", &[]),
        Some(9.0 * page_size() as f64)
    );
    // Fields this kernel generation did not have: absent, not zero, and no error.
    for absent in [
        "netstat_tcp_receive_queue_drops_total",
        "netstat_tcp_syn_retransmits_total",
        "netstat_tcp_zero_window_drops_total",
        "netstat_udp_memory_errors_total",
    ] {
        assert!(!t.contains(absent), "{absent} should be absent");
    }
    assert!(sample(
        t,
        "netstat_udp_checksum_errors_total",
        &[("family", "ipv6")]
    )
    .is_none());
    assert!(sample(
        t,
        "netstat_udp_checksum_errors_total",
        &[("family", "ipv4")]
    )
    .is_some());
}

#[test]
fn fixture_mismatched_header_and_values() {
    let s = golden_case("mismatched", "expected.prom", &[], 0.0);
    let t = &s.stdout;
    let snmp = fixture_dir("mismatched").join("proc/net/snmp");
    let snmp6 = fixture_dir("mismatched").join("proc/net/snmp6");
    // Every problem is logged with the file and the line.
    for want in [
        format!("{}:8: Tcp: header line 7 names 15 fields", snmp.display()),
        format!(
            "{}:9: Udp: header line not followed by its value line",
            snmp.display()
        ),
        format!("{}:75:", snmp6.display()),
    ] {
        assert!(
            s.stderr.contains(&want),
            "missing {want:?} in\n{}",
            s.stderr
        );
    }
    // The broken groups are gone, everything else is there.
    assert!(sample(t, "netstat_tcp_active_opens_total", &[]).is_none());
    assert!(sample(t, "netstat_tcp_current_established", &[]).is_none());
    assert!(sample(t, "netstat_udp_no_ports_total", &[("family", "ipv4")]).is_none());
    assert!(sample(t, "netstat_udp_no_ports_total", &[("family", "ipv6")]).is_none());
    assert!(sample(t, "netstat_udp_receive_errors_total", &[("family", "ipv6")]).is_some());
    assert!(sample(t, "netstat_tcp_listen_overflows_total", &[]).is_some());
    assert!(sample(t, "netstat_udplite_no_ports_total", &[("family", "ipv4")]).is_some());
    assert!(sample(t, "netstat_sockets_used", &[]).is_some());
    // Counted per source file.
    for source in ["net/snmp", "net/snmp6"] {
        assert!(
            sample(
                t,
                "netstat_scrape_errors_total",
                &[("collector", "protocols"), ("source", source)]
            )
            .is_some_and(|v| v >= 1.0),
            "{source}"
        );
    }
}

#[test]
fn fixture_non_numeric_value() {
    let s = golden_case("non_numeric", "expected.prom", &[], 0.0);
    let t = &s.stdout;
    let netstat = fixture_dir("non_numeric").join("proc/net/netstat");
    let want = format!(
        "{}:2: TcpExt ListenDrops: not a number: \\\"12x\\\"",
        netstat.display()
    );
    assert!(
        s.stderr.contains(&want),
        "missing {want:?} in\n{}",
        s.stderr
    );
    assert!(sample(t, "netstat_tcp_listen_drops_total", &[]).is_none());
    assert!(sample(t, "netstat_tcp_listen_overflows_total", &[]).is_some());
    assert!(sample(t, "netstat_tcp_time_wait_buckets", &[]).is_none());
    assert!(sample(t, "netstat_tcp_orphan_sockets", &[]).is_some());
}

#[test]
fn fixture_ipv6_disabled() {
    let s = golden_case("ipv6_disabled", "expected.prom", &[], 1.0);
    assert!(!s.stdout.contains("family=\"ipv6\""), "{}", s.stdout);
    assert!(s.stderr.trim().is_empty(), "{}", s.stderr);
    assert!(sample(
        &s.stdout,
        "netstat_udp_no_ports_total",
        &[("family", "ipv4")]
    )
    .is_some());
}

#[test]
fn fixture_missing_netstat_file() {
    let s = golden_case("missing_netstat", "expected.prom", &[], 0.0);
    let path = fixture_dir("missing_netstat").join("proc/net/netstat");
    assert!(
        s.stderr
            .contains(&format!("{}: file does not exist", path.display())),
        "{}",
        s.stderr
    );
    assert!(sample(&s.stdout, "netstat_tcp_listen_overflows_total", &[]).is_none());
    assert!(sample(&s.stdout, "netstat_tcp_active_opens_total", &[]).is_some());
}

// ---------------------------------------------------------------------------------------
// Raw /proc reading, independent of the exporter's parser
// ---------------------------------------------------------------------------------------

/// (group, field) -> value of the live kernel files, parsed naively.
fn raw_proc() -> BTreeMap<(String, String), i128> {
    let mut m = BTreeMap::new();
    for file in ["snmp", "netstat"] {
        let text = std::fs::read_to_string(format!("/proc/net/{file}")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let h: Vec<&str> = pair[0].split_whitespace().collect();
            let v: Vec<&str> = pair[1].split_whitespace().collect();
            assert_eq!(h[0], v[0]);
            let g = h[0].trim_end_matches(':');
            for (name, val) in h[1..].iter().zip(&v[1..]) {
                m.insert((g.to_string(), name.to_string()), val.parse().unwrap());
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/net/snmp6") {
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (name, val) = (it.next().unwrap(), it.next().unwrap());
            let i = name.find('6').unwrap() + 1;
            m.insert(
                (name[..i].to_string(), name[i..].to_string()),
                val.parse().unwrap(),
            );
        }
    }
    m
}

fn raw(group: &str, field: &str) -> i128 {
    raw_proc()[&(group.to_string(), field.to_string())]
}

/// Exported value of counter `name` (base name) with `labels`.
fn counter(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, &format!("{name}_total"), labels)
        .unwrap_or_else(|| panic!("{name}_total{labels:?} not exported"))
}

fn all_counter_specs() -> impl Iterator<Item = &'static Spec> {
    COUNTERS.iter().flat_map(|g| g.iter())
}

/// Every named counter equals the raw /proc field read around the same moment: the raw
/// value before the scrape <= exported <= the raw value after. Fields the kernel lacks are
/// not exported.
#[test]
fn live_every_named_counter_matches_proc() {
    let before = raw_proc();
    let s = scrape(&[]);
    let after = raw_proc();
    assert_eq!(success(&s.stdout), Some(1.0), "{}", s.stderr);
    let mut checked = 0;
    for spec in all_counter_specs() {
        for series in spec.series {
            let key = (series.group.to_string(), series.field.to_string());
            let exported = sample(
                &s.stdout,
                &format!("{}_total", spec.desc.name),
                series.labels,
            );
            match (before.get(&key), after.get(&key)) {
                (Some(&b), Some(&a)) => {
                    let e = exported.unwrap_or_else(|| {
                        panic!("{} {:?} missing for {key:?}", spec.desc.name, series.labels)
                    });
                    assert!(
                        b as f64 <= e && e <= a as f64,
                        "{}{:?}: exported {e}, raw {key:?} {b}..{a}",
                        spec.desc.name,
                        series.labels
                    );
                    checked += 1;
                }
                _ => assert!(
                    exported.is_none(),
                    "{} exported but the kernel has no {key:?}",
                    spec.desc.name
                ),
            }
        }
    }
    assert!(checked >= 60, "only {checked} series checked");
    // CurrEstab is a gauge: present, as a gauge.
    assert!(s.stdout.contains(&format!(
        "# TYPE {} gauge\n",
        TCP_CURRENT_ESTABLISHED.desc.name
    )));
    // sockstat gauges: present; memory in whole pages.
    for spec in GAUGES {
        assert!(
            s.stdout
                .contains(&format!("# TYPE {} gauge\n", spec.desc.name)),
            "{}",
            spec.desc.name
        );
    }
    let mem = sample(&s.stdout, "netstat_tcp_memory_bytes", &[]).unwrap();
    assert_eq!(mem % page_size() as f64, 0.0);
}

/// nstat's value of `name` (e.g. TcpExtListenOverflows), without touching its history.
fn nstat(names: &[&str]) -> BTreeMap<String, f64> {
    let out = Command::new("nstat")
        .args(["-a", "-s", "-z"])
        .args(names)
        .output()
        .expect("run nstat");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// The value `netstat -s` prints in front of `phrase`.
fn netstat_s(phrase: &str) -> f64 {
    let out = Command::new("netstat")
        .arg("-s")
        .output()
        .expect("netstat -s");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.contains(phrase))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0) // netstat -s leaves out zero lines
}

#[test]
fn live_listen_overflow_flood() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Shrink the backlog to 1: listen() again on a listening socket only changes it.
    // SAFETY: a valid listening socket fd.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 1) }, 0);
    let addr = listener.local_addr().unwrap();

    let s0 = scrape(&[]);
    let (o0, d0) = (
        counter(&s0.stdout, "netstat_tcp_listen_overflows", &[]),
        counter(&s0.stdout, "netstat_tcp_listen_drops", &[]),
    );

    // Never accept(): the queue holds backlog + 1 connections, every further SYN is
    // dropped and counted. A failed short connect sent exactly one SYN.
    let mut connected = Vec::new();
    let mut failed = 0u32;
    for _ in 0..12 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(150)) {
            Ok(s) => connected.push(s),
            Err(_) => failed += 1,
        }
    }
    assert!(
        failed >= 5,
        "only {failed} connects failed against a backlog-1 listener ({} connected)",
        connected.len()
    );

    let have_nstat = require_tool("nstat");
    let n_before = have_nstat.then(|| nstat(&["TcpExtListenOverflows", "TcpExtListenDrops"]));
    let raw_before = (
        raw("TcpExt", "ListenOverflows"),
        raw("TcpExt", "ListenDrops"),
    );
    let s1 = scrape(&[]);
    let raw_after = (
        raw("TcpExt", "ListenOverflows"),
        raw("TcpExt", "ListenDrops"),
    );
    let n_after = have_nstat.then(|| nstat(&["TcpExtListenOverflows", "TcpExtListenDrops"]));
    let o1 = counter(&s1.stdout, "netstat_tcp_listen_overflows", &[]);
    let d1 = counter(&s1.stdout, "netstat_tcp_listen_drops", &[]);

    eprintln!(
        "listen flood: {} connected, {failed} failed; listen_overflows +{}, listen_drops +{}",
        connected.len(),
        o1 - o0,
        d1 - d0
    );
    assert!(
        o1 - o0 >= f64::from(failed),
        "listen_overflows rose by {} for {failed} dropped SYNs",
        o1 - o0
    );
    assert!(
        d1 - d0 >= f64::from(failed),
        "listen_drops rose by {}",
        d1 - d0
    );
    assert!(d1 >= o1, "every overflow is also a listen drop");
    assert!(raw_before.0 as f64 <= o1 && o1 <= raw_after.0 as f64);
    assert!(raw_before.1 as f64 <= d1 && d1 <= raw_after.1 as f64);
    if let (Some(nb), Some(na)) = (n_before, n_after) {
        for (name, v) in [("TcpExtListenOverflows", o1), ("TcpExtListenDrops", d1)] {
            assert!(
                nb[name] <= v && v <= na[name],
                "{name}: exporter {v}, nstat {}..{}",
                nb[name],
                na[name]
            );
        }
    }
    if require_tool("netstat") {
        let before = netstat_s("times the listen queue of a socket overflowed");
        let s2 = scrape(&[]);
        let after = netstat_s("times the listen queue of a socket overflowed");
        let v = counter(&s2.stdout, "netstat_tcp_listen_overflows", &[]);
        assert!(
            before <= v && v <= after,
            "netstat -s {before}..{after}, exporter {v}"
        );
    }
    drop(connected);
}

fn udp_pair(family: &str) -> Option<(UdpSocket, SocketAddr)> {
    let any = if family == "ipv4" {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    match UdpSocket::bind(any) {
        Ok(s) => {
            let a = s.local_addr().unwrap();
            Some((s, a))
        }
        Err(e) => {
            assert!(family == "ipv6", "cannot bind {any}: {e}");
            eprintln!("\n*** SKIPPED ipv6 part: cannot bind {any}: {e} ***\n");
            None
        }
    }
}

#[test]
fn live_udp_to_closed_port_counts_no_ports() {
    const N: u32 = 25;
    for (family, group) in [("ipv4", "Udp"), ("ipv6", "Udp6")] {
        // A port that was just free: bind, note it, close.
        let Some((probe, closed)) = udp_pair(family) else {
            continue;
        };
        drop(probe);
        let (tx, _) = udp_pair(family).unwrap();
        let l = [("family", family)];
        let s0 = scrape(&[]);
        let before = counter(&s0.stdout, "netstat_udp_no_ports", &l);
        for _ in 0..N {
            tx.send_to(b"anyone there?", closed).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let r0 = raw(group, "NoPorts");
        let s1 = scrape(&[]);
        let r1 = raw(group, "NoPorts");
        let after = counter(&s1.stdout, "netstat_udp_no_ports", &l);
        assert!(
            after - before >= f64::from(N),
            "{family}: no_ports rose by {} for {N} datagrams",
            after - before
        );
        assert!(r0 as f64 <= after && after <= r1 as f64);
        if require_tool("nstat") {
            let name = format!("{group}NoPorts");
            let v = nstat(&[&name])[&name];
            assert!(v >= after, "nstat {name} {v} < exporter {after}");
        }
    }
}

#[test]
fn live_tiny_receive_buffer_counts_buffer_errors() {
    const N: u32 = 300;
    for (family, group) in [("ipv4", "Udp"), ("ipv6", "Udp6")] {
        let Some((rx, addr)) = udp_pair(family) else {
            continue;
        };
        let tiny: libc::c_int = 1; // the kernel rounds up to its minimum (a few KiB)
                                   // SAFETY: valid socket fd, option value points to a c_int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                rx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&tiny as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        let (tx, _) = udp_pair(family).unwrap();
        let l = [("family", family)];
        let s0 = scrape(&[]);
        let buf0 = counter(&s0.stdout, "netstat_udp_receive_buffer_errors", &l);
        let err0 = counter(&s0.stdout, "netstat_udp_receive_errors", &l);
        let payload = [0x55u8; 1000];
        for _ in 0..N {
            tx.send_to(&payload, addr).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        // What fit in the buffer was delivered; the rest was dropped.
        rx.set_nonblocking(true).unwrap();
        let mut queued = 0u32;
        let mut b = [0u8; 2048];
        while rx.recv(&mut b).is_ok() {
            queued += 1;
        }
        let dropped = N - queued;
        eprintln!("{family}: {queued} of {N} datagrams fit in the tiny receive buffer");
        assert!(dropped > N / 2, "only {dropped} of {N} dropped");
        let r0 = raw(group, "RcvbufErrors");
        let s1 = scrape(&[]);
        let r1 = raw(group, "RcvbufErrors");
        let buf1 = counter(&s1.stdout, "netstat_udp_receive_buffer_errors", &l);
        let err1 = counter(&s1.stdout, "netstat_udp_receive_errors", &l);
        assert!(
            buf1 - buf0 >= f64::from(dropped),
            "{family}: receive_buffer_errors rose by {} for {dropped} drops",
            buf1 - buf0
        );
        assert!(err1 - err0 >= f64::from(dropped), "InErrors includes them");
        assert!(r0 as f64 <= buf1 && buf1 <= r1 as f64);
    }
}

/// `<procfs>/<pid>/net` is read like `<procfs>/net`: same namespace, same values for
/// fields that do not move.
#[test]
fn reads_a_per_process_net_directory() {
    use netstat_exporter::source::snmp::ProtocolSource;
    let mut errors = Vec::new();
    let own = ProtocolSource::new("/proc/net").read(&mut errors);
    let pid = ProtocolSource::new(format!("/proc/{}/net", std::process::id())).read(&mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    for (g, f) in [("Tcp", "RtoMin"), ("Tcp", "MaxConn"), ("Ip", "DefaultTTL")] {
        assert_eq!(own.counters.get(g, f), pid.counters.get(g, f), "{g} {f}");
        assert!(own.counters.get(g, f).is_some());
    }
}

#[test]
fn promtool_accepts_a_full_scrape() {
    if !require_tool("promtool") {
        return;
    }
    let out = run_once(&["--collector.protocols.fields=.*"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("netstat_protocol_field_total{"),
        "raw fields missing"
    );
    assert!(text.contains("netstat_tcp_listen_overflows_total "));
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let res = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(
        res.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}
