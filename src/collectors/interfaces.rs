//! Collector `interfaces`: the `netstat -i` table (RX/TX OK, ERR, DRP, OVR per interface,
//! MTU, Flg) plus the rest of `/proc/net/dev` and what `/sys/class/net` adds.
//!
//! Counters come from `<procfs>/net/dev` (the exporter's own network namespace, see
//! [`crate::source::netdev`]) exactly as the kernel prints them: no resets are hidden, a
//! counter that goes backwards (device re-created) is exported as read. Attributes come from
//! `<sysfs>/class/net/<dev>/`. Interfaces that disappear simply drop out of the next scrape.
//!
//! # Flags
//!
//! The sysfs `flags` file is the device's raw `dev->flags`; `netstat -i` gets its Flg column
//! from `SIOCGIFFLAGS` (`dev_get_flags()` in the kernel), which differs in three ways that
//! [`effective_flags`] reproduces or documents:
//! - `RUNNING` is computed by the kernel from the operational state (up or unknown, on an
//!   up device): derived here from `operstate`. `LOWER_UP` (carrier on an up device) and
//!   `DORMANT` likewise, from `carrier` and `operstate`.
//! - `PROMISC` and `ALLMULTI`: `SIOCGIFFLAGS` reports only what an administrator set
//!   (`ip link set promisc on`), while `dev->flags` has the *effective* state, which also
//!   counts packet sockets in promiscuous mode (tcpdump, other sniffers) and bridge ports.
//!   The exporter reports the effective state: that is what catches a sniffer. On a bridge
//!   port (docker0's veths, for instance) `promisc` is therefore 1 although `netstat -i`
//!   shows no `P`.

use regex::Regex;

use super::rows::{InterfaceRow, LinkRow, Rows, WATCHED_FLAGS};
use crate::flag_values::anchored_regex;
use crate::metrics::{Desc, Labels, MetricFamily};
use crate::source::netdev::{Column, Counters, NetDevFile, SysAttrs};
use crate::source::netns::Netns;
use crate::source::SourceError;

use super::{
    BuildContext, Collected, Collector, CollectorDecl, CollectorFlags, FlagsDecl, SimpleCollector,
};

pub const DECL: CollectorDecl = CollectorDecl {
    name: "interfaces",
    default_enabled: true,
    help: "netstat -i: per-interface packets, errors, drops, overruns, MTU and flags",
    metrics,
    flags: FlagsDecl::of::<InterfacesFlags>(),
};

pub static PACKETS: Desc = Desc::counter(
    "netstat_interface_packets",
    &["device", "direction", "outcome"],
    "Packets per interface as netstat -i counts them: outcome ok = RX-OK/TX-OK, error = RX-ERR/TX-ERR, drop = RX-DRP/TX-DRP, overrun = RX-OVR/TX-OVR (/proc/net/dev packets, errs, drop, fifo).",
);
pub static BYTES: Desc = Desc::counter(
    "netstat_interface_bytes",
    &["device", "direction"],
    "Bytes received or transmitted per interface (/proc/net/dev bytes; not in netstat -i, shown by netstat -ie / ip -s link).",
)
.unit("bytes");
pub static FRAME: Desc = Desc::counter(
    "netstat_interface_receive_frame_errors",
    &["device"],
    "Receive framing errors: length, overrun, CRC and frame errors (/proc/net/dev receive frame; ifconfig frame:).",
);
pub static MULTICAST: Desc = Desc::counter(
    "netstat_interface_receive_multicast_packets",
    &["device"],
    "Multicast packets received (/proc/net/dev receive multicast; ip -s link mcast).",
);
pub static COLLS: Desc = Desc::counter(
    "netstat_interface_transmit_collisions",
    &["device"],
    "Transmit collisions (/proc/net/dev transmit colls; ifconfig collisions:).",
);
pub static CARRIER_ERRORS: Desc = Desc::counter(
    "netstat_interface_transmit_carrier_errors",
    &["device"],
    "Transmit carrier, aborted, window and heartbeat errors (/proc/net/dev transmit carrier; ifconfig carrier:).",
);
pub static COMPRESSED: Desc = Desc::counter(
    "netstat_interface_compressed_packets",
    &["device", "direction"],
    "Compressed packets received or transmitted, e.g. by PPP/SLIP (/proc/net/dev compressed).",
);
pub static MTU: Desc = Desc::gauge(
    "netstat_interface_mtu_bytes",
    &["device"],
    "Interface MTU in bytes (netstat -i MTU; /sys/class/net/<dev>/mtu).",
)
.unit("bytes");
pub static FLAG: Desc = Desc::gauge(
    "netstat_interface_flag",
    &["device", "flag"],
    "1 if the interface flag is set, else 0; every flag is always present (netstat -i Flg). promisc is the effective state (also set by sniffers and bridge ports), running/lower_up/dormant follow operstate and carrier like SIOCGIFFLAGS.",
);
pub static INFO: Desc = Desc::gauge(
    "netstat_interface_info",
    &["device", "flags", "operstate", "address", "type"],
    "Interface information, value 1: flags = the netstat -i Flg letters, operstate, address = hardware (MAC) address, type = link type as ip link names it.",
);
pub static CARRIER: Desc = Desc::gauge(
    "netstat_interface_carrier",
    &["device"],
    "1 if the interface has a carrier (link detected), 0 if not; absent while the interface is down.",
);
pub static SPEED: Desc = Desc::gauge(
    "netstat_interface_speed_bytes",
    &["device"],
    "Link speed in bytes per second as the driver reports it; absent where there is none (down or virtual interfaces).",
)
.unit("bytes");

