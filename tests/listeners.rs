//! Live tests of the listeners collector: listeners held by a child process with a known
//! name, compared with `ss -lntup`; accept queue and limit, connections, SO_REUSEPORT, UDP
//! drops; an unprivileged run; the expected-listeners policy; golden output from a fixture.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::{assert_golden, families_with_prefix, fixtures, run_once, sample};

static SERIAL: Mutex<()> = Mutex::new(());

const CHILD_NAME: &str = "nsx-listener";

/// Sockets created here, then handed to a forked child named [`CHILD_NAME`] that keeps
/// them (the test process closes its copies, so the child is the only owner). On command
/// byte `a` the child accepts `accepts` connections on `accept_fd`; it exits when the control
/// pipe closes.
struct Child {
    pid: libc::pid_t,
    ctl: RawFd,
    ready: RawFd,
}

impl Child {
    fn spawn(fds: Vec<RawFd>, accept_fd: RawFd, accepts: usize) -> Child {
        let mut ctl = [0 as libc::c_int; 2];
        let mut ready = [0 as libc::c_int; 2];
        // SAFETY: pipe/fork/prctl/accept/read/write/_exit only; no allocation in the child.
        unsafe {
            assert_eq!(libc::pipe(ctl.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(ready.as_mut_ptr()), 0);
            let name = std::ffi::CString::new(CHILD_NAME).unwrap();
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::close(ctl[1]);
                libc::close(ready[0]);
                libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
                let one = 1u8;
                libc::write(ready[1], (&one as *const u8).cast(), 1);
                let mut b = 0u8;
                while libc::read(ctl[0], (&mut b as *mut u8).cast(), 1) == 1 {
                    if b == b'a' {
                        for _ in 0..accepts {
                            libc::accept(accept_fd, std::ptr::null_mut(), std::ptr::null_mut());
                        }
                        libc::write(ready[1], (&one as *const u8).cast(), 1);
                    }
                }
                libc::_exit(0);
            }
            libc::close(ctl[0]);
            libc::close(ready[1]);
            for fd in fds {
                libc::close(fd);
            }
            let mut b = 0u8;
            assert_eq!(libc::read(ready[0], (&mut b as *mut u8).cast(), 1), 1);
            // Keep ready[0] to wait for the accept acknowledgement.
            Child {
                pid,
                ctl: ctl[1],
                ready: ready[0],
            }
        }
    }

    fn accept_now(&self) {
        let (ctl, ready) = (self.ctl, self.ready);
        // SAFETY: our own pipe ends.
        unsafe {
            let a = b'a';
            assert_eq!(libc::write(ctl, (&a as *const u8).cast(), 1), 1);
            let mut b = 0u8;
            assert_eq!(libc::read(ready, (&mut b as *mut u8).cast(), 1), 1);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: closing our pipe ends makes the child exit; reap it.
        unsafe {
            libc::close(self.ctl);
            libc::close(self.ready);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

fn tcp_listener(addr: &str, backlog: i32, reuseport: bool) -> (RawFd, SocketAddr) {
    let addr: SocketAddr = addr.parse().unwrap();
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket calls on a fresh fd.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let one: libc::c_int = 1;
        if reuseport {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEPORT,
                (&one as *const libc::c_int).cast(),
                4,
            );
        }
        let std_l = bind_fd(fd, addr);
        assert_eq!(libc::listen(fd, backlog), 0);
        (fd, std_l)
    }
}

/// bind(2) to `addr`; returns the bound address (with the port the kernel chose).
unsafe fn bind_fd(fd: RawFd, addr: SocketAddr) -> SocketAddr {
    let rc = match addr {
        SocketAddr::V4(a) => {
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = a.port().to_be();
            sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), 16)
        }
        SocketAddr::V6(a) => {
            let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = a.port().to_be();
            sa.sin6_addr.s6_addr = a.ip().octets();
            libc::bind(fd, (&sa as *const libc::sockaddr_in6).cast(), 28)
        }
    };
    assert_eq!(rc, 0, "bind {addr}: {}", std::io::Error::last_os_error());
    local_addr(fd)
}

