//! Readers for the kernel's protocol counters under a network-namespace `net` directory:
//! `snmp` and `netstat` (header/value line pairs), `snmp6` (`Name value` lines) and
//! `sockstat` / `sockstat6` (`GROUP: key value key value ...` lines).
//!
//! [`ProtocolSource`] reads any such directory: `<procfs>/net` (the exporter's own network
//! namespace) or `<procfs>/<pid>/net` (another process's namespace).
//!
//! Everything read lands in a [`Fields`] table keyed by (group, field) with the kernel's own
//! names: `("Tcp", "RetransSegs")`, `("TcpExt", "ListenOverflows")`, `("Ip6", "InReceives")`,
//! `("TCP", "orphan")`, `("FRAG6", "memory")`. Fields a kernel does not have are simply not in
//! the table. The formats are the kernel's (`net/ipv4/proc.c`, `net/ipv6/proc.c`).
//!
//! Parse errors never abort a file: a malformed group or line is skipped and reported with
//! the file path and line number, everything else in the file is kept.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use super::SourceError;

/// A value as the kernel printed it. Counters are printed unsigned (`%lu`); the only signed
/// field is `Tcp MaxConn`, which is `-1` ("no limit").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawValue {
    Unsigned(u64),
    /// A value printed with a minus sign (always < 0).
    Negative(i64),
}

impl RawValue {
    /// The value when it is not negative.
    pub fn as_u64(self) -> Option<u64> {
        match self {
            RawValue::Unsigned(v) => Some(v),
            RawValue::Negative(_) => None,
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            RawValue::Unsigned(v) => v as f64,
            RawValue::Negative(v) => v as f64,
        }
    }
}

/// Parse a decimal number as the kernel prints it: digits, optionally preceded by `-`.
/// Anything else (`+1`, `1.5`, `0x10`, empty, overflow) is rejected.
pub fn parse_value(s: &str) -> Option<RawValue> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if neg {
        // i64::from_str accepts exactly "-<digits>" here; "-0" is plain zero.
        let v: i64 = s.parse().ok()?;
        Some(if v == 0 {
            RawValue::Unsigned(0)
        } else {
            RawValue::Negative(v)
        })
    } else {
        digits.parse().ok().map(RawValue::Unsigned)
    }
}

/// Values by group, then field, with the kernel's names. Bounded by what the kernel prints
/// (a few hundred fields).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    groups: BTreeMap<String, BTreeMap<String, RawValue>>,
}

impl Fields {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, group: &str, field: &str, value: RawValue) {
        self.groups
            .entry(group.to_string())
            .or_default()
            .insert(field.to_string(), value);
    }

    pub fn get(&self, group: &str, field: &str) -> Option<RawValue> {
        self.groups.get(group)?.get(field).copied()
    }

    /// A non-negative value (counters, gauges that cannot be negative).
    pub fn get_u64(&self, group: &str, field: &str) -> Option<u64> {
        self.get(group, field)?.as_u64()
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn len(&self) -> usize {
        self.groups.values().map(BTreeMap::len).sum()
    }

    /// Every (group, field, value), sorted by group then field.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, RawValue)> {
        self.groups.iter().flat_map(|(g, fields)| {
            fields
                .iter()
                .map(move |(f, v)| (g.as_str(), f.as_str(), *v))
        })
    }

    /// Add everything from `other` (later values win on duplicates).
    pub fn merge(&mut self, other: Fields) {
        for (g, fields) in other.groups {
            self.groups.entry(g).or_default().extend(fields);
        }
    }
}

/// The layouts of the files read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `snmp`, `netstat`: `Group: Name1 Name2 ...` followed by `Group: v1 v2 ...`.
    HeaderValue,
    /// `snmp6`: `Ip6InReceives   123`, one field per line; the group is the name up to and
    /// including the first `6` (`Ip6`, `Icmp6`, `Udp6`, `UdpLite6`).
    NameValue,
    /// `sockstat`, `sockstat6`: `TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1`.
    KeyValue,
}

/// One file this source reads.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    pub file: &'static str,
    pub format: Format,
    /// IPv4 files must exist; the IPv6 ones are absent when IPv6 is disabled, which is a fact
    /// of the host and not an error.
    pub required: bool,
}