fn metrics() -> Vec<&'static Desc> {
    vec![
        &PACKETS,
        &BYTES,
        &FRAME,
        &MULTICAST,
        &COLLS,
        &CARRIER_ERRORS,
        &COMPRESSED,
        &MTU,
        &FLAG,
        &INFO,
        &CARRIER,
        &SPEED,
    ]
}

/// The flags of the interfaces collector.
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct InterfacesFlags {
    #[arg(
        id = "collector.interfaces.device-include",
        long = "collector.interfaces.device-include",
        value_name = "REGEX",
        help = "Regexp of devices to include (anchored; mutually exclusive with device-exclude)."
    )]
    device_include: Option<String>,
    #[arg(
        id = "collector.interfaces.device-exclude",
        long = "collector.interfaces.device-exclude",
        value_name = "REGEX",
        help = "Regexp of devices to exclude (anchored; mutually exclusive with device-include)."
    )]
    device_exclude: Option<String>,
}

impl CollectorFlags for InterfacesFlags {
    fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Collector>, String> {
        let include = anchored_regex(
            "--collector.interfaces.device-include",
            self.device_include.as_deref(),
        )?;
        let exclude = anchored_regex(
            "--collector.interfaces.device-exclude",
            self.device_exclude.as_deref(),
        )?;
        if include.is_some() && exclude.is_some() {
            return Err(
                "--collector.interfaces.device-include and --collector.interfaces.device-exclude are mutually exclusive"
                    .into(),
            );
        }
        Ok(Box::new(InterfacesCollector {
            filter: DeviceFilter { include, exclude },
        }))
    }
}

pub const IFF_UP: u32 = 0x1;
pub const IFF_BROADCAST: u32 = 0x2;
pub const IFF_DEBUG: u32 = 0x4;
pub const IFF_LOOPBACK: u32 = 0x8;
pub const IFF_POINTOPOINT: u32 = 0x10;
pub const IFF_NOTRAILERS: u32 = 0x20;
pub const IFF_RUNNING: u32 = 0x40;
pub const IFF_NOARP: u32 = 0x80;
pub const IFF_PROMISC: u32 = 0x100;
pub const IFF_ALLMULTI: u32 = 0x200;
pub const IFF_MASTER: u32 = 0x400;
pub const IFF_SLAVE: u32 = 0x800;
pub const IFF_MULTICAST: u32 = 0x1000;
pub const IFF_LOWER_UP: u32 = 0x10000;
pub const IFF_DORMANT: u32 = 0x20000;

