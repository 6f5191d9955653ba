//! The network namespace a collection reads: its `/proc/<pid>/net` directory, how to open a
//! netlink socket inside it, and where its link attributes are.
//!
//! Every collector reads through a [`Netns`]; nothing above `source/` builds a path to
//! `<procfs>/net` or `<sysfs>/class/net` itself. The exporter's own namespace is
//! [`Netns::own`]: its `<procfs>/net`, netlink sockets opened in the exporter's namespace and
//! `<sysfs>/class/net`, which shows only the namespace that mounted that sysfs.

use std::io;
use std::path::{Path, PathBuf};

use super::netlink::DiagSocket;

/// How netlink reaches a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetlinkAccess {
    /// The exporter's own namespace: open sockets directly.
    Own,
    /// No netlink for this namespace (e.g. `--path.procfs` points at another tree, whose
    /// namespace the exporter is not in): the `/proc` text files are the only source.
    Unavailable,
}

/// One network namespace as collectors see it.
#[derive(Debug, Clone)]
pub struct Netns {
    /// Value of the `netns` label: empty for the exporter's own namespace.
    label: String,
    /// The namespace's `net` directory: `<procfs>/net` or `<procfs>/<pid>/net`.
    net_dir: PathBuf,
    /// `<sysfs>/class/net` when it shows this namespace's devices.
    sys_class_net: Option<PathBuf>,
    netlink: NetlinkAccess,
}

impl Netns {
    /// The exporter's own namespace, read under `procfs` and `sysfs`. With `netlink` false
    /// (the procfs tree is not the live one), sockets come from the text files only.
    pub fn own(procfs: &Path, sysfs: &Path, netlink: bool) -> Netns {
        Netns {
            label: String::new(),
            net_dir: procfs.join("net"),
            sys_class_net: Some(sysfs.join("class/net")),
            netlink: if netlink {
                NetlinkAccess::Own
            } else {
                NetlinkAccess::Unavailable
            },
        }
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
