//! netstat_exporter: what `netstat` and `ss` show a Linux admin, as Prometheus metrics.
//!
//! Layout: `source/` does all kernel I/O, `collectors/` turn what it reads into metric
//! families with pure functions, `scrape` runs them per request, `http` serves them.

pub mod collectors;
pub mod config;
pub mod docs;
pub mod events;
pub mod expected;
pub mod flag_values;
pub mod flows;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod networks;
pub mod scrape;
pub mod self_metrics;
pub mod server;
pub mod source;
pub mod watch;
pub mod web_config;
