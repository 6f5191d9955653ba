//! The kernel's socket-destroy stream: a NETLINK_SOCK_DIAG socket bound to the multicast
//! groups `SKNLGRP_INET_TCP_DESTROY` (1) and `SKNLGRP_INET6_TCP_DESTROY` (3). The kernel sends
//! one `inet_diag_msg` with the socket's final `tcp_info` for every TCP socket it frees (one
//! per end of a connection), to subscribers in the socket's own network namespace only. No
//! privilege is needed to subscribe.
//!
//! What the messages carry (measured on Linux 6.18, see docs/collectors.md):
//! - `idiag_inode` is always 0 (the socket has no file any more);
//! - after a normal close the full 4-tuple and the counters;
//! - after `tcp_disconnect` (a refused connect, a close with `SO_LINGER` 0) the remote port
//!   and the local address are 0 and the counters are zeroed; the remote address is kept;
//! - a listener: remote port 0, remote address unspecified, local port the listening one.
//!
//! A [`DestroySocket`] is opened in the calling thread's namespace (a scrape's worker thread
//! that entered the namespace, see `crate::flows`) and then read by a thread of its own
//! without setns: a netlink socket answers for the namespace it was created in.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::inet::{Family, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_LAST_ACK};
use super::netlink::{decode_diag_header, diag_attributes, INET_DIAG_INFO};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_HDRLEN: usize = 16;
/// `SKNLGRP_INET_TCP_DESTROY` (1) and `SKNLGRP_INET6_TCP_DESTROY` (3), as a bind(2) group
/// mask (group n is bit n - 1).
const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;
const TCP_DESTROY_GROUPS: u32 =
    (1 << (SKNLGRP_INET_TCP_DESTROY - 1)) | (1 << (SKNLGRP_INET6_TCP_DESTROY - 1));
/// The receive buffer asked for: 16 MiB holds about 40,000 messages (a burst of 20,000
/// loopback connections gives 40,000).
pub const RECEIVE_BUFFER: usize = 16 << 20;
/// One recv(2): netlink multicast datagrams carry one message each (about 370 bytes).
const RECV_CHUNK: usize = 64 * 1024;

/// Offsets into `struct tcp_info` (`linux/tcp.h`).
/// `tcpi_retransmits`: consecutive retransmission timeouts (left alone by `tcp_disconnect`).
const TI_RETRANSMITS: usize = 2;
const TI_TOTAL_RETRANS: usize = 100;
const TI_BYTES_RECEIVED: usize = 128;
const TI_SEGS_IN: usize = 140;
/// `tcpi_min_rtt`: `~0` until the first RTT sample (the handshake gives one).
const TI_MIN_RTT: usize = 148;
/// `tcpi_bytes_sent` (payload bytes transmitted, retransmissions included; Linux 4.19) and
/// `tcpi_bytes_retrans` (payload bytes retransmitted).
const TI_BYTES_SENT: usize = 200;
const TI_BYTES_RETRANS: usize = 208;
/// The shortest tcp_info with every field above.
pub const TI_MIN_LEN: usize = TI_BYTES_RETRANS + 8;

/// One destroyed TCP socket, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destroyed {
    pub family: Family,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    /// 0 after `tcp_disconnect` (refused connect, `SO_LINGER` 0 close) and for a listener.
    pub remote_port: u16,
    /// The socket cookie (`idiag_cookie`): the same value a dump showed while it lived.
    pub cookie: u64,
    /// Its final counters (zero when the kernel sent no tcp_info or a short one).
    pub counters: Counters,
}

