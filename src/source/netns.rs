//! The network namespace a collection reads: its `/proc/<pid>/net` directory, how to open a
//! netlink socket inside it, and where its link attributes are.
//!
//! Every collector reads through a [`Netns`]; nothing above `source/` builds a path to
//! `<procfs>/net` or `<sysfs>/class/net` itself. The exporter's own namespace is
//! [`Netns::own`]: its `<procfs>/net`, netlink sockets opened in the exporter's namespace and
//! `<sysfs>/class/net`, which shows only the namespace that mounted that sysfs.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use super::netdev::{SysAttrs, SysClassNet};
use super::netlink::DiagSocket;
use super::rtnetlink;
use super::SourceError;

/// `32768\t60999\n` -> (32768, 60999).
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(|v| v.parse::<u16>().ok());
    let (low, high) = (it.next()??, it.next()??);
    (it.next().is_none() && low <= high).then_some((low, high))
}

/// How netlink reaches a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetlinkAccess {
    /// The calling thread is in this namespace (the exporter's own, or one a collection thread
    /// entered): open sockets directly.
    Own,
    /// No netlink for this namespace (e.g. `--path.procfs` points at another tree, whose
    /// namespace the exporter is not in, or another namespace read without the privilege to
    /// enter it): the `/proc` text files are the only source.
    Unavailable,
}

/// Who a namespace belongs to, for `netstat_netns_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetnsInfo {
    /// The nsfs inode number (0 when unknown).
    pub inode: u64,
    /// Its `ip netns` name (a file under /run/netns), or "".
    pub name: String,
    pub container_id: String,
    pub pod_uid: String,
}

/// A network namespace found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub inode: u64,
    /// The lowest pid in it (None: a bind-mounted namespace no process is in).
    pub pid: Option<u32>,
    /// The file to enter it by: `<procfs>/<pid>/ns/net` or the bind mount.
    pub path: PathBuf,
    pub name: String,
}

impl Found {
    /// Who it belongs to: its name, and the container and pod of its lowest pid's cgroup
    /// (none for a bind-mounted namespace no process is in).
    pub fn info(&self, procfs: &Path, errors: &mut Vec<SourceError>) -> NetnsInfo {
        let id = match self.pid {
            Some(pid) => super::cgroup::read(procfs, pid, errors),
            None => Default::default(),
        };
        NetnsInfo {
            inode: self.inode,
            name: self.name.clone(),
            container_id: id.container_id,
            pod_uid: id.pod_uid,
        }
    }
}

/// Every network namespace of the host: those of all processes (deduplicated by inode, the
/// lowest pid kept) and the bind-mounted ones under `netns_dirs` (`ip netns add` makes them
/// in /run/netns), plus the inode of the exporter's own.
#[derive(Debug, Default)]
pub struct Discovery {
    pub own_inode: Option<u64>,
    /// By inode, the own namespace excluded.
    pub found: Vec<Found>,
}

/// Whether `path` is on nsfs (a namespace file).
fn is_nsfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the struct for a valid NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == NSFS_MAGIC
}

/// `net:[4026531840]` -> 4026531840.
pub fn parse_ns_link(link: &[u8]) -> Option<u64> {
    super::bracketed_number(link, b"net:[")
}

fn ns_link(path: &Path) -> Option<u64> {
    super::readlink_number(path, b"net:[")
}

/// Find the host's network namespaces. Processes that exit or deny access mid-walk are
/// skipped (their namespace is still found through any other process in it).
pub fn discover(procfs: &Path, netns_dirs: &[PathBuf], errors: &mut Vec<SourceError>) -> Discovery {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;
    let own_inode = ns_link(&procfs.join("self/ns/net"));
    let mut by_inode: BTreeMap<u64, Found> = BTreeMap::new();
    match std::fs::read_dir(procfs) {
        Ok(dir) => {
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let path = entry.path().join("ns/net");
                let Some(inode) = ns_link(&path) else {
                    continue;
                };
                let f = by_inode.entry(inode).or_insert_with(|| Found {
                    inode,
                    pid: Some(pid),
                    path: path.clone(),
                    name: String::new(),
                });
                if f.pid.is_some_and(|p| pid < p) {
                    f.pid = Some(pid);
                    f.path = path;
                }
            }
        }
        Err(e) => errors.push(SourceError::file(
            "proc/pid/ns",
            procfs,
            format!("cannot list processes: {e}"),
        )),
    }
    for dir in netns_dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            // No `ip netns` namespaces here (the directory is made by the first `ip netns add`).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // There but unreadable (not a directory, no permission): its namespaces without a
            // process are missed, and their names. Counted.
            Err(e) => {
                errors.push(SourceError::file(
                    "run/netns",
                    dir,
                    format!("cannot list the ip netns directory: {e}"),
                ));
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // A bind mount of an nsfs file: its inode is the namespace's. (A file left
            // behind without its mount is not a namespace.)
            if !is_nsfs(&path) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let f = by_inode.entry(meta.ino()).or_insert_with(|| Found {
                inode: meta.ino(),
                pid: None,
                path: path.clone(),
                name: String::new(),
            });
            if f.name.is_empty() {
                f.name = name;
            }
        }
    }
    if let Some(own) = own_inode {
        by_inode.remove(&own);
    }
    Discovery {
        own_inode,
        found: by_inode.into_values().collect(),
    }
}

