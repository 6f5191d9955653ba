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
