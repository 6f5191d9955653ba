//! Kernel I/O of the watch (`crate::watch`): a LISTEN-only sock_diag dump through a netlink
//! socket kept open per network namespace, the list of processes, and which namespace a new
//! process is in.
//!
//! A dump restricted to `idiag_states = 1 << TCP_LISTEN` walks only the kernel's listening
//! hash (microseconds, whatever the number of established sockets); UDP is dumped in state
//! CLOSE (bound, unconnected: what `netstat -lu` shows). A netlink socket answers for the
//! namespace it was created in for its whole life, so a namespace is entered once (on a
//! short-lived thread, [`WatchSocket::open_in`]) and then dumped every tick without setns.

use std::io;
use std::path::Path;

use super::inet::{state_bit, Family, InetSocket, Protocol, TCP_CLOSE, TCP_LISTEN};
use super::netlink::{DiagSocket, DumpError, DumpRequest};
use super::netns;
use super::sockets::parse_sockstat_counts;

/// A NETLINK_SOCK_DIAG socket that answers for one network namespace, with the namespace's
/// `sockstat` and `sockstat6` kept open: a table they say is empty is not dumped (each dump
/// walks the kernel's hash table of its protocol, shared by every namespace; reading the
/// counts costs less).
pub struct WatchSocket {
    diag: DiagSocket,
    /// UDP-Lite refused by the kernel (no diag module): not asked again.
    no_udplite: bool,
    /// `sockstat`, `sockstat6` of the namespace (None: not readable, every table is dumped).
    stat: [Option<std::fs::File>; 2],
    buf: Vec<u8>,
}

impl WatchSocket {
    /// A socket in the calling thread's namespace, whose `net` directory is `net_dir`
    /// (`<procfs>/net`, or `<procfs>/thread-self/net` in an entered namespace).
    pub fn open(net_dir: &Path) -> io::Result<WatchSocket> {
        let stat = ["sockstat", "sockstat6"].map(|f| std::fs::File::open(net_dir.join(f)).ok());
        Ok(WatchSocket {
            diag: DiagSocket::open()?,
            no_udplite: false,
            stat,
            buf: vec![0; 1024],
        })
    }

    /// A socket in the namespace of `path` (an nsfs file): a short-lived thread enters the
    /// namespace, opens the socket (and `<procfs>/thread-self/net/sockstat{,6}`, which then
    /// show that namespace) and exits, so no thread of the exporter stays in it. Needs
    /// CAP_SYS_ADMIN (EPERM otherwise). `inode` is the namespace discovery found there (a
    /// mismatch is ESRCH: see [`netns::enter`]).
    pub fn open_in(procfs: &Path, path: &Path, inode: u64) -> io::Result<WatchSocket> {
        let path = path.to_path_buf();
        let net_dir = procfs.join("thread-self/net");
        let handle = std::thread::Builder::new()
            .name("watch-netns".into())
            .spawn(move || -> io::Result<WatchSocket> {
                netns::enter(&path, inode)?;
                WatchSocket::open(&net_dir)
            })?;
        handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    }

    /// Every listener of the namespace: TCP sockets in LISTEN (IPv4 and IPv6 in one walk of
    /// the listening hash) and UDP / UDP-Lite sockets in CLOSE (bound, unconnected).
    pub fn listeners(&mut self, out: &mut Vec<InetSocket>) -> Result<(), DumpError> {
        // Sockets per protocol (tcp, udp, udplite) and family; None: unknown (dump).
        let mut counts = [[None; 4]; 2];
        for (i, f) in self.stat.iter().enumerate() {
            if let Some(f) = f {
                use std::os::unix::fs::FileExt;
                if let Ok(n) = f.read_at(&mut self.buf, 0) {
                    counts[i] = parse_sockstat_counts(&String::from_utf8_lossy(&self.buf[..n]));
                }
            }
        }
        let has = |proto: usize, family: usize| counts[family][proto] != Some(0);
        let mut push = |s: &InetSocket| out.push(*s);
        if has(0, 0) || has(0, 1) {
            self.diag.dump_inet(
                DumpRequest::TcpBothFamilies,
                state_bit(TCP_LISTEN),
                0,
                &mut push,
            )?;
        }
        for family in Family::ALL {
            if !has(1, family.index()) {
                continue;
            }
            self.diag.dump_inet(
                DumpRequest::ByFamily(Protocol::Udp, family),
                state_bit(TCP_CLOSE),
                0,
                &mut push,
            )?;
        }
        if !self.no_udplite {
            for family in Family::ALL {
                if !has(2, family.index()) {
                    continue;
                }
                match self.diag.dump_inet(
                    DumpRequest::ByFamily(Protocol::UdpLite, family),
                    state_bit(TCP_CLOSE),
                    0,
                    &mut push,
                ) {
                    Ok(_) => {}
                    Err(DumpError::Refused(_)) => {
                        self.no_udplite = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// The pids under `procfs`, ascending.
pub fn list_pids(procfs: &Path) -> io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = std::fs::read_dir(procfs)?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// The network namespace inode of process `pid` (None: gone or not readable).
pub fn pid_netns(procfs: &Path, pid: u32) -> Option<u64> {
    super::readlink_number(&procfs.join(pid.to_string()).join("ns/net"), b"net:[")
}

/// The entries of the `ip netns` directories (names of bind-mounted namespaces), sorted, to
/// notice one being added or removed without a full discovery.
pub fn netns_dir_names(dirs: &[std::path::PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|it| it.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_own_tcp_and_udp_listeners_and_no_connection() {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(t.local_addr().unwrap()).unwrap();
        let mut w = WatchSocket::open(Path::new("/proc/net")).unwrap();
        let mut got = Vec::new();
        w.listeners(&mut got).unwrap();
        // Opened after the socket: its sockstat is read again each time.
        let u2 = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let mut again = Vec::new();
        w.listeners(&mut again).unwrap();
        let p2 = u2.local_addr().unwrap().port();
        assert!(again.iter().any(|s| s.protocol == Protocol::Udp
            && s.family == Family::Ipv6
            && s.local_port == p2));
        let tp = t.local_addr().unwrap().port();
        let up = u.local_addr().unwrap().port();
        assert!(got
            .iter()
            .any(|s| s.protocol == Protocol::Tcp && s.local_port == tp && s.inode != 0));
        assert!(got
            .iter()
            .any(|s| s.protocol == Protocol::Udp && s.local_port == up));
        let cp = c.local_addr().unwrap().port();
        assert!(
            got.iter().all(|s| s.local_port != cp),
            "no established socket"
        );
        assert!(got
            .iter()
            .all(|s| s.state == TCP_LISTEN || s.state == TCP_CLOSE));
    }

    #[test]
    fn own_pid_and_namespace() {
        let pids = list_pids(Path::new("/proc")).unwrap();
        assert!(pids.contains(&std::process::id()));
        assert!(pid_netns(Path::new("/proc"), std::process::id()).is_some());
        assert_eq!(pid_netns(Path::new("/proc"), u32::MAX), None);
    }
}
