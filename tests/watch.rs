//! The watch (`--watch.interval`, default 1 s) against the live kernel, with DEFAULT flags: a
//! new process (named with prctl) opens a TCP listener and a UDP socket; `/api/v1/events`
//! records both opened, with process, user and pid, within 2 s and without any scrape; closed
//! likewise. The same in a network namespace the test makes (`--netns=all`), in a runc
//! container in a kubepods cgroup (container id and pod uid on the event and on
//! `netstat_listener_info`), and for a host process in a kubepods cgroup (a hostNetwork pod,
//! `--netns=self`). A listener that lives 1.5 s between two scrapes 30 s apart is in the log.

mod common;

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::netns::TestNetns;
use common::oci::Container;
use common::{require_root, require_tool, sample, Exporter};

/// A forked process named `name` that (in the namespace of `netns`, if given) listens on TCP
/// 127.0.0.1 and binds a UDP socket on 127.0.0.1 (ports chosen by the kernel), closes both
/// on [`Listener::close`] and exits when dropped.
struct Listener {
    pid: libc::pid_t,
    ctl: RawFd,
    ready: RawFd,
    tcp: u16,
    udp: u16,
    opened: Instant,
}

impl Listener {
    fn spawn(name: &str, netns: Option<&str>) -> Listener {
        let mut comm = [0u8; 16];
        for (d, s) in comm.iter_mut().zip(name.bytes().take(15)) {
            *d = s;
        }
        let path = netns.map(|p| std::ffi::CString::new(p).unwrap());
        // SAFETY: sockaddr_in is plain old data; all-zero is valid.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let alen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let mut ctl = [0 as libc::c_int; 2];
        let mut ready = [0 as libc::c_int; 2];
        // SAFETY: pipe/fork, then only system calls in the child (everything it uses was
        // built before the fork), which ends with _exit.
        unsafe {
            assert_eq!(libc::pipe(ctl.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(ready.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::close(ctl[1]);
                libc::close(ready[0]);
                if let Some(p) = &path {
                    let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    if fd < 0 || libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                        libc::_exit(2);
                    }
                }
                libc::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong, 0, 0, 0);
                let t = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                let u = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                if t < 0
                    || u < 0
                    || libc::bind(t, (&addr as *const libc::sockaddr_in).cast(), alen) < 0
                    || libc::listen(t, 16) < 0
                    || libc::bind(u, (&addr as *const libc::sockaddr_in).cast(), alen) < 0
                {
                    libc::_exit(2);
                }
                let mut ports = [0u16; 2];
                for (i, fd) in [t, u].into_iter().enumerate() {
                    let mut a: libc::sockaddr_in = std::mem::zeroed();
                    let mut l = alen;
                    libc::getsockname(fd, (&mut a as *mut libc::sockaddr_in).cast(), &mut l);
                    ports[i] = u16::from_be(a.sin_port);
                }
                libc::write(ready[1], ports.as_ptr().cast(), 4);
                let mut b = 0u8;
                while libc::read(ctl[0], (&mut b as *mut u8).cast(), 1) == 1 {
                    if b == b'c' {
                        libc::close(t);
                        libc::close(u);
                        libc::write(ready[1], (&b as *const u8).cast(), 1);
                    }
                }
                libc::_exit(0);
            }
            libc::close(ctl[0]);
            libc::close(ready[1]);
            let mut ports = [0u16; 2];
            let n = libc::read(ready[0], ports.as_mut_ptr().cast(), 4);
            assert_eq!(n, 4, "the listener process failed to open its sockets");
            Listener {
                pid,
                ctl: ctl[1],
                ready: ready[0],
                tcp: ports[0],
                udp: ports[1],
                opened: Instant::now(),
            }
        }
    }

    /// Close both sockets (the process stays).
    fn close(&self) {
        // SAFETY: our own pipe ends.
        unsafe {
            let c = b'c';
            assert_eq!(libc::write(self.ctl, (&c as *const u8).cast(), 1), 1);
            let mut b = 0u8;
            assert_eq!(libc::read(self.ready, (&mut b as *mut u8).cast(), 1), 1);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // SAFETY: closing our pipe ends makes the child exit; reap it.
        unsafe {
            libc::close(self.ctl);
            libc::close(self.ready);
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

fn events(e: &Exporter) -> Value {
    let r = e.get("/api/v1/events");
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).expect("events JSON")
}

/// The events of `kind` about `protocol` port `port` in namespace `netns`.
fn find(page: &Value, kind: &str, protocol: &str, port: u16, netns: &str) -> Vec<Value> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["kind"] == kind
                && e["port"] == port
                && e["protocol"] == protocol
                && e["netns"] == netns
        })
        .cloned()
        .collect()
}

