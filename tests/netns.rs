//! `--netns=all` against the live kernel: namespaces the test makes (`ip netns add`, one held
//! by a process), and real OCI containers run by `runc` (a pod: a sandbox container and an app
//! container sharing its namespace, in a kubepods cgroup; and a docker-style container). For
//! each namespace the exporter's numbers must equal what `ss` and `ip -s link` show inside it,
//! for the netlink and the /proc text source; without CAP_SYS_ADMIN the /proc/<pid>/net path
//! must give the same numbers; and namespaces that come and go while scraping must cost no
//! failed scrape and no leaked fd.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{must, TestNetns};
use common::oci::Container;
use common::sockload::hold_in_netns;
use common::{exporter_bin, require_root, require_tool, run_once, sample, Exporter};
use netstat_exporter::source::inet::TCP_STATE_NAMES;

const POD_UID: &str = "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901";

/// A 64-hex container id unique to this test run.
fn container_id(n: u8) -> String {
    format!("{:0>56x}{:08x}", u64::from(std::process::id()), n)
}

/// Where to run a command inside a namespace.
enum In<'a> {
    Name(&'a str),
    Pid(u32),
}

fn inside(ns: &In, cmd: &[&str]) -> String {
    match ns {
        In::Name(n) => {
            let mut a = vec!["netns", "exec", n];
            a.extend_from_slice(cmd);
            must("ip", &a)
        }
        In::Pid(pid) => {
            let t = pid.to_string();
            let mut a = vec!["-t", t.as_str(), "-n"];
            a.extend_from_slice(cmd);
            must("nsenter", &a)
        }
    }
}

/// What `ss` and `ip` say inside a namespace: TCP sockets by state, listeners by protocol,
/// and lo's received packets.
fn truth(ns: &In) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for line in inside(ns, &["ss", "-tanH"]).lines() {
        let state = common::ss_state(line.split_whitespace().next().unwrap_or(""));
        *m.entry(format!("tcp/{state}")).or_default() += 1;
    }
    for line in inside(ns, &["ss", "-lntuH"]).lines() {
        let proto = line.split_whitespace().next().unwrap_or("");
        *m.entry(format!("listeners/{proto}")).or_default() += 1;
    }
    let links: serde_json::Value =
        serde_json::from_str(&inside(ns, &["ip", "-s", "-j", "link", "show", "lo"])).unwrap();
    m.insert(
        "lo/rx_packets".into(),
        links[0]["stats64"]["rx"]["packets"].as_u64().unwrap(),
    );
    m
}

fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, lbl) = series.split_once('{').unwrap_or((series, ""));
            (n == name
                && labels.iter().all(|(k, v)| {
                    lbl.trim_end_matches('}')
                        .split(',')
                        .any(|kv| kv == format!("{k}=\"{v}\""))
                }))
            .then(|| value.parse::<f64>().ok())?
        })
        .sum::<f64>() as u64
}

/// The same from the exporter's scrape, for namespace `netns`.
fn exported(text: &str, netns: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for state in TCP_STATE_NAMES.iter().skip(1) {
        let n = sum(
            text,
            "netstat_sockets",
            &[("protocol", "tcp"), ("state", state), ("netns", netns)],
        );
        if n > 0 {
            m.insert(format!("tcp/{state}"), n);
        }
    }
    for proto in ["tcp", "udp"] {
        let n = text
            .lines()
            .filter(|l| {
                l.starts_with("netstat_listener_info{")
                    && l.contains(&format!("protocol=\"{proto}\""))
                    && l.contains(&format!("netns=\"{netns}\""))
            })
            .count() as u64;
        if n > 0 {
            m.insert(format!("listeners/{proto}"), n);
        }
    }
    m.insert(
        "lo/rx_packets".into(),
        sum(
            text,
            "netstat_interface_packets_total",
            &[
                ("device", "lo"),
                ("direction", "receive"),
                ("outcome", "ok"),
                ("netns", netns),
            ],
        ),
    );
    m
}

