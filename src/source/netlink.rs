//! NETLINK_SOCK_DIAG dumps of the kernel's inet socket tables: what `ss` uses.
//!
//! Written by hand on top of `libc` (a few dozen lines of fixed-layout structs from
//! `linux/inet_diag.h` and `linux/sock_diag.h`) because the available crates
//! (`netlink-packet-sock-diag`) decode every message into owned structures with a `Vec` of
//! attributes, i.e. allocations per socket. Here each message is decoded in place from the
//! receive buffer and handed to a visitor, so a 100k-socket dump costs the kernel's time plus
//! a few nanoseconds per socket, in constant memory.
//!
//! A socket answers for the network namespace it was created in (see `source::netns`).
//!
//! TCP is dumped with the legacy `TCPDIAG_GETSOCK` request (`struct inet_diag_req`): the
//! kernel turns it into an AF_UNSPEC dump, so IPv4 and IPv6 sockets come from ONE walk of the
//! TCP hash tables, where the `SOCK_DIAG_BY_FAMILY` request needs one walk per family (each
//! walks the whole table, about 18 ms at 100k sockets even with no IPv6 socket). Listening
//! sockets come first in either dump (the kernel walks the listening hash before the
//! established one), which lets one pass count connections per listener.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::inet::{Family, InetSocket, Protocol};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// Legacy inet_diag request for TCP (`linux/inet_diag.h`); answers carry the same type.
const TCPDIAG_GETSOCK: u16 = 18;
/// `struct inet_diag_req` (the legacy request).
const INET_DIAG_REQ_COMPAT_LEN: usize = 60;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x100 | 0x200;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_msg`.
pub const INET_DIAG_MSG_LEN: usize = 72;
/// `struct inet_diag_req_v2`.
const INET_DIAG_REQ_LEN: usize = 56;
const INET_DIAG_SKMEMINFO: u16 = 7;
/// `struct tcp_info` (see `super::tcp_info`).
pub const INET_DIAG_INFO: u16 = 2;
/// Extension bits of a request (`idiag_ext`): SK_MEMINFO (drops) and tcp_info.
pub const EXT_SKMEMINFO: u8 = 1 << (INET_DIAG_SKMEMINFO - 1);
pub const EXT_INFO: u8 = 1 << (INET_DIAG_INFO - 1);
const SK_MEMINFO_DROPS: usize = 8;
/// Kernels cap a dump chunk at 32 KiB; a larger buffer costs nothing and leaves headroom.
const RECV_BUFFER: usize = 64 * 1024;

/// Why a dump failed.
#[derive(Debug)]
pub enum DumpError {
    /// The kernel refused the request before sending any socket (errno): typically ENOENT
    /// when the diag module for this protocol is not available.
    Refused(i32),
    /// A system call failed.
    Io(io::Error),
    /// The kernel's answer did not have the expected layout.
    Malformed(String),
}

impl std::fmt::Display for DumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DumpError::Refused(errno) => write!(
                f,
                "kernel refused the dump: {}",
                io::Error::from_raw_os_error(*errno)
            ),
            DumpError::Io(e) => write!(f, "netlink I/O error: {e}"),
            DumpError::Malformed(m) => write!(f, "malformed netlink message: {m}"),
        }
    }
}

/// A netlink socket of `protocol` in the calling thread's network namespace, with a receive
/// timeout so that a kernel that stops answering never hangs a scrape.
pub fn open_netlink(protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned fd is owned by OwnedFd below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 10,
        tv_usec: 0,
    };
    // SAFETY: valid fd, pointer and length of a timeval.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// What to dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpRequest {
    /// `SOCK_DIAG_BY_FAMILY`: one protocol, one family.
    ByFamily(Protocol, Family),
    /// `TCPDIAG_GETSOCK`: every TCP socket, IPv4 and IPv6, in one walk.
    TcpBothFamilies,
}

impl DumpRequest {
    pub fn protocol(self) -> Protocol {
        match self {
            DumpRequest::ByFamily(p, _) => p,
            DumpRequest::TcpBothFamilies => Protocol::Tcp,
        }
    }

    /// For error messages.
    pub fn describe(self) -> String {
        match self {
            DumpRequest::ByFamily(p, f) => format!("{} {}", p.name(), f.name()),
            DumpRequest::TcpBothFamilies => "tcp (ipv4 and ipv6, TCPDIAG_GETSOCK)".into(),
        }
    }
}

/// An open NETLINK_SOCK_DIAG socket with its receive buffer.
pub struct DiagSocket {
    fd: OwnedFd,
    seq: u32,
    /// Message type of the answers to the request in flight.
    answer_type: u16,
    buf: Vec<u8>,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl DiagSocket {
    pub fn open() -> io::Result<Self> {
        let fd = open_netlink(NETLINK_SOCK_DIAG)?;
        Ok(DiagSocket {
            fd,
            seq: 0,
            answer_type: SOCK_DIAG_BY_FAMILY,
            buf: vec![0; RECV_BUFFER],
        })
    }

    fn send_inet_request(&mut self, request: DumpRequest, states: u32, ext: u8) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = [0u8; NLMSG_HDRLEN + INET_DIAG_REQ_COMPAT_LEN];
        let r = NLMSG_HDRLEN;
        let (kind, total) = match request {
            DumpRequest::ByFamily(protocol, family) => {
                // struct inet_diag_req_v2: family, protocol, ext, pad, states, sockid.
                req[r] = family.af();
                req[r + 1] = protocol.ipproto();
                req[r + 2] = ext;
                // req[r + 3]: pad, or sdiag_raw_protocol for raw sockets; 0 = all of them.
                req[r + 4..r + 8].copy_from_slice(&states.to_ne_bytes());
                (SOCK_DIAG_BY_FAMILY, NLMSG_HDRLEN + INET_DIAG_REQ_LEN)
            }
            DumpRequest::TcpBothFamilies => {
                // struct inet_diag_req: family (ignored: the kernel dumps AF_UNSPEC),
                // src_len, dst_len, ext, sockid (48 bytes), states, dbs.
                req[r + 3] = ext;
                req[r + 52..r + 56].copy_from_slice(&states.to_ne_bytes());
                (TCPDIAG_GETSOCK, NLMSG_HDRLEN + INET_DIAG_REQ_COMPAT_LEN)
            }
        };
        // nlmsghdr; inet_diag_sockid left zero: no filter; pid 0: the kernel.
        req[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&kind.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        let req = &req[..total];
        self.answer_type = kind;
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: valid fd, request buffer and address with their lengths.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    req.as_ptr().cast(),
                    req.len(),
                    0,
                    (&addr as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn recv(&mut self) -> io::Result<usize> {
        loop {
            // SAFETY: buf is a valid writable buffer of the given length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Run one inet dump of the sockets whose state is in the `states` mask (the kernel
    /// filters, see [`super::inet::ALL_STATES`]) and pass each raw `inet_diag_msg` payload
    /// (with its attributes) to `on_msg`. Returns the number of messages. Used directly by the
    /// benchmark to measure the kernel's own cost of the dump.
    pub fn dump_raw(
        &mut self,
        request: DumpRequest,
        states: u32,
        ext: u8,
        on_msg: &mut dyn FnMut(&[u8]) -> Result<(), DumpError>,
    ) -> Result<usize, DumpError> {
        self.send_inet_request(request, states, ext)
            .map_err(DumpError::Io)?;
        let mut count = 0usize;
        loop {
            let n = self.recv().map_err(DumpError::Io)?;
            if n == 0 {
                return Err(DumpError::Malformed("empty read before NLMSG_DONE".into()));
            }
            let mut off = 0;
            while off + NLMSG_HDRLEN <= n {
                let b = &self.buf[..n];
                let len = u32_at(b, off) as usize;
                let kind = u16_at(b, off + 4);
                let seq = u32_at(b, off + 8);
                if len < NLMSG_HDRLEN || off + len > n {
                    return Err(DumpError::Malformed(format!(
                        "message length {len} at offset {off} of {n}"
                    )));
                }
                let payload = &b[off + NLMSG_HDRLEN..off + len];
                off += align4(len);
                if seq != self.seq {
                    continue; // a late answer to an earlier request
                }
                match kind {
                    NLMSG_DONE => {
                        // A dump that failed part-way puts a negative errno here.
                        if payload.len() >= 4 {
                            let err = u32_at(payload, 0) as i32;
                            if err < 0 {
                                // Before any socket: the kernel refused the request (ENOENT
                                // when the protocol has no diag module).
                                return Err(if count == 0 {
                                    DumpError::Refused(-err)
                                } else {
                                    DumpError::Io(io::Error::from_raw_os_error(-err))
                                });
                            }
                        }
                        return Ok(count);
                    }
                    NLMSG_ERROR => {
                        if payload.len() < 4 {
                            return Err(DumpError::Malformed("short NLMSG_ERROR".into()));
                        }
                        let err = -(u32_at(payload, 0) as i32);
                        if err == 0 {
                            continue; // an ACK
                        }
                        return Err(if count == 0 {
                            DumpError::Refused(err)
                        } else {
                            DumpError::Io(io::Error::from_raw_os_error(err))
                        });
                    }
                    k if k == self.answer_type => {
                        count += 1;
                        on_msg(payload)?;
                    }
                    other => {
                        return Err(DumpError::Malformed(format!(
                            "unexpected message type {other}"
                        )))
                    }
                }
            }
        }
    }

    /// Dump the sockets of `request` in `states` and call `visit` for each. `ext` asks the
    /// kernel for attributes: [`EXT_SKMEMINFO`] (the per-socket drop counter), [`EXT_INFO`]
    /// (TCP: tcp_info, decoded into `InetSocket::tcp`).
    pub fn dump_inet(
        &mut self,
        request: DumpRequest,
        states: u32,
        ext: u8,
        visit: &mut dyn FnMut(&InetSocket),
    ) -> Result<usize, DumpError> {
        let protocol = request.protocol();
        self.dump_raw(request, states, ext, &mut |msg| {
            let s = decode_inet_diag_msg(msg, protocol)?;
            visit(&s);
            Ok(())
        })
    }
}

/// The fixed part of one `struct inet_diag_msg` (`linux/inet_diag.h`), decoded in place: the
/// one decoder of the header, for the dumps ([`decode_inet_diag_msg`]) and the destroy stream
/// (`super::destroy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiagHeader {
    pub family: Family,
    /// `idiag_state` (a `TCP_*` state number).
    pub state: u8,
    pub local_port: u16,
    pub remote_port: u16,
    pub local: IpAddr,
    pub remote: IpAddr,
    /// `idiag_cookie`: the kernel's socket cookie.
    pub cookie: u64,
    /// `idiag_rqueue`, `idiag_wqueue`.
    pub rx_queue: u32,
    pub tx_queue: u32,
    pub uid: u32,
    /// `idiag_inode` (0 for a socket without a file).
    pub inode: u64,
}

