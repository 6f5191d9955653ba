//! Fault tests with fixture roots copied into a temp dir and broken on purpose: a file
//! replaced by a directory, a truncated file, a file nobody may read (run as `nobody` through
//! setpriv, since root bypasses permissions), a FIFO whose open never returns, a device that
//! vanished from sysfs between the /proc/net/dev listing and the sysfs read. The scrape always
//! answers; the affected collector alone reports success 0, with one log line naming the path.
//! Also: the whole exporter run unprivileged (as nobody) serves every default collector.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{exporter_bin, sample};

struct Root(PathBuf);

impl Root {
    /// A procfs + sysfs tree assembled from the sockets, protocols and interfaces fixtures.
    fn new(tag: &str) -> Root {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "netstat_exporter-faults-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let f = common::fixtures();
        copy_dir(&f.join("sockets/basic/proc"), &dir.join("proc"));
        copy_dir(&f.join("protocols/current/proc"), &dir.join("proc"));
        copy_dir(&f.join("interfaces/basic/proc"), &dir.join("proc"));
        copy_dir(&f.join("interfaces/basic/sys"), &dir.join("sys"));
        // Readable by nobody for the unprivileged runs.
        for d in [&dir, &std::env::temp_dir()] {
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
        }
        Root(dir)
    }
    fn proc_net(&self, file: &str) -> PathBuf {
        self.0.join("proc/net").join(file)
    }
    fn args(&self) -> Vec<String> {
        vec![
            format!("--path.procfs={}", self.0.join("proc").display()),
            format!("--path.sysfs={}", self.0.join("sys").display()),
            "--web.scrape-timeout=2s".into(),
            // The collectors of this test; others (listeners) have their own fault tests.
            "--collector.disable-defaults".into(),
            "--collector.sockets".into(),
            "--collector.interfaces".into(),
            "--collector.protocols".into(),
        ]
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            copy_dir(&e.path(), &target);
        } else if ty.is_symlink() {
            let link = std::fs::read_link(e.path()).unwrap();
            let _ = std::os::unix::fs::symlink(link, &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

fn once(args: &[String], as_nobody: bool) -> Output {
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ]);
        c.arg(exporter_bin());
        c
    } else {
        Command::new(exporter_bin())
    };
    cmd.arg("--once").args(args);
    let t = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    out
}

/// Success of each collector, and the warning lines logged.
fn check(out: &Output) -> (Vec<(&'static str, Option<f64>)>, Vec<String>) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit {:?}: {log}", out.status);
    assert!(!log.contains("panicked"), "{log}");
    let success = ["sockets", "interfaces", "protocols"]
        .into_iter()
        .map(|c| {
            (
                c,
                sample(
                    &text,
                    "netstat_scrape_collector_success",
                    &[("collector", c)],
                ),
            )
        })
        .collect();
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("level=warn") || l.contains("warn"))
        .map(String::from)
        .collect();
    (success, warnings)
}

fn assert_only_failed(out: &Output, failed: &str, path_part: &str) {
    let (success, warnings) = check(out);
    for (c, v) in success {
        let want = if c == failed { 0.0 } else { 1.0 };
        assert_eq!(
            v,
            Some(want),
            "collector {c}: {success_dbg}",
            success_dbg = String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(warnings.len(), 1, "one log line expected: {warnings:#?}");
    assert!(warnings[0].contains(path_part), "{warnings:#?}");
}

#[test]
fn intact_root_is_all_success() {
    let root = Root::new("intact");
    let (success, warnings) = check(&once(&root.args(), false));
    assert!(success.iter().all(|(_, v)| *v == Some(1.0)), "{success:?}");
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[test]
fn file_replaced_by_a_directory() {
    let root = Root::new("dir");
    let p = root.proc_net("tcp6");
    std::fs::remove_file(&p).unwrap();
    std::fs::create_dir(&p).unwrap();
    assert_only_failed(&once(&root.args(), false), "sockets", "net/tcp6");
}

#[test]
fn truncated_file() {
    let root = Root::new("trunc");
    let p = root.proc_net("snmp");
    let text = std::fs::read(&p).unwrap();
    // Cut in the middle of the second line (a value line without its last values).
    let second_nl = text
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(1)
        .unwrap()
        .0;
    std::fs::write(&p, &text[..second_nl - 7]).unwrap();
    assert_only_failed(&once(&root.args(), false), "protocols", "net/snmp");
}

#[test]
fn fifo_whose_open_never_returns_times_out_alone() {
    let root = Root::new("fifo");
    let p = root.proc_net("udp");
    std::fs::remove_file(&p).unwrap();
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let t = Instant::now();
    let out = once(&root.args(), false);
    // --web.scrape-timeout=2s bounds the scrape; the stuck read stays in its own thread.
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert_only_failed(&out, "sockets", "sockets");
    let (_, warnings) = check(&out);
    assert!(warnings[0].contains("timeout"), "{warnings:#?}");
}

#[test]
fn device_vanished_from_sysfs() {
    let root = Root::new("vanish");
    std::fs::remove_dir_all(root.0.join("sys/class/net/eth0")).unwrap();
    let out = once(&root.args(), false);
    let (success, warnings) = check(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    // The device is still reported from /proc/net/dev; whatever sysfs lacked is left out.
    assert!(text.contains("device=\"eth0\""), "{text}");
    for (c, v) in success {
        if c != "interfaces" {
            assert_eq!(v, Some(1.0), "{c}");
        }
    }
    assert!(warnings.len() <= 1, "{warnings:#?}");
}

fn can_setpriv() -> bool {
    if !common::require_root() || !common::require_tool("setpriv") {
        return false;
    }
    // The binary must be reachable by nobody (it is under the work tree).
    let ok = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(exporter_bin())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if common::in_ci() {
            panic!("the exporter binary cannot be run as nobody");
        }
        eprintln!("\n*** SKIPPED: the exporter binary cannot be run as nobody ***\n");
    }
    ok
}

#[test]
fn unreadable_file_as_nobody() {
    if !can_setpriv() {
        return;
    }
    let root = Root::new("perm");
    let p = root.proc_net("sockstat");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = once(&root.args(), true);
    assert_only_failed(&out, "protocols", "net/sockstat");
    let (_, warnings) = check(&out);
    assert!(
        warnings[0].to_lowercase().contains("permission denied"),
        "{warnings:#?}"
    );
}

#[test]
fn unprivileged_exporter_serves_every_default_collector() {
    if !can_setpriv() {
        return;
    }
    // The live host, as nobody with no capabilities: netlink sock_diag works unprivileged.
    let out = once(&["--log.level=warn".to_string()], true);
    let (success, warnings) = check(&out);
    assert!(
        success.iter().all(|(_, v)| *v == Some(1.0)),
        "{success:?} {warnings:#?}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("netstat_sockets{"), "{text}");
    assert!(
        text.contains("process_open_fds "),
        "own process metrics readable"
    );
}