/// The namespace inode of an `ip netns` bind mount (its own inode).
fn inode_of(path: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino().to_string()
}

fn once(args: &[&str]) -> String {
    let out = run_once(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn all_collectors_succeeded(text: &str) -> bool {
    text.lines()
        .filter(|l| l.starts_with("netstat_scrape_collector_success{"))
        .all(|l| l.ends_with(" 1"))
}

/// Compare every namespace, re-reading until `ss` agrees with itself before and after.
fn check(namespaces: &[(In, String)], args: &[&str]) -> String {
    for attempt in 0.. {
        let before: Vec<_> = namespaces.iter().map(|(ns, _)| truth(ns)).collect();
        let text = once(args);
        let after: Vec<_> = namespaces.iter().map(|(ns, _)| truth(ns)).collect();
        if before != after {
            assert!(attempt < 5, "the namespaces never held still");
            continue;
        }
        for ((_, label), want) in namespaces.iter().zip(&before) {
            assert_eq!(&exported(&text, label), want, "netns {label} with {args:?}");
        }
        assert!(all_collectors_succeeded(&text), "{text}");
        return text;
    }
    unreachable!()
}

#[test]
fn every_namespace_equals_ss_and_ip_inside_it_for_both_sources() {
    if !require_root()
        || !require_tool("ip")
        || !require_tool("ss")
        || !require_tool("nsenter")
        || !require_tool("runc")
        || !require_tool("busybox")
    {
        return;
    }
    // An `ip netns` namespace no process is in: listener, connections, queued bytes, UDP.
    let ns1 = TestNetns::new("a");
    let _held = ns1.run(|| {
        let l = TcpListener::bind("127.0.0.1:9000").unwrap();
        let clients: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect("127.0.0.1:9000").unwrap())
            .collect();
        let accepted: Vec<TcpStream> = (0..3).map(|_| l.accept().unwrap().0).collect();
        (&clients[0]).write_all(&[7u8; 1000]).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:9001").unwrap();
        (l, clients, accepted, udp)
    });
    // A namespace a process is in.
    let ns2 = TestNetns::new("b");
    let holder = hold_in_netns(&format!("/run/netns/{}", ns2.name), 9100, 2).unwrap();
    // A pod: the sandbox holds the namespace, the app container joins it.
    let run = std::process::id();
    let (cid_s, cid_a, cid_d) = (container_id(1), container_id(2), container_id(3));
    let sandbox = Container::start(
        &format!("nsx-{run}-sandbox"),
        "sleep 1000",
        None,
        &format!("/kubepods/besteffort/pod{POD_UID}/{cid_s}"),
    );
    let _app = Container::start(
        &format!("nsx-{run}-app"),
        "nc -l -p 8080 -e /bin/cat & sleep 1000",
        Some(&sandbox.netns_path()),
        &format!("/kubepods/besteffort/pod{POD_UID}/{cid_a}"),
    );
    // A docker-style container with its own listener, a connection and bytes its server never
    // reads (the server side is `sleep`).
    let docker = Container::start(
        &format!("nsx-{run}-docker"),
        "nc -l -p 7070 -e /bin/sleep 1000 & sleep 0.3; (echo hello; sleep 1000) | nc 127.0.0.1 7070 & sleep 1000",
        None,
        &format!("/docker/{cid_d}"),
    );
    std::thread::sleep(Duration::from_millis(1000));

    let namespaces = [
        (
            In::Name(&ns1.name),
            inode_of(&format!("/run/netns/{}", ns1.name)),
        ),
        (
            In::Pid(holder.pids()[0] as u32),
            inode_of(&format!("/run/netns/{}", ns2.name)),
        ),
        (In::Pid(sandbox.pid), sandbox.netns_inode().to_string()),
        (In::Pid(docker.pid), docker.netns_inode().to_string()),
    ];
    let text = check(&namespaces, &["--netns=all"]);
    check(
        &namespaces,
        &["--netns=all", "--collector.sockets.source=proc"],
    );

    // Who they are: one info series per namespace (the pod's two containers share one).
    let info = |netns: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.starts_with("netstat_netns_info{") && l.contains(&format!("netns=\"{netns}\""))
            })
            .map(String::from)
            .collect()
    };
    let pod = info(&namespaces[2].1);
    assert_eq!(pod.len(), 1, "{pod:?}");
    assert!(
        pod[0].contains(&format!("container_id=\"{cid_s}\"")),
        "{pod:?}"
    );
    assert!(
        pod[0].contains(&format!("pod_uid=\"{POD_UID}\"")),
        "{pod:?}"
    );
    let dock = info(&namespaces[3].1);
    assert!(
        dock[0].contains(&format!("container_id=\"{cid_d}\"")) && dock[0].contains("pod_uid=\"\""),
        "{dock:?}"
    );
    assert!(info(&namespaces[0].1)[0].contains(&format!("name=\"{}\"", ns1.name)));
    assert!(info(&namespaces[1].1)[0].contains(&format!("name=\"{}\"", ns2.name)));
    // The exporter's own namespace once, without a netns label on its series.
    assert_eq!(info("").len(), 1);
    // Queued bytes of the docker container's server; the app's listener in the pod.
    let queued = sum(
        &text,
        "netstat_socket_queued_bytes",
        &[
            ("protocol", "tcp"),
            ("queue", "receive"),
            ("netns", &namespaces[3].1),
        ],
    );
    assert!(
        queued >= 6,
        "hello\\n waits in the docker container: {queued}"
    );
    assert!(
        sample(
            &text,
            "netstat_listener_info",
            &[
                ("port", "8080"),
                ("process", "nc"),
                ("netns", &namespaces[2].1)
            ]
        )
        .is_some(),
        "{text}"
    );
    // Interface flags come from inside the namespace (rtnetlink): lo is up there.
    assert_eq!(
        sample(
            &text,
            "netstat_interface_flag",
            &[
                ("device", "lo"),
                ("flag", "up"),
                ("netns", &namespaces[0].1)
            ]
        ),
        Some(1.0)
    );
}

