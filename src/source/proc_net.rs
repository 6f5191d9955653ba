//! Streaming parsers for the socket tables under a network-namespace `net` directory:
//! `tcp`, `tcp6`, `udp`, `udp6`, `udplite`, `udplite6`, `raw`, `raw6` and `unix`.
//!
//! [`ProcNet`] reads any such directory: `<procfs>/net` (the exporter's own namespace) or
//! `<procfs>/<pid>/net` (another process's namespace). Lines are parsed from a reused byte
//! buffer and handed to a visitor; nothing is kept per socket.
//!
//! Written by hand rather than with the `procfs` crate: its `net::tcp()` readers build a
//! `Vec` of every socket, which this exporter must not do at 100k sockets. The field layout
//! is the kernel's (`net/ipv4/tcp_ipv4.c` `get_tcp4_sock`, `net/ipv4/udp.c`
//! `udp4_format_sock`, `net/unix/af_unix.c` `unix_seq_show`). Addresses are printed by the
//! kernel in host byte order, so they are decoded with the host's endianness.

use std::fs::File;
use std::io::{BufReader, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::inet::{Family, InetSocket, Protocol, UnixSocket, UnixState, UnixType};
use super::{read_lines, SourceError};

/// Outcome of reading one table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Read,
    /// The file does not exist (IPv6 disabled, protocol not built into the kernel).
    Missing,
    /// The file exists but could not be opened or read (permission, I/O error); the error
    /// has been recorded.
    Failed,
}

/// Reader for one network namespace's `net` directory.
#[derive(Debug, Clone)]
pub struct ProcNet {
    dir: PathBuf,
}

const READ_BUFFER: usize = 64 * 1024;

impl ProcNet {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ProcNet { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Label-safe name of a file in this directory for error counting, e.g. `net/tcp6`.
    pub fn source_name(file: &str) -> String {
        format!("net/{file}")
    }

    /// Stream the `protocol`/`family` table, calling `visit` for every well-formed line.
    /// Malformed lines are skipped and recorded in `errors` with their line number.
    pub fn for_each_inet(
        &self,
        protocol: Protocol,
        family: Family,
        errors: &mut Vec<SourceError>,
        visit: &mut dyn FnMut(&InetSocket),
    ) -> FileStatus {
        let file = protocol.proc_file(family);
        self.for_each_line(file, errors, &mut |line| {
            parse_inet_line(line, protocol, family).map(|s| visit(&s))
        })
    }

    /// Stream `unix`, calling `visit` for every well-formed line.
    pub fn for_each_unix(
        &self,
        errors: &mut Vec<SourceError>,
        visit: &mut dyn FnMut(&UnixSocket),
    ) -> FileStatus {
        self.for_each_line("unix", errors, &mut |line| {
            parse_unix_line(line).map(|s| visit(&s))
        })
    }