/// The final counters of a destroyed socket, as payload bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Payload bytes sent once (`tcpi_bytes_sent - tcpi_bytes_retrans`: retransmissions
    /// not counted twice; no sequence space of SYN or FIN).
    pub sent: u64,
    /// Payload bytes received: `tcpi_bytes_received` less the peer's FIN, which the kernel
    /// counts as one byte of sequence space (see [`payload_received`]).
    pub received: u64,
    /// `tcpi_total_retrans`: segments retransmitted over the socket's life (SYNs included).
    pub retransmits: u64,
    /// `tcpi_segs_in`: 0 for a connect that never got an answer.
    pub segs_in: u32,
    /// `tcpi_retransmits`: retransmission timeouts in a row when it was freed (a connect
    /// that timed out has had its SYN time out; `tcp_disconnect` does not reset it).
    pub timeouts: u8,
    /// Whether the handshake completed (`tcpi_min_rtt` was sampled, which `tcp_disconnect`
    /// leaves alone): false for a refused or timed-out connect.
    pub established: bool,
    /// Whether a tcp_info long enough for the counters came with the message.
    pub info: bool,
}

/// A connection's traffic: what the counters of `crate::flows` add per socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Payload bytes sent once ([`Counters::sent`]).
    pub sent: u64,
    /// Payload bytes received ([`Counters::received`]).
    pub received: u64,
    /// `tcpi_total_retrans`.
    pub retransmits: u64,
}

impl Traffic {
    /// As payload: a live socket in `state` has counted the peer's FIN in
    /// `tcpi_bytes_received` once it is in CLOSE-WAIT, LAST-ACK or CLOSING (the states after
    /// the peer's FIN), never before; that byte is taken off.
    pub fn payload(mut self, state: u8) -> Traffic {
        if matches!(state, TCP_CLOSE_WAIT | TCP_LAST_ACK | TCP_CLOSING) {
            self.received = self.received.saturating_sub(1);
        }
        self
    }
}

impl Destroyed {
    /// A listener (remote port 0, remote address unspecified).
    pub fn is_listener(&self) -> bool {
        self.remote_port == 0 && self.remote.is_unspecified()
    }

    /// Whether `tcp_disconnect` ran on it (remote port cleared, remote address kept): a
    /// failed blocking connect, or a connection aborted with `SO_LINGER` 0, whose counters
    /// the kernel zeroed.
    pub fn disconnected(&self) -> bool {
        self.remote_port == 0 && !self.remote.is_unspecified()
    }

    /// What became of it (measured on Linux 6.18: docs/collectors.md).
    pub fn outcome(&self) -> Outcome {
        if self.is_listener() {
            return Outcome::Listener;
        }
        let c = &self.counters;
        if !c.info || c.established {
            return Outcome::Closed;
        }
        // Never got an RTT sample: the handshake did not complete.
        if c.timeouts > 0 || (c.retransmits > 0 && c.segs_in == 0) {
            Outcome::TimedOut
        } else if self.disconnected() {
            Outcome::Refused
        } else {
            Outcome::Abandoned
        }
    }
}

/// What a destroyed socket was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A listener.
    Listener,
    /// A connection (its handshake completed) that ended.
    Closed,
    /// A connect answered by a reset (its remote port is cleared).
    Refused,
    /// A connect whose SYNs were never answered (its remote port is cleared after a blocking
    /// connect, kept after a non-blocking one).
    TimedOut,
    /// A connect closed by its process before any answer (and before a SYN timed out).
    Abandoned,
}