/// Wait up to `within` for one event of each (kind, protocol, port) in `netns`; returns them.
fn wait_for(
    e: &Exporter,
    within: Duration,
    kind: &str,
    wanted: &[(&str, u16)],
    netns: &str,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let page = events(e);
        let got: Vec<Vec<Value>> = wanted
            .iter()
            .map(|(p, port)| find(&page, kind, p, *port, netns))
            .collect();
        if got.iter().all(|g| !g.is_empty()) {
            for g in &got {
                assert_eq!(g.len(), 1, "one {kind} event, not more: {page:#}");
            }
            return got.into_iter().map(|mut g| g.remove(0)).collect();
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} for {wanted:?} in netns {netns:?} within {within:?}: {page:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_owner(ev: &Value, name: &str, pid: u32) {
    assert_eq!(ev["process"], name, "{ev}");
    assert_eq!(ev["user"], "root", "{ev}");
    assert_eq!(ev["pid"], pid, "{ev}");
}

/// With default flags and no scrape at all: opened within 2 s, named; closed within 2 s of
/// closing, named.
fn opened_and_closed(e: &Exporter, name: &str, netns_path: Option<&str>, label: &str) {
    let scrapes_before = events(e)["scrapes"].clone();
    let l = Listener::spawn(name, netns_path);
    let want = [("tcp", l.tcp), ("udp", l.udp)];
    let opened = wait_for(e, Duration::from_secs(2), "listener_opened", &want, label);
    let seen_after = l.opened.elapsed();
    for ev in &opened {
        check_owner(ev, name, l.pid as u32);
        assert_eq!(ev["address"], "127.0.0.1");
        assert_eq!(ev["container_id"], "", "a host process: {ev}");
    }
    assert!(seen_after < Duration::from_secs(2), "{seen_after:?}");
    // The process closes them 1.5 s after opening.
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(l.opened.elapsed()));
    l.close();
    let closed = wait_for(e, Duration::from_secs(2), "listener_closed", &want, label);
    for ev in &closed {
        check_owner(ev, name, l.pid as u32);
    }
    // Nothing of this came from a scrape: there was none.
    assert_eq!(events(e)["scrapes"], scrapes_before, "no scrape happened");
}

#[test]
fn host_listeners_opened_and_closed_are_named_within_two_seconds_without_a_scrape() {
    if !require_root() {
        return;
    }
    let e = Exporter::start(&[]);
    opened_and_closed(&e, "evtlisten", None, "");
    // A second process at once after the first: named too (the targeted look at new
    // processes, no full walk needed).
    opened_and_closed(&e, "evtlisten2", None, "");
    // The watch's metrics.
    let text = e.get("/metrics").text();
    assert!(sample(&text, "netstat_watch_ticks_total", &[]).unwrap() >= 3.0);
    assert!(sample(&text, "netstat_watch_duration_seconds", &[]).is_some());
    assert!(sample(&text, "netstat_watch_lagging_ticks_total", &[]).is_some());
    assert!(
        sample(
            &text,
            "netstat_watch_owner_walks_total",
            &[("kind", "targeted")]
        )
        .unwrap()
            >= 1.0
    );
}

#[test]
fn scrapes_show_the_owner_the_watch_named_and_nothing_is_reported_twice() {
    if !require_root() {
        return;
    }
    let e = Exporter::start(&[]);
    let _ = e.get("/metrics");
    let l = Listener::spawn("evtowner", None);
    let want = [("tcp", l.tcp), ("udp", l.udp)];
    wait_for(&e, Duration::from_secs(2), "listener_opened", &want, "");
    // The default walk interval (30 s) has not passed since the start-up walk: the scrape
    // names the owner from what the watch found.
    let text = e.get("/metrics").text();
    for (proto, port) in want {
        let port = port.to_string();
        let v = sample(
            &text,
            "netstat_listener_info",
            &[
                ("protocol", proto),
                ("port", &port),
                ("process", "evtowner"),
                ("container_id", ""),
                ("pod_uid", ""),
            ],
        );
        assert_eq!(v, Some(1.0), "{proto} {port}: {text}");
    }
    l.close();
    wait_for(&e, Duration::from_secs(2), "listener_closed", &want, "");
    let _ = e.get("/metrics");
    let page = events(&e);
    for (proto, port) in want {
        assert_eq!(find(&page, "listener_opened", proto, port, "").len(), 1);
        assert_eq!(find(&page, "listener_closed", proto, port, "").len(), 1);
        assert!(find(&page, "listener_owner_changed", proto, port, "").is_empty());
    }
}

#[test]
fn a_listener_living_between_two_scrapes_30s_apart_is_in_the_log() {
    if !require_root() {
        return;
    }
    let e = Exporter::start(&[]);
    let _ = e.get("/metrics");
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let l = Listener::spawn("evtshort", None);
    std::thread::sleep(Duration::from_millis(1500));
    l.close();
    std::thread::sleep(Duration::from_secs(30).saturating_sub(t.elapsed()));
    let text = e.get("/metrics").text();
    let page = events(&e);
    assert_eq!(
        page["scrapes"], 3,
        "the start-up collection and two scrapes"
    );
    for (proto, port) in [("tcp", l.tcp), ("udp", l.udp)] {
        let opened = find(&page, "listener_opened", proto, port, "");
        let closed = find(&page, "listener_closed", proto, port, "");
        assert_eq!((opened.len(), closed.len()), (1, 1), "{page:#}");
        check_owner(&opened[0], "evtshort", l.pid as u32);
        let (to, tc) = (
            opened[0]["time"].as_f64().unwrap(),
            closed[0]["time"].as_f64().unwrap(),
        );
        assert!(tc > to && tc - to < 3.0, "opened {to}, closed {tc}");
    }
    assert!(
        sample(
            &text,
            "netstat_events_total",
            &[("kind", "listener_opened")]
        )
        .unwrap()
            >= 2.0
    );
}

fn inode_of(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn listeners_in_a_namespace_the_test_makes() {
    if !require_root() || !require_tool("ip") {
        return;
    }
    let e = Exporter::start(&["--netns=all"]);
    // Made after the exporter started: the watch finds it (a new process in it, or the
    // ip-netns directory changing) and opens a netlink socket in it.
    let ns = TestNetns::new("watch");
    let path = format!("/run/netns/{}", ns.name);
    let label = inode_of(&path).to_string();
    opened_and_closed(&e, "evtnetns", Some(&path), &label);
}

const POD_UID: &str = "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f902";

fn container_id(n: u8) -> String {
    format!("{:02x}", 0xc0 + n).repeat(32)
}

/// Wait for `listener_opened` on TCP `port` by `process` in `netns`, then check the
/// container on the event and on netstat_listener_info.
fn check_container(e: &Exporter, port: u16, netns: &str, pid: u32, cid: &str) {
    let ev = wait_for(
        e,
        Duration::from_secs(3),
        "listener_opened",
        &[("tcp", port)],
        netns,
    )
    .remove(0);
    assert_eq!(ev["process"], "nc", "{ev}");
    assert_eq!(ev["container_id"], cid, "{ev}");
    assert_eq!(ev["pod_uid"], POD_UID, "{ev}");
    assert!(ev["pid"].as_u64().is_some(), "{ev}");
    let _ = pid;
    let text = e.get("/metrics").text();
    let port = port.to_string();
    let mut labels = vec![
        ("protocol", "tcp"),
        ("port", port.as_str()),
        ("process", "nc"),
        ("container_id", cid),
        ("pod_uid", POD_UID),
    ];
    if !netns.is_empty() {
        labels.push(("netns", netns));
    }
    assert_eq!(
        sample(&text, "netstat_listener_info", &labels),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn a_runc_container_in_a_kubepods_cgroup() {
    if !require_root() || !require_tool("runc") || !require_tool("busybox") {
        return;
    }
    let e = Exporter::start(&["--netns=all"]);
    let run = std::process::id();
    let cid = container_id(1);
    let c = Container::start(
        &format!("watch-{run}-pod"),
        "sleep 1.2; nc -l -p 8181 -e /bin/cat & sleep 1000",
        None,
        &format!("/kubepods/besteffort/pod{POD_UID}/{cid}"),
    );
    check_container(&e, 8181, &c.netns_inode().to_string(), c.pid, &cid);
}

#[test]
fn a_host_network_pod_is_attributed_with_netns_self() {
    if !require_root() || !require_tool("runc") || !require_tool("busybox") {
        return;
    }
    let e = Exporter::start(&[]);
    let run = std::process::id();
    let cid = container_id(2);
    // The container joins the test's own network namespace: a hostNetwork pod.
    let own = format!("/proc/{}/ns/net", std::process::id());
    let port = common::free_port();
    let c = Container::start(
        &format!("watch-{run}-hostnet"),
        // -ll: keep listening after a connection (the inbound check below needs the
        // listener to stay).
        &format!("sleep 1.2; nc -ll -p {port} -e /bin/cat & sleep 1000"),
        Some(&own),
        &format!("/kubepods/besteffort/pod{POD_UID}/{cid}"),
    );
    check_container(&e, port, "", c.pid, &cid);
    // Who connects in to the pod's listener: the inbound series carries its pod too.
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let port = port.to_string();
    let labels = [
        ("port", port.as_str()),
        ("process", "nc"),
        ("remote_network", "loopback"),
        ("state", "established"),
        ("container_id", cid.as_str()),
        ("pod_uid", POD_UID),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = e.get("/metrics").text();
        if sample(&text, "netstat_inbound_connections", &labels) == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no inbound series {labels:?}: {}",
            text.lines()
                .filter(|l| l.starts_with("netstat_inbound_connections{"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(client);
}

/// The watch keeps at most --collector.listeners.max listeners per namespace: the ones it
/// already watches stay (never reported closed because others appeared), new ones beyond the
/// cap are counted in netstat_watch_listeners_dropped, and are taken in once there is room.
#[test]
fn the_watch_caps_listeners_per_namespace() {
    if !require_root() || !require_tool("ip") {
        return;
    }
    let e = Exporter::start(&["--netns=all", "--collector.listeners.max=3"]);
    let ns = TestNetns::new("wcap");
    let path = format!("/run/netns/{}", ns.name);
    let label = inode_of(&path).to_string();
    let first = Listener::spawn("wcap1", Some(&path));
    wait_for(
        &e,
        Duration::from_secs(3),
        "listener_opened",
        &[("tcp", first.tcp), ("udp", first.udp)],
        &label,
    );
    let more = [
        Listener::spawn("wcap2", Some(&path)),
        Listener::spawn("wcap3", Some(&path)),
    ];
    let mut new: Vec<(&str, u16)> = more
        .iter()
        .flat_map(|l| [("tcp", l.tcp), ("udp", l.udp)])
        .collect();
    new.sort_by_key(|(_, port)| *port);
    // Room for one more: the lowest port of the four new ones; the three others are dropped.
    let opened_in_ns = |page: &Value| -> Vec<(String, u16)> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|ev| ev["kind"] == "listener_opened" && ev["netns"] == json!(label))
            .map(|ev| {
                (
                    ev["protocol"].as_str().unwrap().to_string(),
                    ev["port"].as_u64().unwrap() as u16,
                )
            })
            .collect()
    };
    wait_for(
        &e,
        Duration::from_secs(3),
        "listener_opened",
        &new[..1],
        &label,
    );
    let dropped = |e: &Exporter| {
        sample(
            &e.get("/metrics").text(),
            "netstat_watch_listeners_dropped",
            &[],
        )
        .unwrap()
    };
    // Other namespaces (the host's) may be over the cap too: at least these three.
    assert!(dropped(&e) >= 3.0);
    std::thread::sleep(Duration::from_millis(2500));
    let page = events(&e);
    assert_eq!(opened_in_ns(&page).len(), 3, "{page:#}");
    assert!(
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|ev| !(ev["kind"] == "listener_closed" && ev["netns"] == json!(label))),
        "nothing closed: {page:#}"
    );
    // The first closes its two: two of the dropped ones are taken in (the lowest ports).
    first.close();
    wait_for(
        &e,
        Duration::from_secs(3),
        "listener_closed",
        &[("tcp", first.tcp), ("udp", first.udp)],
        &label,
    );
    wait_for(
        &e,
        Duration::from_secs(3),
        "listener_opened",
        &new[1..3],
        &label,
    );
    assert_eq!(opened_in_ns(&events(&e)).len(), 5);
}
