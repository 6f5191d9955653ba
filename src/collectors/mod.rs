//! Collectors: one file each. A collector declares itself once ([`CollectorDecl`]: name,
//! default, help, metrics, and its flags: a `#[derive(clap::Args)]` struct that builds the
//! collector, see [`CollectorFlags`]) and is registered with one line in [`REGISTRY`]; flags,
//! `--help`, `collect[]`, docs/metrics.md and docs/flags.md all come from there.
//!
//! A collection runs per network namespace ([`Netns`]). Collectors that need sockets say
//! which ([`Collector::socket_needs`]) and are fed from ONE pass over each socket table of
//! the namespace, shared by all of them (`scrape.rs` drives it); they aggregate while the
//! kernel streams and render in [`Collection::finish`].

pub mod connections;
pub mod health;
pub mod inbound;
pub mod interfaces;
pub mod listeners;
pub mod protocols;
pub mod rows;
pub mod sockets;

use std::any::Any;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgMatches, Command};

use crate::metrics::{Desc, MetricFamily};
use crate::source::inet::{InetSocket, UnixSocket};
use crate::source::netns::Netns;
use crate::source::procfd::OwnerResolver;
use crate::source::sockets::{PassInfo, SocketNeeds};
use crate::source::SourceError;

/// Every collector, in exposition order. Adding a collector: its file, plus one line here.
pub const REGISTRY: &[&CollectorDecl] = &[
    &sockets::DECL,
    &listeners::DECL,
    &connections::DECL,
    &interfaces::DECL,
    &protocols::DECL,
];

/// What one collection produced: the families to expose, the typed rows that the snapshot
/// and the change log read ([`rows::Rows`]), and the problems met on the way. A collection
/// with errors still returns everything it could read.
#[derive(Debug, Default)]
pub struct Collected {
    pub families: Vec<MetricFamily>,
    pub rows: rows::Rows,
    pub errors: Vec<SourceError>,
}

/// The one declaration of a collector.
pub struct CollectorDecl {
    pub name: &'static str,
    pub default_enabled: bool,
    /// One line for `--help` and the docs.
    pub help: &'static str,
    /// The metric families it may produce.
    pub metrics: fn() -> Vec<&'static Desc>,
    /// Its own flags (`--collector.<name>.*`; the enable/disable pair is added for it), which
    /// build it: `FlagsDecl::of::<TheFlags>()`.
    pub flags: FlagsDecl,
}

impl std::fmt::Debug for CollectorDecl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorDecl")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A collector's flags: a `#[derive(clap::Args, Clone, Debug)]` struct in the collector's
/// file (each default in its `#[arg]` attribute), named `--collector.<name>.*` with explicit
/// `id`s equal to the long names (ids are global to the command line). Reading a field that
/// does not exist does not compile; a value that does not parse is a start-up error.
pub trait CollectorFlags:
    clap::Args + clap::FromArgMatches + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// Build the collector from its flags and what it shares with the others; an error is a
    /// start-up error (exit 2).
    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Collector>, String>;
}

/// A collector's flags in its declaration: how to add them to the command line and how to
/// read them back typed.
#[derive(Clone, Copy)]
pub struct FlagsDecl {
    /// Adds the flags to a command (`clap::Args::augment_args`).
    pub augment: fn(Command) -> Command,
    parse: fn(&ArgMatches) -> Result<Arc<dyn AnyFlags>, String>,
}

impl FlagsDecl {
    pub const fn of<F: CollectorFlags>() -> FlagsDecl {
        FlagsDecl {
            augment: augment_flags::<F>,
            parse: parse_flags::<F>,
        }
    }

    /// The flags as parsed from `matches` (a command line made with [`Self::augment`]).
    pub fn parse(&self, matches: &ArgMatches) -> Result<ParsedFlags, String> {
        (self.parse)(matches).map(ParsedFlags)
    }
}