fn local_addr(fd: RawFd) -> SocketAddr {
    // SAFETY: getsockname into a large enough buffer.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        assert_eq!(
            libc::getsockname(
                fd,
                (&mut ss as *mut libc::sockaddr_storage).cast(),
                &mut len
            ),
            0
        );
        if i32::from(ss.ss_family) == libc::AF_INET {
            let sa = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
            SocketAddr::from((sa.sin_addr.s_addr.to_ne_bytes(), u16::from_be(sa.sin_port)))
        } else {
            let sa = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
            SocketAddr::from((sa.sin6_addr.s6_addr, u16::from_be(sa.sin6_port)))
        }
    }
}

struct Setup {
    child: Child,
    backlog5: SocketAddr,
    v6: SocketAddr,
    dual: SocketAddr,
    reuse: SocketAddr,
    named: SocketAddr,
    udp: SocketAddr,
    rootfs: common::TempDir,
}

fn setup() -> Setup {
    let (fd1, backlog5) = tcp_listener("127.0.0.1:0", 5, false);
    let (fd2, v6) = tcp_listener("[::1]:0", 128, false);
    let (fd3, dual) = tcp_listener("[::]:0", 128, false);
    let (fd4, reuse) = tcp_listener("127.0.0.1:0", 16, true);
    let (fd5, _) = tcp_listener(&reuse.to_string(), 16, true);
    let (fd6, named) = tcp_listener("127.0.0.1:0", 128, false);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap();
    // A tiny receive buffer that nobody reads: datagrams are dropped quickly.
    // SAFETY: setsockopt on our socket.
    unsafe {
        let size: libc::c_int = 1;
        libc::setsockopt(
            udp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            4,
        );
    }
    let fd7 = udp.into_raw_fd();
    let rootfs = common::TempDir::new("rootfs");
    std::fs::create_dir_all(rootfs.0.join("etc")).unwrap();
    std::fs::write(
        rootfs.0.join("etc/services"),
        format!(
            "# test services\nnsx-test\t{}/tcp\nnsx-udp {}/udp\n",
            named.port(),
            udp_addr.port()
        ),
    )
    .unwrap();
    std::fs::write(
        rootfs.0.join("etc/passwd"),
        "testroot:x:0:0:root:/root:/bin/sh\n",
    )
    .unwrap();
    let child = Child::spawn(vec![fd1, fd2, fd3, fd4, fd5, fd6, fd7], fd1, 3);
    Setup {
        child,
        backlog5,
        v6,
        dual,
        reuse,
        named,
        udp: udp_addr,
        rootfs,
    }
}

fn scrape(args: &[&str]) -> String {
    let out = run_once(args);
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn labels_of(addr: SocketAddr, proto: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("protocol", proto.to_string()),
        (
            "family",
            if addr.is_ipv4() { "ipv4" } else { "ipv6" }.to_string(),
        ),
        ("address", addr.ip().to_string()),
        ("port", addr.port().to_string()),
    ]
}

fn get(text: &str, name: &str, l: &[(&'static str, String)]) -> Option<f64> {
    let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sample(text, name, &l)
}

/// (protocol, address, port) -> number of sockets, from `ss -Hlntu`.
fn ss_listeners() -> BTreeSet<(String, String, u16, usize)> {
    let out = Command::new("ss")
        .args(["-H", "-l", "-n", "-t", "-u"])
        .output()
        .unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let proto = f[0].to_string();
        let local = f[4];
        let (addr, port) = local.rsplit_once(':').unwrap();
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr = addr.split('%').next().unwrap().to_string();
        // ss prints a dual-stack IPv6 wildcard listener as `*`.
        let addr = if addr == "*" { "::".to_string() } else { addr };
        *counts
            .entry((proto, addr, port.parse::<u16>().unwrap()))
            .or_insert(0usize) += 1;
    }
    counts
        .into_iter()
        .map(|((p, a, port), n)| (p, a, port, n))
        .collect()
}

fn exporter_listeners(text: &str) -> BTreeSet<(String, String, u16, usize)> {
    let mut out = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("netstat_listener_sockets{"))
    {
        let get = |k: &str| {
            let start = line.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
            line[start..].split('"').next().unwrap().to_string()
        };
        let proto = get("protocol");
        if proto == "udplite" {
            continue; // ss does not show UDP-Lite
        }
        let n: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
        out.insert((proto, get("address"), get("port").parse().unwrap(), n));
    }
    out
}

