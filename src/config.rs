//! Command-line flags, named and behaving like node_exporter's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use regex::Regex;

use crate::collectors::AVAILABLE;
use crate::expected::{ExpectedListeners, PortRange};
use crate::source::sockets::SourceMode;

/// The clap command of the whole CLI (help, man page, completions). Go through this function
/// rather than `Cli::command()`: it is where the full command is assembled.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Default port: in the Prometheus exporter range, not node_exporter's 9100.
pub const DEFAULT_PORT: u16 = 9958;
pub const DEFAULT_PROCFS: &str = "/proc";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "netstat_exporter",
    version,
    about = "Prometheus exporter for what netstat and ss show: socket states and queues, listeners, interfaces.",
    after_help = "Collectors (enable with --collector.<name>, disable with --no-collector.<name>):\n  sockets     socket counts by protocol, family and state; queue depths; unix sockets [default: enabled]\n  listeners   what listens where: service, process, user, accept queue and limit [default: enabled]\n  interfaces  netstat -i: per-interface packets, errors, drops, overruns, flags [default: enabled]\n  protocols   netstat -s: TCP/UDP/IP/ICMP protocol counters, sockstat [default: enabled]"
)]
pub struct Cli {
    /// Address to listen on for web requests; repeat for several. ":PORT" listens on all
    /// addresses (IPv6 and IPv4).
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = ":9958", action = clap::ArgAction::Append)]
    pub listen_addresses: Vec<String>,

    /// Path under which metrics are exposed.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// Disable every collector that is enabled by default; enable the ones you want with
    /// --collector.<name>.
    #[arg(long = "collector.disable-defaults")]
    pub disable_defaults: bool,

    /// Enable the sockets collector (default: enabled).
    #[arg(long = "collector.sockets", overrides_with = "no_sockets")]
    pub sockets: bool,
    /// Disable the sockets collector.
    #[arg(long = "no-collector.sockets", overrides_with = "sockets")]
    pub no_sockets: bool,

    /// Where the sockets collector reads inet sockets: netlink sock_diag (what ss uses),
    /// <procfs>/net/* text, or auto (netlink, falling back per protocol to /proc; proc when
    /// --path.procfs is not /proc). Unix sockets always come from <procfs>/net/unix.
    #[arg(long = "collector.sockets.source", value_name = "SOURCE", default_value = "auto",
          value_parser = ["auto", "netlink", "proc"])]
    pub sockets_source: String,

    /// Enable the interfaces collector (default: enabled).
    #[arg(long = "collector.interfaces", overrides_with = "no_interfaces")]
    pub interfaces: bool,
    /// Disable the interfaces collector.
    #[arg(long = "no-collector.interfaces", overrides_with = "interfaces")]
    pub no_interfaces: bool,

    /// Regexp of devices to include (anchored; mutually exclusive with device-exclude).
    #[arg(long = "collector.interfaces.device-include", value_name = "REGEX")]
    pub interfaces_device_include: Option<String>,

    /// Regexp of devices to exclude (anchored; mutually exclusive with device-include).
    #[arg(long = "collector.interfaces.device-exclude", value_name = "REGEX")]
    pub interfaces_device_exclude: Option<String>,

    /// Enable the protocols collector (default: enabled).
    #[arg(long = "collector.protocols", overrides_with = "no_protocols")]
    pub protocols: bool,
    /// Disable the protocols collector.
    #[arg(long = "no-collector.protocols", overrides_with = "protocols")]
    pub no_protocols: bool,

    /// Regexp (anchored) of additional raw kernel fields to export as
    /// netstat_protocol_field_total{group,field} (counters) or netstat_protocol_field_value
    /// (settings and current values), matched against "Group_Field" names such as
    /// TcpExt_TCPSackRecovery or Ip6_InNoRoutes. Default: none.
    #[arg(long = "collector.protocols.fields", value_name = "REGEX")]
    pub protocols_fields: Option<String>,

    /// Enable the listeners collector (default: enabled).
    #[arg(long = "collector.listeners", overrides_with = "no_listeners")]
    pub listeners: bool,
    /// Disable the listeners collector.
    #[arg(long = "no-collector.listeners", overrides_with = "listeners")]
    pub no_listeners: bool,

    /// Attribute listeners to their processes via <procfs>/<pid>/fd (default: enabled; needs
    /// root or CAP_DAC_READ_SEARCH + CAP_SYS_PTRACE for other users' processes).
    #[arg(
        long = "collector.listeners.process",
        overrides_with = "no_listeners_process"
    )]
    pub listeners_process: bool,
    /// Do not attribute listeners to processes (process="").
    #[arg(
        long = "no-collector.listeners.process",
        overrides_with = "listeners_process"
    )]
    pub no_listeners_process: bool,

    /// Minimum time between two full walks of <procfs>/*/fd to find the owner of a new
    /// listener (cached owners are verified on every scrape without a walk).
    #[arg(
        long = "collector.listeners.walk-interval",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub listeners_walk_interval: String,

    /// Export at most this many listeners (lowest ports first); the rest are counted in
    /// netstat_listeners_dropped.
    #[arg(
        long = "collector.listeners.max",
        value_name = "N",
        default_value_t = 1000
    )]
    pub listeners_max: usize,

    /// Ports not to report as listeners: comma-separated ports and ranges, e.g.
    /// "32768-60999,8080".
    #[arg(long = "collector.listeners.port-exclude", value_name = "RANGES")]
    pub listeners_port_exclude: Option<String>,

    /// Regexp (anchored) of listener addresses to report (as in the address label).
    #[arg(long = "collector.listeners.address-include", value_name = "REGEX")]
    pub listeners_address_include: Option<String>,

    /// Regexp (anchored) of listener addresses not to report.
    #[arg(long = "collector.listeners.address-exclude", value_name = "REGEX")]
    pub listeners_address_exclude: Option<String>,

    /// YAML file listing what may listen on this host; listeners it does not allow get
    /// netstat_listener_unexpected 1. A malformed file stops the exporter at start-up.
    #[arg(long = "collector.listeners.expected", value_name = "FILE")]
    pub listeners_expected: Option<PathBuf>,

    /// procfs mountpoint.
    #[arg(long = "path.procfs", value_name = "PATH", default_value = DEFAULT_PROCFS)]
    pub procfs: PathBuf,

    /// sysfs mountpoint.
    #[arg(long = "path.sysfs", value_name = "PATH", default_value = "/sys")]
    pub sysfs: PathBuf,

    /// Root filesystem mountpoint (for /etc files such as services and passwd).
    #[arg(long = "path.rootfs", value_name = "PATH", default_value = "/")]
    pub rootfs: PathBuf,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info",
          value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,

    /// Output format of log messages.
    #[arg(long = "log.format", value_name = "FORMAT", default_value = "logfmt",
          value_parser = ["logfmt", "json"])]
    pub log_format: String,

    /// Web configuration file (exporter-toolkit format: TLS, basic auth, headers), re-read
    /// when it or a certificate changes and on SIGHUP.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Maximum number of requests in flight; beyond it the exporter answers 503 at once
    /// instead of queuing. 0 means no limit.
    #[arg(long = "web.max-requests", value_name = "N", default_value_t = 40)]
    pub web_max_requests: usize,

    /// Scrape timeout when the request has no X-Prometheus-Scrape-Timeout-Seconds header
    /// (e.g. 10s, 500ms, 1m). A collector still running then is reported failed.
    #[arg(
        long = "web.scrape-timeout",
        value_name = "DURATION",
        default_value = "10s"
    )]
    pub web_scrape_timeout: String,

    /// Subtracted from Prometheus' X-Prometheus-Scrape-Timeout-Seconds so that the answer
    /// arrives before Prometheus gives up.
    #[arg(
        long = "web.scrape-timeout-offset",
        value_name = "DURATION",
        default_value = "500ms"
    )]
    pub web_scrape_timeout_offset: String,

    /// Print one scrape (Prometheus text format) to stdout and exit.
    #[arg(long = "once")]
    pub once: bool,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addresses: Vec<ListenAddress>,
    pub telemetry_path: String,
    pub enabled: Vec<&'static str>,
    pub sockets_source: SourceMode,
    pub interfaces_device_include: Option<Regex>,
    pub interfaces_device_exclude: Option<Regex>,
    pub protocols_fields: Option<Regex>,
    pub listeners_process: bool,
    pub listeners_walk_interval: Duration,
    pub listeners_max: usize,
    pub listeners_port_exclude: Vec<PortRange>,
    pub listeners_address_include: Option<Regex>,
    pub listeners_address_exclude: Option<Regex>,
    pub listeners_expected: Option<ExpectedListeners>,
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    pub log_level: String,
    pub log_format: String,
    pub web_config_file: Option<PathBuf>,
    pub web_max_requests: usize,
    pub web_scrape_timeout: Duration,
    pub web_scrape_timeout_offset: Duration,
    pub once: bool,
}

