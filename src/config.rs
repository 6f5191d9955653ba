//! Command-line flags, named and behaving like node_exporter's.
//!
//! The global flags (web, paths, logging) are the [`Cli`] struct below. Every collector's
//! flags come from its declaration in `collectors/` ([`crate::collectors::REGISTRY`]):
//! [`command`] adds `--collector.<name>` / `--no-collector.<name>` and the collector's own
//! flags (a typed struct per collector), parsed into [`Config::collector_flags`]; the
//! collector is built from them (`Config::build_collectors`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use regex::Regex;

use crate::collectors::listeners::ListenersFlags;
use crate::collectors::{
    default_flags, BuildContext, Collector, CollectorDecl, CollectorFlags, ParsedFlags, REGISTRY,
};
use crate::source::procfd::OwnerResolver;
use crate::source::sockets::SourceMode;

pub use crate::flag_values::{anchored_regex, pair, parse_duration, parse_duration_max};

/// Default port: in the Prometheus exporter range, not node_exporter's 9100.
pub const DEFAULT_PORT: u16 = 9958;
pub const DEFAULT_PROCFS: &str = "/proc";

/// Default `--events.capacity` (the change log, `crate::events`).
pub const DEFAULT_CAPACITY: usize = 1000;
/// Largest accepted `--events.capacity`.
pub const MAX_CAPACITY: usize = 1_000_000;

/// Validate `--events.capacity`.
pub fn check_capacity(n: usize) -> Result<usize, String> {
    if n > MAX_CAPACITY {
        return Err(format!(
            "invalid --events.capacity {n}: at most {MAX_CAPACITY}"
        ));
    }
    Ok(n)
}

/// The default of `--netns.collectors`: the collectors that read every namespace.
pub const DEFAULT_NETNS_COLLECTORS: &str = "sockets,listeners,connections,interfaces";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "netstat_exporter",
    version,
    about = "Prometheus exporter for what netstat and ss show: socket states and queues, listeners, interfaces."
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

    /// Where collectors read inet sockets (one pass per scrape serves them all): netlink
    /// sock_diag (what ss uses), <procfs>/net/* text, or auto (netlink, falling back per
    /// protocol to /proc; proc when --path.procfs is not /proc). Unix sockets always come
    /// from <procfs>/net/unix.
    #[arg(long = "collector.sockets.source", value_name = "SOURCE", default_value = "auto",
          value_parser = ["auto", "netlink", "proc"])]
    pub sockets_source: String,

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

    /// Which network namespaces to report: self (the exporter's own, as before) or all (every
    /// namespace on the host: each container and pod; their series gain a netns label).
    #[arg(long = "netns", value_name = "WHICH", default_value = "self",
          value_parser = ["self", "all"])]
    pub netns: String,

    /// With --netns=all: the collectors that read every namespace (the others read only the
    /// exporter's own), comma-separated.
    #[arg(
        long = "netns.collectors",
        value_name = "LIST",
        default_value = DEFAULT_NETNS_COLLECTORS
    )]
    pub netns_collectors: String,

    /// With --netns=all: regexp (anchored) of the namespaces to read, matched against the
    /// ip-netns name, the container id and the pod uid (any of them).
    #[arg(long = "netns.include", value_name = "REGEX")]
    pub netns_include: Option<String>,

    /// With --netns=all: regexp (anchored) of namespaces not to read (name, container id or
    /// pod uid).
    #[arg(long = "netns.exclude", value_name = "REGEX")]
    pub netns_exclude: Option<String>,

    /// With --netns=all: read at most this many namespaces (the exporter's own included; the
    /// others by inode order); the rest are counted in netstat_netns_dropped.
    #[arg(long = "netns.max", value_name = "N", default_value_t = 500)]
    pub netns_max: usize,

    /// Print one scrape (Prometheus text format) to stdout and exit.
    #[arg(long = "once")]
    pub once: bool,

    /// Events (changes between scrapes: listener opened/closed, interface flag changed, ...)
    /// kept in memory for /api/v1/events; the oldest are dropped beyond. 0: no change log.
    #[arg(long = "events.capacity", value_name = "N", default_value_t = DEFAULT_CAPACITY)]
    pub events_capacity: usize,

    /// The watch: every DURATION, the listening sockets of every namespace read (a LISTEN-only
    /// sock_diag dump) and compared with the last ones, new owners named at once; the change
    /// log's listener events come from it, with the time of the tick. 0: no watch (listener
    /// events from the difference between scrapes).
    #[arg(long = "watch.interval", value_name = "DURATION", default_value = "1s")]
    pub watch_interval: String,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addresses: Vec<ListenAddress>,
    pub telemetry_path: String,
    /// Enabled collectors, in registry order.
    pub enabled: Vec<&'static str>,
    pub sockets_source: SourceMode,
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
    /// `--netns=all`: which namespaces and collectors; None for `self`.
    pub netns: Option<NetnsConfig>,
    /// Every collector's own flags, typed, in the order of `registry` (see [`Config::flags`]).
    pub collector_flags: Vec<ParsedFlags>,
    /// The collectors these flags were parsed for.
    pub registry: &'static [&'static CollectorDecl],
    /// The one owner resolver (socket inode -> process) that every collector shares.
    owners: Arc<OnceLock<Arc<OwnerResolver>>>,
    pub events_capacity: usize,
    /// `--watch.interval` (None: 0, no watch).
    pub watch_interval: Option<Duration>,
}