/// The `flag` label values of `netstat_interface_flag`, always all present per device.
pub const FLAGS: [(&str, u32); 11] = [
    ("up", IFF_UP),
    ("broadcast", IFF_BROADCAST),
    ("loopback", IFF_LOOPBACK),
    ("pointopoint", IFF_POINTOPOINT),
    ("running", IFF_RUNNING),
    ("noarp", IFF_NOARP),
    ("promisc", IFF_PROMISC),
    ("allmulti", IFF_ALLMULTI),
    ("multicast", IFF_MULTICAST),
    ("dormant", IFF_DORMANT),
    ("lower_up", IFF_LOWER_UP),
];

/// `netstat -i` Flg letters in net-tools' order (`lib/interface.c`, `ife_print_short`).
/// Yes, `P` twice: promiscuous, then point-to-point.
const LETTERS: [(u32, char); 13] = [
    (IFF_ALLMULTI, 'A'),
    (IFF_BROADCAST, 'B'),
    (IFF_DEBUG, 'D'),
    (IFF_LOOPBACK, 'L'),
    (IFF_MULTICAST, 'M'),
    (IFF_PROMISC, 'P'),
    (IFF_NOTRAILERS, 'N'),
    (IFF_NOARP, 'O'),
    (IFF_POINTOPOINT, 'P'),
    (IFF_SLAVE, 's'),
    (IFF_MASTER, 'm'),
    (IFF_RUNNING, 'R'),
    (IFF_UP, 'U'),
];

/// The flags as the kernel's `dev_get_flags()` computes them for `SIOCGIFFLAGS`, from the raw
/// sysfs `flags` plus `operstate` and `carrier` (PROMISC/ALLMULTI stay effective, see the
/// module doc). Without an `operstate` file the raw RUNNING bit is kept.
pub fn effective_flags(raw: u32, operstate: Option<&str>, carrier: Option<bool>) -> u32 {
    let mut f = raw & !(IFF_LOWER_UP | IFF_DORMANT);
    let Some(op) = operstate else {
        if raw & IFF_UP == 0 {
            f &= !IFF_RUNNING;
        }
        return f;
    };
    f &= !IFF_RUNNING;
    if raw & IFF_UP != 0 {
        if op == "up" || op == "unknown" {
            f |= IFF_RUNNING;
        }
        if carrier == Some(true) {
            f |= IFF_LOWER_UP;
        }
        if op == "dormant" {
            f |= IFF_DORMANT;
        }
    }
    f
}

/// `netstat -i`'s Flg column for these (effective) flags; `[NO FLAGS]` like net-tools when
/// none of the low 16 bits is set.
pub fn netstat_letters(flags: u32) -> String {
    if flags & 0xffff == 0 {
        return "[NO FLAGS]".into();
    }
    LETTERS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// ARPHRD_* numbers as `ip link` names them after `link/` (iproute2 `lib/ll_types.c`); other
/// types are shown as the number.
pub fn link_type_name(t: u16) -> String {
    let name = match t {
        0 => "netrom",
        1 => "ether",
        2 => "eether",
        3 => "ax25",
        6 => "ieee802",
        7 => "arcnet",
        15 => "dlci",
        19 => "atm",
        24 => "ieee1394",
        27 => "eui64",
        32 => "infiniband",
        256 => "slip",
        257 => "cslip",
        280 => "can",
        512 => "ppp",
        513 => "hdlc",
        516 => "lapb",
        519 => "rawip",
        768 => "ipip",
        769 => "tunnel6",
        770 => "frad",
        772 => "loopback",
        774 => "fddi",
        776 => "sit",
        778 => "gre",
        779 => "pimreg",
        783 => "irda",
        800 => "tr",
        801 => "ieee802.11",
        802 => "ieee802.11/prism",
        803 => "ieee802.11/radiotap",
        804 => "ieee802.15.4",
        805 => "ieee802.15.4/monitor",
        820 => "phonet",
        821 => "phonet_pipe",
        822 => "caif",
        823 => "gre6",
        824 => "netlink",
        825 => "6lowpan",
        826 => "vsockmon",
        0xfffe => "none",
        0xffff => "void",
        _ => return t.to_string(),
    };
    name.to_string()
}

/// One interface: its `/proc/net/dev` counters (None when its line was bad) and sysfs
/// attributes (None when its sysfs directory is gone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub counters: Option<Counters>,
    pub sys: Option<SysAttrs>,
}

