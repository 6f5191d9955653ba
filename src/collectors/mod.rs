//! Collectors: one file each. A collector declares itself once ([`CollectorDecl`]: name,
//! default, help, flags, metrics, factory) and is registered with one line in [`REGISTRY`];
//! flags, `--help`, `collect[]`, docs/metrics.md and docs/flags.md all come from there.
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
pub mod sockets;

use crate::config::Config;
use crate::metrics::{Desc, MetricFamily};
use crate::source::inet::{InetSocket, UnixSocket};
use crate::source::netns::Netns;
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

/// What one collection produced: the families to expose and the problems met on the way.
/// A collection with errors still returns everything it could read.
#[derive(Debug, Default)]
pub struct Collected {
    pub families: Vec<MetricFamily>,
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
    /// Its own flags (`--collector.<name>.*`); the enable/disable pair is added for it.
    pub args: fn() -> Vec<clap::Arg>,
    /// Build it from the parsed flags; an error is a start-up error (exit 2).
    pub build: fn(&Config) -> Result<Box<dyn Collector>, String>,
}

impl std::fmt::Debug for CollectorDecl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorDecl")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// No flags of its own.
pub fn no_args() -> Vec<clap::Arg> {
    Vec::new()
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
    /// of host-wide state), rendered once.
    fn end_scrape(&self, _out: &mut Collected) {}
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
        out.errors.extend(got.errors);
    }
}

/// The declaration of `name`.
pub fn find(name: &str) -> Option<&'static CollectorDecl> {
    REGISTRY.iter().copied().find(|d| d.name == name)
}

/// Build the collectors enabled in `config`, in the order of its registry ([`REGISTRY`]
/// unless the config was parsed for another one).
pub fn build(config: &Config) -> Result<Vec<Box<dyn Collector>>, String> {
    config
        .registry
        .iter()
        .filter(|d| config.collector_enabled(d.name))
        .map(|d| (d.build)(config))
        .collect()
}