/// The counter files: their fields go to [`ProtocolTables::counters`].
pub const COUNTER_FILES: [FileSpec; 3] = [
    FileSpec {
        file: "snmp",
        format: Format::HeaderValue,
        required: true,
    },
    FileSpec {
        file: "netstat",
        format: Format::HeaderValue,
        required: true,
    },
    FileSpec {
        file: "snmp6",
        format: Format::NameValue,
        required: false,
    },
];

/// The socket-usage files: their fields go to [`ProtocolTables::sockstat`].
pub const SOCKSTAT_FILES: [FileSpec; 2] = [
    FileSpec {
        file: "sockstat",
        format: Format::KeyValue,
        required: true,
    },
    FileSpec {
        file: "sockstat6",
        format: Format::KeyValue,
        required: false,
    },
];

/// Everything one read produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProtocolTables {
    /// snmp + netstat + snmp6 (group names do not overlap: `Tcp`, `TcpExt`, `Ip6` ...).
    pub counters: Fields,
    /// sockstat + sockstat6 (`sockets`, `TCP`, `UDP`, `FRAG`, `TCP6`, `FRAG6` ...).
    pub sockstat: Fields,
}

/// Files larger than this are not protocol counter files (the real ones are a few KiB).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reader for one network namespace's `net` directory.
#[derive(Debug, Clone)]
pub struct ProtocolSource {
    dir: PathBuf,
}

/// Outcome of reading one file.
#[derive(Debug)]
pub enum ReadOutcome {
    Text(String),
    Missing,
    /// Unreadable; the error has been recorded.
    Failed,
}

impl ProtocolSource {
    pub fn new(net_dir: impl Into<PathBuf>) -> Self {
        ProtocolSource {
            dir: net_dir.into(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Label-safe name of a file for error counting, e.g. `net/snmp6`.
    pub fn source_name(file: &str) -> String {
        format!("net/{file}")
    }

    /// Read and parse every file. Problems are appended to `errors`; what could be read is
    /// returned regardless.
    pub fn read(&self, errors: &mut Vec<SourceError>) -> ProtocolTables {
        let mut tables = ProtocolTables::default();
        for spec in COUNTER_FILES {
            tables.counters.merge(self.read_file(spec, errors));
        }
        for spec in SOCKSTAT_FILES {
            tables.sockstat.merge(self.read_file(spec, errors));
        }
        tables
    }

    /// Read and parse one file.
    pub fn read_file(&self, spec: FileSpec, errors: &mut Vec<SourceError>) -> Fields {
        let path = self.dir.join(spec.file);
        let source = Self::source_name(spec.file);
        let text = match read_text(&path, &source, errors) {
            ReadOutcome::Text(t) => t,
            ReadOutcome::Failed => return Fields::new(),
            ReadOutcome::Missing => {
                if spec.required {
                    errors.push(SourceError::file(source, &path, "file does not exist"));
                } else {
                    tracing::debug!(
                        file = spec.file,
                        "protocol counter file absent (IPv6 disabled?): no IPv6 series"
                    );
                }
                return Fields::new();
            }
        };
        let mut out = Fields::new();
        let ctx = Ctx {
            source: &source,
            path: &path,
        };
        match spec.format {
            Format::HeaderValue => parse_header_value(&text, &ctx, &mut out, errors),
            Format::NameValue => parse_name_value(&text, &ctx, &mut out, errors),
            Format::KeyValue => parse_key_value(&text, &ctx, &mut out, errors),
        }
        if text.trim().is_empty() {
            errors.push(SourceError::file(source, &path, "empty file"));
        }
        out
    }
}

fn read_text(path: &Path, source: &str, errors: &mut Vec<SourceError>) -> ReadOutcome {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return ReadOutcome::Missing,
        Err(e) => {
            errors.push(SourceError::file(source, path, format!("cannot open: {e}")));
            return ReadOutcome::Failed;
        }
    };
    let mut buf = Vec::with_capacity(8192);
    if let Err(e) = file.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf) {
        errors.push(SourceError::file(source, path, format!("read failed: {e}")));
        return ReadOutcome::Failed;
    }
    if buf.len() as u64 > MAX_FILE_BYTES {
        errors.push(SourceError::file(
            source,
            path,
            format!("larger than {MAX_FILE_BYTES} bytes: not a protocol counter file"),
        ));
        return ReadOutcome::Failed;
    }
    match String::from_utf8(buf) {
        Ok(t) => ReadOutcome::Text(t),
        Err(_) => {
            errors.push(SourceError::file(source, path, "not valid UTF-8 text"));
            ReadOutcome::Failed
        }
    }
}

/// Where a parse happens, for error messages.
pub struct Ctx<'a> {
    pub source: &'a str,
    pub path: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, line: usize, message: String) -> SourceError {
        SourceError::line(self.source, self.path, line, message)
    }
}