/// `tcpi_bytes_received` counts the peer's FIN as one byte. The destroy message does not say
/// whether a FIN was counted (no `INET_DIAG_SHUTDOWN` in it, the state always `TCP_CLOSE`,
/// no tcp_info field that tells: docs/collectors.md, "Payload bytes"), so one byte is taken off
/// when any was counted: exact when the FIN came, one byte short when it did not (a reset, an
/// end freed in FIN-WAIT-2 before the peer's FIN); never more than received.
pub fn payload_received(bytes_received: u64) -> u64 {
    bytes_received.saturating_sub(1)
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The traffic of a live socket's `tcp_info` (zero when it is too short): `received` is
/// `tcpi_bytes_received` as it is (see [`Traffic::payload`]).
pub fn decode_traffic(info: &[u8]) -> Traffic {
    if info.len() < TI_MIN_LEN {
        return Traffic::default();
    }
    Traffic {
        sent: u64_at(info, TI_BYTES_SENT).saturating_sub(u64_at(info, TI_BYTES_RETRANS)),
        received: u64_at(info, TI_BYTES_RECEIVED),
        retransmits: u64::from(u32_at(info, TI_TOTAL_RETRANS)),
    }
}

/// Decode the counters of a `tcp_info` attribute.
pub fn decode_counters(info: &[u8]) -> Counters {
    if info.len() < TI_MIN_LEN {
        return Counters::default();
    }
    let t = decode_traffic(info);
    Counters {
        sent: t.sent,
        received: payload_received(t.received),
        retransmits: t.retransmits,
        segs_in: u32_at(info, TI_SEGS_IN),
        timeouts: info[TI_RETRANSMITS],
        established: u32_at(info, TI_MIN_RTT) != u32::MAX,
        info: true,
    }
}

/// Decode one `inet_diag_msg` of the destroy stream (the nlmsghdr's payload), with the
/// header decoder of the dumps ([`decode_diag_header`]).
pub fn decode(msg: &[u8]) -> Result<Destroyed, String> {
    let h = decode_diag_header(msg)?;
    let mut counters = Counters::default();
    diag_attributes(msg, &mut |atype, data| {
        if atype == INET_DIAG_INFO {
            counters = decode_counters(data);
        }
    })?;
    Ok(Destroyed {
        family: h.family,
        local_port: h.local_port,
        remote_port: h.remote_port,
        local: h.local,
        remote: h.remote,
        cookie: h.cookie,
        counters,
    })
}

/// What one [`DestroySocket::receive`] got.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Messages decoded and handed over.
    pub messages: u64,
    /// Receive-buffer overruns reported by the kernel (ENOBUFS): each lost one message or
    /// more.
    pub overruns: u64,
    /// Messages that could not be decoded (skipped).
    pub malformed: u64,
}

/// A subscriber to the TCP destroy groups of the namespace it was opened in.
pub struct DestroySocket {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// The receive buffer the kernel granted (bytes, as getsockopt reports it).
    pub receive_buffer: usize,
    /// Whether SO_RCVBUFFORCE was permitted (CAP_NET_ADMIN).
    pub forced: bool,
}