/// One network namespace as collectors see it.
#[derive(Debug, Clone)]
pub struct Netns {
    /// Value of the `netns` label: empty for the exporter's own namespace.
    label: String,
    /// Whose namespace it is.
    pub info: NetnsInfo,
    /// Enter it (setns on the collecting thread) through this file before reading it.
    enter: Option<PathBuf>,
    /// The namespace's `net` directory: `<procfs>/net` or `<procfs>/<pid>/net`.
    net_dir: PathBuf,
    /// `<sysfs>/class/net` when it shows this namespace's devices.
    sys_class_net: Option<PathBuf>,
    /// `<procfs>/sys/net` when it shows this namespace's settings.
    sysctl_net: Option<PathBuf>,
    netlink: NetlinkAccess,
}

/// The kernel's default `net.ipv4.ip_local_port_range`.
pub const DEFAULT_EPHEMERAL_PORTS: (u16, u16) = (32768, 60999);

impl Netns {
    /// The exporter's own namespace, read under `procfs` and `sysfs`. With `netlink` false
    /// (the procfs tree is not the live one), sockets come from the text files only.
    pub fn own(procfs: &Path, sysfs: &Path, netlink: bool) -> Netns {
        Netns {
            label: String::new(),
            info: NetnsInfo::default(),
            enter: None,
            net_dir: procfs.join("net"),
            sys_class_net: Some(sysfs.join("class/net")),
            sysctl_net: Some(procfs.join("sys/net")),
            netlink: if netlink {
                NetlinkAccess::Own
            } else {
                NetlinkAccess::Unavailable
            },
        }
    }

    /// Another namespace, to be read by a thread that enters it through `found.path`: once
    /// entered, its files are `<procfs>/thread-self/net`, its settings `<procfs>/sys/net`
    /// (opened from inside), and netlink sockets opened there answer for it. Link
    /// attributes come from rtnetlink (sysfs shows only the exporter's own namespace).
    pub fn entered(procfs: &Path, info: NetnsInfo, path: PathBuf) -> Netns {
        Netns {
            label: info.inode.to_string(),
            info,
            enter: Some(path),
            net_dir: procfs.join("thread-self/net"),
            sys_class_net: None,
            sysctl_net: Some(procfs.join("sys/net")),
            netlink: NetlinkAccess::Own,
        }
    }

    /// Another namespace read without entering it: `<procfs>/<pid>/net` text only (no
    /// netlink, no link attributes, the default ephemeral port range).
    pub fn proc_only(procfs: &Path, info: NetnsInfo, pid: u32) -> Netns {
        Netns {
            label: info.inode.to_string(),
            info,
            enter: None,
            net_dir: procfs.join(pid.to_string()).join("net"),
            sys_class_net: None,
            sysctl_net: None,
            netlink: NetlinkAccess::Unavailable,
        }
    }

    /// The file to enter this namespace by, when it must be entered before reading.
    pub fn enter_path(&self) -> Option<&Path> {
        self.enter.as_deref()
    }

    /// Link attributes of the devices `names`: from `<sysfs>/class/net` for the exporter's
    /// own namespace, over rtnetlink for an entered one (called on its thread), none for a
    /// namespace read from /proc text only.
    pub fn link_attrs(
        &self,
        names: &[&str],
        errors: &mut Vec<SourceError>,
    ) -> HashMap<String, SysAttrs> {
        let mut out = HashMap::new();
        if let Some(dir) = &self.sys_class_net {
            let sysfs = SysClassNet::at(dir);
            for n in names {
                if let Some(a) = sysfs.read(n, errors) {
                    out.insert(n.to_string(), a);
                }
            }
        } else if self.netlink == NetlinkAccess::Own {
            match rtnetlink::links() {
                Ok(mut all) => {
                    for n in names {
                        if let Some(a) = all.remove(*n) {
                            out.insert(n.to_string(), a);
                        }
                    }
                }
                Err(e) => errors.push(SourceError {
                    source: "rtnetlink".into(),
                    location: format!("RTM_GETLINK dump in network namespace {}", self.label),
                    line: None,
                    message: e.to_string(),
                }),
            }
        }
        out
    }

