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

const MAINTAINER_SCRIPTS: [&str; 3] = ["postinst", "prerm", "postrm"];
const UNIT: &str = "netstat_exporter.service";
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants/netstat_exporter.service";
const CONFFILE: &str = "/etc/default/netstat_exporter";
/// deb-systemd-helper's record that the package enabled the unit (removed on purge).
const HELPER_STATE: &str = "/var/lib/systemd/deb-systemd-helper-enabled";

/// The project's own maintainer scripts pass shellcheck (POSIX sh, as dpkg runs them).
#[test]
fn maintainer_scripts_pass_shellcheck() {
    if !require_tool("shellcheck") {
        return;
    }
    let paths: Vec<PathBuf> = MAINTAINER_SCRIPTS
        .iter()
        .map(|s| repo().join("deploy/debian").join(s))
        .collect();
    ok(Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .args(&paths));
}

/// The control archive of `deb`: file name -> contents.
fn control_files(deb: &Path, dir: &Path) -> Vec<(String, String)> {
    let out = dir.join("control");
    ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&out));
    let mut files: Vec<(String, String)> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap_or_default())
        })
        .collect();
    files.sort();
    files
}

/// The package carries the project's scripts, byte for byte (not whatever a cargo-deb version
/// generates), and they do what the package needs: the user, the unit's enablement, its start
/// (only where systemd runs), its stop on removal, the state's removal on purge.
fn check_control_archive(deb: &Path, tmp: &Path) {
    let control = control_files(deb, tmp);
    let names: Vec<&str> = control.iter().map(|(n, _)| n.as_str()).collect();
    for script in MAINTAINER_SCRIPTS {
        let (_, text) = control
            .iter()
            .find(|(n, _)| n == script)
            .unwrap_or_else(|| panic!("no {script} in the control archive: {names:?}"));
        let ours = std::fs::read_to_string(repo().join("deploy/debian").join(script)).unwrap();
        assert_eq!(
            text, &ours,
            "{script} in the package is not deploy/debian/{script}"
        );
    }
    let script = |n: &str| control.iter().find(|(c, _)| c == n).unwrap().1.clone();
    let postinst = script("postinst");
    for needle in [
        "systemd-sysusers",
        "netstat_exporter.conf",
        "deb-systemd-helper enable",
        "/run/systemd/system",
        "deb-systemd-invoke \"$action\"",
    ] {
        assert!(postinst.contains(needle), "postinst lacks {needle:?}");
    }
    assert!(script("prerm").contains("deb-systemd-invoke stop"));
    assert!(script("postrm").contains("deb-systemd-helper purge"));
    let conffiles = script("conffiles");
    assert!(conffiles.contains(CONFFILE), "conffiles: {conffiles}");
}

/// Enabled the Debian way: the wants/ link, deb-systemd-helper's own view (it answers only
/// inside a maintainer script, hence DPKG_MAINTSCRIPT_PACKAGE) and systemctl's offline
/// `is-enabled` agree.
fn unit_enabled() -> bool {
    let link = Path::new(WANTS).exists();
    let helper = Command::new("deb-systemd-helper")
        .env("DPKG_MAINTSCRIPT_PACKAGE", PACKAGE)
        .args(["--quiet", "is-enabled", UNIT])
        .status()
        .is_ok_and(|s| s.success());
    let systemctl = Command::new("systemctl")
        .args(["is-enabled", "--quiet", UNIT])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        link == helper && helper == systemctl,
        "{WANTS} exists: {link}, deb-systemd-helper is-enabled: {helper}, \
         systemctl is-enabled: {systemctl}"
    );
    link
}

/// The installed binary scrapes once as the service user (what the unit's User= runs it as).
fn runs_as_service_user() {
    let out = ok(Command::new("setpriv").args([
        "--reuid=netstat_exporter",
        "--regid=netstat_exporter",
        "--clear-groups",
        "--",
        "/usr/bin/netstat_exporter",
        "--once",
        "--collector.disable-defaults",
        "--collector.sockets",
        "--collector.listeners",
    ]));
    assert!(out.contains("netstat_sockets{"), "{out}");
    assert!(out.contains("netstat_listener_info{"), "{out}");
}

/// Only the user may stay after a purge (Debian policy): no file of the package, no
/// enablement link, no deb-systemd-helper state.
fn check_purged(files: &[String]) {
    assert!(!dpkg_installed());
    for f in files.iter().map(String::as_str).chain([WANTS]) {
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
    let state: Vec<String> = std::fs::read_dir(HELPER_STATE)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("netstat_exporter"))
                .collect()
        })
        .unwrap_or_default();
    assert!(state.is_empty(), "deb-systemd-helper state left: {state:?}");
    let user = ok(Command::new("getent").args(["passwd", "netstat_exporter"]));
    assert!(
        user.contains("netstat_exporter"),
        "the user is kept: {user}"
    );
}

fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Tools the package tests drive.
fn package_test_tools() -> bool {
    if !require_root() {
        return false;
    }
    for tool in [
        "dpkg",
        "systemd-analyze",
        "man",
        "systemd-sysusers",
        "file",
        "setpriv",
        "deb-systemd-helper",
    ] {
        if !require_tool(tool) {
            return false;
        }
    }
    true
}

