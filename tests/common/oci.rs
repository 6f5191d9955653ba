//! Real OCI containers for tests: `runc` runs a busybox-static rootfs bundle made in a
//! temporary directory. The sandbox refuses setrlimit, so `process.rlimits` is removed from
//! the `runc spec` config; `linux.cgroupsPath` places the container in a kubepods- or
//! docker-style cgroup. Killed and deleted on drop, even when the test fails.
#![allow(dead_code)]

use std::process::{Command, Stdio};

use super::TempDir;

pub struct Container {
    pub id: String,
    pub pid: u32,
    _bundle: TempDir,
}

impl Container {
    /// Start `/bin/sh -c script` in a new network namespace, or in the one of `join` (a path
    /// like /proc/<pid>/ns/net, as the containers of a pod share their sandbox's), with
    /// `cgroup` as its cgroupsPath.
    pub fn start(id: &str, script: &str, join: Option<&str>, cgroup: &str) -> Container {
        let bundle = TempDir::new(&format!("oci-{id}"));
        let bin = bundle.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        // busybox-static: a static binary runs in a rootfs with no libc.
        let busybox = std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("busybox"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.exists())
            .expect("busybox on PATH (Debian package busybox-static)");
        std::fs::copy(&busybox, bin.join("busybox")).expect("copy busybox");
        for applet in ["sh", "nc", "sleep", "cat", "echo"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let out = Command::new("runc")
            .arg("spec")
            .current_dir(bundle.path())
            .output()
            .expect("runc spec");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = bundle.join("config.json");
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let p = c["process"].as_object_mut().unwrap();
        p.remove("rlimits");
        p.insert("terminal".into(), false.into());
        p.insert("args".into(), serde_json::json!(["/bin/sh", "-c", script]));
        c["linux"]["cgroupsPath"] = cgroup.into();
        if let Some(j) = join {
            for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
                if ns["type"] == "network" {
                    ns["path"] = j.into();
                }
            }
        }
        std::fs::write(&path, serde_json::to_string_pretty(&c).unwrap()).unwrap();
        // The container inherits runc's stdio: a file, not a pipe nobody would close.
        let log = bundle.join("runc.log");
        let file = std::fs::File::create(&log).unwrap();
        let status = Command::new("runc")
            .args(["run", "-d", id])
            .current_dir(bundle.path())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .expect("runc run");
        assert!(
            status.success(),
            "runc run {id}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let state = Command::new("runc").args(["state", id]).output().unwrap();
        let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
        let pid = state["pid"].as_u64().expect("pid") as u32;
        Container {
            id: id.to_string(),
            pid,
            _bundle: bundle,
        }
    }

    pub fn netns_path(&self) -> String {
        format!("/proc/{}/ns/net", self.pid)
    }

    pub fn netns_inode(&self) -> u64 {
        let link = std::fs::read_link(self.netns_path()).unwrap();
        let s = link.to_string_lossy();
        s.trim_start_matches("net:[")
            .trim_end_matches(']')
            .parse()
            .unwrap()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
