//! docs/metrics.md and docs/flags.md are generated from the declarations and must be up to
//! date; every family a full scrape exposes is declared (and so documented), every declared
//! family shows up in a full scrape, and every sample carries exactly its declared labels.
//!
//! `UPDATE_DOCS=1 cargo test --test docs` rewrites the two files.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;

use common::{run_once, TempDir};
use netstat_exporter::collectors::REGISTRY;
use netstat_exporter::config::DEFAULT_NETNS_COLLECTORS;
use netstat_exporter::docs::{flags_markdown, metrics_markdown};
use netstat_exporter::metrics::Desc;
use netstat_exporter::scrape;

fn declared() -> Vec<&'static Desc> {
    REGISTRY
        .iter()
        .flat_map(|d| (d.metrics)())
        .chain(scrape::metrics())
        .collect()
}

/// Sample name -> (declaration, the collector that declares it, or None for the exporter's own).
fn declared_by_collector() -> BTreeMap<String, (&'static Desc, Option<&'static str>)> {
    REGISTRY
        .iter()
        .flat_map(|c| (c.metrics)().into_iter().map(move |d| (d, Some(c.name))))
        .chain(scrape::metrics().into_iter().map(|d| (d, None)))
        .map(|(d, c)| (d.sample_name().into_owned(), (d, c)))
        .collect()
}

fn check_generated(file: &str, expected: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, expected).expect("write");
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{file} is stale: run `UPDATE_DOCS=1 cargo test --test docs` and commit it"
    );
}

#[test]
fn metrics_md_is_generated_from_the_declarations() {
    check_generated(
        "docs/metrics.md",
        &metrics_markdown(REGISTRY, &scrape::metrics()),
    );
}

#[test]
fn flags_md_is_generated_from_the_declarations() {
    check_generated("docs/flags.md", &flags_markdown(REGISTRY));
}

/// Every table of a generated page renders: its header row is followed directly by the
/// separator row, and its rows directly by more rows (a blank line in between would end the
/// table and print the rest as text).
fn assert_tables_render(page: &str, markdown: &str) {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut tables = 0;
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with('|') {
            continue;
        }
        let prev = if i == 0 { "" } else { lines[i - 1] };
        if prev.starts_with('|') {
            continue;
        }
        // The first row of a table: the separator must follow, then at least one row.
        tables += 1;
        let sep = lines.get(i + 1).copied().unwrap_or("");
        assert!(
            sep.starts_with("|---"),
            "{page}:{}: table header not followed by its separator row: {sep:?}",
            i + 1
        );
        let row = lines.get(i + 2).copied().unwrap_or("");
        assert!(
            row.starts_with('|'),
            "{page}:{}: table without rows (a blank line after the separator?)",
            i + 1
        );
    }
    assert!(tables > 3, "{page}: only {tables} tables");
}

#[test]
fn generated_pages_render_their_tables_and_list_each_flag_once() {
    let flags = flags_markdown(REGISTRY);
    assert_tables_render("docs/flags.md", &flags);
    assert_tables_render(
        "docs/metrics.md",
        &metrics_markdown(REGISTRY, &scrape::metrics()),
    );
    let mut seen = BTreeSet::new();
    for line in flags.lines().filter(|l| l.starts_with("| `--")) {
        let flag = line.split('`').nth(1).unwrap_or("");
        let flag = flag.split('=').next().unwrap_or("");
        assert!(
            seen.insert(flag.to_string()),
            "docs/flags.md lists {flag} twice"
        );
    }
    // A table per collector, each with its own enable flag.
    for d in REGISTRY {
        assert!(
            seen.contains(&format!("--collector.{}", d.name)),
            "no row for --collector.{}",
            d.name
        );
    }
}

