//! Interface statistics and attributes: `<net>/dev` (the `/proc/net/dev` table `netstat -i`
//! prints) and `<sysfs>/class/net/<dev>/` (MTU, flags, carrier, operstate, address, type,
//! speed).
//!
//! # Which network namespace
//!
//! `/proc/net/dev` is per network namespace: it shows the namespace of the process that reads
//! it (`/proc/net` is a symlink to `/proc/self/net`). The collector reads `<procfs>/net/dev`,
//! i.e. the exporter's own namespace, not `<procfs>/1/net/dev` (pid 1's). Reason: sysfs is
//! tied to a network namespace too (`/sys/class/net` lists the devices of the namespace that
//! mounted sysfs, and `ip netns exec` remounts it), and the counters and the sysfs attributes
//! must describe the same devices. A containerised exporter that should report the host's
//! interfaces runs with the host's network namespace (`--net=host` / `hostNetwork: true`),
//! which makes `self` and pid 1 agree on the host; reading pid 1's table from inside a
//! container namespace would mix the host's counters with the container's sysfs.
//! [`NetDevFile`] takes the `net` directory as a parameter, so `<procfs>/<pid>/net` can be
//! read when that is what is wanted.
//!
//! # Parsing `dev`
//!
//! The kernel (`net/core/net-procfs.c`, `dev_seq_printf_stats`) prints two header lines and
//! then one line per device: `%6s:` name, then the receive and the transmit columns. The
//! columns are mapped by the names in the second header line, so older layouts (Linux 2.0
//! without `bytes`, 2.2 without `compressed`/`multicast`) are read correctly and a column the
//! kernel does not print is simply absent (its series are not exported; that is not an
//! error). The device name is everything before the *last* `:` on the line (counters never
//! contain one), which handles names with `.` (VLANs), old-style `eth0:1` aliases, 15-character
//! names and a first counter glued to the colon (`eth0:123456789`). Counters are `u64`.
//!
//! Bad lines are recorded as [`SourceError`]s with the path and line number:
//! - a line without `:` (garbage) is skipped;
//! - a line with a valid name whose counters do not parse, or whose column count differs from
//!   the header's, keeps the device (its sysfs series are still exported) but drops all of its
//!   counters: mapping a partial line by position could put a value in the wrong column,
//!   which is worse than a gap;
//! - a second line for an already seen name is skipped (duplicate series would break the
//!   exposition).
//!
//! # sysfs
//!
//! Each attribute is one small file. A missing file, or one the kernel refuses with `EINVAL`
//! (`carrier` and `speed` of a device that is down, `speed` of virtual devices), `ENODEV` or
//! `EOPNOTSUPP`, means "not reported": the value is `None` and no error is recorded. A device
//! whose directory has vanished (deleted between reading `dev` and sysfs) yields `None`.
//! Unreadable files for other reasons, and contents that do not parse, are errors.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};

use super::{read_lines, SourceError};

/// The columns of `/proc/net/dev`, receive then transmit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    RxBytes,
    RxPackets,
    RxErrs,
    RxDrop,
    RxFifo,
    RxFrame,
    RxCompressed,
    RxMulticast,
    TxBytes,
    TxPackets,
    TxErrs,
    TxDrop,
    TxFifo,
    TxColls,
    TxCarrier,
    TxCompressed,
}

impl Column {
    pub const COUNT: usize = 16;