/// A short, printable excerpt of a token for error messages.
fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        p.push_str("...");
    }
    p
}

fn looks_like_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

/// Non-empty lines with their 1-based numbers, trimmed.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

/// `snmp` / `netstat`: pairs of `Group: Name ...` and `Group: value ...` lines.
///
/// A header line must be followed by a value line with the same group and as many values as
/// names; otherwise the group is skipped and an error names the line. A value that is not a
/// number is skipped (with an error); the other values of the line are kept.
pub fn parse_header_value(text: &str, ctx: &Ctx, out: &mut Fields, errors: &mut Vec<SourceError>) {
    // (line number, group, field names) of a header waiting for its value line.
    let mut pending: Option<(usize, &str, Vec<&str>)> = None;
    for (lineno, line) in numbered_lines(text) {
        let Some((group, rest)) = line.split_once(':') else {
            errors.push(ctx.err(
                lineno,
                format!("expected \"Group: ...\", found {:?}", preview(line)),
            ));
            pending = None;
            continue;
        };
        let group = group.trim();
        let tokens: Vec<&str> = rest.split_whitespace().collect();
        match pending.take() {
            Some((hline, hgroup, names)) if hgroup == group => {
                if names.len() != tokens.len() {
                    errors.push(ctx.err(
                        lineno,
                        format!(
                            "{group}: header line {hline} names {} fields but this value line has {} values; group skipped",
                            names.len(),
                            tokens.len()
                        ),
                    ));
                    continue;
                }
                for (name, token) in names.iter().zip(&tokens) {
                    match parse_value(token) {
                        Some(v) => out.insert(group, name, v),
                        None => errors.push(ctx.err(
                            lineno,
                            format!("{group} {name}: not a number: {:?}", preview(token)),
                        )),
                    }
                }
            }
            other => {
                if let Some((hline, hgroup, _)) = other {
                    errors.push(ctx.err(
                        hline,
                        format!(
                            "{hgroup}: header line not followed by its value line (line {lineno} is {group}:); group skipped"
                        ),
                    ));
                }
                if group.is_empty() || !tokens.iter().all(|t| looks_like_name(t)) {
                    errors.push(ctx.err(
                        lineno,
                        format!(
                            "expected a header line \"Group: Name ...\", found {:?}",
                            preview(line)
                        ),
                    ));
                    continue;
                }
                pending = Some((lineno, group, tokens));
            }
        }
    }
    if let Some((hline, hgroup, _)) = pending {
        errors.push(ctx.err(
            hline,
            format!("{hgroup}: header line without a value line at the end of the file"),
        ));
    }
}

/// Split an snmp6 name into its group (up to and including the first `6`) and field:
/// `Ip6InReceives` -> (`Ip6`, `InReceives`), `UdpLite6InErrors` -> (`UdpLite6`, `InErrors`).
pub fn split_snmp6_name(name: &str) -> Option<(&str, &str)> {
    let i = name.find('6')?;
    let (group, field) = name.split_at(i + 1);
    (i > 0 && !field.is_empty()).then_some((group, field))
}

/// `snmp6`: one `Name value` pair per line.
pub fn parse_name_value(text: &str, ctx: &Ctx, out: &mut Fields, errors: &mut Vec<SourceError>) {
    for (lineno, line) in numbered_lines(text) {
        let mut tokens = line.split_whitespace();
        let (Some(name), Some(value), None) = (tokens.next(), tokens.next(), tokens.next()) else {
            errors.push(ctx.err(
                lineno,
                format!("expected \"Name value\", found {:?}", preview(line)),
            ));
            continue;
        };
        let Some((group, field)) = split_snmp6_name(name) else {
            errors.push(ctx.err(
                lineno,
                format!(
                    "field name without a group prefix such as Ip6: {:?}",
                    preview(name)
                ),
            ));
            continue;
        };
        match parse_value(value) {
            Some(v) => out.insert(group, field, v),
            None => errors.push(ctx.err(
                lineno,
                format!("{name}: not a number: {:?}", preview(value)),
            )),
        }
    }
}

