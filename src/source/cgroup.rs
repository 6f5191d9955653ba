//! Container and pod identity from a process's cgroup path (`/proc/<pid>/cgroup`), for the
//! layouts in the wild: cgroup v1 and v2; systemd slices
//! (`kubepods-besteffort-pod<uid with _>.slice/cri-containerd-<id>.scope`, `docker-<id>.scope`,
//! `crio-<id>.scope`, `libpod-<id>.scope`) and cgroupfs paths (`/kubepods/besteffort/pod<uid>/<id>`,
//! `/docker/<id>`). The parser never touches a path; [`read`] does the I/O.

use std::path::Path;

use super::SourceError;

/// What a cgroup path says about its container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The full 64-hex container id, or "".
    pub container_id: String,
    /// The pod uid in canonical dashed form (as kube-state-metrics' `uid`), or "".
    pub pod_uid: String,
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A 64-hex container id in one path component: the component itself, or a
/// `docker-`/`cri-containerd-`/`crio-`/`libpod-`/`containerd-` prefixed `.scope`.
fn container_id(component: &str) -> Option<String> {
    let c = component.strip_suffix(".scope").unwrap_or(component);
    let id = c.rsplit(['-', ':']).next().unwrap_or(c);
    (id.len() == 64 && is_hex(id)).then(|| id.to_ascii_lowercase())
}

/// A pod uid in one component: `pod<uid>` (cgroupfs, dashes) or
/// `kubepods-<qos>-pod<uid with underscores>.slice` (systemd).
fn pod_uid(component: &str) -> Option<String> {
    let c = component.strip_suffix(".slice").unwrap_or(component);
    let at = c.rfind("pod")?;
    let raw = &c[at + 3..];
    let uid = raw.replace('_', "-");
    let parts: Vec<&str> = uid.split('-').collect();
    let shape = [8, 4, 4, 4, 12];
    let ok = parts.len() == 5
        && parts
            .iter()
            .zip(shape)
            .all(|(p, n)| p.len() == n && is_hex(p));
    ok.then(|| uid.to_ascii_lowercase())
}

/// Parse the text of `/proc/<pid>/cgroup` (`hierarchy:controllers:path` per line). The first
/// line with a pod uid or a container id wins (v2's `0::` line, or any v1 controller).
pub fn parse(text: &str) -> Identity {
    let mut id = Identity::default();
    for line in text.lines() {
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        let mut found = Identity::default();
        for component in path.split('/') {
            if let Some(c) = container_id(component) {
                found.container_id = c;
            }
            if let Some(p) = pod_uid(component) {
                found.pod_uid = p;
            }
        }
        if id.container_id.is_empty() {
            id.container_id = found.container_id;
        }
        if id.pod_uid.is_empty() {
            id.pod_uid = found.pod_uid;
        }
        if !id.container_id.is_empty() && !id.pod_uid.is_empty() {
            break;
        }
    }
    id
}

/// The identity of process `pid` (empty when it has none or is gone: not an error).
pub fn read(procfs: &Path, pid: u32, errors: &mut Vec<SourceError>) -> Identity {
    let path = procfs.join(pid.to_string()).join("cgroup");
    match std::fs::read_to_string(&path) {
        Ok(t) => parse(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Identity::default(),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Identity::default(),
        Err(e) => {
            errors.push(SourceError::file(
                "proc/pid/cgroup",
                &path,
                format!("cannot read: {e}"),
            ));
            Identity::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4c6b1c9e2a1f0d3b5e7a9c8b6d4f2e1a3c5b7d9f0e2a4c6b8d1f3e5a7c9b0d2f";

    #[test]
    fn layouts_in_the_wild() {
        for (text, cid, pod) in [
            // cgroup v2, systemd driver, containerd.
            (
                format!("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-{ID}.scope\n"),
                ID,
                "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901",
            ),
            // guaranteed QoS has no qos slice.
            (
                format!("0::/kubepods.slice/kubepods-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/crio-{ID}.scope\n"),
                ID,
                "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901",
            ),
            // cgroup v1, cgroupfs driver.
            (
                format!("12:memory:/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/{ID}\n11:cpu,cpuacct:/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/{ID}\n"),
                ID,
                "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901",
            ),
            // Docker, both drivers; podman.
            (format!("0::/system.slice/docker-{ID}.scope\n"), ID, ""),
            (format!("4:pids:/docker/{ID}\n"), ID, ""),
            (format!("0::/machine.slice/libpod-{ID}.scope/container\n"), ID, ""),
            // Not a container.
            ("0::/user.slice/user-1000.slice/session-2.scope\n".to_string(), "", ""),
            ("0::/\n".to_string(), "", ""),
            ("garbage\n\n::\n".to_string(), "", ""),
        ] {
            let got = parse(&text);
            assert_eq!(got.container_id, cid, "{text}");
            assert_eq!(got.pod_uid, pod, "{text}");
        }
    }

    #[test]
    fn near_misses_are_not_ids() {
        let short = &ID[..63];
        assert_eq!(parse(&format!("0::/docker/{short}\n")).container_id, "");
        assert_eq!(parse("0::/kubepods/podnot-a-uid/x\n").pod_uid, "");
        assert_eq!(
            parse(&format!("0::/docker/{}g\n", &ID[..63])).container_id,
            ""
        );
    }
}
