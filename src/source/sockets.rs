//! One interface over the two socket sources: netlink sock_diag and `<net>/*` text, for any
//! network namespace ([`Netns`]), one walk of each table per pass.
//!
//! `auto` uses netlink and falls back, per protocol, to /proc when netlink is unavailable
//! (seccomp, old kernel) or the kernel has no diag module for that protocol (raw_diag is often
//! missing). Unix sockets are always read from `<net>/unix`: its text carries the
//! connecting/disconnecting distinction that unix_diag does not.

use std::sync::atomic::{AtomicBool, Ordering};

use super::inet::{
    state_bit, Family, InetSocket, Protocol, UnixSocket, ALL_STATES, TCP_NEW_SYN_RECV, TCP_SYN_RECV,
};
use super::netlink::{DiagSocket, DumpError, DumpRequest, EXT_INFO, EXT_SKMEMINFO};
use super::netns::{NetlinkAccess, Netns};
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

/// What the collectors of one pass want to see of a namespace's socket tables: the union
/// of these decides what the kernel is asked for, once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketNeeds {
    /// Per protocol ([`Protocol::index`]): mask of the states wanted ([`state_bit`]); 0 when
    /// the protocol is not needed.
    pub states: [u32; 4],
    /// Per protocol: ask netlink for SK_MEMINFO, which carries the per-socket drop counter.
    pub meminfo: [bool; 4],
    /// Unix domain sockets (`<net>/unix`).
    pub unix: bool,
    /// TCP: ask netlink for each socket's tcp_info (`InetSocket::tcp`); /proc has none.
    pub tcp_info: bool,
}

impl SocketNeeds {
    pub const NONE: SocketNeeds = SocketNeeds {
        states: [0; 4],
        meminfo: [false; 4],
        unix: false,
        tcp_info: false,
    };

    /// Every state of the given protocols.
    pub const fn all_states(protocols: &[Protocol]) -> SocketNeeds {
        let mut n = SocketNeeds::NONE;
        let mut i = 0;
        while i < protocols.len() {
            n.states[protocols[i] as usize] = ALL_STATES;
            i += 1;
        }
        n
    }

    pub fn union(mut self, other: &SocketNeeds) -> SocketNeeds {
        for i in 0..4 {
            self.states[i] |= other.states[i];
            self.meminfo[i] |= other.meminfo[i];
        }
        self.unix |= other.unix;
        self.tcp_info |= other.tcp_info;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.states == [0; 4] && !self.unix
    }

    /// Whether a socket is in the states wanted for its protocol. Request sockets (state
    /// NEW_SYN_RECV) count as SYN_RECV, as the kernel's own state filter treats them.
    pub fn wants(&self, s: &InetSocket) -> bool {
        let state = if s.state == TCP_NEW_SYN_RECV {
            TCP_SYN_RECV
        } else {
            s.state
        };
        self.states[s.protocol.index()] & state_bit(state) != 0
    }
}

/// Receives the sockets of one pass.
pub trait SocketVisitor {
    fn inet(&mut self, s: &InetSocket);
    fn unix(&mut self, s: &UnixSocket);
}

/// Which backend served each protocol in one pass (None: not read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassInfo {
    pub backends: [Option<Backend>; 4],
}

impl PassInfo {
    pub fn backend(&self, protocol: Protocol) -> Option<Backend> {
        self.backends[protocol.index()]
    }
}

/// Reads the socket tables of any namespace: one walk per table and pass. Remembers, for
/// `auto`, what the kernel refused, so that a refusal costs one request per exporter run.
#[derive(Debug)]
pub struct SocketSource {
    mode: SourceMode,
    /// auto mode: protocols the kernel refused over netlink; /proc serves them from then on.
    netlink_refused: [AtomicBool; 4],
    /// The kernel refused the one-walk TCP request: TCP is dumped per family from then on.
    tcp_compat_refused: AtomicBool,
    /// auto mode: netlink socket could not be opened at all (logged once).
    netlink_unavailable: AtomicBool,
}

impl SocketSource {
    pub fn new(mode: SourceMode) -> Self {
        SocketSource {
            mode,
            netlink_refused: Default::default(),
            tcp_compat_refused: AtomicBool::new(false),
            netlink_unavailable: AtomicBool::new(false),
        }
    }