/// `(direction, outcome, column)` of `netstat_interface_packets_total`: the eight netstat -i
/// columns RX-OK RX-ERR RX-DRP RX-OVR TX-OK TX-ERR TX-DRP TX-OVR.
const PACKET_COLUMNS: [(&str, &str, Column); 8] = [
    ("receive", "ok", Column::RxPackets),
    ("receive", "error", Column::RxErrs),
    ("receive", "drop", Column::RxDrop),
    ("receive", "overrun", Column::RxFifo),
    ("transmit", "ok", Column::TxPackets),
    ("transmit", "error", Column::TxErrs),
    ("transmit", "drop", Column::TxDrop),
    ("transmit", "overrun", Column::TxFifo),
];

fn dev(name: &str) -> Labels {
    vec![("device", name.to_string())]
}

fn dev_dir(name: &str, direction: &'static str) -> Labels {
    vec![
        ("device", name.to_string()),
        ("direction", direction.to_string()),
    ]
}

/// The rows of the interfaces, one per interface read (in the order read): the families
/// ([`render`]), the snapshot's interface table and the change log are made from them. Pure.
pub fn rows(ifaces: &[Interface]) -> Vec<InterfaceRow> {
    ifaces
        .iter()
        .map(|i| InterfaceRow {
            device: i.name.clone(),
            counters: i.counters,
            link: i.sys.as_ref().map(|s| {
                let flags = s
                    .flags
                    .map(|raw| effective_flags(raw, s.operstate.as_deref(), s.carrier));
                LinkRow {
                    mtu: s.mtu,
                    flags,
                    letters: flags.map(netstat_letters).unwrap_or_default(),
                    operstate: s.operstate.clone(),
                    address: s.address.clone(),
                    link_type: s.arp_type.map(link_type_name),
                    carrier: s.carrier,
                    speed_bytes: s.speed_mbps.map(|mbps| mbps.saturating_mul(125_000)),
                }
            }),
            netns: String::new(),
        })
        .collect()
}

/// The values of [`WATCHED_FLAGS`] of an interface (None when its flags are unknown): what
/// the change log compares.
pub fn watched(row: &InterfaceRow) -> [Option<bool>; WATCHED_FLAGS.len()] {
    let flags = row.link.as_ref().and_then(|l| l.flags);
    WATCHED_FLAGS.map(|name| {
        let bit = FLAGS.iter().find(|(f, _)| *f == name).map(|(_, b)| *b)?;
        flags.map(|f| f & bit != 0)
    })
}

/// Render the interfaces' rows: the one place where the interface families are made. Pure.
pub fn render(rows: &[InterfaceRow]) -> Vec<MetricFamily> {
    let mut packets = PACKETS.family();
    let mut bytes = BYTES.family();
    let mut frame = FRAME.family();
    let mut multicast = MULTICAST.family();
    let mut colls = COLLS.family();
    let mut carrier_errors = CARRIER_ERRORS.family();
    let mut compressed = COMPRESSED.family();
    let mut mtu = MTU.family();
    let mut flag = FLAG.family();
    let mut info = INFO.family();
    let mut carrier = CARRIER.family();
    let mut speed = SPEED.family();

    for r in rows {
        let name = r.device.as_str();
        if let Some(c) = &r.counters {
            for (direction, outcome, col) in PACKET_COLUMNS {
                if let Some(v) = c.get(col) {
                    packets.push(
                        vec![
                            ("device", name.to_string()),
                            ("direction", direction.to_string()),
                            ("outcome", outcome.to_string()),
                        ],
                        v,
                    );
                }
            }
            for (direction, col) in [("receive", Column::RxBytes), ("transmit", Column::TxBytes)] {
                if let Some(v) = c.get(col) {
                    bytes.push(dev_dir(name, direction), v);
                }
            }
            for (direction, col) in [
                ("receive", Column::RxCompressed),
                ("transmit", Column::TxCompressed),
            ] {
                if let Some(v) = c.get(col) {
                    compressed.push(dev_dir(name, direction), v);
                }
            }
            for (fam, col) in [
                (&mut frame, Column::RxFrame),
                (&mut multicast, Column::RxMulticast),
                (&mut colls, Column::TxColls),
                (&mut carrier_errors, Column::TxCarrier),
            ] {
                if let Some(v) = c.get(col) {
                    fam.push(dev(name), v);
                }
            }
        }
        let Some(l) = &r.link else {
            continue;
        };
        if let Some(v) = l.mtu {
            mtu.push(dev(name), v);
        }
        if let Some(f) = l.flags {
            for (fname, bit) in FLAGS {
                flag.push(
                    vec![("device", name.to_string()), ("flag", fname.to_string())],
                    f & bit != 0,
                );
            }
        }
        info.push(
            vec![
                ("device", name.to_string()),
                ("flags", l.letters.clone()),
                ("operstate", l.operstate.clone().unwrap_or_default()),
                ("address", l.address.clone().unwrap_or_default()),
                ("type", l.link_type.clone().unwrap_or_default()),
            ],
            1u64,
        );
        if let Some(c) = l.carrier {
            carrier.push(dev(name), c);
        }
        if let Some(v) = l.speed_bytes {
            speed.push(dev(name), v);
        }
    }
    vec![
        packets,
        bytes,
        frame,
        multicast,
        colls,
        carrier_errors,
        compressed,
        mtu,
        flag,
        info,
        carrier,
        speed,
    ]
}