    /// The `netns` label value ("" for the exporter's own namespace).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The namespace's `net` directory (`tcp`, `dev`, `snmp`, ... live there).
    pub fn net_dir(&self) -> &Path {
        &self.net_dir
    }

    /// `<sysfs>/class/net` if it shows this namespace's devices.
    pub fn sys_class_net(&self) -> Option<&Path> {
        self.sys_class_net.as_deref()
    }

    /// The namespace's ephemeral port range (`net.ipv4.ip_local_port_range`, which also
    /// applies to IPv6). The kernel default when the setting cannot be seen; a malformed
    /// value is an error (and the default is used).
    pub fn ip_local_port_range(&self, errors: &mut Vec<SourceError>) -> (u16, u16) {
        let Some(dir) = &self.sysctl_net else {
            return DEFAULT_EPHEMERAL_PORTS;
        };
        let path = dir.join("ipv4/ip_local_port_range");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return DEFAULT_EPHEMERAL_PORTS,
            Err(e) => {
                errors.push(SourceError::file(
                    "sys/net/ipv4/ip_local_port_range",
                    &path,
                    format!("cannot read: {e}"),
                ));
                return DEFAULT_EPHEMERAL_PORTS;
            }
        };
        match parse_port_range(&text) {
            Some(r) => r,
            None => {
                errors.push(SourceError::line(
                    "sys/net/ipv4/ip_local_port_range",
                    &path,
                    1,
                    format!("expected two port numbers, found {:?}", text.trim()),
                ));
                DEFAULT_EPHEMERAL_PORTS
            }
        }
    }

    pub fn netlink(&self) -> &NetlinkAccess {
        &self.netlink
    }

    /// Open a NETLINK_SOCK_DIAG socket that answers for this namespace.
    pub fn open_diag(&self) -> io::Result<DiagSocket> {
        match self.netlink {
            NetlinkAccess::Own => DiagSocket::open(),
            NetlinkAccess::Unavailable => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no netlink access to this network namespace",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("1024 65535"), Some((1024, 65535)));
        for bad in ["", "1", "2 1", "1 2 3", "a b", "1 70000"] {
            assert_eq!(parse_port_range(bad), None, "{bad:?}");
        }
    }
}

/// Whether a namespace found earlier is still there: its process still in it, or its bind
/// mount still present.
pub fn still_there(f: &Found) -> bool {
    use std::os::unix::fs::MetadataExt;
    match f.pid {
        Some(_) => ns_link(&f.path) == Some(f.inode),
        None => std::fs::metadata(&f.path).is_ok_and(|m| m.ino() == f.inode),
    }
}

/// Move the calling thread into the network namespace of `path` (an nsfs file), which must
/// still be the namespace `inode` found by discovery: a `/proc/<pid>/ns/net` whose process
/// exited and whose pid was reused names another namespace now, and reading it would report
/// that one under the old label. A mismatch is ESRCH (the namespace vanished). Needs
/// CAP_SYS_ADMIN. Only for threads that exit afterwards (the collection threads).
pub fn enter(path: &Path, inode: u64) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::open(path)?;
    if file.metadata()?.ino() != inode {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: setns on a valid fd; it changes only the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod discovery_tests {
    use super::*;

    #[test]
    fn ns_links() {
        assert_eq!(parse_ns_link(b"net:[4026531840]"), Some(4026531840));
        assert_eq!(parse_ns_link(b"mnt:[4026531840]"), None);
        assert_eq!(parse_ns_link(b"net:[]"), None);
        assert_eq!(parse_ns_link(b"net:[12"), None);
    }

    #[test]
    fn entering_checks_the_namespace_is_still_the_one_found() {
        // The thread's own namespace under another inode (a reused pid): refused before
        // setns, as vanished, and the thread stays where it was.
        let own = ns_link(Path::new("/proc/thread-self/ns/net")).expect("own namespace");
        let e = std::thread::spawn(move || enter(Path::new("/proc/thread-self/ns/net"), own + 1))
            .join()
            .expect("thread");
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::ESRCH));
        let e = enter(Path::new("/proc/self/ns/no-such"), own).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn finds_its_own_namespace() {
        let mut errors = Vec::new();
        let d = discover(Path::new("/proc"), &[], &mut errors);
        assert!(errors.is_empty());
        let own = d.own_inode.expect("own namespace");
        assert!(d.found.iter().all(|f| f.inode != own));
    }

    #[test]
    fn an_unlistable_netns_directory_is_an_error_a_missing_one_is_not() {
        let dir = std::env::temp_dir().join(format!("netns-dirs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("netns");
        std::fs::write(&file, "").expect("a file where a directory should be");
        let mut errors = Vec::new();
        discover(
            Path::new("/proc"),
            &[dir.join("missing"), file.clone()],
            &mut errors,
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].source, "run/netns");
        assert_eq!(errors[0].location, file.display().to_string());
    }
}