    pub fn mode(&self) -> SourceMode {
        self.mode
    }

    /// One pass over the namespace's socket tables: each table needed is read once, every
    /// socket in the wanted states goes to `visitor.inet` (netlink filters states in the
    /// kernel, /proc here), every unix socket to `visitor.unix` when `needs.unix`. Protocols in the order of
    /// [`Protocol::ALL`]; within TCP, listening sockets come before the others (the kernel
    /// walks the listening hash first, in both sources).
    pub fn pass(
        &self,
        ns: &Netns,
        needs: &SocketNeeds,
        errors: &mut Vec<SourceError>,
        visitor: &mut dyn SocketVisitor,
    ) -> PassInfo {
        let mut info = PassInfo::default();
        // Every dump walks the kernel's table of ALL namespaces (262144 TCP buckets here),
        // so in another namespace a table its sockstat says is empty is not walked.
        let empty = if ns.label().is_empty() {
            [false; 4]
        } else {
            empty_tables(ns)
        };
        let protocols: Vec<Protocol> = Protocol::ALL
            .into_iter()
            .filter(|p| needs.states[p.index()] != 0 && !empty[p.index()])
            .collect();
        if !protocols.is_empty() {
            let backends =
                self.for_each_inet(ns, &protocols, needs, errors, &mut |s| visitor.inet(s));
            for (p, b) in protocols.iter().zip(backends) {
                info.backends[p.index()] = Some(b);
            }
        }
        if needs.unix {
            let proc = ProcNet::new(ns.net_dir());
            if proc.for_each_unix(errors, &mut |s| visitor.unix(s)) == FileStatus::Missing {
                errors.push(SourceError::file(
                    ProcNet::source_name("unix"),
                    &proc.dir().join("unix"),
                    "file does not exist",
                ));
            }
        }
        info
    }

    /// Visit every socket of `protocols` (both families) in the states `needs` asks for.
    /// Returns the backend that served each protocol, in the order given.
    pub fn for_each_inet(
        &self,
        ns: &Netns,
        protocols: &[Protocol],
        needs: &SocketNeeds,
        errors: &mut Vec<SourceError>,
        visit: &mut dyn FnMut(&InetSocket),
    ) -> Vec<Backend> {
        let mut diag = None;
        let try_netlink = self.mode != SourceMode::Proc
            && *ns.netlink() != NetlinkAccess::Unavailable
            && !self.netlink_unavailable.load(Ordering::Relaxed);
        if try_netlink {
            match ns.open_diag() {
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
        } else if self.mode == SourceMode::Netlink {
            errors.push(SourceError {
                source: "netlink".into(),
                location: format!("network namespace of {}", ns.net_dir().display()),
                line: None,
                message: "netlink forced but this namespace can only be read from /proc".into(),
            });
            return Vec::new();
        }
        let mut backends = Vec::with_capacity(protocols.len());
        for &protocol in protocols {
            let states = needs.states[protocol.index()];
            let mut ext = 0;
            if needs.meminfo[protocol.index()] {
                ext |= EXT_SKMEMINFO;
            }
            if needs.tcp_info && protocol == Protocol::Tcp {
                ext |= EXT_INFO;
            }
            let refused = &self.netlink_refused[protocol.index()];
            let use_netlink = match &diag {
                Some(_) => self.mode == SourceMode::Netlink || !refused.load(Ordering::Relaxed),
                None => false,
            };
            if let (true, Some(sock)) = (use_netlink, diag.as_mut()) {
                match self.netlink_protocol(sock, protocol, states, ext, errors, visit) {
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
                            DumpRequest::ByFamily(protocol, Family::Ipv4),
                            &DumpError::Refused(errno),
                        ));
                        backends.push(Backend::Netlink);
                        continue;
                    }
                }
            }
            self.proc_protocol(ns, protocol, states, errors, visit);
            backends.push(Backend::Proc);
        }
        backends
    }

    /// Both families of one protocol over netlink: TCP in one walk (TCPDIAG_GETSOCK), the
    /// others with one request per family. `Err(errno)` only when the kernel refused the
    /// very first request, before any socket was visited, so /proc can take over cleanly.
    fn netlink_protocol(
        &self,
        sock: &mut DiagSocket,
        protocol: Protocol,
        states: u32,
        ext: u8,
        errors: &mut Vec<SourceError>,
        visit: &mut dyn FnMut(&InetSocket),
    ) -> Result<(), i32> {
        if protocol == Protocol::Tcp && !self.tcp_compat_refused.load(Ordering::Relaxed) {
            let request = DumpRequest::TcpBothFamilies;
            match sock.dump_inet(request, states, ext, visit) {
                Ok(_) => return Ok(()),
                Err(DumpError::Refused(errno)) => {
                    tracing::info!(
                        reason = %std::io::Error::from_raw_os_error(errno),
                        "kernel refused the one-walk TCPDIAG_GETSOCK dump; dumping TCP per family from now on"
                    );
                    self.tcp_compat_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    errors.push(netlink_error(request, &e));
                    return Ok(());
                }
            }
        }
        for (i, family) in Family::ALL.into_iter().enumerate() {
            let request = DumpRequest::ByFamily(protocol, family);
            match sock.dump_inet(request, states, ext, visit) {
                Ok(_) => {}
                Err(DumpError::Refused(errno)) if i == 0 => return Err(errno),
                Err(e) => errors.push(netlink_error(request, &e)),
            }
        }
        Ok(())
    }

    fn proc_protocol(
        &self,
        ns: &Netns,
        protocol: Protocol,
        states: u32,
        errors: &mut Vec<SourceError>,
        visit: &mut dyn FnMut(&InetSocket),
    ) {
        let want = SocketNeeds {
            states: [states; 4],
            ..SocketNeeds::NONE
        };
        let mut filtered = |s: &InetSocket| {
            if want.wants(s) {
                visit(s)
            }
        };
        let proc = ProcNet::new(ns.net_dir());
        for family in Family::ALL {
            let status = proc.for_each_inet(protocol, family, errors, &mut filtered);
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
                        &proc.dir().join(file),
                        "file does not exist",
                    ));
                }
            }
        }
    }
}

