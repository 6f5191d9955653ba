//! Collector `protocols`: the kernel protocol counters behind `netstat -s` / `nstat`, and the
//! socket usage of `/proc/net/sockstat`, as named and typed metrics.
//!
//! Every named metric is a row of a static table ([`COUNTERS`], [`GAUGES`]) that says which
//! kernel (group, field) it comes from, so the docs, the tests and the code agree. A field the
//! running kernel does not have gives no series (no error). Anything else the kernel offers is
//! reachable through `--collector.protocols.fields=REGEX`, matched against `Group_Field`, and
//! exported as `netstat_protocol_field_total{group,field}` (or, for the few fields that are
//! not counters, `netstat_protocol_field_value{group,field}`).

use regex::Regex;

use crate::flag_values::anchored_regex;
use crate::metrics::{Desc, Labels, MetricFamily, Value};
use crate::source::netns::Netns;
use crate::source::snmp::{Fields, ProtocolSource, ProtocolTables};

use super::{
    BuildContext, Collected, Collector, CollectorDecl, CollectorFlags, FlagsDecl, SimpleCollector,
};

pub const DECL: CollectorDecl = CollectorDecl {
    name: "protocols",
    default_enabled: true,
    help: "netstat -s: TCP, UDP, IP and ICMP protocol counters and sockstat gauges",
    metrics,
    flags: FlagsDecl::of::<ProtocolsFlags>(),
};

/// Every named metric, then the raw-field families.
fn metrics() -> Vec<&'static Desc> {
    let mut v: Vec<&'static Desc> = COUNTERS
        .iter()
        .flat_map(|g| g.iter())
        .chain(std::iter::once(&TCP_CURRENT_ESTABLISHED))
        .chain(GAUGES.iter())
        .map(|s| &s.desc)
        .collect();
    v.extend([&RAW_COUNTER, &RAW_GAUGE]);
    v
}

/// The flags of the protocols collector.
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct ProtocolsFlags {
    #[arg(
        id = "collector.protocols.fields",
        long = "collector.protocols.fields",
        value_name = "REGEX",
        help = "Regexp (anchored) of additional raw kernel fields to export as netstat_protocol_field_total{group,field} (counters) or netstat_protocol_field_value (settings and current values), matched against \"Group_Field\" names such as TcpExt_TCPSackRecovery or Ip6_InNoRoutes. Default: none."
    )]
    fields: Option<String>,
}

impl CollectorFlags for ProtocolsFlags {
    fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Collector>, String> {
        Ok(Box::new(ProtocolsCollector::new(anchored_regex(
            "--collector.protocols.fields",
            self.fields.as_deref(),
        )?)))
    }
}

/// One series of a named metric: fixed labels and the kernel field it reads.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    pub labels: &'static [(&'static str, &'static str)],
    pub group: &'static str,
    pub field: &'static str,
}

/// How a raw kernel value becomes the exported value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    One,
    /// A number of memory pages: multiplied by the page size to give bytes.
    Pages,
}

/// A named metric: its declaration, and which kernel field each of its series reads.
#[derive(Debug)]
pub struct Spec {
    pub desc: Desc,
    pub scale: Scale,
    pub series: &'static [Series],
}

