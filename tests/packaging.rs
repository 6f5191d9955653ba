//! Release artifacts: `--version` like the Prometheus exporters, the man page generated from
//! the CLI definition (committed as deploy/debian/netstat_exporter.1), and the Debian package
//! built by `cargo deb`, installed with dpkg, checked, removed and purged.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{require_root, require_tool};

const MAN_PAGE: &str = "deploy/debian/netstat_exporter.1";
const PACKAGE: &str = "netstat-exporter";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    eprintln!(
        "$ {cmd:?} -> {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed ({})", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The version block of `bin --version`, checked line by line; returns the build date.
fn check_version_output(bin: &str) -> String {
    let out = run(Command::new(bin).arg("--version"));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let re = regex::Regex::new(
        r"^netstat_exporter, version (\S+) \(branch: (\S+), revision: ([0-9a-f]{12}|unknown)\)
  build user:       (\S+)
  build date:       (\d{8}-\d{2}:\d{2}:\d{2})
  rustc version:    (\d+\.\d+\.\d+\S*)
  platform:         linux/(amd64|arm64|\S+)
$",
    )
    .unwrap();
    let c = re
        .captures(&text)
        .unwrap_or_else(|| panic!("--version output not in the Prometheus layout:\n{text}"));
    assert_eq!(&c[1], env!("CARGO_PKG_VERSION"));
    // -V prints the same.
    let short = run(Command::new(bin).arg("-V"));
    assert_eq!(String::from_utf8(short.stdout).unwrap(), text);
    c[5].to_string()
}

#[test]
fn version_prints_version_revision_build_date_and_rustc() {
    check_version_output(common::exporter_bin());
}

/// `man` output without its overstrike bold/underline (`X\x08X`), as `col -b` would.
fn man_text(path: &str) -> String {
    let out = ok(Command::new("man")
        .env("MANWIDTH", "100")
        .args(["-P", "cat", "-l", path]));
    let mut text = String::new();
    for c in out.chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    text
}

fn render_man_page() -> String {
    let mut buf = Vec::new();
    clap_mangen::Man::new(netstat_exporter::config::command())
        .render(&mut buf)
        .unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn man_page_is_generated_from_the_cli_and_current() {
    let fresh = render_man_page();
    // Every long flag of the CLI is in it.
    let cmd = netstat_exporter::config::command();
    for a in cmd.get_arguments() {
        if let Some(long) = a.get_long() {
            // roff escapes '-' as '\-'.
            let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(fresh.contains(&escaped), "man page lacks --{long}");
        }
    }
    let path = repo().join(MAN_PAGE);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{MAN_PAGE} is stale (the CLI changed): regenerate it with \
         `UPDATE_GOLDEN=1 cargo test --test packaging man_page` and commit it"
    );
    if require_tool("man") {
        let text = man_text(path.to_str().unwrap());
        assert!(text.contains("netstat_exporter"), "{text}");
        assert!(text.contains("--web.listen-address"), "{text}");
    }
}

// ------------------------------------------------------------------- Debian package

/// The .deb under test: $NETSTAT_EXPORTER_DEB (what .ci/run built with `cargo deb`), else one
/// built now with `cargo deb` into target/deb-test (a separate target directory: the running
/// `cargo test` holds the main one).
fn debian_package() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NETSTAT_EXPORTER_DEB") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "NETSTAT_EXPORTER_DEB={} does not exist",
            p.display()
        );
        return Some(p);
    }
    if !require_tool("cargo-deb") {
        return None;
    }
    eprintln!("building the package with cargo deb (release build; set NETSTAT_EXPORTER_DEB to reuse one)");
    let target = repo().join("target/deb-test");
    let out = ok(Command::new("cargo")
        .args(["deb", "--locked"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(repo()));
    // cargo deb prints the path of the package it wrote as its last line.
    let p = PathBuf::from(
        out.lines()
            .rev()
            .find(|l| l.ends_with(".deb"))
            .unwrap()
            .trim(),
    );
    Some(p)
}

fn dpkg_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
}

fn dpkg(args: &[&str]) -> String {
    ok(Command::new("dpkg")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(args))
}