/// Run the exporter without CAP_SYS_ADMIN (still root), or as nobody.
fn once_with(setpriv: &[&str], args: &[&str]) -> String {
    let out = Command::new("setpriv")
        .args(setpriv)
        .arg("--")
        .arg(exporter_bin())
        .arg("--once")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn without_cap_sys_admin_proc_text_gives_the_same_numbers_and_unreadable_ones_are_counted() {
    if !require_root() || !require_tool("ip") || !require_tool("ss") || !require_tool("setpriv") {
        return;
    }
    let held = TestNetns::new("c");
    let holder = hold_in_netns(&format!("/run/netns/{}", held.name), 9200, 3).unwrap();
    let bare = TestNetns::new("d");
    let label = inode_of(&format!("/run/netns/{}", held.name));
    let bare_label = inode_of(&format!("/run/netns/{}", bare.name));
    let namespaces = [(In::Pid(holder.pids()[0] as u32), label.clone())];
    let privileged = check(&namespaces, &["--netns=all"]);
    assert!(sample(&privileged, "netstat_netns_info", &[("netns", &bare_label)]).is_some());

    let drop_admin = ["--bounding-set=-sys_admin", "--inh-caps=-sys_admin"];
    let text = once_with(&drop_admin, &["--netns=all"]);
    let want = truth(&namespaces[0].0);
    let mut got = exported(&text, &label);
    // No link counters are missing: /proc/<pid>/net/dev has them; only flags are gone.
    assert_eq!(
        got.remove("lo/rx_packets"),
        want.get("lo/rx_packets").copied()
    );
    let mut want = want;
    want.remove("lo/rx_packets");
    assert_eq!(got, want, "{text}");
    assert!(sample(&text, "netstat_interface_flag", &[("netns", &label)]).is_none());
    // The namespace no process is in cannot be read without entering it: skipped, counted.
    assert!(sample(&text, "netstat_netns_info", &[("netns", &bare_label)]).is_none());
    assert!(
        sample(
            &text,
            "netstat_netns_errors_total",
            &[("reason", "no_permission")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(all_collectors_succeeded(&text), "{text}");

    // As nobody, other processes' namespaces cannot even be seen, and entering is refused:
    // still a good scrape.
    let text = once_with(
        &[
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
        ],
        &["--netns=all"],
    );
    assert!(
        sample(
            &text,
            "netstat_netns_errors_total",
            &[("reason", "no_permission")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(sample(&text, "netstat_netns", &[]).unwrap() >= 1.0);
    drop(holder);
}

/// A discovery error made real: the exporter runs in a mount namespace of its own where a
/// tmpfs covers /run and /run/netns is a file, so the `ip netns` directory cannot be listed.
/// With the default flags and --netns=all, every scrape counts the error once in
/// netstat_scrape_errors_total{collector="netns",source="run/netns"}, and still answers with
/// the namespaces found through their processes (equal to `ss` inside); the namespace no
/// process is in is the one missed.
#[test]
fn a_discovery_error_is_counted_on_every_scrape_and_the_other_namespaces_still_answer() {
    if !require_root()
        || !require_tool("ip")
        || !require_tool("ss")
        || !require_tool("nsenter")
        || !require_tool("unshare")
        || !require_tool("mount")
    {
        return;
    }
    let held = TestNetns::new("e");
    let holder = hold_in_netns(&format!("/run/netns/{}", held.name), 9300, 2).unwrap();
    let bare = TestNetns::new("f");
    let label = inode_of(&format!("/run/netns/{}", held.name));
    let bare_label = inode_of(&format!("/run/netns/{}", bare.name));
    let exporter = Exporter::start_in(
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run && : > /run/netns && exec \"$@\"",
            "sh",
        ],
        &["--netns=all"],
    );
    let discovery_errors = |text: &str| {
        sample(
            text,
            "netstat_scrape_errors_total",
            &[("collector", "netns"), ("source", "run/netns")],
        )
        .unwrap_or(0.0)
    };
    let ns = In::Pid(holder.pids()[0] as u32);
    let mut counted = Vec::new();
    for attempt in 0.. {
        let before = truth(&ns);
        let text = exporter.get("/metrics").text();
        let after = truth(&ns);
        counted.push(discovery_errors(&text));
        if before != after {
            assert!(attempt < 5, "the namespace never held still");
            continue;
        }
        assert_eq!(exported(&text, &label), before, "netns {label}");
        assert_eq!(
            sample(
                &text,
                "netstat_listener_info",
                &[("netns", &label), ("port", "9300")]
            ),
            Some(1.0),
            "{text}"
        );
        assert!(sample(&text, "netstat_netns_info", &[("netns", &bare_label)]).is_none());
        assert!(all_collectors_succeeded(&text), "{text}");
        if counted.len() >= 2 {
            break;
        }
    }
    // Counted from the first scrape on, once per scrape (one discovery per request).
    assert!(counted[0] >= 1.0, "{counted:?}");
    for w in counted.windows(2) {
        assert_eq!(w[1], w[0] + 1.0, "{counted:?}");
    }
    // The host itself is untouched: the exporter's mount namespace was its own.
    assert!(std::fs::metadata("/run/netns").unwrap().is_dir());
    drop(exporter);
    drop(holder);
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

#[test]
fn namespaces_coming_and_going_while_scraping_cost_no_scrape_and_no_fd() {
    if !require_root() || !require_tool("ip") {
        return;
    }
    let e = Exporter::start(&["--netns=all"]);
    for _ in 0..2 {
        assert_eq!(e.get("/metrics").status, 200);
    }
    let baseline = open_fds(e.pid());
    let baseline_threads = threads(e.pid());
    let tag = format!("nsxchurn{}x", std::process::id());
    let churn = {
        let tag = tag.clone();
        std::thread::spawn(move || {
            let name = |i: usize| format!("{tag}{i}");
            for i in 0..200 {
                must("ip", &["netns", "add", &name(i)]);
                must("ip", &["-n", &name(i), "link", "set", "lo", "up"]);
                if i >= 5 {
                    must("ip", &["netns", "del", &name(i - 5)]);
                }
                // About 3 s in all: several scrapes every 0.5 s see namespaces come and go.
                std::thread::sleep(Duration::from_millis(12));
            }
            for i in 195..200 {
                must("ip", &["netns", "del", &name(i)]);
            }
        })
    };
    let mut scrapes = 0;
    while !churn.is_finished() {
        let t = Instant::now();
        let r = e.get("/metrics");
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(
            all_collectors_succeeded(&text),
            "a failed collector while namespaces churn:\n{text}"
        );
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(500).saturating_sub(t.elapsed()));
    }
    churn.join().unwrap();
    assert!(scrapes >= 3, "only {scrapes} scrapes during the churn");
    // Every churned namespace is gone from the next scrape, and so is every fd it took.
    let text = e.get("/metrics").text();
    assert!(!text.contains(&format!("name=\"{tag}")), "{text}");
    // The watch keeps one netlink socket per namespace it reads, and lets go of a deleted
    // namespace's at its next tick (default 1 s).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut after = open_fds(e.pid());
    while after > baseline + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = open_fds(e.pid());
    }
    assert!(after <= baseline + 2, "fds {baseline} -> {after}");
    // The namespace workers are gone too (the async runtime may park one more thread), and
    // so are the socket-destroy subscribers of the deleted namespaces: dropped at the end of
    // the first run that no longer finds their namespace, their threads notice within a
    // second (they wake once a second).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut after_threads = threads(e.pid());
    while after_threads > baseline_threads + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after_threads = threads(e.pid());
    }
    assert!(
        after_threads <= baseline_threads + 1,
        "threads {baseline_threads} -> {after_threads}"
    );
    // A namespace deleted between two scrapes: its series are in the first, not the second.
    let last = TestNetns::new("e");
    let label = inode_of(&format!("/run/netns/{}", last.name));
    assert!(sample(
        &e.get("/metrics").text(),
        "netstat_netns_info",
        &[("netns", &label)]
    )
    .is_some());
    drop(last);
    let text = e.get("/metrics").text();
    assert!(!text.contains(&format!("netns=\"{label}\"")), "{text}");
}

/// Thousands of outbound connections in one namespace, all named with default flags: every
/// socket lands in its process's series.
#[test]
fn thousands_of_outbound_connections_are_all_attributed() {
    if !require_root() || !require_tool("ip") {
        return;
    }
    let ns = TestNetns::new("many");
    let holder = hold_in_netns(&format!("/run/netns/{}", ns.name), 9300, 8_000).unwrap();
    let label = inode_of(&format!("/run/netns/{}", ns.name));
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", holder.pids()[0]))
        .unwrap()
        .trim()
        .to_string();
    let e = Exporter::start(&["--netns=all"]);
    let text = e.get("/metrics").text();
    let port = [("netns", label.as_str()), ("remote_port", "9300")];
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("netstat_outbound_connections{"))
        .filter(|l| {
            port.iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 8_000.0, "{text}");
    let named = sample(
        &text,
        "netstat_outbound_connections",
        &[
            ("netns", label.as_str()),
            ("remote_port", "9300"),
            ("process", comm.as_str()),
            ("state", "established"),
        ],
    );
    assert_eq!(named, Some(8_000.0), "{text}");
    drop(holder);
}