/// Label names of a spec, from its series' label pattern (all series of a spec have the
/// same label names: a unit test checks it against every series).
const fn label_names(series: &'static [Series]) -> &'static [&'static str] {
    if series.is_empty() {
        return &[];
    }
    let first = series[0].labels;
    match first.len() {
        0 => &[],
        1 => match first[0].0.as_bytes()[0] {
            b'f' => &["family"],
            _ => &["reason"],
        },
        _ => match first[0].0.as_bytes()[0] {
            b'f' => &["family", "direction"],
            _ => &["protocol", "family"],
        },
    }
}

const fn s(group: &'static str, field: &'static str) -> Series {
    Series {
        labels: &[],
        group,
        field,
    }
}

const V4: &[(&str, &str)] = &[("family", "ipv4")];
const V6: &[(&str, &str)] = &[("family", "ipv6")];

const fn v4(group: &'static str, field: &'static str) -> Series {
    Series {
        labels: V4,
        group,
        field,
    }
}

const fn v6(group: &'static str, field: &'static str) -> Series {
    Series {
        labels: V6,
        group,
        field,
    }
}

/// A counter.
const fn one(name: &'static str, help: &'static str, series: &'static [Series]) -> Spec {
    Spec {
        desc: Desc::counter(name, label_names(series), help),
        scale: Scale::One,
        series,
    }
}

/// A gauge.
const fn gauge(name: &'static str, help: &'static str, series: &'static [Series]) -> Spec {
    Spec {
        desc: Desc::gauge(name, label_names(series), help),
        scale: Scale::One,
        series,
    }
}

/// A gauge of memory pages, exported in bytes.
const fn pages(name: &'static str, help: &'static str, series: &'static [Series]) -> Spec {
    Spec {
        desc: Desc::gauge(name, label_names(series), help).unit("bytes"),
        scale: Scale::Pages,
        series,
    }
}

macro_rules! udp_like {
    ($p:literal, $g4:literal, $g6:literal) => {
        [
            one(
                concat!("netstat_", $p, "_datagrams_received"),
                concat!($g4, " InDatagrams / ", $g6, "InDatagrams: datagrams delivered to sockets (netstat -s: \"packets received\")."),
                &[v4($g4, "InDatagrams"), v6($g6, "InDatagrams")],
            ),
            one(
                concat!("netstat_", $p, "_datagrams_sent"),
                concat!($g4, " OutDatagrams / ", $g6, "OutDatagrams: datagrams sent (netstat -s: \"packets sent\")."),
                &[v4($g4, "OutDatagrams"), v6($g6, "OutDatagrams")],
            ),
            one(
                concat!("netstat_", $p, "_no_ports"),
                concat!($g4, " NoPorts / ", $g6, "NoPorts: datagrams for a port nobody listens on, answered with ICMP port unreachable (netstat -s: \"packets to unknown port received\")."),
                &[v4($g4, "NoPorts"), v6($g6, "NoPorts")],
            ),
            one(
                concat!("netstat_", $p, "_receive_errors"),
                concat!($g4, " InErrors / ", $g6, "InErrors: datagrams not delivered for a reason other than a closed port, including the buffer and checksum errors below (netstat -s: \"packet receive errors\")."),
                &[v4($g4, "InErrors"), v6($g6, "InErrors")],
            ),
            one(
                concat!("netstat_", $p, "_receive_buffer_errors"),
                concat!($g4, " RcvbufErrors / ", $g6, "RcvbufErrors: datagrams dropped because the socket receive buffer was full: the application reads too slowly or SO_RCVBUF is too small (netstat -s: \"receive buffer errors\")."),
                &[v4($g4, "RcvbufErrors"), v6($g6, "RcvbufErrors")],
            ),
            one(
                concat!("netstat_", $p, "_send_buffer_errors"),
                concat!($g4, " SndbufErrors / ", $g6, "SndbufErrors: sends that failed because the socket send buffer was full (netstat -s: \"send buffer errors\")."),
                &[v4($g4, "SndbufErrors"), v6($g6, "SndbufErrors")],
            ),
            one(
                concat!("netstat_", $p, "_checksum_errors"),
                concat!($g4, " InCsumErrors / ", $g6, "InCsumErrors: datagrams received with a bad checksum (netstat -s: \"InCsumErrors\")."),
                &[v4($g4, "InCsumErrors"), v6($g6, "InCsumErrors")],
            ),
            one(
                concat!("netstat_", $p, "_memory_errors"),
                concat!($g4, " MemErrors / ", $g6, "MemErrors: datagrams dropped because the protocol's memory limit (net.ipv4.udp_mem) was reached (netstat -s: \"MemErrors\")."),
                &[v4($g4, "MemErrors"), v6($g6, "MemErrors")],
            ),
        ]
    };
}

static UDP_COUNTERS: [Spec; 8] = udp_like!("udp", "Udp", "Udp6");
static UDPLITE_COUNTERS: [Spec; 8] = udp_like!("udplite", "UdpLite", "UdpLite6");

/// TCP counters. The kernel's TCP MIB counts IPv4 and IPv6 together, so there is no family.
static TCP_COUNTERS: &[Spec] = &[
    one("netstat_tcp_active_opens", "Tcp ActiveOpens: connections this host opened (connect(), SYN sent) (netstat -s: \"active connection openings\").", &[s("Tcp", "ActiveOpens")]),
    one("netstat_tcp_passive_opens", "Tcp PassiveOpens: connections accepted by listeners (SYN received, SYN-ACK sent) (netstat -s: \"passive connection openings\").", &[s("Tcp", "PassiveOpens")]),
    one("netstat_tcp_attempt_fails", "Tcp AttemptFails: connection attempts that failed before being established (refused, reset or timed out in SYN-SENT/SYN-RECV) (netstat -s: \"failed connection attempts\").", &[s("Tcp", "AttemptFails")]),
    one("netstat_tcp_established_resets", "Tcp EstabResets: established or closing connections reset (netstat -s: \"connection resets received\").", &[s("Tcp", "EstabResets")]),
    one("netstat_tcp_segments_received", "Tcp InSegs: segments received, including those in error (netstat -s: \"segments received\").", &[s("Tcp", "InSegs")]),
    one("netstat_tcp_segments_sent", "Tcp OutSegs: segments sent, excluding retransmissions (netstat -s: \"segments sent out\").", &[s("Tcp", "OutSegs")]),
    one("netstat_tcp_retransmitted_segments", "Tcp RetransSegs: segments retransmitted (netstat -s: \"segments retransmitted\").", &[s("Tcp", "RetransSegs")]),
    one("netstat_tcp_receive_errors", "Tcp InErrs: segments received in error, e.g. bad checksum or dropped for lack of memory (netstat -s: \"bad segments received\").", &[s("Tcp", "InErrs")]),
    one("netstat_tcp_resets_sent", "Tcp OutRsts: segments sent with the RST flag (netstat -s: \"resets sent\").", &[s("Tcp", "OutRsts")]),
    one("netstat_tcp_checksum_errors", "Tcp InCsumErrors: segments received with a bad checksum (netstat -s: \"InCsumErrors\").", &[s("Tcp", "InCsumErrors")]),
    one("netstat_tcp_listen_overflows", "TcpExt ListenOverflows: times a completed connection was dropped because a listener's accept queue was full: the application does not accept() fast enough or the backlog is too small (netstat -s: \"times the listen queue of a socket overflowed\").", &[s("TcpExt", "ListenOverflows")]),
    one("netstat_tcp_listen_drops", "TcpExt ListenDrops: SYNs and handshake completions to listening sockets dropped for any reason, including every listen overflow (netstat -s: \"SYNs to LISTEN sockets dropped\").", &[s("TcpExt", "ListenDrops")]),
    one("netstat_tcp_syncookies_sent", "TcpExt SyncookiesSent: SYN cookies sent because a listener's SYN queue was full (netstat -s: \"SYN cookies sent\").", &[s("TcpExt", "SyncookiesSent")]),
    one("netstat_tcp_syncookies_received", "TcpExt SyncookiesRecv: valid SYN cookies received back (netstat -s: \"SYN cookies received\").", &[s("TcpExt", "SyncookiesRecv")]),
    one("netstat_tcp_syncookies_failed", "TcpExt SyncookiesFailed: ACKs carrying an invalid SYN cookie (netstat -s: \"invalid SYN cookies received\").", &[s("TcpExt", "SyncookiesFailed")]),
    one("netstat_tcp_request_queue_full_drops", "TcpExt TCPReqQFullDrop: SYNs dropped because a listener's SYN queue was full and SYN cookies are off (netstat -s: \"TCPReqQFullDrop\").", &[s("TcpExt", "TCPReqQFullDrop")]),
    one("netstat_tcp_request_queue_full_syncookies", "TcpExt TCPReqQFullDoCookies: SYNs answered with a SYN cookie because a listener's SYN queue was full (netstat -s: \"TCPReqQFullDoCookies\").", &[s("TcpExt", "TCPReqQFullDoCookies")]),
    one("netstat_tcp_backlog_drops", "TcpExt TCPBacklogDrop: segments dropped because the socket backlog (used while the application holds the socket lock) was full (netstat -s: \"TCPBacklogDrop\").", &[s("TcpExt", "TCPBacklogDrop")]),
    one("netstat_tcp_receive_queue_drops", "TcpExt TCPRcvQDrop: segments dropped because the receive queue was over the socket's receive buffer and memory could not be reclaimed (netstat -s: \"TCPRcvQDrop\").", &[s("TcpExt", "TCPRcvQDrop")]),
    one("netstat_tcp_out_of_order_drops", "TcpExt TCPOFODrop: out-of-order segments dropped for lack of receive buffer memory (netstat -s: \"TCPOFODrop\").", &[s("TcpExt", "TCPOFODrop")]),
    one("netstat_tcp_zero_window_drops", "TcpExt TCPZeroWindowDrop: segments dropped because the receive window was zero (netstat -s: \"TCPZeroWindowDrop\").", &[s("TcpExt", "TCPZeroWindowDrop")]),
    one("netstat_tcp_prune_calls", "TcpExt PruneCalled: times the receive queue had to be pruned because the socket buffer overran (netstat -s: \"packets pruned from receive queue because of socket buffer overrun\").", &[s("TcpExt", "PruneCalled")]),
    one("netstat_tcp_receive_pruned", "TcpExt RcvPruned: segments dropped from the receive queue by pruning (netstat -s: \"packets pruned from receive queue\").", &[s("TcpExt", "RcvPruned")]),
    one("netstat_tcp_memory_pressures", "TcpExt TCPMemoryPressures: times TCP entered memory pressure (net.ipv4.tcp_mem) (netstat -s: \"TCP ran low on memory N times\").", &[s("TcpExt", "TCPMemoryPressures")]),
    one("netstat_tcp_time_wait_overflows", "TcpExt TCPTimeWaitOverflow: connections that could not enter TIME-WAIT because net.ipv4.tcp_max_tw_buckets was reached (netstat -s: \"TCPTimeWaitOverflow\").", &[s("TcpExt", "TCPTimeWaitOverflow")]),
    one("netstat_tcp_timeouts", "TcpExt TCPTimeouts: retransmission timer expirations, other than during fast recovery or loss recovery (netstat -s: \"other TCP timeouts\").", &[s("TcpExt", "TCPTimeouts")]),
    one("netstat_tcp_syn_retransmits", "TcpExt TCPSynRetrans: SYN and SYN-ACK retransmissions; a peer or listener not answering the handshake (netstat -s: \"TCPSynRetrans\").", &[s("TcpExt", "TCPSynRetrans")]),
    one("netstat_tcp_fast_retransmits", "TcpExt TCPFastRetrans: segments retransmitted by fast retransmit (netstat -s: \"fast retransmits\").", &[s("TcpExt", "TCPFastRetrans")]),
    one("netstat_tcp_lost_retransmits", "TcpExt TCPLostRetransmit: retransmissions that were lost again (netstat -s: \"retransmits lost\").", &[s("TcpExt", "TCPLostRetransmit")]),
    one("netstat_tcp_aborts", "TcpExt TCPAbortOn*: connections the kernel aborted with a RST, by reason: data (unexpected data after close, \"connections reset due to unexpected data\"), close (closed with unread data, \"connections reset due to early user close\"), memory (\"connections aborted due to memory pressure\"), timeout (\"connections aborted due to timeout\"), linger (\"connections aborted after user close in linger timeout\").", &[
        Series { labels: &[("reason", "data")], group: "TcpExt", field: "TCPAbortOnData" },
        Series { labels: &[("reason", "close")], group: "TcpExt", field: "TCPAbortOnClose" },
        Series { labels: &[("reason", "memory")], group: "TcpExt", field: "TCPAbortOnMemory" },
        Series { labels: &[("reason", "timeout")], group: "TcpExt", field: "TCPAbortOnTimeout" },
        Series { labels: &[("reason", "linger")], group: "TcpExt", field: "TCPAbortOnLinger" },
    ]),
];

const RECEIVED: &[(&str, &str)] = &[("family", "ipv4"), ("direction", "received")];
const SENT: &[(&str, &str)] = &[("family", "ipv4"), ("direction", "sent")];
const RECEIVED6: &[(&str, &str)] = &[("family", "ipv6"), ("direction", "received")];
const SENT6: &[(&str, &str)] = &[("family", "ipv6"), ("direction", "sent")];

const fn dir(
    labels: &'static [(&'static str, &'static str)],
    group: &'static str,
    field: &'static str,
) -> Series {
    Series {
        labels,
        group,
        field,
    }
}

static IP_ICMP_COUNTERS: &[Spec] = &[
    one("netstat_ip_packets_received", "Ip InReceives / Ip6InReceives: packets received from interfaces, including those in error (netstat -s: \"total packets received\").", &[v4("Ip", "InReceives"), v6("Ip6", "InReceives")]),
    one("netstat_ip_packets_delivered", "Ip InDelivers / Ip6InDelivers: packets delivered to upper-layer protocols (netstat -s: \"incoming packets delivered\").", &[v4("Ip", "InDelivers"), v6("Ip6", "InDelivers")]),
    one("netstat_ip_packets_sent", "Ip OutRequests / Ip6OutRequests: packets local protocols handed to IP for sending, not counting forwarded ones (netstat -s: \"requests sent out\").", &[v4("Ip", "OutRequests"), v6("Ip6", "OutRequests")]),
    one("netstat_ip_packets_forwarded", "Ip ForwDatagrams / Ip6OutForwDatagrams: packets forwarded to another host (netstat -s: \"forwarded\").", &[v4("Ip", "ForwDatagrams"), v6("Ip6", "OutForwDatagrams")]),
    one("netstat_ip_packets_discarded", "Ip InDiscards, OutDiscards / Ip6InDiscards, Ip6OutDiscards: packets without a problem of their own discarded, e.g. for lack of buffer space, by direction (netstat -s: \"incoming packets discarded\", \"outgoing packets dropped\").", &[dir(RECEIVED, "Ip", "InDiscards"), dir(SENT, "Ip", "OutDiscards"), dir(RECEIVED6, "Ip6", "InDiscards"), dir(SENT6, "Ip6", "OutDiscards")]),
    one("netstat_ip_header_errors", "Ip InHdrErrors / Ip6InHdrErrors: packets discarded for header errors: bad checksum, version, TTL exceeded ... (netstat -s: \"with invalid headers\").", &[v4("Ip", "InHdrErrors"), v6("Ip6", "InHdrErrors")]),
    one("netstat_ip_address_errors", "Ip InAddrErrors / Ip6InAddrErrors: packets discarded because the destination address was invalid for this host (netstat -s: \"with invalid addresses\").", &[v4("Ip", "InAddrErrors"), v6("Ip6", "InAddrErrors")]),
    one("netstat_ip_unknown_protocols", "Ip InUnknownProtos / Ip6InUnknownProtos: packets for a protocol nobody handles (netstat -s: \"with unknown protocol\").", &[v4("Ip", "InUnknownProtos"), v6("Ip6", "InUnknownProtos")]),
    one("netstat_ip_no_routes", "Ip OutNoRoutes / Ip6OutNoRoutes: packets discarded because no route was found (netstat -s: \"dropped because of missing route\").", &[v4("Ip", "OutNoRoutes"), v6("Ip6", "OutNoRoutes")]),
    one("netstat_ip_reassembly_failures", "Ip ReasmFails / Ip6ReasmFails: failures of the fragment reassembly (netstat -s: \"packet reassemblies failed\").", &[v4("Ip", "ReasmFails"), v6("Ip6", "ReasmFails")]),
    one("netstat_ip_fragmentation_failures", "Ip FragFails / Ip6FragFails: packets discarded because they had to be fragmented but could not be, e.g. Don't Fragment set (netstat -s: \"fragments failed\").", &[v4("Ip", "FragFails"), v6("Ip6", "FragFails")]),
    one("netstat_icmp_messages", "Icmp InMsgs, OutMsgs / Icmp6InMsgs, Icmp6OutMsgs: ICMP messages received or sent, errors included (netstat -s: \"ICMP messages received\", \"ICMP messages sent\").", &[dir(RECEIVED, "Icmp", "InMsgs"), dir(SENT, "Icmp", "OutMsgs"), dir(RECEIVED6, "Icmp6", "InMsgs"), dir(SENT6, "Icmp6", "OutMsgs")]),
    one("netstat_icmp_errors", "Icmp InErrors, OutErrors / Icmp6InErrors, Icmp6OutErrors: ICMP messages received with errors (bad checksum, bad length), or not sent because of a problem in ICMP itself (netstat -s: \"input ICMP message failed\", \"ICMP messages failed\").", &[dir(RECEIVED, "Icmp", "InErrors"), dir(SENT, "Icmp", "OutErrors"), dir(RECEIVED6, "Icmp6", "InErrors"), dir(SENT6, "Icmp6", "OutErrors")]),
];

/// All named counters, in exposition order.
pub static COUNTERS: [&[Spec]; 4] = [
    TCP_COUNTERS,
    &UDP_COUNTERS,
    &UDPLITE_COUNTERS,
    IP_ICMP_COUNTERS,
];

/// Gauge from the counter files (`snmp`).
pub static TCP_CURRENT_ESTABLISHED: Spec = gauge(
    "netstat_tcp_current_established",
    "Tcp CurrEstab: TCP connections currently in ESTABLISHED or CLOSE-WAIT, IPv4 and IPv6 (netstat -s: \"connections established\").",
    &[s("Tcp", "CurrEstab")],
);

const fn sk(
    labels: &'static [(&'static str, &'static str)],
    group: &'static str,
    field: &'static str,
) -> Series {
    Series {
        labels,
        group,
        field,
    }
}

/// Gauges from `sockstat` / `sockstat6`.
pub static GAUGES: &[Spec] = &[
    gauge("netstat_sockets_used", "sockstat \"sockets: used\": sockets of all kinds in use, not only network ones (per network namespace on recent kernels, host-wide on old ones).", &[s("sockets", "used")]),
    gauge("netstat_sockets_in_use", "sockstat TCP/UDP/UDPLITE/RAW inuse, sockstat6 TCP6/UDP6/UDPLITE6/RAW6 inuse: sockets the kernel counts as in use, by protocol and family (TCP: all states except TIME-WAIT; the kernel's own count, see netstat_sockets for the socket table view).", &[
        sk(&[("protocol", "tcp"), ("family", "ipv4")], "TCP", "inuse"),
        sk(&[("protocol", "tcp"), ("family", "ipv6")], "TCP6", "inuse"),
        sk(&[("protocol", "udp"), ("family", "ipv4")], "UDP", "inuse"),
        sk(&[("protocol", "udp"), ("family", "ipv6")], "UDP6", "inuse"),
        sk(&[("protocol", "udplite"), ("family", "ipv4")], "UDPLITE", "inuse"),
        sk(&[("protocol", "udplite"), ("family", "ipv6")], "UDPLITE6", "inuse"),
        sk(&[("protocol", "raw"), ("family", "ipv4")], "RAW", "inuse"),
        sk(&[("protocol", "raw"), ("family", "ipv6")], "RAW6", "inuse"),
    ]),
    gauge("netstat_tcp_orphan_sockets", "sockstat TCP orphan: TCP sockets no longer attached to a file descriptor (closed by the application, still shutting down), IPv4 and IPv6; limited by net.ipv4.tcp_max_orphans.", &[s("TCP", "orphan")]),
    gauge("netstat_tcp_time_wait_buckets", "sockstat TCP tw: TCP connections in TIME-WAIT, IPv4 and IPv6; limited by net.ipv4.tcp_max_tw_buckets.", &[s("TCP", "tw")]),
    gauge("netstat_tcp_allocated_sockets", "sockstat TCP alloc: TCP sockets allocated (all states, orphans included), IPv4 and IPv6.", &[s("TCP", "alloc")]),
    pages("netstat_tcp_memory_bytes", "sockstat TCP mem: memory charged to TCP socket buffers, IPv4 and IPv6, in bytes (pages times the page size); compare with net.ipv4.tcp_mem.", &[s("TCP", "mem")]),
    pages("netstat_udp_memory_bytes", "sockstat UDP mem: memory charged to UDP socket buffers, IPv4 and IPv6 (UDP-Lite included), in bytes (pages times the page size); compare with net.ipv4.udp_mem.", &[s("UDP", "mem")]),
    Spec {
        desc: Desc::gauge("netstat_fragment_memory_bytes", &["family"], "sockstat FRAG memory / sockstat6 FRAG6 memory: memory used by IP fragments waiting for reassembly, in bytes.").unit("bytes"),
        scale: Scale::One,
        series: &[v4("FRAG", "memory"), v6("FRAG6", "memory")],
    },
    gauge("netstat_fragment_queues", "sockstat FRAG inuse / sockstat6 FRAG6 inuse: IP fragment reassembly queues in use.", &[v4("FRAG", "inuse"), v6("FRAG6", "inuse")]),
];

/// Kernel fields that are not counters: settings and current values. The raw-field escape
/// hatch exports them as gauges.
pub const NON_COUNTER_FIELDS: &[(&str, &str)] = &[
    ("Ip", "Forwarding"),
    ("Ip", "DefaultTTL"),
    ("Tcp", "RtoAlgorithm"),
    ("Tcp", "RtoMin"),
    ("Tcp", "RtoMax"),
    ("Tcp", "MaxConn"),
    ("Tcp", "CurrEstab"),
    ("MPTcpExt", "MPCurrEstab"),
];

pub static RAW_COUNTER: Desc = Desc::counter(
    "netstat_protocol_field",
    &["group", "field"],
    "Kernel protocol counters selected by --collector.protocols.fields, by their names in /proc/net/snmp, netstat and snmp6 (nstat prints them as GroupField, netstat -s under the group's heading).",
);
pub static RAW_GAUGE: Desc = Desc::gauge(
    "netstat_protocol_field_value",
    &["group", "field"],
    "Kernel protocol fields selected by --collector.protocols.fields that are settings or current values rather than counters (Tcp RtoMin, Tcp MaxConn, Tcp CurrEstab, Ip Forwarding ...).",
);
pub const RAW_COUNTER_NAME: &str = RAW_COUNTER.name;
pub const RAW_GAUGE_NAME: &str = RAW_GAUGE.name;

fn labels_of(series: &Series) -> Labels {
    series
        .labels
        .iter()
        .map(|(k, v)| (*k, (*v).to_string()))
        .collect()
}

/// Render one spec: a series per kernel field present, none for the fields absent.
fn render_spec(spec: &'static Spec, table: &Fields, page_size: u64) -> MetricFamily {
    let mut f = spec.desc.family();
    for series in spec.series {
        let Some(v) = table.get_u64(series.group, series.field) else {
            continue;
        };
        let v = match spec.scale {
            Scale::One => Value::Int(v),
            Scale::Pages => Value::Int(v.saturating_mul(page_size)),
        };
        f.push(labels_of(series), v);
    }
    f
}

/// The raw-field escape hatch: every `Group_Field` of the counter files matching `re`.
pub fn render_raw(counters: &Fields, re: &Regex) -> Vec<MetricFamily> {
    let mut counter = RAW_COUNTER.family();
    let mut gauge = RAW_GAUGE.family();
    let mut name = String::with_capacity(64);
    for (group, field, value) in counters.iter() {
        name.clear();
        name.push_str(group);
        name.push('_');
        name.push_str(field);
        if !re.is_match(&name) {
            continue;
        }
        let labels: Labels = vec![("group", group.to_string()), ("field", field.to_string())];
        if NON_COUNTER_FIELDS.contains(&(group, field)) {
            gauge.push(labels, value.as_f64());
        } else if let Some(v) = value.as_u64() {
            counter.push(labels, v);
        }
        // A negative value in a counter field cannot come from a kernel (counters are
        // printed unsigned) and is left out rather than exported as a broken counter.
    }
    vec![counter, gauge]
}

/// Render everything read. Pure: unit-testable without a kernel.
pub fn render(
    tables: &ProtocolTables,
    page_size: u64,
    fields: Option<&Regex>,
) -> Vec<MetricFamily> {
    let mut out = Vec::with_capacity(64);
    for group in COUNTERS {
        for spec in group {
            out.push(render_spec(spec, &tables.counters, page_size));
        }
    }
    out.push(render_spec(
        &TCP_CURRENT_ESTABLISHED,
        &tables.counters,
        page_size,
    ));
    for spec in GAUGES {
        out.push(render_spec(spec, &tables.sockstat, page_size));
    }
    if let Some(re) = fields {
        out.extend(render_raw(&tables.counters, re));
    }
    // Families without samples are left out by the encoders; drop them here too so that
    // callers and tests see only what is exported.
    out.retain(|f| !f.samples.is_empty());
    out
}

pub struct ProtocolsCollector {
    fields: Option<Regex>,
    page_size: u64,
}

impl ProtocolsCollector {
    pub fn new(fields: Option<Regex>) -> Self {
        ProtocolsCollector {
            fields,
            page_size: procfs::page_size(),
        }
    }
}

impl SimpleCollector for ProtocolsCollector {
    fn name(&self) -> &'static str {
        DECL.name
    }

    fn collect(&self, ns: &Netns) -> Collected {
        let mut errors = Vec::new();
        let tables = ProtocolSource::new(ns.net_dir()).read(&mut errors);
        Collected {
            families: render(&tables, self.page_size, self.fields.as_ref()),
            errors,
            ..Collected::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode_text, Kind};
    use crate::source::snmp::{parse_value, RawValue};
    use std::collections::HashSet;

    fn tables() -> ProtocolTables {
        let mut t = ProtocolTables::default();
        let c = &mut t.counters;
        for (g, f, v) in [
            ("Tcp", "ActiveOpens", "23"),
            ("Tcp", "MaxConn", "-1"),
            ("Tcp", "CurrEstab", "4"),
            ("Tcp", "RetransSegs", "9"),
            ("TcpExt", "ListenOverflows", "5"),
            ("TcpExt", "TCPAbortOnTimeout", "2"),
            ("TcpExt", "TCPSackRecovery", "8"),
            ("Udp", "NoPorts", "3"),
            ("Udp6", "NoPorts", "1"),
            ("Ip", "InDiscards", "6"),
            ("Ip6", "OutDiscards", "7"),
            ("Ip6", "InNoRoutes", "2"),
            ("Icmp", "InMsgs", "11"),
        ] {
            c.insert(g, f, parse_value(v).unwrap());
        }
        let k = &mut t.sockstat;
        for (g, f, v) in [
            ("sockets", "used", 11),
            ("TCP", "inuse", 1),
            ("TCP", "mem", 3),
            ("TCP6", "inuse", 2),
            ("UDP", "mem", 0),
            ("FRAG", "memory", 0),
            ("FRAG6", "memory", 10),
        ] {
            k.insert(g, f, RawValue::Unsigned(v));
        }
        t
    }

    fn value(fams: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let f = fams.iter().find(|f| f.name == name)?;
        f.samples
            .iter()
            .find(|s| {
                s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value.as_f64())
    }

    #[test]
    fn named_metrics_and_absent_fields() {
        let f = render(&tables(), 4096, None);
        assert_eq!(value(&f, "netstat_tcp_active_opens", &[]), Some(23.0));
        assert_eq!(value(&f, "netstat_tcp_listen_overflows", &[]), Some(5.0));
        assert_eq!(value(&f, "netstat_tcp_current_established", &[]), Some(4.0));
        assert_eq!(
            value(&f, "netstat_tcp_aborts", &[("reason", "timeout")]),
            Some(2.0)
        );
        assert_eq!(value(&f, "netstat_tcp_aborts", &[("reason", "data")]), None);
        assert_eq!(
            value(&f, "netstat_udp_no_ports", &[("family", "ipv6")]),
            Some(1.0)
        );
        assert_eq!(
            value(
                &f,
                "netstat_ip_packets_discarded",
                &[("family", "ipv6"), ("direction", "sent")]
            ),
            Some(7.0)
        );
        assert_eq!(
            value(
                &f,
                "netstat_icmp_messages",
                &[("family", "ipv4"), ("direction", "received")]
            ),
            Some(11.0)
        );
        // Fields the kernel does not have: no series, no family.
        assert!(!f.iter().any(|x| x.name == "netstat_tcp_listen_drops"));
        assert!(!f.iter().any(|x| x.name.starts_with("netstat_udplite_")));
        // No raw fields without the flag.
        assert!(!f.iter().any(|x| x.name == RAW_COUNTER_NAME));
    }

    #[test]
    fn sockstat_gauges_in_bytes() {
        let f = render(&tables(), 4096, None);
        assert_eq!(
            value(&f, "netstat_tcp_memory_bytes", &[]),
            Some(3.0 * 4096.0)
        );
        assert_eq!(value(&f, "netstat_udp_memory_bytes", &[]), Some(0.0));
        assert_eq!(value(&f, "netstat_sockets_used", &[]), Some(11.0));
        assert_eq!(
            value(&f, "netstat_fragment_memory_bytes", &[("family", "ipv6")]),
            Some(10.0)
        );
        assert_eq!(
            value(
                &f,
                "netstat_sockets_in_use",
                &[("protocol", "tcp"), ("family", "ipv6")]
            ),
            Some(2.0)
        );
        let f = f
            .iter()
            .find(|x| x.name == "netstat_tcp_memory_bytes")
            .unwrap();
        assert_eq!(f.kind, Kind::Gauge);
    }

    #[test]
    fn raw_fields_regex() {
        let re = Regex::new("^(?:TcpExt_TCPSackRecovery|Ip6_.*|Tcp_(MaxConn|CurrEstab))$").unwrap();
        let f = render(&tables(), 4096, Some(&re));
        let raw = f.iter().find(|x| x.name == RAW_COUNTER_NAME).unwrap();
        assert_eq!(raw.kind, Kind::Counter);
        let got: Vec<(String, String, f64)> = raw
            .samples
            .iter()
            .map(|s| {
                (
                    s.labels[0].1.clone(),
                    s.labels[1].1.clone(),
                    s.value.as_f64(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("Ip6".into(), "InNoRoutes".into(), 2.0),
                ("Ip6".into(), "OutDiscards".into(), 7.0),
                ("TcpExt".into(), "TCPSackRecovery".into(), 8.0),
            ]
        );
        assert_eq!(
            value(
                &f,
                RAW_GAUGE_NAME,
                &[("group", "Tcp"), ("field", "MaxConn")]
            ),
            Some(-1.0)
        );
        assert_eq!(
            value(
                &f,
                RAW_GAUGE_NAME,
                &[("group", "Tcp"), ("field", "CurrEstab")]
            ),
            Some(4.0)
        );
        // Anchored by config: a partial name does not match.
        let re = Regex::new("^(?:TcpExt_TCPSack)$").unwrap();
        assert!(!render(&tables(), 4096, Some(&re))
            .iter()
            .any(|x| x.name == RAW_COUNTER_NAME));
    }

    #[test]
    fn names_are_unique_and_promtool_friendly() {
        let mut seen = HashSet::new();
        let all = COUNTERS
            .iter()
            .flat_map(|g| g.iter().map(|s| (s, Kind::Counter)))
            .chain(std::iter::once((&TCP_CURRENT_ESTABLISHED, Kind::Gauge)))
            .chain(GAUGES.iter().map(|s| (s, Kind::Gauge)));
        for (spec, kind) in all {
            assert!(seen.insert(spec.desc.name), "duplicate {}", spec.desc.name);
            assert!(spec.desc.name.starts_with("netstat_"));
            assert!(!spec.desc.name.ends_with("_total"), "{}", spec.desc.name);
            assert!(!spec.desc.name.contains("_counter") && !spec.desc.name.contains("_gauge"));
            assert!(!spec.desc.help.is_empty());
            assert_eq!(spec.desc.kind, kind, "{}", spec.desc.name);
            if kind == Kind::Gauge {
                assert!(spec.series.iter().all(|s| !s.field.is_empty()));
            }
            // Series of one family have distinct label sets.
            let mut label_sets = HashSet::new();
            for s in spec.series {
                assert!(label_sets.insert(s.labels), "{}", spec.desc.name);
                let names: Vec<&str> = s.labels.iter().map(|(k, _)| *k).collect();
                assert_eq!(names, spec.desc.labels, "{}", spec.desc.name);
            }
        }
        // Names of the sockets collector must not be reused.
        for taken in [
            "netstat_sockets",
            "netstat_unix_sockets",
            "netstat_socket_queued_bytes",
            "netstat_socket_queue_max_bytes",
            "netstat_sockets_queued",
        ] {
            assert!(!seen.contains(taken), "{taken}");
        }
        assert!(!seen.contains(RAW_COUNTER_NAME) && !seen.contains(RAW_GAUGE_NAME));
    }

    #[test]
    fn text_rendering() {
        let mut t = ProtocolTables::default();
        t.counters
            .insert("TcpExt", "ListenOverflows", RawValue::Unsigned(u64::MAX));
        let text = encode_text(&render(&t, 4096, None));
        assert!(
            text.contains("# TYPE netstat_tcp_listen_overflows_total counter\n"),
            "{text}"
        );
        assert!(text.contains("\nnetstat_tcp_listen_overflows_total 18446744073709551615\n"));
        assert!(
            text.contains("(netstat -s: \"times the listen queue"),
            "{text}"
        );
    }
}