#[test]
fn declarations_are_unique_and_follow_the_naming_rules() {
    let mut seen = BTreeSet::new();
    for d in declared() {
        assert!(seen.insert(d.name), "{} declared twice", d.name);
        assert!(
            !d.name.ends_with("_total"),
            "{}: counters are declared without _total",
            d.name
        );
        assert!(d.help.len() > 15, "{}: no useful help", d.name);
        if !d.unit.is_empty() {
            assert!(
                d.name.ends_with(&format!("_{}", d.unit)),
                "{}: unit {} is not its suffix",
                d.name,
                d.unit
            );
        }
        for unit in ["bytes", "seconds"] {
            if d.name.ends_with(&format!("_{unit}")) {
                assert_eq!(d.unit, unit, "{}: unit not declared", d.name);
            }
        }
        let mut labels = BTreeSet::new();
        for l in d.labels {
            assert!(labels.insert(l), "{}: label {l} twice", d.name);
        }
    }
}

/// name -> label-name sets seen, from an exposition.
fn families(text: &str) -> BTreeMap<String, BTreeSet<Vec<String>>> {
    let mut out: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or("").to_string();
            out.entry(name).or_default();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, labels) = match line.find('{') {
            Some(i) => {
                let end = line.rfind('}').expect("closing brace");
                let inner = &line[i + 1..end];
                // Label values here never contain `",` (no hostile input in this test).
                let names: Vec<String> = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| p.split('=').next().unwrap_or("").to_string())
                    .collect();
                (&line[..i], names)
            }
            None => (line.split(' ').next().unwrap_or(""), Vec::new()),
        };
        // A histogram's samples (`_bucket` with `le`, `_sum`, `_count`) belong to its family.
        let histogram = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            out.contains_key(base).then_some(base)
        });
        let (name, labels) = match histogram {
            Some(base) => (base, labels.into_iter().filter(|l| l != "le").collect()),
            None => (name, labels),
        };
        out.entry(name.to_string()).or_default().insert(labels);
    }
    out
}

/// name -> label-name sets seen, and whether a sample carried `netns`.
fn has_foreign(got: &BTreeMap<String, BTreeSet<Vec<String>>>, name: &str) -> bool {
    got.get(name)
        .is_some_and(|sets| sets.iter().any(|l| l.iter().any(|n| n == "netns")))
}