fn setsockopt_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> bool {
    // SAFETY: valid fd, pointer and length of an int.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

fn set_receive_timeout(fd: &OwnedFd, timeout: std::time::Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
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
    Ok(())
}

impl DestroySocket {
    /// How long [`receive`](Self::receive) waits for a first message.
    pub fn set_timeout(&self, timeout: std::time::Duration) -> io::Result<()> {
        set_receive_timeout(&self.fd, timeout)
    }

    /// Subscribe in the calling thread's namespace. `buffer`: the receive buffer to ask for
    /// ([`RECEIVE_BUFFER`]; a test asks for a tiny one to force losses): SO_RCVBUFFORCE when
    /// permitted, else SO_RCVBUF, which the kernel caps at `net.core.rmem_max`. Reads block
    /// at most `timeout`.
    pub fn open(buffer: usize, timeout: std::time::Duration) -> io::Result<DestroySocket> {
        // SAFETY: plain socket(2) call; the returned fd is owned by OwnedFd below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let want = libc::c_int::try_from(buffer).unwrap_or(libc::c_int::MAX);
        let forced = setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want);
        if !forced {
            // Capped by the kernel at rmem_max; a failure leaves the default buffer.
            let _ = setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, want);
        }
        set_receive_timeout(&fd, timeout)?;
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = TCP_DESTROY_GROUPS;
        // SAFETY: valid fd and address with its length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut got: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd, pointer and length of an int.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut got as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        let receive_buffer = if rc == 0 {
            usize::try_from(got).unwrap_or(0)
        } else {
            0
        };
        Ok(DestroySocket {
            fd,
            buf: vec![0; RECV_CHUNK],
            receive_buffer,
            forced,
        })
    }

    /// Wait (at most the timeout given to [`open`](Self::open)) for messages, then read every
    /// one queued without waiting again, handing each to `visit`. Returns what was read; an
    /// overrun (ENOBUFS) is counted and reading goes on.
    pub fn receive(&mut self, visit: &mut dyn FnMut(&Destroyed)) -> io::Result<Received> {
        let mut got = Received::default();
        let mut flags = 0;
        loop {
            // SAFETY: buf is a valid writable buffer of the given length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    flags,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        got.overruns += 1;
                        continue;
                    }
                    Some(libc::EAGAIN) => return Ok(got),
                    _ => return Err(e),
                }
            }
            // Later reads of this call do not wait.
            flags = libc::MSG_DONTWAIT;
            let n = n as usize;
            let mut off = 0;
            while off + NLMSG_HDRLEN <= n {
                let b = &self.buf[..n];
                let len = u32_at(b, off) as usize;
                let kind = u16_at(b, off + 4);
                if len < NLMSG_HDRLEN || off + len > n {
                    got.malformed += 1;
                    break;
                }
                let payload = &b[off + NLMSG_HDRLEN..off + len];
                off += align4(len);
                if kind != SOCK_DIAG_BY_FAMILY {
                    continue;
                }
                match decode(payload) {
                    Ok(d) => {
                        got.messages += 1;
                        visit(&d);
                    }
                    Err(_) => got.malformed += 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::netlink::INET_DIAG_MSG_LEN;
    use std::io::{Read, Write};
    use std::time::Duration;

    fn msg(dport: u16, remote: [u8; 4], info: Option<&[u8]>) -> Vec<u8> {
        let mut m = vec![0u8; INET_DIAG_MSG_LEN];
        m[0] = libc::AF_INET as u8;
        m[1] = 7;
        m[4..6].copy_from_slice(&40000u16.to_be_bytes());
        m[6..8].copy_from_slice(&dport.to_be_bytes());
        m[8..12].copy_from_slice(&[127, 0, 0, 1]);
        m[24..28].copy_from_slice(&remote);
        m[44..48].copy_from_slice(&7u32.to_ne_bytes());
        m[48..52].copy_from_slice(&1u32.to_ne_bytes());
        if let Some(i) = info {
            let len = (4 + i.len()) as u16;
            m.extend_from_slice(&len.to_ne_bytes());
            m.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
            m.extend_from_slice(i);
            while !m.len().is_multiple_of(4) {
                m.push(0);
            }
        }
        m
    }

    fn info(sent: u64, retrans_bytes: u64, received: u64, total_retrans: u32) -> Vec<u8> {
        let mut i = vec![0u8; 280];
        i[TI_BYTES_SENT..TI_BYTES_SENT + 8].copy_from_slice(&sent.to_ne_bytes());
        i[TI_BYTES_RETRANS..TI_BYTES_RETRANS + 8].copy_from_slice(&retrans_bytes.to_ne_bytes());
        i[TI_BYTES_RECEIVED..TI_BYTES_RECEIVED + 8].copy_from_slice(&received.to_ne_bytes());
        i[TI_TOTAL_RETRANS..TI_TOTAL_RETRANS + 4].copy_from_slice(&total_retrans.to_ne_bytes());
        i[TI_SEGS_IN..TI_SEGS_IN + 4].copy_from_slice(&4u32.to_ne_bytes());
        i
    }

    #[test]
    fn decodes_a_closed_connection() {
        let d = decode(&msg(8080, [10, 0, 0, 2], Some(&info(1300, 300, 501, 2)))).unwrap();
        assert_eq!((d.local_port, d.remote_port), (40000, 8080));
        assert_eq!(d.remote, IpAddr::from([10, 0, 0, 2]));
        assert_eq!(d.cookie, (1 << 32) | 7);
        assert_eq!(
            (d.counters.sent, d.counters.received, d.counters.retransmits),
            (1000, 500, 2)
        );
        assert!(d.counters.established);
        assert_eq!(d.outcome(), Outcome::Closed);
    }

    #[test]
    fn listener_disconnected_and_short_info() {
        let l = decode(&msg(0, [0, 0, 0, 0], None)).unwrap();
        assert_eq!(l.outcome(), Outcome::Listener);
        assert!(!l.counters.info);
        // A short tcp_info: no counters, counted as a closed connection.
        let r = decode(&msg(0, [127, 0, 0, 1], Some(&[0u8; 100]))).unwrap();
        assert!(r.disconnected());
        assert_eq!(r.counters, Counters::default());
        assert_eq!(r.outcome(), Outcome::Closed);
        // Never sampled an RTT: a failed connect.
        let mut t = info(0, 0, 0, 0);
        t[TI_SEGS_IN..TI_SEGS_IN + 4].copy_from_slice(&0u32.to_ne_bytes());
        t[TI_MIN_RTT..TI_MIN_RTT + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        let at = |port: u16, t: &[u8]| decode(&msg(port, [127, 0, 0, 1], Some(t))).unwrap();
        assert_eq!(at(0, &t).outcome(), Outcome::Refused);
        assert_eq!(at(5432, &t).outcome(), Outcome::Abandoned);
        // Blocking connect timed out: port and counters cleared, the RTO count left.
        let mut blocking = t.clone();
        blocking[TI_RETRANSMITS] = 2;
        assert_eq!(at(0, &blocking).outcome(), Outcome::TimedOut);
        // Non-blocking: port kept, SYNs retransmitted.
        let mut nb = t.clone();
        nb[TI_TOTAL_RETRANS..TI_TOTAL_RETRANS + 4].copy_from_slice(&2u32.to_ne_bytes());
        assert_eq!(at(5432, &nb).outcome(), Outcome::TimedOut);
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode(&[0u8; 10]).is_err());
        let mut m = msg(1, [1, 2, 3, 4], None);
        m[0] = 99;
        assert!(decode(&m).is_err());
        let mut m = msg(1, [1, 2, 3, 4], None);
        m.extend_from_slice(&[200, 0, 2, 0]);
        assert!(decode(&m).is_err());
    }

    /// The live kernel: a client that sent 1,000 bytes and received 500 is reported with
    /// exactly those payload bytes, on both ends, and both ends' messages arrive.
    #[test]
    fn live_loopback_connection_both_ends() {
        let mut sub = DestroySocket::open(RECEIVE_BUFFER, Duration::from_millis(200)).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let lport = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 1000];
            c.read_exact(&mut b).unwrap();
            c.write_all(&[1u8; 500]).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
        });
        let mut c = std::net::TcpStream::connect(("127.0.0.1", lport)).unwrap();
        let cport = c.local_addr().unwrap().port();
        c.write_all(&[0u8; 1000]).unwrap();
        let mut b = [0u8; 500];
        c.read_exact(&mut b).unwrap();
        drop(c);
        server.join().unwrap();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while seen.len() < 2 && std::time::Instant::now() < deadline {
            sub.receive(&mut |d| {
                if (d.local_port == cport && d.remote_port == lport)
                    || (d.local_port == lport && d.remote_port == cport)
                {
                    seen.push(*d);
                }
            })
            .unwrap();
        }
        let client = seen.iter().find(|d| d.local_port == cport).expect("client");
        let server = seen.iter().find(|d| d.local_port == lport).expect("server");
        assert_eq!(
            (client.counters.sent, client.counters.received),
            (1000, 500)
        );
        assert_eq!(
            (server.counters.sent, server.counters.received),
            (500, 1000)
        );
        assert_ne!(client.cookie, server.cookie);
    }
}
