//! One interface over the two socket sources: netlink sock_diag and `<procfs>/net/*` text.
//!
//! `auto` uses netlink and falls back, per protocol, to /proc when netlink is unavailable
//! (seccomp, old kernel) or the kernel has no diag module for that protocol (raw_diag is often
//! missing). Unix sockets are always read from `<net>/unix`: its text carries the
//! connecting/disconnecting distinction that unix_diag does not.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::inet::{state_bit, Family, InetSocket, Protocol, UnixSocket};
use super::netlink::{DiagSocket, DumpError};
use super::proc_net::{FileStatus, ProcNet};
use super::SourceError;

/// Which backend reads inet sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMode {
    Auto,
    Netlink,
    Proc,
}

impl std::str::FromStr for SourceMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SourceMode::Auto),
            "netlink" => Ok(SourceMode::Netlink),
            "proc" => Ok(SourceMode::Proc),
            _ => Err(format!(
                "unknown source {s:?} (expected auto, netlink or proc)"
            )),
        }
    }
}

/// Which backend served a protocol in one read (for logs, tests and the benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Netlink,
    Proc,
}

/// Reader of one network namespace's sockets.
#[derive(Debug)]
pub struct SocketSource {
    mode: SourceMode,
    proc: ProcNet,
    /// auto mode: protocols the kernel refused over netlink; /proc serves them from then on.
    netlink_refused: [AtomicBool; 4],
    /// auto mode: netlink socket could not be opened at all (logged once).
    netlink_unavailable: AtomicBool,
}

impl SocketSource {
    /// `net_dir` is a network namespace's `net` directory, e.g. `<procfs>/net`.
    pub fn new(mode: SourceMode, net_dir: impl Into<PathBuf>) -> Self {
        SocketSource {
            mode,
            proc: ProcNet::new(net_dir),
            netlink_refused: Default::default(),
            netlink_unavailable: AtomicBool::new(false),
        }
    }

    pub fn mode(&self) -> SourceMode {
        self.mode
    }

    /// Visit every socket of the given protocols, both families, whose state is in the
    /// `states` mask ([`super::inet::ALL_STATES`] for all; netlink filters in the kernel, /proc here).
    /// With `meminfo`, netlink is asked for SK_MEMINFO so that `drops` is filled (/proc always
    /// has it for UDP/raw). Returns the backend that served each protocol, in the order given.
    pub fn for_each_inet(
        &self,
        protocols: &[Protocol],
        states: u32,
        meminfo: bool,
        errors: &mut Vec<SourceError>,
        visit: &mut dyn FnMut(&InetSocket),
    ) -> Vec<Backend> {
        let mut diag = None;
        if self.mode != SourceMode::Proc && !self.netlink_unavailable.load(Ordering::Relaxed) {
            match DiagSocket::open() {
                Ok(s) => diag = Some(s),
                Err(e) => {
                    if self.mode == SourceMode::Netlink {
                        errors.push(SourceError {
                            source: "netlink".into(),
                            location: "NETLINK_SOCK_DIAG socket".into(),
                            line: None,
                            message: format!("cannot open: {e}"),
                        });
                        return Vec::new();
                    }
                    tracing::warn!(error = %e, "netlink sock_diag unavailable, reading sockets from /proc from now on");
                    self.netlink_unavailable.store(true, Ordering::Relaxed);
                }
            }
        }
        let mut backends = Vec::with_capacity(protocols.len());
        for &protocol in protocols {
            let refused = &self.netlink_refused[protocol.index()];
            let use_netlink = match &diag {
                Some(_) => self.mode == SourceMode::Netlink || !refused.load(Ordering::Relaxed),
                None => false,
            };
            if let (true, Some(sock)) = (use_netlink, diag.as_mut()) {
                match self.netlink_protocol(sock, protocol, states, meminfo, errors, visit) {
                    Ok(()) => {
                        backends.push(Backend::Netlink);
                        continue;
                    }
                    Err(errno) if self.mode == SourceMode::Auto => {
                        tracing::info!(
                            protocol = protocol.name(),
                            reason = %std::io::Error::from_raw_os_error(errno),
                            "kernel has no sock_diag support for this protocol; reading it from /proc from now on"
                        );
                        refused.store(true, Ordering::Relaxed);
                    }
                    Err(errno) => {
                        errors.push(netlink_error(
                            protocol,
                            Family::Ipv4,
                            &DumpError::Refused(errno),
                        ));
                        backends.push(Backend::Netlink);
                        continue;
                    }
                }
            }
            self.proc_protocol(protocol, states, errors, visit);
            backends.push(Backend::Proc);
        }
        backends
    }

    /// Both families of one protocol over netlink. `Err(errno)` only when the kernel refused
    /// the very first request, before any socket was visited, so /proc can take over cleanly.
    fn netlink_protocol(
        &self,
        sock: &mut DiagSocket,
        protocol: Protocol,
        states: u32,
        meminfo: bool,
        errors: &mut Vec<SourceError>,
        visit: &mut dyn FnMut(&InetSocket),
    ) -> Result<(), i32> {
        for (i, family) in Family::ALL.into_iter().enumerate() {
            match sock.dump_inet(protocol, family, states, meminfo, visit) {
                Ok(_) => {}
                Err(DumpError::Refused(errno)) if i == 0 => return Err(errno),
                Err(e) => errors.push(netlink_error(protocol, family, &e)),
            }
        }
        Ok(())
    }

    fn proc_protocol(
        &self,
        protocol: Protocol,
        states: u32,
        errors: &mut Vec<SourceError>,
        visit: &mut dyn FnMut(&InetSocket),
    ) {
        let mut filtered = |s: &InetSocket| {
            if states & state_bit(s.state) != 0 {
                visit(s)
            }
        };
        for family in Family::ALL {
            let status = self
                .proc
                .for_each_inet(protocol, family, errors, &mut filtered);
            if status == FileStatus::Missing {
                let file = protocol.proc_file(family);
                let optional = family == Family::Ipv6 || protocol == Protocol::UdpLite;
                if optional {
                    // IPv6 disabled, or a kernel built without UDP-Lite: a fact of the host,
                    // not an error (the series stay, at 0).
                    tracing::debug!(file, "socket table absent, counting it as empty");
                } else {
                    errors.push(SourceError::file(
                        ProcNet::source_name(file),
                        &self.proc.dir().join(file),
                        "file does not exist",
                    ));
                }
            }
        }
    }

    /// Visit every unix domain socket.
    pub fn for_each_unix(&self, errors: &mut Vec<SourceError>, visit: &mut dyn FnMut(&UnixSocket)) {
        if self.proc.for_each_unix(errors, visit) == FileStatus::Missing {
            errors.push(SourceError::file(
                ProcNet::source_name("unix"),
                &self.proc.dir().join("unix"),
                "file does not exist",
            ));
        }
    }
}

fn netlink_error(protocol: Protocol, family: Family, e: &DumpError) -> SourceError {
    SourceError {
        source: format!("netlink/{}", protocol.name()),
        location: format!(
            "netlink sock_diag dump of {} {}",
            protocol.name(),
            family.name()
        ),
        line: None,
        message: e.to_string(),
    }
}
