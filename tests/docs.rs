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
        out.entry(name.to_string()).or_default().insert(labels);
    }
    out
}

#[test]
fn a_full_scrape_exposes_exactly_the_declared_families_with_their_labels() {
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
        "--netns=all",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut got = families(&text);
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
    let declared: BTreeMap<String, &Desc> = declared()
        .into_iter()
        .map(|d| (d.sample_name().into_owned(), d))
        .collect();
    for (name, label_sets) in &got {
        let Some(d) = declared.get(name) else {
            problems.push(format!(
                "{name}: exposed but not declared (not in docs/metrics.md)"
            ));
            continue;
        };
        let want: BTreeSet<String> = d.labels.iter().map(|l| l.to_string()).collect();
        for labels in label_sets {
            let have: BTreeSet<String> = labels.iter().cloned().collect();
            if have != want {
                problems.push(format!("{name}: labels {have:?}, declared {want:?}"));
            }
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