#[test]
fn listeners_with_owner_service_user_queues_and_ss_agreement() {
    if !common::require_tool("ss") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = setup();
    let rootfs = format!("--path.rootfs={}", s.rootfs.0.display());
    let args = [
        "--collector.disable-defaults",
        "--collector.listeners",
        rootfs.as_str(),
    ];

    // Fill the backlog-5 listener's accept queue with 3 connections nobody accepts.
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(s.backlog5).unwrap())
        .collect();
    // A connection through the dual-stack listener over IPv4 (a ::ffff: mapped socket).
    let mapped = TcpStream::connect(("127.0.0.1", s.dual.port())).unwrap();
    // Datagrams to the UDP listener that never reads.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..200 {
        let _ = sender.send_to(&[0u8; 1000], s.udp);
    }
    std::thread::sleep(Duration::from_millis(200));

    let text = scrape(&args);
    assert_eq!(
        sample(
            &text,
            "netstat_scrape_collector_success",
            &[("collector", "listeners")]
        ),
        Some(1.0),
        "{text}"
    );
    let tcp = |a| labels_of(a, "tcp");
    for addr in [s.backlog5, s.v6, s.dual, s.reuse, s.named] {
        let mut info = tcp(addr);
        info.push(("process", CHILD_NAME.into()));
        info.push(("user", "testroot".into()));
        assert_eq!(
            get(&text, "netstat_listener_info", &info),
            Some(1.0),
            "{addr}\n{text}"
        );
    }
    let mut named = tcp(s.named);
    named.push(("service", "nsx-test".into()));
    assert_eq!(get(&text, "netstat_listener_info", &named), Some(1.0));
    assert_eq!(
        get(&text, "netstat_listener_sockets", &tcp(s.reuse)),
        Some(2.0)
    );
    assert_eq!(
        get(&text, "netstat_listener_sockets", &tcp(s.backlog5)),
        Some(1.0)
    );
    assert_eq!(
        get(&text, "netstat_listener_accept_queue", &tcp(s.backlog5)),
        Some(3.0)
    );
    assert_eq!(
        get(
            &text,
            "netstat_listener_accept_queue_limit",
            &tcp(s.backlog5)
        ),
        Some(5.0)
    );
    assert_eq!(
        get(&text, "netstat_listener_accept_queue_limit", &tcp(s.reuse)),
        Some(32.0)
    );
    assert_eq!(
        get(&text, "netstat_listener_connections", &tcp(s.dual)),
        Some(1.0)
    );
    let udp = labels_of(s.udp, "udp");
    let mut udp_info = udp.clone();
    udp_info.push(("service", "nsx-udp".into()));
    udp_info.push(("process", CHILD_NAME.into()));
    assert_eq!(get(&text, "netstat_listener_info", &udp_info), Some(1.0));
    let drops = get(&text, "netstat_listener_drops_total", &udp).unwrap();
    assert!(
        drops > 0.0,
        "datagrams to a full socket are dropped: {drops}"
    );
    assert!(get(&text, "netstat_listener_receive_queue_bytes", &udp).unwrap() > 0.0);

    // The /proc source sees the same, without the limit (that needs netlink).
    let mut proc_args = args.to_vec();
    proc_args.push("--collector.sockets.source=proc");
    let via_proc = scrape(&proc_args);
    assert_eq!(
        get(&via_proc, "netstat_listener_accept_queue", &tcp(s.backlog5)),
        Some(3.0)
    );
    assert_eq!(
        get(
            &via_proc,
            "netstat_listener_accept_queue_limit",
            &tcp(s.backlog5)
        ),
        None
    );
    assert_eq!(
        get(&via_proc, "netstat_listener_drops_total", &udp),
        Some(drops)
    );

    // After the child accepts them, the queue is empty and the connections are counted.
    s.child.accept_now();
    std::thread::sleep(Duration::from_millis(100));
    let text = scrape(&args);
    assert_eq!(
        get(&text, "netstat_listener_accept_queue", &tcp(s.backlog5)),
        Some(0.0)
    );
    assert_eq!(
        get(&text, "netstat_listener_connections", &tcp(s.backlog5)),
        Some(3.0)
    );

    // Same listener set (and socket counts) as ss at a stable moment.
    let mut last = String::new();
    let mut agreed = false;
    for _ in 0..20 {
        let before = ss_listeners();
        let ours = exporter_listeners(&scrape(&args));
        let after = ss_listeners();
        if before == after && ours == before {
            agreed = true;
            break;
        }
        last = format!("ss: {before:?}\nexporter: {ours:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(agreed, "listener sets differ:\n{last}");

    // ss -p names the same process.
    let ssp = Command::new("ss")
        .args([
            "-H",
            "-l",
            "-n",
            "-t",
            "-p",
            "sport",
            "=",
            &format!(":{}", s.named.port()),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ssp.stdout).contains(&format!("\"{CHILD_NAME}\"")));
    drop((clients, mapped, sender));
}

/// Run the listeners collector once as `nobody` with the given capabilities (`-all`: none).
fn scrape_as_nobody(caps: &str) -> String {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps={caps}"))
        .args((caps != "-all").then(|| format!("--ambient-caps={caps}")))
        .arg(common::exporter_bin())
        .args([
            "--once",
            "--collector.disable-defaults",
            "--collector.listeners",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn unprivileged_run_shows_other_users_listeners_as_unknown() {
    if !common::require_root() || !common::require_tool("setpriv") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = setup();
    let text = scrape_as_nobody("-all");
    assert_eq!(
        sample(
            &text,
            "netstat_scrape_collector_success",
            &[("collector", "listeners")]
        ),
        Some(1.0),
        "{text}"
    );
    let mut info = labels_of(s.named, "tcp");
    info.push(("process", "unknown".into()));
    assert_eq!(
        get(&text, "netstat_listener_info", &info),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn expected_listeners_flag_what_is_not_allowed() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = setup();
    let policy = s.rootfs.0.join("expected.yml");
    std::fs::write(
        &policy,
        format!(
            "listeners:\n  - protocol: tcp\n    port: {}\n    process: {CHILD_NAME}\n  - port: \"{}-{}\"\n",
            s.named.port(),
            s.v6.port(),
            s.v6.port()
        ),
    )
    .unwrap();
    let text = scrape(&[
        "--collector.disable-defaults",
        "--collector.listeners",
        &format!("--collector.listeners.expected={}", policy.display()),
    ]);
    let tcp = |a| labels_of(a, "tcp");
    assert_eq!(
        get(&text, "netstat_listener_unexpected", &tcp(s.named)),
        None
    );
    assert_eq!(get(&text, "netstat_listener_unexpected", &tcp(s.v6)), None);
    assert_eq!(
        get(&text, "netstat_listener_unexpected", &tcp(s.backlog5)),
        Some(1.0)
    );
    assert_eq!(
        get(
            &text,
            "netstat_listener_unexpected",
            &labels_of(s.udp, "udp")
        ),
        Some(1.0)
    );
    assert!(sample(&text, "netstat_listeners_unexpected", &[]).unwrap() >= 4.0);

    // A malformed file stops the exporter at start-up, naming file and line.
    std::fs::write(&policy, "listeners:\n  - protocol: tcp\n    port: 70000\n").unwrap();
    let out = Command::new(common::exporter_bin())
        .arg(format!(
            "--collector.listeners.expected={}",
            policy.display()
        ))
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("{}:3:", policy.display())), "{err}");
    drop(s);
}

#[test]
fn filters_and_cap() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = setup();
    let base = ["--collector.disable-defaults", "--collector.listeners"];
    let mut a = base.to_vec();
    let excl = format!("--collector.listeners.port-exclude={}", s.named.port());
    a.push(&excl);
    let text = scrape(&a);
    assert_eq!(
        get(
            &text,
            "netstat_listener_sockets",
            &labels_of(s.named, "tcp")
        ),
        None
    );
    assert!(get(&text, "netstat_listener_sockets", &labels_of(s.v6, "tcp")).is_some());

    let mut a = base.to_vec();
    a.push("--collector.listeners.address-exclude=::.*");
    let text = scrape(&a);
    assert_eq!(
        get(&text, "netstat_listener_sockets", &labels_of(s.v6, "tcp")),
        None
    );
    assert!(get(
        &text,
        "netstat_listener_sockets",
        &labels_of(s.named, "tcp")
    )
    .is_some());

    let mut a = base.to_vec();
    a.push("--collector.listeners.max=2");
    let text = scrape(&a);
    let exported = text
        .lines()
        .filter(|l| l.starts_with("netstat_listener_info{"))
        .count();
    assert_eq!(exported, 2);
    assert!(sample(&text, "netstat_listeners_dropped", &[]).unwrap() >= 5.0);
    drop(s);
}

/// The fixture's fake processes: 50 (systemd) and 100 (sshd) share socket 626, the lowest pid
/// wins; 4242 (telnetd) owns 22701; 777 has no fd directory (exited mid-walk); 778 has
/// malformed `socket:[` links; 779 holds 22708 but has no comm (gone before its name was
/// read): 22708 stays `unknown`, and none of it is an error.
#[test]
fn fixture_golden_with_fake_fd_links() {
    let root = fixtures().join("listeners/basic");
    let out = run_once(&[
        "--collector.disable-defaults",
        "--collector.listeners",
        &format!("--path.procfs={}", root.join("proc").display()),
        &format!("--path.rootfs={}", root.join("rootfs").display()),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_golden(
        &root.join("expected.prom"),
        &families_with_prefix(
            &text,
            &[
                "netstat_listener_info",
                "netstat_listener_sockets",
                "netstat_listener_accept",
                "netstat_listener_connections",
                "netstat_listener_receive",
                "netstat_listener_drops",
                "netstat_listeners",
                "netstat_scrape_collector_success",
            ],
        ),
    );
    assert_eq!(
        sample(
            &text,
            "netstat_scrape_collector_success",
            &[("collector", "listeners")]
        ),
        Some(1.0)
    );
}

#[test]
fn own_listener_is_seen_by_served_exporter_after_cache() {
    // A served exporter: first scrape walks, the next ones use the verified cache.
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let e = common::Exporter::start(&["--collector.disable-defaults", "--collector.listeners"]);
    for _ in 0..3 {
        assert_eq!(e.get("/metrics").status, 200);
    }
    let text = e.get("/metrics").text();
    let cached = sample(
        &text,
        "netstat_listener_owner_lookups_total",
        &[("result", "cached")],
    )
    .unwrap();
    let walks = sample(&text, "netstat_listener_owner_walks_total", &[]).unwrap();
    assert!(cached >= 3.0, "{text}");
    assert!(walks >= 1.0);
    let mut info = labels_of(l.local_addr().unwrap(), "tcp");
    info.push((
        "process",
        std::fs::read_to_string("/proc/self/comm")
            .unwrap()
            .trim()
            .to_string(),
    ));
    assert_eq!(
        get(&text, "netstat_listener_info", &info),
        Some(1.0),
        "{text}"
    );
    let _ = std::io::stderr().flush();
}

/// Which privileges name another user's processes: CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE,
/// both (the systemd unit and the DaemonSet grant exactly these); either alone is not enough.
#[test]
fn capabilities_needed_for_process_names() {
    if !common::require_root() || !common::require_tool("setpriv") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = setup();
    for (caps, expect) in [
        ("+dac_read_search", "unknown"),
        ("+sys_ptrace", "unknown"),
        ("+dac_read_search,+sys_ptrace", CHILD_NAME),
    ] {
        let text = scrape_as_nobody(caps);
        let mut info = labels_of(s.named, "tcp");
        info.push(("process", expect.into()));
        assert_eq!(
            get(&text, "netstat_listener_info", &info),
            Some(1.0),
            "{caps}: {text}"
        );
    }
}