/// Add `F`'s flags to `cmd`, and nothing else: a derived struct's doc comment would become
/// the command's description.
fn augment_flags<F: CollectorFlags>(cmd: Command) -> Command {
    let about = cmd.get_about().cloned();
    let long_about = cmd.get_long_about().cloned();
    let cmd = F::augment_args(cmd);
    let cmd = match about {
        Some(a) => cmd.about(a),
        None => cmd.about(None::<&'static str>),
    };
    match long_about {
        Some(a) => cmd.long_about(a),
        None => cmd.long_about(None::<&'static str>),
    }
}

fn parse_flags<F: CollectorFlags>(m: &ArgMatches) -> Result<Arc<dyn AnyFlags>, String> {
    F::from_arg_matches(m)
        .map(|f| Arc::new(f) as Arc<dyn AnyFlags>)
        .map_err(|e| e.to_string())
}

/// One collector's parsed flags, typed behind [`Any`].
#[derive(Clone, Debug)]
pub struct ParsedFlags(Arc<dyn AnyFlags>);

impl ParsedFlags {
    pub fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Collector>, String> {
        self.0.build_any(ctx)
    }

    /// The flags as `F` (None: these are another collector's).
    pub fn get<F: CollectorFlags>(&self) -> Option<&F> {
        self.0.as_any().downcast_ref::<F>()
    }
}

/// [`CollectorFlags`] behind a pointer.
pub trait AnyFlags: std::fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn build_any(&self, ctx: &BuildContext) -> Result<Box<dyn Collector>, String>;
}

impl<F: CollectorFlags> AnyFlags for F {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn build_any(&self, ctx: &BuildContext) -> Result<Box<dyn Collector>, String> {
        self.build(ctx)
    }
}

/// The defaults of flags `F` (what an empty command line gives): for a collector that is not
/// in the registry the command line was parsed for.
pub fn default_flags<F: CollectorFlags>() -> Result<F, String> {
    let m = F::augment_args(Command::new("defaults"))
        .try_get_matches_from(["defaults"])
        .map_err(|e| e.to_string())?;
    F::from_arg_matches(&m).map_err(|e| e.to_string())
}

/// What building a collector may use besides its own flags: the general settings (paths) and
/// the settings collectors share, each owned by one collector's flags and read here typed
/// (the expected file, the owner resolver, the tcp_info switch, the remote networks and the
/// memory of remote addresses).
pub struct BuildContext {
    rootfs: PathBuf,
    socket_source: crate::source::sockets::SourceMode,
    listeners: listeners::ListenersFlags,
    connections: connections::ConnectionsFlags,
    resolver: Result<Arc<OwnerResolver>, String>,
}

impl BuildContext {
    /// Made by the configuration (`Config::build_context`), which owns the flags and the one
    /// owner resolver.
    pub fn new(
        rootfs: PathBuf,
        socket_source: crate::source::sockets::SourceMode,
        listeners: listeners::ListenersFlags,
        connections: connections::ConnectionsFlags,
        resolver: Result<Arc<OwnerResolver>, String>,
    ) -> BuildContext {
        BuildContext {
            rootfs,
            socket_source,
            listeners,
            connections,
            resolver,
        }
    }

    /// `--collector.sockets.source` as it applies (proc with a --path.procfs that is not the
    /// live /proc): what the kernel's netlink can serve.
    pub fn socket_source(&self) -> crate::source::sockets::SourceMode {
        self.socket_source
    }

    /// `--path.rootfs`: where /etc/services and /etc/passwd are read.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// `--collector.listeners.expected`: the expected file (listeners and outbound policy).
    pub fn expected_file(&self) -> Option<&Path> {
        self.listeners.expected.as_deref()
    }

    /// The one owner resolver (socket inode -> process) that every collector and the watch
    /// share, walking at most once per `--collector.listeners.walk-interval`.
    pub fn owner_resolver(&self) -> Result<Arc<OwnerResolver>, String> {
        self.resolver.clone()
    }

    /// `--collector.connections.health`: tcp_info with the pass, RTT and retransmissions.
    pub fn health(&self) -> bool {
        self.connections.health.enabled()
    }

    /// `--collector.connections.networks`: the file naming remote networks.
    pub fn networks_file(&self) -> Option<&Path> {
        self.connections.networks.as_deref()
    }

    /// `--collector.connections.destination-memory` and `-capacity`: how long and how many
    /// remote addresses are remembered (outbound destinations, inbound sources).
    pub fn remote_memory(&self) -> Result<(Duration, usize), String> {
        Ok((
            self.connections.destination_memory()?,
            self.connections.destination_capacity,
        ))
    }
}

pub trait Collector: Send + Sync {
    fn name(&self) -> &'static str;

    /// What this collector must see of the socket tables (default: nothing).
    fn socket_needs(&self) -> SocketNeeds {
        SocketNeeds::NONE
    }

    /// Start one collection in `ns`. The scrape layer then feeds the shared socket pass (the
    /// sockets wanted by [`socket_needs`](Self::socket_needs)) and calls `finish`.
    fn begin<'a>(&'a self, ns: &'a Netns) -> Box<dyn Collection + 'a>;

    /// After every namespace of a scrape: families that are not per namespace (self-metrics
    /// of host-wide state), rendered once. `read`: the labels of the namespaces this
    /// collector was to read in the run, whether or not their reads succeeded (a namespace
    /// that timed out is still there; one that is gone is missing from the next run's
    /// discovery), so that per-namespace memory is forgotten only for namespaces that are gone.
    fn end_scrape(&self, _read: &BTreeSet<String>, _out: &mut Collected) {}
}

/// One collection in one namespace.
pub trait Collection {
    /// A socket of the shared pass, in a state this collector asked for.
    fn inet(&mut self, _s: &InetSocket) {}
    /// A unix socket of the shared pass.
    fn unix(&mut self, _s: &UnixSocket) {}
    /// The pass is over (called for every collection before any `finish`): release what was
    /// held for the pass.
    fn pass_done(&mut self) {}
    /// The pass is over (`pass` says which backend served each table): read any other
    /// source and render into `out`.
    fn finish(self: Box<Self>, pass: &PassInfo, out: &mut Collected);
}

/// A collector that needs no socket pass: it reads its own sources, per namespace, in one
/// go (and is a [`Collector`] through the impl below).
pub trait SimpleCollector: Send + Sync {
    fn name(&self) -> &'static str;
    fn collect(&self, ns: &Netns) -> Collected;
}

impl<T: SimpleCollector> Collector for T {
    fn name(&self) -> &'static str {
        SimpleCollector::name(self)
    }

    fn begin<'a>(&'a self, ns: &'a Netns) -> Box<dyn Collection + 'a> {
        Box::new(Deferred(self, ns))
    }
}

/// The collection of a [`SimpleCollector`]: everything happens in `finish`.
struct Deferred<'a, T>(&'a T, &'a Netns);

impl<T: SimpleCollector> Collection for Deferred<'_, T> {
    fn finish(self: Box<Self>, _pass: &PassInfo, out: &mut Collected) {
        let got = self.0.collect(self.1);
        out.families.extend(got.families);
        out.rows.extend(got.rows);
        out.errors.extend(got.errors);
    }
}

/// The declaration of `name`.
pub fn find(name: &str) -> Option<&'static CollectorDecl> {
    REGISTRY.iter().copied().find(|d| d.name == name)
}
