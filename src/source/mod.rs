//! All kernel I/O lives here: netlink sock_diag, /proc text files, /sys. Everything above this
//! module works on typed, borrowed rows and never touches a file or a socket itself.
//!
//! Every reader takes its root directories from the configuration (`--path.procfs` etc.):
//! nothing here hard-codes `/proc`.

pub mod etc;
pub mod inet;
pub mod netdev;
pub mod netlink;
pub mod proc_net;
pub mod process;
pub mod procfd;
pub mod snmp;
pub mod sockets;

use std::fmt;
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