/// The two package tests build (without $NETSTAT_EXPORTER_DEB) and install the same package:
/// one at a time.
static DPKG: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn debian_package_installs_verifies_and_purges_without_leftovers() {
    if !package_test_tools() {
        return;
    }
    let _dpkg = DPKG.lock().unwrap_or_else(|e| e.into_inner());
    let Some(deb) = debian_package() else {
        return;
    };
    let tmp = common::TempDir::new("deb-control");
    check_control_archive(&deb, tmp.path());
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
    // What this test exercises where systemd is not PID 1 (a container, CI here): the files,
    // the user, the enablement (deb-systemd-helper works without a running systemd) and the
    // unit's verification. The scripts' start/restart/stop branches are guarded by
    // /run/systemd/system and are skipped there: said below, not silently.
    if !systemd_runs() {
        eprintln!(
            "NOTE: systemd is not running (no /run/systemd/system): the maintainer scripts' \
             start, restart and stop are skipped here; user, enablement and files are checked"
        );
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
        CONFFILE,
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
    assert!(conffiles.contains(CONFFILE), "{conffiles}");

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

    // postinst created the service user from the sysusers.d entry, and the binary runs as it.
    let user = ok(Command::new("getent").args(["passwd", "netstat_exporter"]));
    assert!(user.contains("/usr/sbin/nologin"), "{user}");
    runs_as_service_user();
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
    // Enabled by postinst (deb-systemd-helper, also without a running systemd).
    assert!(unit_enabled(), "{UNIT} not enabled after install");

    // Remove: everything but the conffile goes; the enablement stays until purge (as
    // debhelper's scripts do: a reinstall keeps the admin's choice).
    dpkg(&["-r", PACKAGE]);
    for f in &files {
        let p = Path::new(f);
        if f == CONFFILE {
            assert!(p.exists(), "conffile removed by dpkg -r");
        } else if !p.is_dir() {
            assert!(!p.exists(), "{f} left behind after dpkg -r");
        }
    }
    // Purge: nothing left but the user.
    dpkg(&["--purge", PACKAGE]);
    check_purged(&files);
}

/// A second build with a bumped version: `$NETSTAT_EXPORTER_DEB_UPGRADE` when set, else
/// `cargo deb --no-build --deb-version <version>+upgrade1` over the same binary, written into
/// its own directory.
fn upgrade_package(deb: &Path, tmp: &Path) -> Option<(PathBuf, String)> {
    let version = format!("{}+upgrade1", env!("CARGO_PKG_VERSION"));
    if let Ok(p) = std::env::var("NETSTAT_EXPORTER_DEB_UPGRADE") {
        let info = ok(Command::new("dpkg-deb").args(["--field", &p, "Version"]));
        return Some((PathBuf::from(p), info.trim().to_string()));
    }
    if !require_tool("cargo-deb") {
        return None;
    }
    // The package's binary lives in the target directory the first package was built in
    // (<target>/debian/<name>.deb).
    let target = deb.parent()?.parent()?.to_path_buf();
    let out_dir = tmp.join("upgrade");
    // cargo-deb (3.8.0) empties <target>/debian/ even when it writes elsewhere: keep the first
    // package and put it back, for the other package test.
    let saved = tmp.join("first.deb");
    std::fs::copy(deb, &saved).unwrap();
    let out = ok(Command::new("cargo")
        .args([
            "deb",
            "--locked",
            "--no-build",
            "--deb-version",
            &version,
            "--output",
        ])
        .arg(&out_dir)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(repo()));
    if !deb.exists() {
        std::fs::copy(&saved, deb).unwrap();
    }
    let p = out
        .lines()
        .rev()
        .find(|l| l.trim().ends_with(".deb"))
        .map(|l| PathBuf::from(l.trim()))
        .expect("cargo deb printed the package path");
    Some((p, version))
}

#[test]
fn debian_package_upgrade_keeps_the_edited_conffile_the_user_and_the_unit() {
    if !package_test_tools() {
        return;
    }
    let _dpkg = DPKG.lock().unwrap_or_else(|e| e.into_inner());
    let Some(deb) = debian_package() else {
        return;
    };
    let tmp = common::TempDir::new("deb-upgrade");
    let Some((upgrade, new_version)) = upgrade_package(&deb, tmp.path()) else {
        return;
    };
    if dpkg_installed() {
        dpkg(&["--purge", PACKAGE]);
    }
    dpkg(&["-i", deb.to_str().unwrap()]);
    let files: Vec<String> = dpkg(&["-L", PACKAGE])
        .lines()
        .map(str::to_string)
        .filter(|l| l.starts_with('/'))
        .collect();
    // The admin edits the flags.
    let edited = "NETSTAT_EXPORTER_ARGS=\"--web.listen-address=:9999 --netns=all\"\n";
    std::fs::write(CONFFILE, edited).unwrap();
    let uid_before = ok(Command::new("id").args(["-u", "netstat_exporter"]));

    // dpkg -i of the new version, no --force-conf*: the conffile is unchanged in the new
    // package, so dpkg keeps the edit without asking (stdin closed: a prompt would fail).
    let out = run(Command::new("dpkg")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .arg("-i")
        .arg(&upgrade)
        .stdin(std::process::Stdio::null()));
    assert!(out.status.success(), "upgrade failed");
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("Configuration file"),
        "dpkg asked about the conffile:\n{said}"
    );
    let installed = ok(Command::new("dpkg-query").args(["-W", "-f=${Version}", PACKAGE]));
    assert_eq!(installed.trim(), new_version);
    assert_eq!(std::fs::read_to_string(CONFFILE).unwrap(), edited);
    assert_eq!(
        ok(Command::new("id").args(["-u", "netstat_exporter"])),
        uid_before,
        "the user changed"
    );
    assert!(unit_enabled(), "{UNIT} not enabled after the upgrade");
    runs_as_service_user();

    dpkg(&["--purge", PACKAGE]);
    check_purged(&files);
}
