//! The exporter's own metric declarations (per-collector duration and success, error
//! counters, build info, `process_*`, the namespaces read) and the build metadata: a leaf
//! module, read by the engine that renders them and by the change log and the landing page
//! that read them back.

use crate::metrics::{Desc, MetricFamily};

pub static COLLECTOR_DURATION: Desc = Desc::gauge(
    "netstat_scrape_collector_duration_seconds",
    &["collector"],
    "Time the collector took in this scrape. Collectors that share the socket pass each count the pass plus their own work.",
)
.unit("seconds");
pub static COLLECTOR_SUCCESS: Desc = Desc::gauge(
    "netstat_scrape_collector_success",
    &["collector"],
    "1 if the collector read everything without error in this scrape, 0 if it met a problem (the log says which file and line).",
);
pub static SCRAPE_ERRORS: Desc = Desc::counter(
    "netstat_scrape_errors",
    &["collector", "source"],
    "Problems met by a collector since the exporter started, by source (a file below the procfs root such as net/tcp6, or a netlink dump): malformed lines skipped, unreadable files, failed dumps; collector=\"netns\" counts the problems of discovering network namespaces (--netns=all).",
);
pub static BUILD_INFO: Desc = Desc::gauge(
    "netstat_exporter_build_info",
    &["version", "revision", "rustc"],
    "A metric with a constant '1' value labeled by version, revision and rustc version from which netstat_exporter was built.",
);
pub static PROCESS_CPU: Desc = Desc::counter(
    "process_cpu_seconds",
    &[],
    "Total user and system CPU time spent in seconds.",
)
.unit("seconds");
pub static PROCESS_RSS: Desc = Desc::gauge(
    "process_resident_memory_bytes",
    &[],
    "Resident memory size in bytes.",
)
.unit("bytes");
pub static PROCESS_VSZ: Desc = Desc::gauge(
    "process_virtual_memory_bytes",
    &[],
    "Virtual memory size in bytes.",
)
.unit("bytes");
pub static PROCESS_OPEN_FDS: Desc =
    Desc::gauge("process_open_fds", &[], "Number of open file descriptors.");
pub static PROCESS_START: Desc = Desc::gauge(
    "process_start_time_seconds",
    &[],
    "Start time of the process since unix epoch in seconds.",
)
.unit("seconds");
pub static PROCESS_MAX_FDS: Desc = Desc::gauge(
    "process_max_fds",
    &[],
    "Maximum number of open file descriptors.",
);

pub static NETNS_INFO: Desc = Desc::gauge(
    "netstat_netns_info",
    &["netns", "name", "container_id", "pod_uid"],
    "With --netns=all: 1 per network namespace read. netns: its inode (empty for the exporter's own, whose series carry no netns label), name: its ip-netns name, container_id: the full id of the container of its lowest pid, pod_uid: the Kubernetes pod uid (join with kube_pod_info on uid for pod names).",
);
pub static NETNS_READ: Desc = Desc::gauge(
    "netstat_netns",
    &[],
    "With --netns=all: network namespaces read in this scrape, the exporter's own included.",
);
pub static NETNS_DROPPED: Desc = Desc::gauge(
    "netstat_netns_dropped",
    &[],
    "With --netns=all: network namespaces left out of this scrape because there were more than --netns.max.",
);
pub static NETNS_ERRORS: Desc = Desc::counter(
    "netstat_netns_errors",
    &["reason"],
    "With --netns=all: network namespaces skipped since start, by reason: vanished (gone while being read: not a failure), no_permission (no process to read it through without CAP_SYS_ADMIN), enter_failed (setns refused otherwise).",
);
/// Every reason of `netstat_netns_errors_total`, always exported.
pub const NETNS_ERROR_REASONS: [&str; 3] = ["vanished", "no_permission", "enter_failed"];

/// Build metadata, filled in by build.rs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("NETSTAT_EXPORTER_REVISION");
pub const RUSTC: &str = env!("NETSTAT_EXPORTER_RUSTC");

pub fn build_info() -> MetricFamily {
    BUILD_INFO.family().with(
        vec![
            ("version", VERSION.into()),
            ("revision", REVISION.into()),
            ("rustc", RUSTC.into()),
        ],
        1u64,
    )
}