/// `sockstat` / `sockstat6`: `GROUP: key value key value ...`.
pub fn parse_key_value(text: &str, ctx: &Ctx, out: &mut Fields, errors: &mut Vec<SourceError>) {
    for (lineno, line) in numbered_lines(text) {
        let Some((group, rest)) = line.split_once(':') else {
            errors.push(ctx.err(
                lineno,
                format!(
                    "expected \"GROUP: key value ...\", found {:?}",
                    preview(line)
                ),
            ));
            continue;
        };
        let group = group.trim();
        let tokens: Vec<&str> = rest.split_whitespace().collect();
        if group.is_empty() || tokens.is_empty() || !tokens.len().is_multiple_of(2) {
            errors.push(ctx.err(
                lineno,
                format!(
                    "expected \"GROUP: key value ...\", found {:?}",
                    preview(line)
                ),
            ));
            continue;
        }
        for pair in tokens.chunks_exact(2) {
            let (key, value) = (pair[0], pair[1]);
            match parse_value(value) {
                Some(v) if looks_like_name(key) => out.insert(group, key, v),
                _ => errors.push(ctx.err(
                    lineno,
                    format!(
                        "{group}: expected \"key value\", found {:?} {:?}",
                        preview(key),
                        preview(value)
                    ),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            source: "net/test",
            path: Path::new("/p/net/test"),
        }
    }

    fn hv(text: &str) -> (Fields, Vec<SourceError>) {
        let (mut f, mut e) = (Fields::new(), Vec::new());
        parse_header_value(text, &ctx(), &mut f, &mut e);
        (f, e)
    }

    #[test]
    fn values() {
        assert_eq!(parse_value("0"), Some(RawValue::Unsigned(0)));
        assert_eq!(
            parse_value("18446744073709551615"),
            Some(RawValue::Unsigned(u64::MAX))
        );
        assert_eq!(parse_value("18446744073709551616"), None);
        assert_eq!(parse_value("-1"), Some(RawValue::Negative(-1)));
        assert_eq!(parse_value("-0"), Some(RawValue::Unsigned(0)));
        assert_eq!(
            parse_value("-9223372036854775808"),
            Some(RawValue::Negative(i64::MIN))
        );
        assert_eq!(parse_value("-9223372036854775809"), None);
        for bad in ["", "-", "+1", "1.5", "0x10", "abc", "1e3", " 1", "--1"] {
            assert_eq!(parse_value(bad), None, "{bad:?}");
        }
        assert_eq!(RawValue::Negative(-1).as_u64(), None);
        assert_eq!(RawValue::Negative(-1).as_f64(), -1.0);
    }

    #[test]
    fn header_value_pairs() {
        let (f, e) = hv(
            "Tcp: RtoAlgorithm RtoMin MaxConn ActiveOpens\nTcp: 1 200 -1 23\n\
             Udp: InDatagrams NoPorts\nUdp: 43 7\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(f.get("Tcp", "MaxConn"), Some(RawValue::Negative(-1)));
        assert_eq!(f.get_u64("Tcp", "MaxConn"), None);
        assert_eq!(f.get_u64("Tcp", "ActiveOpens"), Some(23));
        assert_eq!(f.get_u64("Udp", "NoPorts"), Some(7));
        assert_eq!(f.get_u64("Udp", "RcvbufErrors"), None);
        assert_eq!(f.len(), 6);
    }

    #[test]
    fn unknown_fields_are_kept_without_error() {
        let (f, e) = hv("TcpExt: SyncookiesSent TCPFutureThing\nTcpExt: 1 99\n\
             NewGroup: A\nNewGroup: 5\n");
        assert!(e.is_empty());
        assert_eq!(f.get_u64("TcpExt", "TCPFutureThing"), Some(99));
        assert_eq!(f.get_u64("NewGroup", "A"), Some(5));
    }

    #[test]
    fn count_mismatch_skips_group_with_line_number() {
        let (f, e) = hv("Ip: A B C\nIp: 1 2\nUdp: X\nUdp: 3\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, Some(2));
        assert_eq!(e[0].location, "/p/net/test");
        assert!(e[0].message.contains("names 3 fields"), "{}", e[0].message);
        assert!(!f.has_group("Ip"));
        assert_eq!(f.get_u64("Udp", "X"), Some(3));
    }

    #[test]
    fn non_numeric_value_skips_only_that_field() {
        let (f, e) = hv("Tcp: A B C\nTcp: 1 x 3\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, Some(2));
        assert!(e[0].message.contains("Tcp B"), "{}", e[0].message);
        assert_eq!(f.get_u64("Tcp", "A"), Some(1));
        assert_eq!(f.get("Tcp", "B"), None);
        assert_eq!(f.get_u64("Tcp", "C"), Some(3));
    }

    #[test]
    fn missing_value_line_resynchronises() {
        // Ip's value line is missing: Icmp's header follows Ip's header.
        let (f, e) = hv("Ip: A B\nIcmp: InMsgs\nIcmp: 4\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, Some(1));
        assert_eq!(f.get_u64("Icmp", "InMsgs"), Some(4));
        // Trailing header without values.
        let (_, e) = hv("Ip: A\nIp: 1\nUdp: A\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, Some(3));
        // A value line where a header is expected.
        let (f, e) = hv("Ip: 1 2\nUdp: A\nUdp: 1\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, Some(1));
        assert_eq!(f.get_u64("Udp", "A"), Some(1));
        // Garbage without a colon.
        let (_, e) = hv("garbage\n");
        assert_eq!(e[0].line, Some(1));
    }

    #[test]
    fn snmp6() {
        let (mut f, mut e) = (Fields::new(), Vec::new());
        parse_name_value(
            "Ip6InReceives                   \t1\nUdpLite6InErrors 2\nIcmp6OutType143 4\n\
             Bogus 1\nUdp6NoPorts x\nUdp6InErrors 1 2\n\n",
            &ctx(),
            &mut f,
            &mut e,
        );
        assert_eq!(f.get_u64("Ip6", "InReceives"), Some(1));
        assert_eq!(f.get_u64("UdpLite6", "InErrors"), Some(2));
        assert_eq!(f.get_u64("Icmp6", "OutType143"), Some(4));
        let lines: Vec<_> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(4), Some(5), Some(6)]);
        assert_eq!(split_snmp6_name("6abc"), None);
        assert_eq!(split_snmp6_name("Ip6"), None);
    }

    #[test]
    fn sockstat() {
        let (mut f, mut e) = (Fields::new(), Vec::new());
        parse_key_value(
            "sockets: used 11\nTCP: inuse 1 orphan 0 tw 3 alloc 1 mem 237\nFRAG: inuse 0 memory 0\n\
             UDP: inuse\nRAW: inuse x\n",
            &ctx(),
            &mut f,
            &mut e,
        );
        assert_eq!(f.get_u64("sockets", "used"), Some(11));
        assert_eq!(f.get_u64("TCP", "tw"), Some(3));
        assert_eq!(f.get_u64("TCP", "mem"), Some(237));
        assert_eq!(f.get_u64("FRAG", "memory"), Some(0));
        let lines: Vec<_> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(4), Some(5)]);
    }

    #[test]
    fn reads_a_directory_and_reports_missing_files() {
        let dir = std::env::temp_dir().join(format!("snmp-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("snmp"), "Tcp: CurrEstab\nTcp: 3\n").unwrap();
        std::fs::write(dir.join("sockstat"), "sockets: used 2\n").unwrap();
        std::fs::write(dir.join("sockstat6"), "").unwrap();
        let mut errors = Vec::new();
        let t = ProtocolSource::new(&dir).read(&mut errors);
        assert_eq!(t.counters.get_u64("Tcp", "CurrEstab"), Some(3));
        assert_eq!(t.sockstat.get_u64("sockets", "used"), Some(2));
        // netstat missing: an error; snmp6 missing: not one; sockstat6 empty: an error.
        let sources: Vec<_> = errors.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(sources, vec!["net/netstat", "net/sockstat6"], "{errors:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