#[test]
fn debian_package_installs_verifies_and_purges_without_leftovers() {
    if !require_root() {
        return;
    }
    for tool in ["dpkg", "systemd-analyze", "man", "systemd-sysusers", "file"] {
        if !require_tool(tool) {
            return;
        }
    }
    let Some(deb) = debian_package() else {
        return;
    };
    let version = env!("CARGO_PKG_VERSION");
    let name = deb.file_name().unwrap().to_str().unwrap();
    assert_eq!(name, format!("netstat-exporter_{version}_amd64.deb"));
    let size = std::fs::metadata(&deb).unwrap().len();
    eprintln!("package {} : {size} bytes", deb.display());

    // Package metadata.
    let info = ok(Command::new("dpkg-deb").arg("--field").arg(&deb));
    for needle in [
        "Package: netstat-exporter",
        &format!("Version: {version}"),
        "Architecture: amd64",
        "Maintainer: ",
        "Depends: ",
        "systemd-sysusers",
    ] {
        assert!(info.contains(needle), "control lacks {needle:?}:\n{info}");
    }

    if dpkg_installed() {
        eprintln!("{PACKAGE} already installed (an earlier run?): purging first");
        dpkg(&["--purge", PACKAGE]);
    }
    dpkg(&["-i", deb.to_str().unwrap()]);
    let files: Vec<String> = dpkg(&["-L", PACKAGE])
        .lines()
        .map(str::to_string)
        .filter(|l| l.starts_with('/'))
        .collect();
    let has = |p: &str| files.iter().any(|f| f == p);
    let unit = files
        .iter()
        .find(|f| f.ends_with("/systemd/system/netstat_exporter.service"))
        .expect("a systemd unit in the package")
        .clone();
    let man = files
        .iter()
        .find(|f| f.starts_with("/usr/share/man/man1/netstat_exporter.1"))
        .expect("a man page in the package")
        .clone();
    for p in [
        "/usr/bin/netstat_exporter",
        "/usr/lib/sysusers.d/netstat_exporter.conf",
        "/etc/default/netstat_exporter",
        "/usr/share/doc/netstat-exporter/README.md",
        "/usr/share/doc/netstat-exporter/copyright",
        "/usr/share/netstat-exporter/dashboards/netstat_exporter.json",
        "/usr/share/netstat-exporter/prometheus/alerts.yml",
    ] {
        assert!(has(p), "{p} not in the package: {files:?}");
        assert!(Path::new(p).exists(), "{p} not installed");
    }
    // The licence text is in the copyright file.
    let copyright = std::fs::read_to_string("/usr/share/doc/netstat-exporter/copyright").unwrap();
    assert!(copyright.contains("Apache License"), "{copyright}");
    // /etc/default is a conffile (kept on remove, deleted on purge).
    let conffiles = ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]));
    assert!(
        conffiles.contains("/etc/default/netstat_exporter"),
        "{conffiles}"
    );

    // The binary: stripped, runs, reports the version (and the build date of
    // SOURCE_DATE_EPOCH when the package was built with one).
    let bin = "/usr/bin/netstat_exporter";
    let file = ok(Command::new("file").arg(bin));
    assert!(file.contains(", stripped"), "not stripped: {file}");
    eprintln!(
        "installed binary: {} bytes (stripped)",
        std::fs::metadata(bin).unwrap().len()
    );
    let date = check_version_output(bin);
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let want = ok(Command::new("date")
            .env("TZ", "UTC")
            .arg("-d")
            .arg(format!("@{epoch}"))
            .arg("+%Y%m%d-%H:%M:%S"));
        assert_eq!(date, want.trim(), "build date is not SOURCE_DATE_EPOCH");
    }
    // One scrape works from the installed binary.
    let once = ok(Command::new(bin).args(["--once", "--no-collector.listeners"]));
    assert!(once.contains("netstat_sockets{"));

    // postinst created the service user from the sysusers.d entry.
    let user = ok(Command::new("getent").args(["passwd", "netstat_exporter"]));
    assert!(user.contains("/usr/sbin/nologin"), "{user}");
    // The unit as installed verifies (ExecStart=/usr/bin/netstat_exporter exists now).
    let verify = ok(Command::new("systemd-analyze").arg("verify").arg(&unit));
    // verify exits 0 on unknown keys and bad values (it only warns): any output is a failure.
    assert!(
        verify.trim().is_empty(),
        "systemd-analyze verify:\n{verify}"
    );
    // The man page renders.
    let text = man_text(&man);
    assert!(text.contains("--collector.listeners.expected"), "{text}");
    // Enabled (by deb-systemd-helper, also without a running systemd).
    let wants = "/etc/systemd/system/multi-user.target.wants/netstat_exporter.service";
    assert!(Path::new(wants).exists(), "{wants}: unit not enabled");

    // Remove: everything but the conffile goes.
    dpkg(&["-r", PACKAGE]);
    for f in &files {
        let p = Path::new(f);
        if f == "/etc/default/netstat_exporter" {
            assert!(p.exists(), "conffile removed by dpkg -r");
        } else if !p.is_dir() {
            assert!(!p.exists(), "{f} left behind after dpkg -r");
        }
    }
    // Purge: nothing left, not even the conffile or the enablement symlink.
    dpkg(&["--purge", PACKAGE]);
    assert!(!dpkg_installed());
    for f in files.iter().chain([&wants.to_string()]) {
        let p = Path::new(f);
        if p.is_dir() {
            // Only directories other packages also use may stay (/usr/bin, /etc/default...).
            assert!(
                !f.contains("netstat"),
                "{f} (the package's own directory) left behind after purge"
            );
        } else {
            assert!(!p.exists(), "{f} left behind after purge");
        }
    }
}