/// What `--netns=all` reads.
#[derive(Debug, Clone)]
pub struct NetnsConfig {
    /// Collectors that read every namespace.
    pub collectors: Vec<String>,
    pub include: Option<Regex>,
    pub exclude: Option<Regex>,
    pub max: usize,
    /// Where `ip netns` keeps its bind mounts: /run/netns, and the same under --path.rootfs.
    pub dirs: Vec<PathBuf>,
}

impl NetnsConfig {
    fn from_cli(cli: &Cli, registry: &[&CollectorDecl]) -> Result<Option<NetnsConfig>, String> {
        if cli.netns != "all" {
            return Ok(None);
        }
        let collectors: Vec<String> = cli
            .netns_collectors
            .split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        for c in &collectors {
            if !registry.iter().any(|d| d.name == c) {
                return Err(format!(
                    "invalid --netns.collectors: unknown collector {c:?} (available: {})",
                    registry
                        .iter()
                        .map(|d| d.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if cli.netns_max == 0 {
            return Err("invalid --netns.max: at least 1 (the exporter's own namespace)".into());
        }
        let mut dirs = vec![PathBuf::from("/run/netns")];
        let under_root = cli.rootfs.join("run/netns");
        if under_root != dirs[0] {
            dirs.push(under_root);
        }
        Ok(Some(NetnsConfig {
            collectors,
            include: anchored_regex("--netns.include", cli.netns_include.as_deref())?,
            exclude: anchored_regex("--netns.exclude", cli.netns_exclude.as_deref())?,
            max: cli.netns_max,
            dirs,
        }))
    }

    /// Whether a namespace with these identities is read (name, container id, pod uid).
    pub fn keeps(&self, ids: &[&str]) -> bool {
        let any = |re: &Regex| ids.iter().any(|v| !v.is_empty() && re.is_match(v));
        self.include.as_ref().is_none_or(any) && !self.exclude.as_ref().is_some_and(any)
    }
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

/// The whole command line: [`Cli`] plus, for every collector of the registry, its
/// enable/disable pair and its own flags; `--help` lists the collectors. Help, the man page
/// and docs/flags.md all come from it.
pub fn command() -> Command {
    command_with(REGISTRY)
}

/// [`command`] for another set of collectors (tests register a dummy one this way).
pub fn command_with(registry: &[&CollectorDecl]) -> Command {
    let mut cmd = Cli::command();
    let mut list = String::from(
        "Collectors (enable with --collector.<name>, disable with --no-collector.<name>):\n",
    );
    for d in registry {
        cmd = (d.flags.augment)(cmd.args(collector_toggle(d)));
        list.push_str(&format!(
            "  {:<11} {} [default: {}]\n",
            d.name,
            d.help,
            if d.default_enabled {
                "enabled"
            } else {
                "disabled"
            }
        ));
    }
    cmd.after_help(list)
}

fn collector_toggle(d: &CollectorDecl) -> [Arg; 2] {
    let default = if d.default_enabled {
        "enabled"
    } else {
        "disabled"
    };
    toggle_args(
        &format!("collector.{}", d.name),
        &format!("Enable the {} collector (default: {default}).", d.name),
        &format!("Disable the {} collector.", d.name),
    )
}

/// A `--NAME` / `--no-NAME` pair of flags where the last one given wins.
pub fn toggle_args(name: &str, enable_help: &str, disable_help: &str) -> [Arg; 2] {
    let no = format!("no-{name}");
    [
        Arg::new(name.to_string())
            .long(name.to_string())
            .action(ArgAction::SetTrue)
            .overrides_with(no.clone())
            .help(enable_help.to_string()),
        Arg::new(no.clone())
            .long(no)
            .action(ArgAction::SetTrue)
            .overrides_with(name.to_string())
            .help(disable_help.to_string()),
    ]
}

/// Value of a pair made by [`toggle_args`]: the one given last, else `default`.
fn toggle_value(m: &ArgMatches, name: &str, default: bool) -> Result<bool, String> {
    let given = |id: &str| -> Result<bool, String> {
        Ok(m.try_get_one::<bool>(id)
            .map_err(|e| format!("flag --{id}: {e}"))?
            .copied()
            .unwrap_or(false))
    };
    Ok(pair(given(name)?, given(&format!("no-{name}"))?, default))
}

impl Config {
    pub fn from_matches(matches: ArgMatches) -> Result<Config, String> {
        Self::from_matches_with(REGISTRY, matches)
    }

    /// [`Config::from_matches`] for the collectors of `registry` (matches from
    /// [`command_with`] of the same registry).
    pub fn from_matches_with(
        registry: &'static [&'static CollectorDecl],
        matches: ArgMatches,
    ) -> Result<Config, String> {
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
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
        let mut enabled = Vec::new();
        for d in registry {
            let on = d.default_enabled && !cli.disable_defaults;
            if toggle_value(&matches, &format!("collector.{}", d.name), on)? {
                enabled.push(d.name);
            }
        }
        let collector_flags = registry
            .iter()
            .map(|d| d.flags.parse(&matches))
            .collect::<Result<Vec<_>, _>>()?;
        let netns = NetnsConfig::from_cli(&cli, registry)?;
        let requested: SourceMode = cli.sockets_source.parse()?;
        // netlink sees the exporter's own network namespace; a --path.procfs elsewhere means
        // the user wants that tree read, so auto reads it.
        let sockets_source =
            if requested == SourceMode::Auto && cli.procfs != Path::new(DEFAULT_PROCFS) {
                SourceMode::Proc
            } else {
                requested
            };
        Ok(Config {
            listen_addresses,
            telemetry_path: cli.telemetry_path,
            enabled,
            sockets_source,
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
            collector_flags,
            registry,
            owners: Arc::default(),
            events_capacity: check_capacity(cli.events_capacity)?,
            watch_interval: match cli.watch_interval.trim() {
                "0" | "0s" | "0ms" => None,
                v => Some(parse_duration("--watch.interval", v)?),
            },
            netns,
        })
    }

    /// Parse from an argument list (first item: program name). Collector flags are only
    /// parsed here; [`Config::build_collectors`] validates them.
    pub fn from_args<I, T>(args: I) -> Result<Config, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::from_args_with(REGISTRY, args)
    }

    /// [`Config::from_args`] for the collectors of `registry`.
    pub fn from_args_with<I, T>(
        registry: &'static [&'static CollectorDecl],
        args: I,
    ) -> Result<Config, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = command_with(registry)
            .try_get_matches_from(args)
            .map_err(|e| e.to_string())?;
        Config::from_matches_with(registry, matches)
    }

    pub fn collector_enabled(&self, name: &str) -> bool {
        self.enabled.contains(&name)
    }

    pub fn sockets_source(&self) -> SourceMode {
        self.sockets_source
    }

    /// The flags of collector `F`: as parsed, or their defaults when `F`'s collector is not
    /// in the registry these flags were parsed for.
    pub fn flags<F: CollectorFlags>(&self) -> Result<F, String> {
        match self.collector_flags.iter().find_map(|f| f.get::<F>()) {
            Some(f) => Ok(f.clone()),
            None => default_flags(),
        }
    }

    /// What building a collector may use besides its own flags (see
    /// [`crate::collectors::BuildContext`]).
    pub fn build_context(&self) -> Result<BuildContext, String> {
        Ok(BuildContext::new(
            self.rootfs.clone(),
            self.sockets_source(),
            self.flags()?,
            self.flags()?,
            self.owner_resolver(),
        ))
    }

    /// Build the collectors enabled here, in the order of the registry parsed for
    /// ([`REGISTRY`] unless another one was given).
    pub fn build_collectors(&self) -> Result<Vec<Box<dyn Collector>>, String> {
        let ctx = self.build_context()?;
        self.registry
            .iter()
            .zip(&self.collector_flags)
            .filter(|(d, _)| self.collector_enabled(d.name))
            .map(|(_, flags)| flags.build(&ctx))
            .collect()
    }

    /// The owner resolver shared by every collector that attributes sockets to processes
    /// (one cache, one walk for all), created on first use with
    /// `--collector.listeners.walk-interval`.
    pub fn owner_resolver(&self) -> Result<Arc<OwnerResolver>, String> {
        if let Some(r) = self.owners.get() {
            return Ok(r.clone());
        }
        let interval = self.flags::<ListenersFlags>()?.walk_interval()?;
        let r = self
            .owners
            .get_or_init(|| Arc::new(OwnerResolver::new(self.procfs.clone(), interval)));
        Ok(r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config, String> {
        Config::from_args(std::iter::once("netstat_exporter").chain(args.iter().copied()))
    }

    /// Parse, then build the enabled collectors (which validates their flags).
    fn built(args: &[&str]) -> Result<(), String> {
        cfg(args)?.build_collectors().map(|_| ())
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
    fn help_lists_every_collector_and_its_flags() {
        let help = command().render_long_help().to_string();
        for d in crate::collectors::REGISTRY {
            assert!(
                help.contains(&format!("--collector.{}", d.name)),
                "{}",
                d.name
            );
            assert!(
                help.contains(&format!("--no-collector.{}", d.name)),
                "{}",
                d.name
            );
            assert!(help.contains(d.help), "{}", d.name);
            for a in (d.flags.augment)(Command::new("x")).get_arguments() {
                let long = a.get_long().unwrap_or_default().to_string();
                let prefix = format!("collector.{}.", d.name);
                assert!(
                    long.starts_with(&prefix) || long.starts_with(&format!("no-{prefix}")),
                    "{long}: a collector's flags are named --collector.<name>.*"
                );
                assert!(help.contains(&format!("--{long}")), "{long}");
            }
        }
    }

    #[test]
    fn collector_flags_are_typed_pairs_last_one_wins() {
        use crate::collectors::connections::ConnectionsFlags;
        let c = cfg(&[
            "--collector.listeners.walk-interval=5s",
            "--no-collector.listeners.process",
            "--collector.connections.health",
            "--no-collector.connections.health",
            "--collector.connections.health",
        ])
        .unwrap();
        let l: ListenersFlags = c.flags().unwrap();
        assert!(!l.process());
        assert_eq!(l.walk_interval().unwrap(), Duration::from_secs(5));
        let conn: ConnectionsFlags = c.flags().unwrap();
        assert!(conn.health.enabled());
        assert_eq!(conn.destination_capacity, 100_000);
        assert_eq!(
            conn.destination_memory().unwrap(),
            Duration::from_secs(86400)
        );
        let c = cfg(&["--no-collector.connections.health"]).unwrap();
        assert!(!c.flags::<ConnectionsFlags>().unwrap().health.enabled());
        // A registry without the listeners collector: its defaults (the shared resolver's
        // walk interval among them).
        let l = default_flags::<ListenersFlags>().unwrap();
        assert!(l.process());
        assert_eq!(l.walk_interval().unwrap(), Duration::from_secs(30));
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
        assert!(built(&["--collector.interfaces.device-include=(("]).is_err());
        assert!(built(&[
            "--collector.interfaces.device-include=eth.*",
            "--collector.interfaces.device-exclude=lo"
        ])
        .is_err());
        assert!(built(&["--collector.listeners.walk-interval=soon"]).is_err());
        assert!(built(&[]).is_ok());
    }
}