/// The label rule, checked on every sample of a scrape with `--netns=all` and a namespace
/// this test made (so the rule is exercised whatever else the host runs): a sample carries
/// exactly its declared labels, plus `netns` only on a per-namespace family of a collector in
/// `--netns.collectors` (here the default), and then only for another namespace.
#[test]
fn a_full_scrape_exposes_exactly_the_declared_families_with_their_labels() {
    if !common::require_root() || !common::require_tool("ip") {
        return;
    }
    // A foreign namespace with a listener, a connection to it and a veth end, as a container
    // host has many.
    let ns = common::netns::TestNetns::new("docs");
    let _veth = common::netns::Veth::new(&ns, "dc");
    let _foreign = ns.run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        (l, c, u)
    });

    // Something for every optional family: a TCP listener (unexpected: the policy allows
    // nothing of it), a UDP listener (drops), the raw-field escape hatch, and a broken line in
    // /etc/services (an error, so netstat_scrape_errors_total has a sample).
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    // An outbound connection (the client side), unexpected: the policy allows only port 1.
    let client = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    let dir = TempDir::new("docs-scrape");
    let expected = dir.write(
        "expected.yml",
        "listeners:\n  - port: 1\nconnections:\n  - remote_port: 1\n",
    );
    std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
    let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
    std::fs::write(
        dir.join("rootfs/etc/services"),
        format!("{services}\nbroken-line\n"),
    )
    .unwrap();
    std::fs::copy("/etc/passwd", dir.join("rootfs/etc/passwd")).unwrap();
    let rootfs = dir.join("rootfs");
    let out = run_once(&[
        &format!("--collector.listeners.expected={}", expected.display()),
        &format!("--path.rootfs={}", rootfs.display()),
        "--collector.protocols.fields=.*",
        "--collector.connections.health",
        "--netns=all",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut live = families(&text);
    // The socket-destroy counters count what closes while the exporter runs: a served
    // exporter with the same flags, a connection closed and a connect refused in both
    // namespaces meanwhile.
    let served = common::Exporter::start(&[
        &format!("--collector.listeners.expected={}", expected.display()),
        &format!("--path.rootfs={}", rootfs.display()),
        "--collector.protocols.fields=.*",
        "--collector.connections.health",
        "--netns=all",
    ]);
    // The subscribers open with the first collection (answered once it is done).
    let _ = served.get("/metrics");
    let close_some = || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        drop((c, s));
        let closed = l.local_addr().unwrap();
        drop(l);
        assert!(std::net::TcpStream::connect(closed).is_err());
    };
    close_some();
    ns.run(close_some);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = served.get("/metrics").text();
        let closes = families(&text);
        let done = closes
            .get("netstat_outbound_connect_failures_total")
            .is_some_and(|s| s.iter().any(|l| l.iter().any(|n| n == "netns")))
            && closes
                .get("netstat_inbound_connections_closed_total")
                .is_some_and(|s| s.iter().any(|l| l.iter().any(|n| n == "netns")));
        if done || std::time::Instant::now() > deadline {
            for (name, sets) in closes {
                live.entry(name).or_default().extend(sets);
            }
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    drop(served);
    let mut got = live.clone();
    drop((tcp, udp, client));
    // Link speed exists only on NICs that report one, which this machine may not have: add
    // the interfaces of a fixture tree (a physical eth0 with a speed).
    let fixture = common::fixtures().join("interfaces/basic");
    let out = run_once(&[
        &format!("--path.procfs={}", fixture.join("proc").display()),
        &format!("--path.sysfs={}", fixture.join("sys").display()),
        "--collector.disable-defaults",
        "--collector.interfaces",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, sets) in families(&String::from_utf8_lossy(&out.stdout)) {
        got.entry(name).or_default().extend(sets);
    }

    let mut problems = Vec::new();
    let declared = declared_by_collector();
    let netns_collectors: Vec<&str> = DEFAULT_NETNS_COLLECTORS.split(',').collect();
    for (name, label_sets) in &got {
        let Some((d, collector)) = declared.get(name) else {
            problems.push(format!(
                "{name}: exposed but not declared (not in docs/metrics.md)"
            ));
            continue;
        };
        let reads_others = collector.is_some_and(|c| netns_collectors.contains(&c));
        let own: BTreeSet<String> = d.labels_in(false).iter().map(|l| l.to_string()).collect();
        let foreign: BTreeSet<String> = d
            .labels_in(reads_others)
            .iter()
            .map(|l| l.to_string())
            .collect();
        for labels in label_sets {
            let have: BTreeSet<String> = labels.iter().cloned().collect();
            if have != own && have != foreign {
                problems.push(format!(
                    "{name}: labels {have:?}, declared {own:?} (or {foreign:?} for another namespace)"
                ));
            }
        }
    }
    // The rule was exercised: the test's namespace shows up on per-namespace families of
    // every collector that reads it, and never on a host-wide one.
    for name in [
        "netstat_sockets",
        "netstat_listener_info",
        "netstat_outbound_connections",
        "netstat_interface_bytes_total",
    ] {
        if !has_foreign(&got, name) {
            problems.push(format!("{name}: no series of the test's namespace (netns)"));
        }
    }
    for (name, (d, collector)) in &declared {
        let per_ns = d.per_netns && collector.is_some();
        if !per_ns && has_foreign(&got, name) && !d.labels.contains(&"netns") {
            problems.push(format!("{name}: host-wide, but a sample carries netns"));
        }
        // And the other way: a family declared per namespace, of a collector reading the
        // test's namespace, shows up there too when the live scrape has it at all (else it is
        // host-wide and its docs are wrong).
        let reads_others = collector.is_some_and(|c| netns_collectors.contains(&c));
        if per_ns && reads_others && live.contains_key(name) && !has_foreign(&live, name) {
            problems.push(format!(
                "{name}: declared per namespace, but no series of the test's namespace"
            ));
        }
    }
    for name in declared.keys() {
        if !got.contains_key(name) {
            problems.push(format!(
                "{name}: declared (documented) but absent from a full scrape"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