    /// The layout of every kernel since 2.4 (no header needed to know it).
    pub const CURRENT_LAYOUT: [Column; 16] = [
        Column::RxBytes,
        Column::RxPackets,
        Column::RxErrs,
        Column::RxDrop,
        Column::RxFifo,
        Column::RxFrame,
        Column::RxCompressed,
        Column::RxMulticast,
        Column::TxBytes,
        Column::TxPackets,
        Column::TxErrs,
        Column::TxDrop,
        Column::TxFifo,
        Column::TxColls,
        Column::TxCarrier,
        Column::TxCompressed,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn receive(name: &str) -> Option<Column> {
        Some(match name {
            "bytes" => Column::RxBytes,
            "packets" => Column::RxPackets,
            "errs" => Column::RxErrs,
            "drop" => Column::RxDrop,
            "fifo" => Column::RxFifo,
            "frame" => Column::RxFrame,
            "compressed" => Column::RxCompressed,
            "multicast" => Column::RxMulticast,
            _ => return None,
        })
    }

    fn transmit(name: &str) -> Option<Column> {
        Some(match name {
            "bytes" => Column::TxBytes,
            "packets" => Column::TxPackets,
            "errs" => Column::TxErrs,
            "drop" => Column::TxDrop,
            "fifo" => Column::TxFifo,
            "colls" => Column::TxColls,
            "carrier" => Column::TxCarrier,
            "compressed" => Column::TxCompressed,
            _ => return None,
        })
    }
}

/// One device's counters; `None` for a column this kernel does not print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters([Option<u64>; Column::COUNT]);

impl Counters {
    pub fn get(&self, c: Column) -> Option<u64> {
        self.0[c.index()]
    }
    pub fn set(&mut self, c: Column, v: u64) {
        self.0[c.index()] = Some(v);
    }
}

/// What one line of `dev` turned out to be.
// A short-lived return value on the stack; boxing the counters would allocate per line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// Header or blank line.
    Skip,
    Device(&'a str, Counters),
    /// The name is valid but the counters are not: keep the device, report the message.
    BadCounters(&'a str, String),
    /// Not a device line at all.
    Garbage(String),
}

/// Line parser holding the column layout learned from the header.
#[derive(Debug, Clone)]
pub struct NetDevParser {
    /// Column of each value position; `None` for a column name this exporter does not know
    /// (a future kernel): the value is parsed and ignored.
    layout: Vec<Option<Column>>,
}

impl Default for NetDevParser {
    fn default() -> Self {
        NetDevParser {
            layout: Column::CURRENT_LAYOUT.iter().copied().map(Some).collect(),
        }
    }
}

impl NetDevParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse one line (without its newline).
    pub fn parse_line<'a>(&mut self, line: &'a str) -> Line<'a> {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Line::Skip;
        }
        let Some(colon) = trimmed.rfind(':') else {
            if trimmed.contains('|') {
                self.header(trimmed);
                return Line::Skip;
            }
            return Line::Garbage(format!("not a device line: {:?}", preview(trimmed)));
        };
        let name = trimmed[..colon].trim();
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Line::Garbage(format!("bad device name in {:?}", preview(trimmed)));
        }
        match self.counters(&trimmed[colon + 1..]) {
            Ok(c) => Line::Device(name, c),
            Err(msg) => Line::BadCounters(name, format!("device {name:?}: {msg}")),
        }
    }

    /// The second header line names the columns: ` face |bytes packets ...|bytes packets ...`.
    /// The first (`Inter-|   Receive   |  Transmit`) names none and is ignored.
    fn header(&mut self, line: &str) {
        let parts: Vec<&str> = line.split('|').collect();
        if parts.len() != 3 || !parts[1].split_whitespace().any(|w| w == "packets") {
            return;
        }
        let rx = parts[1].split_whitespace().map(Column::receive);
        let tx = parts[2].split_whitespace().map(Column::transmit);
        self.layout = rx.chain(tx).collect();
    }

    fn counters(&self, values: &str) -> Result<Counters, String> {
        let mut c = Counters::default();
        let mut n = 0usize;
        for (i, field) in values.split_whitespace().enumerate() {
            n += 1;
            let Some(slot) = self.layout.get(i) else {
                continue;
            };
            let v = dec_u64(field).ok_or_else(|| {
                format!(
                    "column {} is not a 64-bit counter: {:?}",
                    i + 1,
                    preview(field)
                )
            })?;
            if let Some(col) = slot {
                c.set(*col, v);
            }
        }
        if n != self.layout.len() {
            return Err(format!(
                "expected {} counters (as the header says), found {n}",
                self.layout.len()
            ));
        }
        Ok(c)
    }
}