/// Device name filter from `--collector.interfaces.device-include|exclude` (anchored regexes,
/// mutually exclusive: checked at startup).
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub include: Option<Regex>,
    pub exclude: Option<Regex>,
}

impl DeviceFilter {
    pub fn keep(&self, name: &str) -> bool {
        let included = match &self.include {
            Some(r) => r.is_match(name),
            None => true,
        };
        included && !self.exclude.as_ref().is_some_and(|r| r.is_match(name))
    }
}

pub struct InterfacesCollector {
    filter: DeviceFilter,
}

impl InterfacesCollector {
    pub fn new(filter: DeviceFilter) -> Self {
        InterfacesCollector { filter }
    }

    /// Read `<net>/dev` of `ns` and then each kept device's attributes.
    pub fn read(&self, ns: &Netns, errors: &mut Vec<SourceError>) -> Vec<Interface> {
        let netdev = NetDevFile::new(ns.net_dir());
        let mut ifaces = Vec::new();
        netdev.for_each(errors, &mut |name, counters| {
            if self.filter.keep(name) {
                ifaces.push(Interface {
                    name: name.to_string(),
                    counters,
                    sys: None,
                });
            }
        });
        let names: Vec<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
        let mut attrs = ns.link_attrs(&names, errors);
        for i in &mut ifaces {
            i.sys = attrs.remove(&i.name);
        }
        ifaces
    }
}

