//! The exporter's own process statistics (`process_*` metrics), from `<procfs>/self` via the
//! `procfs` crate. `<procfs>/self` resolves to this process on any real procfs mount, also a
//! host /proc bind-mounted into a container.

use std::path::Path;

use procfs::process::{LimitValue, Process};

use super::SourceError;

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub open_fds: u64,
    /// `None` when unlimited.
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

fn err(procfs: &Path, what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::file(
        "self",
        &procfs.join("self").join(what),
        format!("cannot read: {e}"),
    )
}

pub fn read_self(procfs: &Path) -> Result<ProcessStats, SourceError> {
    let me = Process::new_with_root(procfs.join("self")).map_err(|e| err(procfs, "", e))?;
    let stat = me.stat().map_err(|e| err(procfs, "stat", e))?;
    let ticks = procfs::ticks_per_second() as f64;
    let open_fds = me.fd_count().map_err(|e| err(procfs, "fd", e))? as u64;
    let limits = me.limits().map_err(|e| err(procfs, "limits", e))?;
    let max_fds = match limits.max_open_files.soft_limit {
        LimitValue::Value(v) => Some(v),
        LimitValue::Unlimited => None,
    };
    let stat_path = procfs.join("stat");
    let boot = std::fs::read_to_string(&stat_path)
        .map_err(|e| SourceError::file("stat", &stat_path, format!("cannot read: {e}")))?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())
        .ok_or_else(|| SourceError::file("stat", &stat_path, "no btime line"))?;
    Ok(ProcessStats {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_memory_bytes: stat.rss * procfs::page_size(),
        virtual_memory_bytes: stat.vsize,
        open_fds,
        max_fds,
        start_time_seconds: boot as f64 + stat.starttime as f64 / ticks,
    })
}