fn dec_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn preview(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Reader of one network namespace's `dev` table.
#[derive(Debug, Clone)]
pub struct NetDevFile {
    path: PathBuf,
}

/// `source` label of errors from the `dev` table.
pub const DEV_SOURCE: &str = "net/dev";
/// `source` label of errors from sysfs.
pub const SYSFS_SOURCE: &str = "sys/class/net";

impl NetDevFile {
    /// `net_dir` is a `net` directory: `<procfs>/net` (the exporter's namespace) or
    /// `<procfs>/<pid>/net`.
    pub fn new(net_dir: impl AsRef<Path>) -> Self {
        NetDevFile {
            path: net_dir.as_ref().join("dev"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stream the table, calling `visit(name, counters)` for every device line with a valid
    /// name (`None` counters when the line's counters were bad). Problems go to `errors`.
    pub fn for_each(
        &self,
        errors: &mut Vec<SourceError>,
        visit: &mut dyn FnMut(&str, Option<Counters>),
    ) {
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                errors.push(SourceError::file(
                    DEV_SOURCE,
                    &self.path,
                    format!("cannot open: {e}"),
                ));
                return;
            }
        };
        parse_stream(BufReader::new(f), &self.path, errors, visit);
    }
}

/// The line loop of [`NetDevFile::for_each`], over any reader (for tests).
pub fn parse_stream(
    reader: impl BufRead,
    path: &Path,
    errors: &mut Vec<SourceError>,
    visit: &mut dyn FnMut(&str, Option<Counters>),
) {
    let mut parser = NetDevParser::new();
    let mut seen: Vec<String> = Vec::new();
    let lines = read_lines(reader, DEV_SOURCE, path, errors, |lineno, buf, errors| {
        let text = String::from_utf8_lossy(buf);
        let (name, counters) = match parser.parse_line(&text) {
            Line::Skip => return,
            Line::Garbage(msg) => {
                errors.push(SourceError::line(DEV_SOURCE, path, lineno, msg));
                return;
            }
            Line::BadCounters(name, msg) => {
                errors.push(SourceError::line(DEV_SOURCE, path, lineno, msg));
                (name, None)
            }
            Line::Device(name, c) => (name, Some(c)),
        };
        if seen.iter().any(|s| s == name) {
            errors.push(SourceError::line(
                DEV_SOURCE,
                path,
                lineno,
                format!("duplicate device {name:?}: line skipped"),
            ));
            return;
        }
        seen.push(name.to_string());
        visit(name, counters);
    });
    let Some(lineno) = lines else {
        return;
    };
    if lineno == 0 {
        errors.push(SourceError::file(DEV_SOURCE, path, "empty file"));
    }
}

/// What `<sysfs>/class/net/<dev>/` says about one device; `None` where the file is missing
/// or the kernel reports nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysAttrs {
    pub mtu: Option<u64>,
    /// `flags`: the device's `IFF_*` flags (`dev->flags`, hex).
    pub flags: Option<u32>,
    pub carrier: Option<bool>,
    pub operstate: Option<String>,
    pub address: Option<String>,
    /// `type`: ARPHRD_* number.
    pub arp_type: Option<u16>,
    /// `speed` in Mbit/s; `None` when unknown (-1) or not reported.
    pub speed_mbps: Option<u64>,
}

/// Reader of `<sysfs>/class/net`.
#[derive(Debug, Clone)]
pub struct SysClassNet {
    dir: PathBuf,
}

impl SysClassNet {
    pub fn new(sysfs: impl AsRef<Path>) -> Self {
        Self::at(sysfs.as_ref().join("class/net"))
    }

    /// A `class/net` directory itself.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        SysClassNet { dir: dir.into() }
    }

    /// Attributes of `device`, or `None` when its directory does not exist (device gone, or
    /// a name that cannot be a directory).
    pub fn read(&self, device: &str, errors: &mut Vec<SourceError>) -> Option<SysAttrs> {
        if device.is_empty() || device == "." || device == ".." || device.contains('/') {
            return None;
        }
        let dir = self.dir.join(device);
        if !dir.is_dir() {
            return None;
        }
        let mut r = AttrReader { dir, errors };
        Some(SysAttrs {
            mtu: r.parsed("mtu", |s| s.parse().ok()),
            flags: r.parsed("flags", parse_hex_u32),
            carrier: r.parsed("carrier", |s| match s {
                "0" => Some(false),
                "1" => Some(true),
                _ => None,
            }),
            operstate: r.parsed("operstate", |s| {
                (s.len() <= 32 && s.bytes().all(|b| b.is_ascii_graphic())).then(|| s.to_string())
            }),
            address: r.parsed("address", |s| {
                (s.len() <= 128 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'))
                    .then(|| s.to_string())
            }),
            arp_type: r.parsed("type", |s| s.parse().ok()),
            speed_mbps: r
                .parsed("speed", |s| s.parse::<i64>().ok())
                .and_then(speed_mbps),
        })
    }
}

/// `speed` prints `SPEED_UNKNOWN` as -1 (older kernels as 4294967295).
fn speed_mbps(v: i64) -> Option<u64> {
    if v < 0 || v == i64::from(u32::MAX) {
        None
    } else {
        u64::try_from(v).ok()
    }
}

fn parse_hex_u32(s: &str) -> Option<u32> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if h.is_empty() || h.len() > 8 {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

/// True for read errors that mean "the kernel has no value for this device", not a problem.
pub fn is_not_reported(e: &std::io::Error) -> bool {
    if e.kind() == ErrorKind::NotFound {
        return true;
    }
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENODEV | libc::EOPNOTSUPP | libc::ENOENT | libc::ENXIO)
    )
}

