//! All kernel I/O lives here: netlink sock_diag, /proc text files, /sys. Everything above this
//! module works on typed, borrowed rows and never touches a file or a socket itself.
//!
//! Every reader takes its root directories from the configuration (`--path.procfs` etc.):
//! nothing here hard-codes `/proc`.

pub mod cgroup;
pub mod destroy;
pub mod etc;
pub mod inet;
pub mod netdev;
pub mod netlink;
pub mod netns;
pub mod proc_net;
pub mod process;
pub mod procfd;
pub mod rtnetlink;
pub mod snmp;
pub mod sockets;
pub mod tcp_info;
pub mod watch;

use std::fmt;
use std::io::{BufRead, ErrorKind};
use std::path::Path;

/// A problem reading or parsing kernel data. It always names where it happened (a file path,
/// with the line number for parse errors, or the netlink dump) so that the log line alone is
/// enough to go and look.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceError {
    /// Short, bounded identifier used as the `source` label of `netstat_scrape_errors_total`,
    /// e.g. `net/tcp6` or `netlink/tcp`.
    pub source: String,
    /// Where: the full file path, or a description of the netlink request.
    pub location: String,
    /// 1-based line number for parse errors.
    pub line: Option<usize>,
    pub message: String,
}

impl SourceError {
    pub fn file(source: impl Into<String>, path: &Path, message: impl Into<String>) -> Self {
        SourceError {
            source: source.into(),
            location: path.display().to_string(),
            line: None,
            message: message.into(),
        }
    }

    pub fn line(
        source: impl Into<String>,
        path: &Path,
        line: usize,
        message: impl Into<String>,
    ) -> Self {
        SourceError {
            source: source.into(),
            location: path.display().to_string(),
            line: Some(line),
            message: message.into(),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.location, l, self.message),
            None => write!(f, "{}: {}", self.location, self.message),
        }
    }
}

impl std::error::Error for SourceError {}

/// The number in a `/proc` link target such as `socket:[12345]` or `net:[4026531840]`, for
/// the given `kind:[` prefix.
pub fn bracketed_number(link: &[u8], prefix: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(prefix)?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// [`bracketed_number`] of the target of the symlink `path` (None when it cannot be read).
pub fn readlink_number(path: &Path, prefix: &[u8]) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let target = std::fs::read_link(path).ok()?;
    bracketed_number(target.as_os_str().as_bytes(), prefix)
}

/// Read `reader` line by line through one reused buffer (no allocation per line) and call
/// `line(lineno, bytes, errors)` with the 1-based line number and the line's bytes, newline
/// included so that a caller can tell a truncated last line. A read error is recorded at the
/// line where it happened and stops reading. Returns the number of lines read, or `None`
/// after a read error.
pub fn read_lines(
    mut reader: impl BufRead,
    source: &str,
    path: &Path,
    errors: &mut Vec<SourceError>,
    mut line: impl FnMut(usize, &[u8], &mut Vec<SourceError>),
) -> Option<usize> {
    let mut buf = Vec::with_capacity(256);
    let mut lineno = 0usize;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return Some(lineno),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                errors.push(SourceError::line(
                    source,
                    path,
                    lineno + 1,
                    format!("read failed: {e}"),
                ));
                return None;
            }
        }
        lineno += 1;
        line(lineno, &buf, errors);
    }
}
