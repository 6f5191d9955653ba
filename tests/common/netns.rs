//! A network namespace made by a test (`ip netns add`), removed on drop even when the test
//! fails, with helpers to run `ip` in it and to create sockets inside it.
#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Run a command; panic with its stderr when it fails.
pub fn must(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    /// A new namespace with its loopback up.
    pub fn new(tag: &str) -> TestNetns {
        let ns = TestNetns::bare(tag);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A new namespace as the kernel makes it (loopback down).
    pub fn bare(tag: &str) -> TestNetns {
        let name = format!(
            "nsx{tag}{}{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        must("ip", &["netns", "add", &name]);
        TestNetns { name }
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        must("ip", &a)
    }

    pub fn exec(&self, args: &[&str]) -> String {
        let mut a = vec!["netns", "exec", self.name.as_str()];
        a.extend_from_slice(args);
        must("ip", &a)
    }

    /// Run `f` on a thread that joined this namespace (sockets it creates live there).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).expect("open netns");
                // SAFETY: setns on a valid namespace fd; affects only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("netns thread")
        })
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A veth pair: `host` in the test's own namespace, `peer` in `ns`; deleted on drop (deleting
/// one end deletes both).
pub struct Veth {
    pub host: String,
    pub peer: String,
}

impl Veth {
    pub fn new(ns: &TestNetns, tag: &str) -> Veth {
        let id = SEQ.fetch_add(1, Ordering::Relaxed);
        let host = format!("v{tag}{}h{id}", std::process::id() % 100_000);
        let peer = format!("v{tag}{}n{id}", std::process::id() % 100_000);
        must(
            "ip",
            &[
                "link", "add", &host, "type", "veth", "peer", "name", &peer, "netns", &ns.name,
            ],
        );
        Veth { host, peer }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .stderr(Stdio::null())
            .status();
    }
}