struct AttrReader<'a> {
    dir: PathBuf,
    errors: &'a mut Vec<SourceError>,
}

impl AttrReader<'_> {
    fn parsed<T>(&mut self, file: &str, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
        let path = self.dir.join(file);
        let text = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if is_not_reported(&e) => return None,
            Err(e) => {
                self.errors.push(SourceError::file(
                    SYSFS_SOURCE,
                    &path,
                    format!("cannot read: {e}"),
                ));
                return None;
            }
        };
        let text = String::from_utf8_lossy(&text);
        let value = text.trim();
        let parsed = parse(value);
        if parsed.is_none() {
            self.errors.push(SourceError::line(
                SYSFS_SOURCE,
                &path,
                1,
                format!("unexpected value {:?}", preview(value)),
            ));
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

    fn parse(text: &str) -> (Vec<(String, Option<Counters>)>, Vec<SourceError>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        parse_stream(
            text.as_bytes(),
            Path::new("/p/net/dev"),
            &mut errors,
            &mut |n, c| out.push((n.to_string(), c)),
        );
        (out, errors)
    }

    #[test]
    fn current_layout() {
        let text = format!(
            "{HEADER}    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0\n  eth0:88940474    2616    1    2    3     4          5         6   169605    1721    7    8    9    10      11         12\n"
        );
        let (devs, errors) = parse(&text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0].0, "lo");
        let eth = devs[1].1.unwrap();
        assert_eq!(devs[1].0, "eth0");
        assert_eq!(eth.get(Column::RxBytes), Some(88940474));
        assert_eq!(eth.get(Column::RxPackets), Some(2616));
        assert_eq!(eth.get(Column::RxFifo), Some(3));
        assert_eq!(eth.get(Column::RxMulticast), Some(6));
        assert_eq!(eth.get(Column::TxBytes), Some(169605));
        assert_eq!(eth.get(Column::TxColls), Some(10));
        assert_eq!(eth.get(Column::TxCompressed), Some(12));
    }

    #[test]
    fn names_with_colon_dot_and_long_glued() {
        let mut p = NetDevParser::new();
        let vals = " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16";
        for name in ["eth0.100", "eth0:1", "abcdefghijklmno", "a|b"] {
            match p.parse_line(&format!("  {name}:{vals}")) {
                Line::Device(n, c) => {
                    assert_eq!(n, name);
                    assert_eq!(c.get(Column::RxBytes), Some(1));
                    assert_eq!(c.get(Column::TxCompressed), Some(16));
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // First counter glued to the colon, as %6s:%8llu prints large values.
        match p
            .parse_line("verylongname123:18446744073709551615 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16")
        {
            Line::Device(n, c) => {
                assert_eq!(n, "verylongname123");
                assert_eq!(c.get(Column::RxBytes), Some(u64::MAX));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overflow_and_bad_numbers() {
        let mut p = NetDevParser::new();
        let l = "eth0: 18446744073709551616 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16";
        assert!(matches!(p.parse_line(l), Line::BadCounters("eth0", _)));
        let l = "eth0: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16";
        assert!(matches!(p.parse_line(l), Line::BadCounters("eth0", _)));
        let l = "eth0: 1 2 3";
        match p.parse_line(l) {
            Line::BadCounters(_, m) => assert!(m.contains("expected 16 counters"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(p.parse_line("garbage here"), Line::Garbage(_)));
        assert!(matches!(p.parse_line(": 1 2"), Line::Garbage(_)));
        assert!(matches!(p.parse_line("a b: 1 2"), Line::Garbage(_)));
        assert_eq!(p.parse_line("   "), Line::Skip);
    }

    #[test]
    fn old_layouts_by_header() {
        // Linux 2.2: no compressed/multicast.
        let text = "Inter-|   Receive                           |  Transmit\n face |bytes    packets errs drop fifo frame|bytes    packets errs drop fifo colls carrier\n  eth0: 100 1 2 3 4 5 200 6 7 8 9 10 11\n";
        let (devs, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        let c = devs[0].1.unwrap();
        assert_eq!(c.get(Column::RxFrame), Some(5));
        assert_eq!(c.get(Column::RxCompressed), None);
        assert_eq!(c.get(Column::TxBytes), Some(200));
        assert_eq!(c.get(Column::TxCarrier), Some(11));
        assert_eq!(c.get(Column::TxCompressed), None);
        // Linux 2.0: no bytes.
        let text = "Inter-|   Receive                  |  Transmit\n face |packets errs drop fifo frame|packets errs drop fifo colls carrier\n    lo: 1 2 3 4 5 6 7 8 9 10 11\n";
        let (devs, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        let c = devs[0].1.unwrap();
        assert_eq!(c.get(Column::RxBytes), None);
        assert_eq!(c.get(Column::RxPackets), Some(1));
        assert_eq!(c.get(Column::TxPackets), Some(6));
        assert_eq!(c.get(Column::TxCarrier), Some(11));
    }

    #[test]
    fn unknown_header_column_is_ignored() {
        let text = "Inter-| R | T\n face |bytes packets newthing|bytes packets\n x: 1 2 3 4 5\n";
        let (devs, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        let c = devs[0].1.unwrap();
        assert_eq!(c.get(Column::RxPackets), Some(2));
        assert_eq!(c.get(Column::TxBytes), Some(4));
    }

    #[test]
    fn errors_carry_line_numbers_and_devices_survive() {
        let text = format!(
            "{HEADER}garbage\n  eth0: 1 2\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n  eth1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n  eth1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16"
        );
        let (devs, errors) = parse(&text);
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(3), Some(4), Some(5), Some(7)]);
        assert!(errors.iter().all(|e| e.location == "/p/net/dev"));
        assert_eq!(
            devs.iter()
                .map(|d| (d.0.as_str(), d.1.is_some()))
                .collect::<Vec<_>>(),
            vec![("eth0", false), ("eth1", true)]
        );
        assert!(errors[2].message.contains("duplicate"), "{}", errors[2]);
    }

    #[test]
    fn empty_and_missing_files() {
        let (devs, errors) = parse("");
        assert!(devs.is_empty());
        assert_eq!(errors.len(), 1);
        let mut errors = Vec::new();
        NetDevFile::new("/nonexistent/net").for_each(&mut errors, &mut |_, _| {});
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("/nonexistent/net/dev"));
    }

    #[test]
    fn sysfs_values() {
        assert_eq!(parse_hex_u32("0x1003"), Some(0x1003));
        assert_eq!(parse_hex_u32("1003"), None);
        assert_eq!(parse_hex_u32("0xzz"), None);
        assert_eq!(speed_mbps(-1), None);
        assert_eq!(speed_mbps(4294967295), None);
        assert_eq!(speed_mbps(10000), Some(10000));
        for errno in [libc::EINVAL, libc::ENODEV, libc::EOPNOTSUPP] {
            assert!(is_not_reported(&std::io::Error::from_raw_os_error(errno)));
        }
        assert!(!is_not_reported(&std::io::Error::from_raw_os_error(
            libc::EACCES
        )));
    }

    #[test]
    fn sysfs_tree() {
        let root = std::env::temp_dir().join(format!("netdev-sysfs-{}", std::process::id()));
        let dev = root.join("class/net/eth0");
        std::fs::create_dir_all(&dev).unwrap();
        for (f, v) in [
            ("mtu", "1500\n"),
            ("flags", "0x1003\n"),
            ("operstate", "up\n"),
            ("address", "02:fc:00:00:00:01\n"),
            ("type", "1\n"),
            ("speed", "-1\n"),
            ("carrier", "maybe\n"),
        ] {
            std::fs::write(dev.join(f), v).unwrap();
        }
        let sys = SysClassNet::new(&root);
        let mut errors = Vec::new();
        let a = sys.read("eth0", &mut errors).unwrap();
        assert_eq!(a.mtu, Some(1500));
        assert_eq!(a.flags, Some(0x1003));
        assert_eq!(a.operstate.as_deref(), Some("up"));
        assert_eq!(a.address.as_deref(), Some("02:fc:00:00:00:01"));
        assert_eq!(a.arp_type, Some(1));
        assert_eq!(a.speed_mbps, None);
        assert_eq!(a.carrier, None);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(1));
        assert!(errors[0].location.ends_with("eth0/carrier"));
        assert_eq!(sys.read("gone", &mut errors), None);
        assert_eq!(sys.read("..", &mut errors), None);
        assert_eq!(errors.len(), 1);
        let _ = std::fs::remove_dir_all(&root);
    }
}