    /// Shared line loop: header check, per-line parse errors with line numbers, read errors.
    fn for_each_line(
        &self,
        file: &str,
        errors: &mut Vec<SourceError>,
        parse: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> FileStatus {
        let path = self.dir.join(file);
        let source = Self::source_name(file);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return FileStatus::Missing,
            Err(e) => {
                errors.push(SourceError::file(
                    source,
                    &path,
                    format!("cannot open: {e}"),
                ));
                return FileStatus::Failed;
            }
        };
        let reader = BufReader::with_capacity(READ_BUFFER, f);
        let lines = read_lines(reader, &source, &path, errors, |lineno, buf, errors| {
            let complete = buf.last() == Some(&b'\n');
            let line = trim_ascii(buf);
            if lineno == 1 {
                if !is_header(line) {
                    errors.push(SourceError::line(
                        source.clone(),
                        &path,
                        1,
                        format!("expected a header line, found {:?}", preview(line)),
                    ));
                }
                return;
            }
            if line.is_empty() {
                return;
            }
            if let Err(msg) = parse(line) {
                let msg = if complete {
                    msg
                } else {
                    format!("{msg} (truncated last line: no newline at end of file)")
                };
                errors.push(SourceError::line(source.clone(), &path, lineno, msg));
            }
        });
        let Some(lineno) = lines else {
            return FileStatus::Failed;
        };
        if lineno == 0 {
            errors.push(SourceError::file(
                source,
                &path,
                "empty file: not even a header line",
            ));
        }
        FileStatus::Read
    }
}

fn is_header(line: &[u8]) -> bool {
    line.starts_with(b"sl ") || line.starts_with(b"Num ")
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    &b[start..end]
}

/// A short, printable excerpt of a bad line for error messages.
fn preview(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
    if line.len() > 80 {
        s + "..."
    } else {
        s
    }
}

fn hex_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

fn dec_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

fn dec_u32(s: &[u8]) -> Option<u32> {
    dec_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// `ADDR:PORT` with the address as 8 (IPv4) or 32 (IPv6) hex digits in host byte order.
fn parse_endpoint(s: &[u8], family: Family) -> Option<(IpAddr, u16)> {
    let colon = s.iter().rposition(|&c| c == b':')?;
    let (addr, port) = (&s[..colon], &s[colon + 1..]);
    if port.len() != 4 {
        return None;
    }
    let port = hex_u32(port)? as u16;
    let ip = match family {
        Family::Ipv4 => {
            if addr.len() != 8 {
                return None;
            }
            IpAddr::V4(Ipv4Addr::from(hex_u32(addr)?.to_ne_bytes()))
        }
        Family::Ipv6 => {
            if addr.len() != 32 {
                return None;
            }
            let mut bytes = [0u8; 16];
            for (i, chunk) in addr.chunks(8).enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&hex_u32(chunk)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
    };
    Some((ip, port))
}

/// Parse one data line of tcp/udp/udplite/raw (v4 or v6).
///
/// Columns: `sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...`;
/// udp and raw lines end with `ref pointer drops`.
pub fn parse_inet_line(
    line: &[u8],
    protocol: Protocol,
    family: Family,
) -> Result<InetSocket, String> {
    let mut fields = line
        .split(|c| c.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let mut next = |what: &str| {
        fields
            .next()
            .ok_or_else(|| format!("missing column {what}"))
    };
    let sl = next("sl")?;
    if sl.last() != Some(&b':') {
        return Err(format!("bad slot column {:?}", preview(sl)));
    }
    let local = next("local_address")?;
    let (local, local_port) = parse_endpoint(local, family)
        .ok_or_else(|| format!("bad local address {:?}", preview(local)))?;
    let remote = next("rem_address")?;
    let (remote, remote_port) = parse_endpoint(remote, family)
        .ok_or_else(|| format!("bad remote address {:?}", preview(remote)))?;
    let st = next("st")?;
    let state = hex_u32(st)
        .filter(|s| *s <= 0xff)
        .ok_or_else(|| format!("bad state {:?}", preview(st)))? as u8;
    let queues = next("tx_queue:rx_queue")?;
    let (tx, rx) = queues
        .iter()
        .position(|&c| c == b':')
        .and_then(|p| Some((hex_u32(&queues[..p])?, hex_u32(&queues[p + 1..])?)))
        .ok_or_else(|| format!("bad queue column {:?}", preview(queues)))?;
    next("tr:tm->when")?;
    next("retrnsmt")?;
    let uid_f = next("uid")?;
    let uid = dec_u32(uid_f).ok_or_else(|| format!("bad uid {:?}", preview(uid_f)))?;
    next("timeout")?;
    let inode_f = next("inode")?;
    let inode = dec_u64(inode_f).ok_or_else(|| format!("bad inode {:?}", preview(inode_f)))?;
    let drops = match protocol {
        Protocol::Tcp => None,
        Protocol::Udp | Protocol::UdpLite | Protocol::Raw => {
            // ref, pointer, drops
            next("ref")?;
            next("pointer")?;
            let d = next("drops")?;
            Some(dec_u32(d).ok_or_else(|| format!("bad drops {:?}", preview(d)))?)
        }
    };
    Ok(InetSocket {
        protocol,
        family,
        state,
        local,
        local_port,
        remote,
        remote_port,
        rx_queue: rx,
        tx_queue: tx,
        uid,
        inode,
        cookie: 0,
        drops,
        tcp: None,
    })
}

/// `__SO_ACCEPTCON`: the kernel sets it in the Flags column of listening sockets.
const SO_ACCEPTCON: u32 = 1 << 16;

/// Parse one data line of /proc/net/unix:
/// `Num RefCount Protocol Flags Type St Inode [Path]`.
pub fn parse_unix_line(line: &[u8]) -> Result<UnixSocket, String> {
    let mut fields = line
        .split(|c| c.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let mut next = |what: &str| {
        fields
            .next()
            .ok_or_else(|| format!("missing column {what}"))
    };
    let num = next("Num")?;
    if num.last() != Some(&b':') {
        return Err(format!("bad Num column {:?}", preview(num)));
    }
    next("RefCount")?;
    next("Protocol")?;
    let flags_f = next("Flags")?;
    let flags = hex_u32(flags_f).ok_or_else(|| format!("bad flags {:?}", preview(flags_f)))?;
    let type_f = next("Type")?;
    let kind = hex_u32(type_f)
        .and_then(UnixType::from_kernel)
        .ok_or_else(|| format!("bad type {:?}", preview(type_f)))?;
    let st_f = next("St")?;
    let st = hex_u32(st_f).ok_or_else(|| format!("bad state {:?}", preview(st_f)))?;
    let inode_f = next("Inode")?;
    let inode = dec_u64(inode_f).ok_or_else(|| format!("bad inode {:?}", preview(inode_f)))?;
    let state = if flags & SO_ACCEPTCON != 0 {
        UnixState::Listening
    } else {
        match st {
            1 => UnixState::Unconnected,
            2 => UnixState::Connecting,
            3 => UnixState::Connected,
            4 => UnixState::Disconnecting,
            _ => return Err(format!("bad state {:?}", preview(st_f))),
        }
    };
    Ok(UnixSocket { kind, state, inode })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines captured from a little-endian machine (the kernel prints host byte order).
    #[cfg(target_endian = "little")]
    #[test]
    fn tcp4_listen_line() {
        let l = b"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0";
        let s = parse_inet_line(l, Protocol::Tcp, Family::Ipv4).unwrap();
        assert_eq!(s.local, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(s.local_port, 8080);
        assert_eq!(s.state, 10);
        assert_eq!((s.tx_queue, s.rx_queue), (0, 3));
        assert_eq!((s.uid, s.inode, s.drops), (1000, 4242, None));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn tcp6_mapped_and_udp_drops() {
        let l = b"  1: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000200007F:D431 01 00000010:00000020 00:00000000 00000000     0        0 77 1 0000000000000000 20 4 30 10 -1";
        let s = parse_inet_line(l, Protocol::Tcp, Family::Ipv6).unwrap();
        assert_eq!(s.local, "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(s.remote, "::ffff:127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((s.local_port, s.remote_port), (80, 0xD431));
        assert_eq!((s.tx_queue, s.rx_queue), (16, 32));

        let u = b" 1234: 00000000:0035 00000000:0000 07 00000000:00000400 00:00000000 00000000   101        0 999 2 0000000000000000 17";
        let s = parse_inet_line(u, Protocol::Udp, Family::Ipv4).unwrap();
        assert_eq!((s.state, s.rx_queue, s.drops), (7, 1024, Some(17)));
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for bad in [
            &b"garbage"[..],
            b"0: zz:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
            b"0: 00000000:0016 00000000:0000 0A 0000000000000000 00:00000000 00000000 0 0 1",
            b"0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0",
            b"0: 00000000:16 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
            b"0: 00000000:0016 00000000:0000 1FF 00000000:00000000 00:00000000 00000000 0 0 1",
            b"0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 99999999999999999999999",
        ] {
            assert!(parse_inet_line(bad, Protocol::Tcp, Family::Ipv4).is_err());
        }
        // udp needs the drops column
        assert!(parse_inet_line(
            b"0: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2",
            Protocol::Udp,
            Family::Ipv4
        )
        .is_err());
    }

    #[test]
    fn unix_lines() {
        let listen = b"0000000000000000: 00000002 00000000 00010000 0001 01 23456 /run/x.sock";
        let s = parse_unix_line(listen).unwrap();
        assert_eq!(
            (s.kind, s.state, s.inode),
            (UnixType::Stream, UnixState::Listening, 23456)
        );
        let conn = b"0000000000000000: 00000003 00000000 00000000 0002 03 11";
        let s = parse_unix_line(conn).unwrap();
        assert_eq!((s.kind, s.state), (UnixType::Dgram, UnixState::Connected));
        let embryo = b"0000000000000000: 00000002 00000000 00000000 0005 02 12 @abstract name";
        assert_eq!(
            parse_unix_line(embryo).unwrap().state,
            UnixState::Connecting
        );
        assert!(parse_unix_line(b"0000: 1 0 0 0003 01 1").is_err());
        assert!(parse_unix_line(b"0000: 1 0 0 0001 09 1").is_err());
        assert!(parse_unix_line(b"0000: 1 0 0 0001").is_err());
    }
}
