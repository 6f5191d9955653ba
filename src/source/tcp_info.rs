//! `INET_DIAG_INFO`: the kernel's `struct tcp_info` of a TCP socket (`linux/tcp.h`), sent with
//! each socket of a sock_diag dump when the request asks for it (what `ss -ti` prints).
//!
//! Only the few fields connection health needs are decoded, in place, into a small `Copy`
//! value carried by [`super::inet::InetSocket`]: the smoothed RTT, the congestion-avoidance
//! state and the retransmission counters. The structure has grown over kernel versions; every
//! field used here has been in it since Linux 2.6, and a shorter attribute than needed is
//! ignored (the socket then has no health), never an error.

/// Offsets into `struct tcp_info`.
const CA_STATE: usize = 1;
const RETRANSMITS: usize = 2;
/// `tcpi_retrans`: retransmitted segments not yet acknowledged.
const RETRANS: usize = 36;
/// `tcpi_rtt`: smoothed RTT in microseconds.
const RTT: usize = 68;
/// Bytes needed for every field above.
pub const MIN_LEN: usize = RTT + 4;

/// `tcpi_ca_state` values (`enum tcp_ca_state`).
pub const TCP_CA_OPEN: u8 = 0;
pub const TCP_CA_RECOVERY: u8 = 3;
pub const TCP_CA_LOSS: u8 = 4;

/// What one socket's `tcp_info` says about its health now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpHealth {
    /// Smoothed RTT (`tcpi_rtt`), microseconds; 0 before the first RTT sample.
    pub rtt_us: u32,
    /// `tcpi_ca_state`: 0 open, 1 disorder, 2 CWR, 3 recovery, 4 loss.
    pub ca_state: u8,
    /// `tcpi_retransmits`: consecutive retransmission timeouts of the segment at the head.
    pub retransmits: u8,
    /// `tcpi_retrans`: retransmitted segments in flight (not yet acknowledged).
    pub retrans: u32,
    /// The connection's traffic so far (payload bytes sent once, `tcpi_bytes_received` as
    /// it is, with the peer's FIN when one came, and `tcpi_total_retrans`; zero from a
    /// `tcp_info` older than Linux 4.19): the live part of `crate::flows`' counters.
    pub traffic: super::destroy::Traffic,
}

impl TcpHealth {
    /// In loss recovery (fast recovery or RTO loss state), or with retransmitted segments not
    /// acknowledged yet, or after a retransmission timeout: what `ss -ti` shows as a non-zero
    /// first number of `retrans:` or as the socket's `timer:(on,...)` with a backoff.
    pub fn retransmitting(&self) -> bool {
        self.ca_state == TCP_CA_RECOVERY
            || self.ca_state == TCP_CA_LOSS
            || self.retrans > 0
            || self.retransmits > 0
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Decode the payload of an `INET_DIAG_INFO` attribute; `None` when it is too short.
pub fn decode(data: &[u8]) -> Option<TcpHealth> {
    if data.len() < MIN_LEN {
        return None;
    }
    Some(TcpHealth {
        rtt_us: u32_at(data, RTT),
        ca_state: data[CA_STATE],
        retransmits: data[RETRANSMITS],
        retrans: u32_at(data, RETRANS),
        traffic: super::destroy::decode_traffic(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_fields() {
        let mut b = vec![0u8; 104];
        b[CA_STATE] = TCP_CA_LOSS;
        b[RETRANSMITS] = 2;
        b[RETRANS..RETRANS + 4].copy_from_slice(&5u32.to_ne_bytes());
        b[RTT..RTT + 4].copy_from_slice(&80_400u32.to_ne_bytes());
        let h = decode(&b).unwrap();
        assert_eq!(
            h,
            TcpHealth {
                rtt_us: 80_400,
                ca_state: TCP_CA_LOSS,
                retransmits: 2,
                retrans: 5,
                traffic: Default::default(),
            }
        );
        assert!(h.retransmitting());
    }

    #[test]
    fn short_is_none_and_open_is_healthy() {
        assert_eq!(decode(&[0u8; MIN_LEN - 1]), None);
        let h = decode(&[0u8; MIN_LEN]).unwrap();
        assert_eq!(h.ca_state, TCP_CA_OPEN);
        assert!(!h.retransmitting());
        let mut b = [0u8; MIN_LEN];
        b[CA_STATE] = 1; // disorder: reordering suspected, nothing retransmitted
        assert!(!decode(&b).unwrap().retransmitting());
        b[CA_STATE] = TCP_CA_RECOVERY;
        assert!(decode(&b).unwrap().retransmitting());
    }
}
