//! Typed socket rows shared by the netlink and /proc readers.
//!
//! Rows are handed to a visitor one at a time and never stored: callers aggregate while the
//! kernel streams, so memory does not grow with the number of sockets.

use std::net::IpAddr;

/// Transport protocols read from the kernel's socket tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    UdpLite,
    Raw,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::Tcp,
        Protocol::Udp,
        Protocol::UdpLite,
        Protocol::Raw,
    ];

    /// Label value.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::UdpLite => "udplite",
            Protocol::Raw => "raw",
        }
    }

    /// IPPROTO_* number used in sock_diag requests.
    pub fn ipproto(self) -> u8 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u8,
            Protocol::Udp => libc::IPPROTO_UDP as u8,
            Protocol::UdpLite => libc::IPPROTO_UDPLITE as u8,
            Protocol::Raw => libc::IPPROTO_RAW as u8,
        }
    }

    /// File name of this protocol's table below `<procfs>/net/`.
    pub fn proc_file(self, family: Family) -> &'static str {
        match (self, family) {
            (Protocol::Tcp, Family::Ipv4) => "tcp",
            (Protocol::Tcp, Family::Ipv6) => "tcp6",
            (Protocol::Udp, Family::Ipv4) => "udp",
            (Protocol::Udp, Family::Ipv6) => "udp6",
            (Protocol::UdpLite, Family::Ipv4) => "udplite",
            (Protocol::UdpLite, Family::Ipv6) => "udplite6",
            (Protocol::Raw, Family::Ipv4) => "raw",
            (Protocol::Raw, Family::Ipv6) => "raw6",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    pub fn af(self) -> u8 {
        match self {
            Family::Ipv4 => libc::AF_INET as u8,
            Family::Ipv6 => libc::AF_INET6 as u8,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The kernel's TCP states (include/net/tcp_states.h), with the kernel's names in lower case.
/// Index = kernel state number; 0 is unused by the kernel.
pub const TCP_STATE_NAMES: [&str; 12] = [
    "unknown",
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
];

/// Bit mask of every state a socket table dump shows: states 0..=11, what `ss -a` shows.
/// Request sockets are included (the kernel adds NEW_SYN_RECV when SYN_RECV is asked for);
/// TCP_BOUND_INACTIVE (13, bound but neither listening nor connected) deliberately is not.
pub const ALL_STATES: u32 = 0xfff;

/// Bit of `state` in a state mask (`idiag_states`).
pub const fn state_bit(state: u8) -> u32 {
    1 << state
}

pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_SYN_RECV: u8 = 3;
pub const TCP_TIME_WAIT: u8 = 6;
pub const TCP_CLOSE: u8 = 7;
pub const TCP_CLOSE_WAIT: u8 = 8;
pub const TCP_LAST_ACK: u8 = 9;
pub const TCP_LISTEN: u8 = 10;
pub const TCP_CLOSING: u8 = 11;
/// Request sockets (a SYN received, handshake not finished); reported as SYN_RECV.
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// One IPv4/IPv6 socket as the kernel reports it, in either source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetSocket {
    pub protocol: Protocol,
    /// Address family of the socket itself: a dual-stack socket holding an IPv4-mapped
    /// address is `Ipv6`, as `ss` shows it.
    pub family: Family,
    /// Kernel state number (TCP numbering; datagram sockets use ESTABLISHED / CLOSE).
    pub state: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// Recv-Q. For a listening TCP socket: connections waiting in the accept queue.
    pub rx_queue: u32,
    /// Send-Q. For a listening TCP socket: the accept queue limit (backlog) from netlink,
    /// 0 from /proc, which does not carry it.
    pub tx_queue: u32,
    pub uid: u32,
    pub inode: u64,
    /// The kernel's socket cookie (`idiag_cookie`, netlink only; 0 from /proc): the same
    /// value the socket-destroy stream shows when the socket is freed (`crate::flows`).
    pub cookie: u64,
    /// Datagrams dropped by this socket (UDP/raw), when the source provides it.
    pub drops: Option<u32>,
    /// TCP: the socket's `tcp_info` (RTT, retransmissions), when the pass asked netlink for
    /// it (`SocketNeeds::tcp_info`) and the kernel sent it (not for time-wait and request
    /// sockets; never from /proc).
    pub tcp: Option<super::tcp_info::TcpHealth>,
}

impl InetSocket {
    pub fn is_listen(&self) -> bool {
        self.protocol == Protocol::Tcp && self.state == TCP_LISTEN
    }
}

/// Unix domain socket types, as in /proc/net/unix's `Type` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnixType {
    Stream,
    Dgram,
    SeqPacket,
}

impl UnixType {
    pub const ALL: [UnixType; 3] = [UnixType::Stream, UnixType::Dgram, UnixType::SeqPacket];

    pub fn name(self) -> &'static str {
        match self {
            UnixType::Stream => "stream",
            UnixType::Dgram => "dgram",
            UnixType::SeqPacket => "seqpacket",
        }
    }

    /// From the kernel's SOCK_* number.
    pub fn from_kernel(t: u32) -> Option<UnixType> {
        match t {
            1 => Some(UnixType::Stream),
            2 => Some(UnixType::Dgram),
            5 => Some(UnixType::SeqPacket),
            _ => None,
        }
    }
}

/// States of unix sockets as /proc/net/unix shows them (SS_* plus the listening flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnixState {
    Listening,
    Connected,
    Unconnected,
    /// Accepted by the kernel but not yet by the process (in a listener's queue).
    Connecting,
    Disconnecting,
}

impl UnixState {
    pub const ALL: [UnixState; 5] = [
        UnixState::Listening,
        UnixState::Connected,
        UnixState::Unconnected,
        UnixState::Connecting,
        UnixState::Disconnecting,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UnixState::Listening => "listening",
            UnixState::Connected => "connected",
            UnixState::Unconnected => "unconnected",
            UnixState::Connecting => "connecting",
            UnixState::Disconnecting => "disconnecting",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixSocket {
    pub kind: UnixType,
    pub state: UnixState,
    pub inode: u64,
}
