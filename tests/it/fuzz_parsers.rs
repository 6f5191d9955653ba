//! Property/fuzz tests for every parser of untrusted input in the tree: arbitrary bytes and
//! mutated real captures must never panic and never loop.
//!
//! Parsers covered: /proc/net/{tcp,tcp6,udp,udp6,udplite,udplite6,raw,raw6} lines,
//! /proc/net/unix lines, netlink `inet_diag_msg` messages, /proc/net/dev (whole stream),
//! /proc/net/{snmp,netstat} (header/value), snmp6 (name/value), sockstat{,6} (key/value),
//! the web config file (`--web.config.file`), /etc/services, /etc/passwd, the
//! expected-listeners file and `/proc/<pid>/fd` link targets (`socket:[inode]`).
//!
//! Bounded for CI: `FUZZ_CASES` cases per property (default 2000, a few seconds in all). Run
//! longer with e.g. `FUZZ_CASES=1000000 cargo test --release --test it fuzz_parsers`. A
//! watchdog aborts the run if, while a case runs, no case has finished for `FUZZ_CASE_SECONDS`
//! (default 10 s): that is the "never loops" check (the tests run in parallel threads, so the
//! limit is per suite progress, not per thread; the other tests of the binary are not
//! watched). A failing case is shrunk and printed by proptest; persistence
//! to `proptest-regressions/` is off (the tests never write to the source tree).

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

use netstat_exporter::expected::ExpectedListeners;
use netstat_exporter::networks::{unmap, Networks, Prefix};
use netstat_exporter::source::etc::{parse_passwd, parse_services};
use netstat_exporter::source::inet::{Family, Protocol};
use netstat_exporter::source::netdev::{parse_stream, NetDevParser};
use netstat_exporter::source::netlink::decode_inet_diag_msg;
use netstat_exporter::source::proc_net::{parse_inet_line, parse_unix_line};
use netstat_exporter::source::procfd::socket_inode;
use netstat_exporter::source::snmp::{
    parse_header_value, parse_key_value, parse_name_value, parse_value, Ctx, Fields,
};
use netstat_exporter::web_config::WebConfig;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        max_shrink_iters: 2000,
        ..Config::default()
    }
}

/// Seconds since the first case at which the last case started or finished.
static LAST_TICK: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();
/// Cases running now.
static IN_CASE: AtomicUsize = AtomicUsize::new(0);

/// A running case (see [`tick`]).
struct Case;

impl Drop for Case {
    fn drop(&mut self) {
        mark();
        IN_CASE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Start a case: the returned guard marks its end. The first call starts a watchdog thread
/// that aborts the process when a case is running and none has started or finished for
/// `FUZZ_CASE_SECONDS`: a parser that loops fails the run instead of hanging CI.
#[must_use]
fn tick() -> Case {
    mark();
    IN_CASE.fetch_add(1, Ordering::SeqCst);
    Case
}

/// Mark progress (starting the watchdog on the first call).
fn mark() {
    let epoch = *EPOCH.get_or_init(|| {
        let limit: u64 = std::env::var("FUZZ_CASE_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10);
        let epoch = Instant::now();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = epoch.elapsed().as_secs();
            if IN_CASE.load(Ordering::SeqCst) > 0
                && now.saturating_sub(LAST_TICK.load(Ordering::SeqCst)) > limit
            {
                eprintln!("fuzz_parsers: a case ran for more than {limit} s: parser loops?");
                std::process::abort();
            }
        });
        epoch
    });
    LAST_TICK.fetch_max(epoch.elapsed().as_secs(), Ordering::SeqCst);
}

fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Byte-level mutations of a real capture: flip, insert, delete, duplicate a range, truncate.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let ops = prop::collection::vec((0u8..6, any::<usize>(), any::<usize>(), any::<u8>()), 1..12);
    ops.prop_map(move |ops| {
        let mut b = seed.clone();
        for (op, a, c, byte) in ops {
            let len = b.len();
            let i = if len == 0 { 0 } else { a % len };
            match op {
                0 if len > 0 => b[i] = byte,
                1 => b.insert(i.min(len), byte),
                2 if len > 0 => {
                    b.remove(i);
                }
                3 if len > 0 => {
                    let j = (i + c % 64).min(len);
                    let dup = b[i..j].to_vec();
                    b.splice(i..i, dup);
                }
                4 => b.truncate(i),
                // Interesting bytes for these formats.
                _ if len > 0 => {
                    b[i] = [b' ', b'\n', b':', b'0', b'f', 0xff, b'-', b'|'][c % 8];
                }
                _ => {}
            }
        }
        b
    })
}

/// Arbitrary bytes or a mutation of one of the seeds.
fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        (0..n).prop_flat_map(move |k| mutated(seeds[k].clone())),
    ]
}

fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
}

fn inet_seeds() -> Vec<Vec<u8>> {
    ["tcp", "tcp6", "udp", "udp6", "udplite", "raw", "raw6"]
        .iter()
        .map(|f| fixture(&format!("sockets/basic/proc/net/{f}")))
        .collect()
}

/// A well-formed `inet_diag_msg` (IPv4 TCP listener) followed by two attributes.
fn netlink_seed(family: u8) -> Vec<u8> {
    let mut m = vec![0u8; 72];
    m[0] = family;
    m[1] = 10; // LISTEN
    m[4..6].copy_from_slice(&8080u16.to_be_bytes());
    m[8..12].copy_from_slice(&[127, 0, 0, 1]);
    m[60..64].copy_from_slice(&3u32.to_ne_bytes()); // rqueue
    m[68..72].copy_from_slice(&12345u32.to_ne_bytes()); // inode
                                                        // rtattr { len: u16, type: u16 } + payload, 4-byte aligned.
    for (ty, payload) in [(1u16, vec![0u8; 4]), (6u16, vec![1u8; 8])] {
        let len = (4 + payload.len()) as u16;
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&payload);
    }
    m
}

fn ctx() -> Ctx<'static> {
    Ctx {
        source: "net/fuzz",
        path: Path::new("/fuzz"),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn proc_net_inet_lines(data in input(inet_seeds())) {
        let _case = tick();
        for line in lines(&data) {
            for p in Protocol::ALL {
                for f in Family::ALL {
                    let _ = parse_inet_line(line, p, f);
                }
            }
        }
    }

    #[test]
    fn proc_net_unix_lines(data in input(vec![fixture("sockets/basic/proc/net/unix")])) {
        let _case = tick();
        for line in lines(&data) {
            let _ = parse_unix_line(line);
        }
    }

    #[test]
    fn netlink_inet_diag_msg(data in input(vec![netlink_seed(2), netlink_seed(10)])) {
        let _case = tick();
        for p in Protocol::ALL {
            let _ = decode_inet_diag_msg(&data, p);
        }
    }

    #[test]
    fn proc_net_dev(data in input(vec![
        fixture("interfaces/basic/proc/net/dev"),
        fixture("interfaces/old_kernel/proc/net/dev"),
    ])) {
        let _case = tick();
        let mut errors = Vec::new();
        let mut n = 0usize;
        parse_stream(Cursor::new(&data), Path::new("/fuzz/dev"), &mut errors, &mut |_, _| n += 1);
        // Every line yields at most one device.
        prop_assert!(n <= data.iter().filter(|&&b| b == b'\n').count() + 1);
        let mut parser = NetDevParser::new();
        for line in String::from_utf8_lossy(&data).lines() {
            let _ = parser.parse_line(line);
        }
    }

    #[test]
    fn proc_net_snmp_and_netstat(data in input(vec![
        fixture("protocols/current/proc/net/snmp"),
        fixture("protocols/current/proc/net/netstat"),
        fixture("protocols/old_kernel/proc/net/snmp"),
    ])) {
        let _case = tick();
        let text = String::from_utf8_lossy(&data);
        let (mut out, mut errors) = (Fields::new(), Vec::new());
        parse_header_value(&text, &ctx(), &mut out, &mut errors);
        for tok in text.split_whitespace() {
            let _ = parse_value(tok);
        }
    }

    #[test]
    fn proc_net_snmp6(data in input(vec![fixture("protocols/current/proc/net/snmp6")])) {
        let _case = tick();
        let text = String::from_utf8_lossy(&data);
        let (mut out, mut errors) = (Fields::new(), Vec::new());
        parse_name_value(&text, &ctx(), &mut out, &mut errors);
    }

    #[test]
    fn proc_net_sockstat(data in input(vec![
        fixture("protocols/current/proc/net/sockstat"),
        fixture("protocols/current/proc/net/sockstat6"),
    ])) {
        let _case = tick();
        let text = String::from_utf8_lossy(&data);
        let (mut out, mut errors) = (Fields::new(), Vec::new());
        parse_key_value(&text, &ctx(), &mut out, &mut errors);
    }

    #[test]
    fn etc_services_and_passwd(data in input(vec![
        std::fs::read("/etc/services").unwrap_or_else(|_| fixture("listeners/basic/rootfs/etc/services")),
        fixture("listeners/basic/rootfs/etc/passwd"),
    ])) {
        let _case = tick();
        let text = String::from_utf8_lossy(&data);
        let mut errors = Vec::new();
        let services = parse_services(&text, Path::new("/fuzz/services"), &mut errors);
        let users = parse_passwd(&text, Path::new("/fuzz/passwd"), &mut errors);
        // Every entry comes from a distinct line.
        let n = text.lines().count();
        prop_assert!(services.len() <= n && users.len() <= n);
    }

    #[test]
    fn expected_listeners_file(data in input(vec![fixture("listeners/expected/expected.yml")])) {
        let _case = tick();
        let text = String::from_utf8_lossy(&data);
        if let Ok(x) = ExpectedListeners::parse(&text, "fuzz.yml") {
            let _ = x.allows(Protocol::Tcp, "0.0.0.0".parse().unwrap(), 22, Some("sshd"));
        }
    }

    #[test]
    fn networks_file(data in input(vec![
        b"networks:\n  lab: [\"10.213.9.0/24\"]\n  corp: [\"10.0.0.0/8\", \"fd00::/8\"]\n".to_vec(),
    ])) {
        let _case = tick();
        let text = String::from_utf8_lossy(&data);
        if let Ok(n) = Networks::parse(&text, "fuzz.yml") {
            for a in ["10.213.9.1", "::ffff:10.0.0.1", "fd00::1", "8.8.8.8", "::1"] {
                let class = n.classify(a.parse().unwrap());
                prop_assert!(class < n.len());
                prop_assert!(!n.name(class).is_empty());
            }
        }
    }

    /// The matcher against a reference: a prefix of length `len` holds an address exactly
    /// when their first `len` bits agree.
    #[test]
    fn cidr_matcher(v4 in any::<bool>(), net in any::<u128>(), addr in any::<u128>(), len in 0u8..=128, text in "[0-9a-f:./]{0,48}") {
        let _case = tick();
        let _ = Prefix::parse(&text);
        let (max, net, addr) = if v4 {
            (32u8, net & 0xffff_ffff, addr & 0xffff_ffff)
        } else {
            (128u8, net, addr)
        };
        let len = len % (max + 1);
        let (p, ip): (String, IpAddr) = if v4 {
            (
                format!("{}/{len}", Ipv4Addr::from(net as u32)),
                IpAddr::V4(Ipv4Addr::from(addr as u32)),
            )
        } else {
            (
                format!("{}/{len}", Ipv6Addr::from(net)),
                IpAddr::V6(Ipv6Addr::from(addr)),
            )
        };
        let prefix = Prefix::parse(&p).unwrap();
        let shift = u32::from(max - len);
        let same = if len == 0 { true } else { (net >> shift) == (addr >> shift) };
        // An IPv4-mapped IPv6 address is unmapped before matching, as the classifier does: it
        // is then an IPv4 address, which no IPv6 prefix holds.
        let expected = if unmap(ip) != ip { false } else { same };
        prop_assert_eq!(prefix.contains(unmap(ip)), expected, "{} {}", p, ip);
        // An address of the other family never matches, even a /0.
        let other: IpAddr = if v4 { "::1".parse().unwrap() } else { "127.0.0.1".parse().unwrap() };
        prop_assert!(!prefix.contains(other));
    }

    #[test]
    fn fd_link_targets(data in input(vec![b"socket:[12345]".to_vec(), b"pipe:[1]".to_vec()])) {
        let _case = tick();
        if let Some(inode) = socket_inode(&data) {
            prop_assert_eq!(format!("socket:[{inode}]").len() <= data.len(), true);
        }
    }

    #[test]
    fn web_config_file(data in input(vec![fixture("security/web-config.yml")])) {
        let _case = tick();
        let text = String::from_utf8_lossy(&data);
        // The TLS files named do not exist here: errors are expected, panics are not.
        // Loading never runs bcrypt itself, so a mutated cost cannot make a case slow.
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/security");
        let _ = WebConfig::from_yaml(&text, &base);
    }
}

/// The seed web config itself is valid apart from the TLS files: strip the TLS section and it
/// loads (so the fuzzing above starts from a real, accepted file).
#[test]
fn web_config_seed_is_valid() {
    let text = String::from_utf8(fixture("security/web-config.yml")).unwrap();
    let no_tls: String = {
        let mut out = String::new();
        let mut skip = false;
        for l in text.lines() {
            if l.starts_with("tls_server_config:") {
                skip = true;
                continue;
            }
            if skip && (l.starts_with(' ') || l.starts_with('\t')) {
                continue;
            }
            skip = false;
            out.push_str(l);
            out.push('\n');
        }
        out
    };
    let c = WebConfig::from_yaml(&no_tls, Path::new("/")).unwrap();
    assert!(c.auth_required());
    assert_eq!(c.headers().len(), 5);
    // With TLS: the only problem is the missing certificate file.
    let e = WebConfig::from_yaml(&text, Path::new("/nonexistent")).unwrap_err();
    assert!(e.contains("cert_file"), "{e}");
}