/// Decode the header of an `inet_diag_msg` (IPv4 or IPv6); an error names what was wrong.
pub fn decode_diag_header(msg: &[u8]) -> Result<DiagHeader, String> {
    if msg.len() < INET_DIAG_MSG_LEN {
        return Err(format!(
            "inet_diag_msg of {} bytes, expected at least {INET_DIAG_MSG_LEN}",
            msg.len()
        ));
    }
    let family = match i32::from(msg[0]) {
        libc::AF_INET => Family::Ipv4,
        libc::AF_INET6 => Family::Ipv6,
        f => return Err(format!("address family {f}")),
    };
    let addr = |off: usize| -> IpAddr {
        match family {
            Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(
                msg[off],
                msg[off + 1],
                msg[off + 2],
                msg[off + 3],
            )),
            Family::Ipv6 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(&msg[off..off + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            }
        }
    };
    Ok(DiagHeader {
        family,
        state: msg[1],
        local_port: u16::from_be_bytes([msg[4], msg[5]]),
        remote_port: u16::from_be_bytes([msg[6], msg[7]]),
        local: addr(8),
        remote: addr(24),
        cookie: u64::from(u32_at(msg, 44)) | (u64::from(u32_at(msg, 48)) << 32),
        rx_queue: u32_at(msg, 56),
        tx_queue: u32_at(msg, 60),
        uid: u32_at(msg, 64),
        inode: u64::from(u32_at(msg, 68)),
    })
}