/// Which protocols have no socket at all in `ns`, from its `sockstat` and `sockstat6` (in
/// use counts per namespace; TIME-WAIT counted apart for TCP). Unknown (a file missing or
/// unreadable): not empty.
fn empty_tables(ns: &Netns) -> [bool; 4] {
    let mut counts: [Option<u64>; 4] = [None; 4];
    for file in ["sockstat", "sockstat6"] {
        let Ok(text) = std::fs::read_to_string(ns.net_dir().join(file)) else {
            return [false; 4];
        };
        for (i, n) in parse_sockstat_counts(&text).into_iter().enumerate() {
            if let Some(n) = n {
                *counts[i].get_or_insert(0) += n;
            }
        }
    }
    counts.map(|c| c == Some(0))
}

/// Sockets per protocol (tcp, udp, udplite, raw) in one sockstat file: `inuse`, plus `tw`
/// for TCP. A protocol the file does not list is None.
pub fn parse_sockstat_counts(text: &str) -> [Option<u64>; 4] {
    let mut out = [None; 4];
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let i = match name.trim_end_matches('6') {
            "TCP" => 0,
            "UDP" => 1,
            "UDPLITE" => 2,
            "RAW" => 3,
            _ => continue,
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let field = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|p| words.get(p + 1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let Some(inuse) = field("inuse") else {
            continue;
        };
        out[i] = Some(inuse + field("tw").unwrap_or(0));
    }
    out
}

fn netlink_error(request: DumpRequest, e: &DumpError) -> SourceError {
    SourceError {
        source: format!("netlink/{}", request.protocol().name()),
        location: format!("netlink sock_diag dump of {}", request.describe()),
        line: None,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_counts() {
        let v4 = "sockets: used 8\nTCP: inuse 1 orphan 0 tw 97 alloc 1 mem 80\nUDP: inuse 0 mem 0\nUDPLITE: inuse 0\nRAW: inuse 2\nFRAG: inuse 0 memory 0\n";
        assert_eq!(
            parse_sockstat_counts(v4),
            [Some(98), Some(0), Some(0), Some(2)]
        );
        let v6 = "TCP6: inuse 3\nUDP6: inuse 1\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n";
        assert_eq!(
            parse_sockstat_counts(v6),
            [Some(3), Some(1), Some(0), Some(0)]
        );
        assert_eq!(parse_sockstat_counts("TCP: inuse x\ngarbage\n"), [None; 4]);
    }
}
