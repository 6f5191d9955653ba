//! Collectors: one file each. A collector reads through `source/` and renders metric
//! families with pure functions, so the rendering is unit-testable without a kernel.

pub mod interfaces;
pub mod listeners;
pub mod protocols;
pub mod sockets;

use crate::config::Config;
use crate::metrics::MetricFamily;
use crate::source::SourceError;

/// What one collection produced: the families to expose and the problems met on the way.
/// A collection with errors still returns everything it could read.
#[derive(Debug, Default)]
pub struct Collected {
    pub families: Vec<MetricFamily>,
    pub errors: Vec<SourceError>,
}

pub trait Collector: Send + Sync {
    fn name(&self) -> &'static str;
    fn collect(&self) -> Collected;
}

/// Static description of an available collector, for flags, `collect[]` and docs.
#[derive(Debug, Clone, Copy)]
pub struct CollectorInfo {
    pub name: &'static str,
    pub default_enabled: bool,
    pub help: &'static str,
}

pub const AVAILABLE: &[CollectorInfo] = &[
    CollectorInfo {
        name: "sockets",
        default_enabled: true,
        help: "socket counts by protocol, family and state; socket queue depths; unix sockets",
    },
    CollectorInfo {
        name: "listeners",
        default_enabled: true,
        help: "listening sockets with service, process, user, accept queue and limit, drops",
    },
    CollectorInfo {
        name: "interfaces",
        default_enabled: true,
        help: "netstat -i: per-interface packets, errors, drops, overruns, MTU and flags",
    },
    CollectorInfo {
        name: "protocols",
        default_enabled: true,
        help: "netstat -s: TCP, UDP, IP and ICMP protocol counters and sockstat gauges",
    },
];

/// Build the collectors enabled in `config`, in the order of [`AVAILABLE`].
pub fn build(config: &Config) -> Vec<Box<dyn Collector>> {
    let mut out: Vec<Box<dyn Collector>> = Vec::new();
    for info in AVAILABLE {
        if !config.collector_enabled(info.name) {
            continue;
        }
        match info.name {
            "sockets" => out.push(Box::new(sockets::SocketsCollector::new(config))),
            "listeners" => out.push(Box::new(listeners::ListenersCollector::new(config))),
            "interfaces" => out.push(Box::new(interfaces::InterfacesCollector::new(config))),
            "protocols" => out.push(Box::new(protocols::ProtocolsCollector::new(config))),
            _ => {}
        }
    }
    out
}