/// Hand each attribute after the header of an `inet_diag_msg` (at least
/// [`INET_DIAG_MSG_LEN`] bytes, see [`decode_diag_header`]) to `visit`: its type (without the
/// nested/byte-order flags) and its payload. An attribute that runs past the message is an
/// error.
pub fn diag_attributes(msg: &[u8], visit: &mut dyn FnMut(u16, &[u8])) -> Result<(), String> {
    let mut off = INET_DIAG_MSG_LEN;
    while off + 4 <= msg.len() {
        let alen = u16_at(msg, off) as usize;
        let atype = u16_at(msg, off + 2) & 0x3fff;
        if alen < 4 || off + alen > msg.len() {
            return Err(format!("attribute length {alen} at offset {off}"));
        }
        visit(atype, &msg[off + 4..off + alen]);
        off += align4(alen);
    }
    Ok(())
}

/// Decode one `struct inet_diag_msg` (+ attributes).
pub fn decode_inet_diag_msg(msg: &[u8], protocol: Protocol) -> Result<InetSocket, DumpError> {
    let h = decode_diag_header(msg).map_err(DumpError::Malformed)?;
    let mut drops = None;
    let mut tcp = None;
    diag_attributes(msg, &mut |atype, data| {
        if atype == INET_DIAG_SKMEMINFO {
            if data.len() >= (SK_MEMINFO_DROPS + 1) * 4 {
                drops = Some(u32_at(data, SK_MEMINFO_DROPS * 4));
            }
        } else if atype == INET_DIAG_INFO && protocol == Protocol::Tcp {
            tcp = super::tcp_info::decode(data);
        }
    })
    .map_err(DumpError::Malformed)?;
    Ok(InetSocket {
        protocol,
        family: h.family,
        state: h.state,
        local_port: h.local_port,
        remote_port: h.remote_port,
        local: h.local,
        remote: h.remote,
        rx_queue: h.rx_queue,
        tx_queue: h.tx_queue,
        uid: h.uid,
        inode: h.inode,
        cookie: h.cookie,
        drops,
        tcp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(family: u8, state: u8) -> Vec<u8> {
        let mut m = vec![0u8; INET_DIAG_MSG_LEN];
        m[0] = family;
        m[1] = state;
        m[4..6].copy_from_slice(&8080u16.to_be_bytes());
        m[8..12].copy_from_slice(&[127, 0, 0, 1]);
        m[56..60].copy_from_slice(&3u32.to_ne_bytes());
        m[60..64].copy_from_slice(&128u32.to_ne_bytes());
        m[64..68].copy_from_slice(&1000u32.to_ne_bytes());
        m[68..72].copy_from_slice(&4242u32.to_ne_bytes());
        m
    }

    #[test]
    fn decodes_listener() {
        let s = decode_inet_diag_msg(&msg(libc::AF_INET as u8, 10), Protocol::Tcp).unwrap();
        assert_eq!(s.local, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(
            (s.local_port, s.rx_queue, s.tx_queue, s.uid, s.inode),
            (8080, 3, 128, 1000, 4242)
        );
        assert_eq!(s.drops, None);
    }

    #[test]
    fn decodes_meminfo_drops() {
        let mut m = msg(libc::AF_INET6 as u8, 7);
        let mut mem = vec![0u8; 4 + 9 * 4];
        let mem_len = mem.len() as u16;
        mem[0..2].copy_from_slice(&mem_len.to_ne_bytes());
        mem[2..4].copy_from_slice(&INET_DIAG_SKMEMINFO.to_ne_bytes());
        mem[4 + 8 * 4..4 + 9 * 4].copy_from_slice(&77u32.to_ne_bytes());
        m.extend_from_slice(&mem);
        let s = decode_inet_diag_msg(&m, Protocol::Udp).unwrap();
        assert_eq!((s.family, s.drops), (Family::Ipv6, Some(77)));
    }

    #[test]
    fn decodes_tcp_info() {
        let mut m = msg(libc::AF_INET as u8, 1);
        let mut info = vec![0u8; 4 + 104];
        let info_len = info.len() as u16;
        info[0..2].copy_from_slice(&info_len.to_ne_bytes());
        info[2..4].copy_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        info[4 + 68..4 + 72].copy_from_slice(&1234u32.to_ne_bytes());
        m.extend_from_slice(&info);
        let s = decode_inet_diag_msg(&m, Protocol::Tcp).unwrap();
        assert_eq!(s.tcp.map(|t| t.rtt_us), Some(1234));
        // A truncated tcp_info is no health, not an error.
        let mut m = msg(libc::AF_INET as u8, 1);
        m.extend_from_slice(&[8, 0, 2, 0, 0, 0, 0, 0]);
        assert_eq!(decode_inet_diag_msg(&m, Protocol::Tcp).unwrap().tcp, None);
    }

    /// The one header decoder: every field at its offset, IPv6 addresses, the cookie's two
    /// halves; the dump's decoder gives the same values.
    #[test]
    fn header_fields_ipv6_and_cookie() {
        let mut m = msg(libc::AF_INET6 as u8, 8);
        m[6..8].copy_from_slice(&443u16.to_be_bytes());
        let local: [u8; 16] = std::net::Ipv6Addr::LOCALHOST.octets();
        let remote: [u8; 16] = "2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        m[8..24].copy_from_slice(&local);
        m[24..40].copy_from_slice(&remote);
        m[44..48].copy_from_slice(&9u32.to_ne_bytes());
        m[48..52].copy_from_slice(&2u32.to_ne_bytes());
        let h = decode_diag_header(&m).unwrap();
        assert_eq!(
            (h.family, h.state, h.local_port, h.remote_port),
            (Family::Ipv6, 8, 8080, 443)
        );
        assert_eq!(h.local, IpAddr::from(local));
        assert_eq!(h.remote, IpAddr::from(remote));
        assert_eq!(h.cookie, (2 << 32) | 9);
        assert_eq!(
            (h.rx_queue, h.tx_queue, h.uid, h.inode),
            (3, 128, 1000, 4242)
        );
        let s = decode_inet_diag_msg(&m, Protocol::Tcp).unwrap();
        assert_eq!((s.local, s.remote, s.remote_port), (h.local, h.remote, 443));
        let mut types = Vec::new();
        m.extend_from_slice(&[8, 0, 10, 0, 6, 0, 0, 0]);
        diag_attributes(&m, &mut |t, d| types.push((t, d.len()))).unwrap();
        assert_eq!(types, vec![(10, 4)]);
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode_inet_diag_msg(&[0u8; 10], Protocol::Tcp).is_err());
        assert!(decode_inet_diag_msg(&msg(99, 1), Protocol::Tcp).is_err());
        let mut m = msg(libc::AF_INET as u8, 1);
        m.extend_from_slice(&[200, 0, 7, 0]); // attribute longer than the message
        assert!(decode_inet_diag_msg(&m, Protocol::Tcp).is_err());
    }
}