/// A listen address: `:PORT` (all addresses) or a concrete socket address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    AllInterfaces(u16),
    Addr(SocketAddr),
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::AllInterfaces(p) => write!(f, ":{p}"),
            ListenAddress::Addr(a) => write!(f, "{a}"),
        }
    }
}

pub fn parse_listen_address(s: &str) -> Result<ListenAddress, String> {
    if let Some(port) = s.strip_prefix(':') {
        return port
            .parse::<u16>()
            .map(ListenAddress::AllInterfaces)
            .map_err(|_| format!("invalid --web.listen-address {s:?}: bad port"));
    }
    s.parse::<SocketAddr>().map(ListenAddress::Addr).map_err(|_| {
        format!(
            "invalid --web.listen-address {s:?}: expected :PORT, IPv4:PORT or [IPv6]:PORT (no host names: the exporter never resolves names)"
        )
    })
}

/// A duration as Prometheus writes them: `10s`, `500ms`, `1m`, `1.5s` (a bare number is
/// seconds).
pub fn parse_duration(flag: &str, s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("invalid {flag} {s:?}: use e.g. 10s, 500ms or 1m")),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * scale <= 86400.0 => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        _ => Err(format!("invalid {flag} {s:?}: not a positive duration")),
    }
}

/// Compile a user regex anchored at both ends, as Prometheus and node_exporter do.
fn anchored_regex(flag: &str, re: Option<&str>) -> Result<Option<Regex>, String> {
    re.map(|r| Regex::new(&format!("^(?:{r})$")).map_err(|e| format!("invalid {flag} {r:?}: {e}")))
        .transpose()
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Config, String> {
        let listen_addresses = cli
            .listen_addresses
            .iter()
            .map(|a| parse_listen_address(a))
            .collect::<Result<Vec<_>, _>>()?;
        let p = &cli.telemetry_path;
        if !p.starts_with('/') || p == "/" || p == "/healthz" {
            return Err(format!(
                "invalid --web.telemetry-path {p:?}: must start with / and not be / or /healthz"
            ));
        }
        let explicit = |name: &str| -> Option<bool> {
            match name {
                "sockets" if cli.sockets => Some(true),
                "sockets" if cli.no_sockets => Some(false),
                "interfaces" if cli.interfaces => Some(true),
                "interfaces" if cli.no_interfaces => Some(false),
                "protocols" if cli.protocols => Some(true),
                "protocols" if cli.no_protocols => Some(false),
                "listeners" if cli.listeners => Some(true),
                "listeners" if cli.no_listeners => Some(false),
                _ => None,
            }
        };
        let enabled = AVAILABLE
            .iter()
            .filter(|c| explicit(c.name).unwrap_or(c.default_enabled && !cli.disable_defaults))
            .map(|c| c.name)
            .collect();
        let requested: SourceMode = cli.sockets_source.parse()?;
        // netlink sees the exporter's own network namespace; a --path.procfs elsewhere means
        // the user wants that tree read, so auto reads it.
        let sockets_source =
            if requested == SourceMode::Auto && cli.procfs != Path::new(DEFAULT_PROCFS) {
                SourceMode::Proc
            } else {
                requested
            };
        if cli.interfaces_device_include.is_some() && cli.interfaces_device_exclude.is_some() {
            return Err(
                "--collector.interfaces.device-include and --collector.interfaces.device-exclude are mutually exclusive"
                    .into(),
            );
        }
        let interfaces_device_include = anchored_regex(
            "--collector.interfaces.device-include",
            cli.interfaces_device_include.as_deref(),
        )?;
        let interfaces_device_exclude = anchored_regex(
            "--collector.interfaces.device-exclude",
            cli.interfaces_device_exclude.as_deref(),
        )?;
        if cli.listeners_address_include.is_some() && cli.listeners_address_exclude.is_some() {
            return Err(
                "--collector.listeners.address-include and --collector.listeners.address-exclude are mutually exclusive"
                    .into(),
            );
        }
        let listeners_port_exclude = match &cli.listeners_port_exclude {
            None => Vec::new(),
            Some(s) => s
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    p.parse::<PortRange>()
                        .map_err(|e| format!("invalid --collector.listeners.port-exclude: {e}"))
                })
                .collect::<Result<_, _>>()?,
        };
        let listeners_expected = match &cli.listeners_expected {
            Some(path) => Some(ExpectedListeners::load(path)?),
            None => None,
        };
        let protocols_fields = anchored_regex(
            "--collector.protocols.fields",
            cli.protocols_fields.as_deref(),
        )?;
        Ok(Config {
            listen_addresses,
            telemetry_path: cli.telemetry_path,
            enabled,
            sockets_source,
            interfaces_device_include,
            interfaces_device_exclude,
            protocols_fields,
            listeners_process: !cli.no_listeners_process,
            listeners_walk_interval: parse_duration(
                "--collector.listeners.walk-interval",
                &cli.listeners_walk_interval,
            )?,
            listeners_max: cli.listeners_max,
            listeners_port_exclude,
            listeners_address_include: anchored_regex(
                "--collector.listeners.address-include",
                cli.listeners_address_include.as_deref(),
            )?,
            listeners_address_exclude: anchored_regex(
                "--collector.listeners.address-exclude",
                cli.listeners_address_exclude.as_deref(),
            )?,
            listeners_expected,
            procfs: cli.procfs,
            sysfs: cli.sysfs,
            rootfs: cli.rootfs,
            log_level: cli.log_level,
            log_format: cli.log_format,
            web_config_file: cli.web_config_file,
            web_max_requests: cli.web_max_requests,
            web_scrape_timeout: parse_duration("--web.scrape-timeout", &cli.web_scrape_timeout)?,
            web_scrape_timeout_offset: parse_duration(
                "--web.scrape-timeout-offset",
                &cli.web_scrape_timeout_offset,
            )?,
            once: cli.once,
        })
    }

    /// Parse from an argument list (first item: program name).
    pub fn from_args<I, T>(args: I) -> Result<Config, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        Config::from_cli(cli)
    }

    pub fn collector_enabled(&self, name: &str) -> bool {
        self.enabled.contains(&name)
    }

    pub fn sockets_source(&self) -> SourceMode {
        self.sockets_source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config, String> {
        Config::from_args(std::iter::once("netstat_exporter").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(
            c.listen_addresses,
            vec![ListenAddress::AllInterfaces(DEFAULT_PORT)]
        );
        assert_eq!(c.telemetry_path, "/metrics");
        assert!(c.collector_enabled("sockets"));
        assert_eq!(c.sockets_source, SourceMode::Auto);
    }

    #[test]
    fn collector_toggles_last_one_wins() {
        assert!(!cfg(&["--no-collector.sockets"])
            .unwrap()
            .collector_enabled("sockets"));
        assert!(!cfg(&["--collector.disable-defaults"])
            .unwrap()
            .collector_enabled("sockets"));
        assert!(
            cfg(&["--collector.disable-defaults", "--collector.sockets"])
                .unwrap()
                .collector_enabled("sockets")
        );
        assert!(cfg(&["--no-collector.sockets", "--collector.sockets"])
            .unwrap()
            .collector_enabled("sockets"));
        assert!(!cfg(&["--collector.sockets", "--no-collector.sockets"])
            .unwrap()
            .collector_enabled("sockets"));
    }

    #[test]
    fn listen_addresses() {
        let c = cfg(&[
            "--web.listen-address=127.0.0.1:9000",
            "--web.listen-address",
            "[::1]:9001",
        ])
        .unwrap();
        assert_eq!(c.listen_addresses.len(), 2);
        assert!(cfg(&["--web.listen-address=localhost:9000"]).is_err());
        assert!(cfg(&["--web.listen-address=:99999"]).is_err());
    }

    #[test]
    fn auto_source_means_proc_for_other_procfs() {
        let c = cfg(&["--path.procfs=/host/proc"]).unwrap();
        assert_eq!(c.sockets_source, SourceMode::Proc);
        let c = cfg(&[
            "--path.procfs=/host/proc",
            "--collector.sockets.source=netlink",
        ])
        .unwrap();
        assert_eq!(c.sockets_source, SourceMode::Netlink);
    }

    #[test]
    fn bad_values() {
        assert!(cfg(&["--web.telemetry-path=metrics"]).is_err());
        assert!(cfg(&["--collector.sockets.source=magic"]).is_err());
        assert!(cfg(&["--log.level=chatty"]).is_err());
        assert!(cfg(&["--no-such-flag"]).is_err());
        assert!(cfg(&["--collector.interfaces.device-include=(("]).is_err());
        assert!(cfg(&[
            "--collector.interfaces.device-include=eth.*",
            "--collector.interfaces.device-exclude=lo"
        ])
        .is_err());
    }
}