impl SimpleCollector for InterfacesCollector {
    fn name(&self) -> &'static str {
        DECL.name
    }

    fn collect(&self, ns: &Netns) -> Collected {
        let mut errors = Vec::new();
        let rows = rows(&self.read(ns, &mut errors));
        Collected {
            families: render(&rows),
            rows: Rows {
                interfaces: Some(rows),
                ..Rows::default()
            },
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode_text, Value};

    fn counters(vals: [u64; 16]) -> Counters {
        let mut c = Counters::default();
        for (col, v) in Column::CURRENT_LAYOUT.iter().zip(vals) {
            c.set(*col, v);
        }
        c
    }

    fn eth0() -> Interface {
        Interface {
            name: "eth0".into(),
            counters: Some(counters([
                1000,
                10,
                1,
                2,
                3,
                4,
                5,
                6,
                2000,
                20,
                7,
                8,
                9,
                10,
                11,
                u64::MAX,
            ])),
            sys: Some(SysAttrs {
                mtu: Some(1500),
                flags: Some(0x1003),
                carrier: Some(true),
                operstate: Some("up".into()),
                address: Some("02:00:00:00:00:01".into()),
                arp_type: Some(1),
                speed_mbps: Some(1000),
            }),
        }
    }

    fn value(fams: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<Value> {
        let f = fams.iter().find(|f| f.name == name)?;
        f.samples
            .iter()
            .find(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(k2, v2)| k2 == k && v2 == v))
            })
            .map(|s| s.value)
    }

    #[test]
    fn flags_like_siocgifflags() {
        // eth0 up with carrier: B M R U, lower_up.
        let f = effective_flags(0x1003, Some("up"), Some(true));
        assert_eq!(netstat_letters(f), "BMRU");
        assert!(f & IFF_LOWER_UP != 0);
        // lo: operstate unknown counts as running.
        assert_eq!(
            netstat_letters(effective_flags(0x9, Some("unknown"), Some(true))),
            "LRU"
        );
        // veth whose peer is down: up, no carrier, lowerlayerdown: no R.
        let f = effective_flags(0x1003, Some("lowerlayerdown"), Some(false));
        assert_eq!(netstat_letters(f), "BMU");
        assert_eq!(f & (IFF_RUNNING | IFF_LOWER_UP), 0);
        // Down: carrier unreadable, nothing derived even with a stale RUNNING bit.
        assert_eq!(
            netstat_letters(effective_flags(0x1042, Some("down"), None)),
            "BM"
        );
        // Promiscuous and point-to-point both print P, in net-tools' order.
        assert_eq!(
            netstat_letters(effective_flags(0x1103, Some("up"), Some(true))),
            "BMPRU"
        );
        assert_eq!(
            netstat_letters(effective_flags(0x91, Some("unknown"), None)),
            "OPRU"
        );
        assert_eq!(
            netstat_letters(effective_flags(0x1303, Some("up"), Some(true))),
            "ABMPRU"
        );
        // Dormant: up, operstate dormant, not running.
        let f = effective_flags(0x1003, Some("dormant"), Some(true));
        assert_eq!(f & (IFF_DORMANT | IFF_RUNNING), IFF_DORMANT);
        // No operstate file: raw RUNNING kept when up.
        assert_eq!(effective_flags(0x41, None, None), 0x41);
        assert_eq!(effective_flags(0x40, None, None), 0);
        assert_eq!(netstat_letters(0), "[NO FLAGS]");
    }

    #[test]
    fn renders_everything_for_a_full_interface() {
        let fams = render(&rows(&[eth0()]));
        let v = |n, l: &[(&str, &str)]| value(&fams, n, l);
        let p = "netstat_interface_packets";
        assert_eq!(
            v(p, &[("direction", "receive"), ("outcome", "ok")]),
            Some(Value::Int(10))
        );
        assert_eq!(
            v(p, &[("direction", "receive"), ("outcome", "error")]),
            Some(Value::Int(1))
        );
        assert_eq!(
            v(p, &[("direction", "receive"), ("outcome", "drop")]),
            Some(Value::Int(2))
        );
        assert_eq!(
            v(p, &[("direction", "receive"), ("outcome", "overrun")]),
            Some(Value::Int(3))
        );
        assert_eq!(
            v(p, &[("direction", "transmit"), ("outcome", "ok")]),
            Some(Value::Int(20))
        );
        assert_eq!(
            v(p, &[("direction", "transmit"), ("outcome", "overrun")]),
            Some(Value::Int(9))
        );
        assert_eq!(
            v(
                "netstat_interface_compressed_packets",
                &[("direction", "transmit")]
            ),
            Some(Value::Int(u64::MAX))
        );
        assert_eq!(
            v("netstat_interface_receive_frame_errors", &[]),
            Some(Value::Int(4))
        );
        assert_eq!(
            v("netstat_interface_transmit_carrier_errors", &[]),
            Some(Value::Int(11))
        );
        assert_eq!(
            v("netstat_interface_speed_bytes", &[]),
            Some(Value::Int(125_000_000))
        );
        assert_eq!(
            v("netstat_interface_flag", &[("flag", "promisc")]),
            Some(Value::Int(0))
        );
        assert_eq!(
            v("netstat_interface_flag", &[("flag", "lower_up")]),
            Some(Value::Int(1))
        );
        assert_eq!(
            fams.iter()
                .find(|f| f.name == "netstat_interface_flag")
                .unwrap()
                .samples
                .len(),
            FLAGS.len()
        );
        let text = encode_text(&fams);
        assert!(text.contains(
            "netstat_interface_info{device=\"eth0\",flags=\"BMRU\",operstate=\"up\",address=\"02:00:00:00:00:01\",type=\"ether\"} 1\n"
        ), "{text}");
        assert!(text.contains("netstat_interface_compressed_packets_total{device=\"eth0\",direction=\"transmit\"} 18446744073709551615\n"));
    }

    #[test]
    fn partial_interfaces_omit_series() {
        // No sysfs: counters only.
        let mut gone = eth0();
        gone.name = "gone".into();
        gone.sys = None;
        // Bad counters line: sysfs only; down: no carrier, no speed.
        let mut bad = eth0();
        bad.name = "bad".into();
        bad.counters = None;
        if let Some(s) = bad.sys.as_mut() {
            s.carrier = None;
            s.speed_mbps = None;
            s.flags = Some(0x1002);
            s.operstate = Some("down".into());
        }
        let fams = render(&rows(&[gone, bad]));
        assert!(value(&fams, "netstat_interface_packets", &[("device", "gone")]).is_some());
        assert!(value(&fams, "netstat_interface_mtu_bytes", &[("device", "gone")]).is_none());
        assert!(value(&fams, "netstat_interface_info", &[("device", "gone")]).is_none());
        assert!(value(&fams, "netstat_interface_packets", &[("device", "bad")]).is_none());
        assert!(value(&fams, "netstat_interface_carrier", &[("device", "bad")]).is_none());
        assert!(value(&fams, "netstat_interface_speed_bytes", &[("device", "bad")]).is_none());
        assert_eq!(
            value(
                &fams,
                "netstat_interface_flag",
                &[("device", "bad"), ("flag", "up")]
            ),
            Some(Value::Int(0))
        );
    }

    /// The families, the snapshot's table and the change log's flags all come from the row.
    #[test]
    fn row_holds_what_the_families_show() {
        let mut nothing = eth0();
        nothing.name = "nothing".into();
        nothing.counters = None;
        nothing.sys = None;
        let rs = rows(&[eth0(), nothing]);
        assert_eq!(rs.len(), 2);
        assert!(rs[0].in_table() && !rs[1].in_table());
        let fams = render(&rs);
        assert!(fams.iter().all(|f| f
            .samples
            .iter()
            .all(|s| crate::metrics::label(s, "device") == "eth0")));
        let link = rs[0].link.as_ref().unwrap();
        assert_eq!(link.letters, "BMRU");
        assert_eq!(link.speed_bytes, Some(125_000_000));
        assert_eq!(
            value(&fams, "netstat_interface_speed_bytes", &[]),
            Some(Value::Int(125_000_000))
        );
        assert_eq!(
            watched(&rs[0]),
            [Some(true), Some(true), Some(true), Some(false)]
        );
        assert_eq!(watched(&rs[1]), [None; 4]);
        let j = serde_json::to_value(&rs[0]).unwrap();
        assert_eq!(j["rx_ok"], 10);
        assert_eq!(j["tx_ovr"], 9);
        assert_eq!(j["rx_bytes"], 1000);
        assert_eq!(j["flags"], "BMRU");
        assert_eq!(j["operstate"], "up");
    }

    #[test]
    fn link_types() {
        assert_eq!(link_type_name(1), "ether");
        assert_eq!(link_type_name(772), "loopback");
        assert_eq!(link_type_name(65534), "none");
        assert_eq!(link_type_name(4242), "4242");
    }

    #[test]
    fn filter() {
        let f = DeviceFilter {
            include: Some(Regex::new("^(?:eth.*)$").unwrap()),
            exclude: None,
        };
        assert!(f.keep("eth0") && !f.keep("lo"));
        let f = DeviceFilter {
            include: None,
            exclude: Some(Regex::new("^(?:veth.*|lo)$").unwrap()),
        };
        assert!(f.keep("eth0") && !f.keep("lo") && !f.keep("veth12"));
        assert!(DeviceFilter::default().keep("anything"));
    }
}
