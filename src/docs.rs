//! The reference pages generated from the declarations: `docs/metrics.md` (every metric
//! family of every collector, and the exporter's own) and `docs/flags.md` (every flag).
//! `tests/docs.rs` checks the committed files against these functions and against a full
//! scrape; `UPDATE_DOCS=1 cargo test --test docs` rewrites them.

use std::fmt::Write as _;

use clap::{Arg, ArgAction, Command, CommandFactory};

use crate::collectors::CollectorDecl;
use crate::config::{command_with, Cli, DEFAULT_NETNS_COLLECTORS};
use crate::metrics::{Desc, Kind};

const GENERATED: &str = "<!-- Generated from the declarations in src/ by `UPDATE_DOCS=1 cargo test --test docs`; do not edit by hand. -->";

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `collector` is true for a collector's families: those rendered per namespace show the
/// `netns` label they gain for other namespaces, in parentheses.
fn table(out: &mut String, metrics: &[&Desc], collector: bool) {
    out.push_str("| Metric | Type | Unit | Labels | Meaning |\n|---|---|---|---|---|\n");
    for d in metrics {
        let kind = match d.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::GaugeHistogram => "gauge histogram",
        };
        let mut labels = d
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>();
        if collector && d.per_netns {
            labels.push("(`netns`)".into());
        }
        let labels = labels.join(", ");
        let _ = writeln!(
            out,
            "| `{}` | {kind} | {} | {labels} | {} |",
            d.sample_name(),
            d.unit,
            cell(d.help)
        );
    }
}

/// `docs/metrics.md` for the collectors of `registry` plus the exporter's own metrics.
pub fn metrics_markdown(registry: &[&CollectorDecl], own: &[&Desc]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{GENERATED}\n\n# Metrics\n");
    out.push_str(
        "Every metric family the exporter can expose, by collector. Counters carry `_total` in \
         the exposition (both the Prometheus text format and OpenMetrics). Label values are \
         bounded: see [collectors.md](collectors.md) for the caps and filters, and what each \
         series means in `netstat`/`ss` terms. A gauge histogram (a distribution of what exists \
         now, whose buckets go up and down) is typed `histogram` in the text format \
         (`_bucket{le}`, `_sum`, `_count`) and `gaugehistogram` in OpenMetrics (`_bucket{le}`, \
         `_gsum`, `_gcount`); see [collectors.md](collectors.md#connection-health).\n\n",
    );
    let _ = writeln!(
        out,
        "A label in parentheses, (`netns`), appears only with `--netns=all`, on the series of \
         network namespaces other than the exporter's own, for the collectors listed in \
         `--netns.collectors` (default: {}). Its value is the namespace's inode; \
         `netstat_netns_info` joins it to the container and the pod. The exporter's own \
         namespace keeps its series without it. Families without it are rendered once for the \
         whole host.\n",
        DEFAULT_NETNS_COLLECTORS
            .split(',')
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for d in registry {
        let _ = writeln!(
            out,
            "## Collector `{}` ({} by default)\n\n{}.\n",
            d.name,
            if d.default_enabled {
                "enabled"
            } else {
                "disabled"
            },
            d.help
        );
        table(&mut out, &(d.metrics)(), true);
        out.push('\n');
    }
    out.push_str("## The exporter itself (every scrape)\n\n");
    table(&mut out, own, false);
    out
}

fn flag_row(out: &mut String, a: &Arg) {
    let Some(long) = a.get_long() else {
        return;
    };
    let takes_value = matches!(a.get_action(), ArgAction::Set | ArgAction::Append);
    let name = if takes_value {
        let value = a
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| "VALUE".into());
        format!("`--{long}={value}`")
    } else {
        format!("`--{long}`")
    };
    let default = a
        .get_default_values()
        .iter()
        .map(|v| format!("`{}`", v.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(", ");
    let help = a
        .get_long_help()
        .or_else(|| a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let _ = writeln!(out, "| {name} | {default} | {} |", cell(&help));
}

/// `docs/flags.md` for the collectors of `registry`.
pub fn flags_markdown(registry: &[&CollectorDecl]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{GENERATED}\n\n# Flags\n");
    out.push_str(
        "Named like node_exporter's; `netstat_exporter --help` prints the same. A pair \
         `--X` / `--no-X` is decided by the one given last.\n\n## General\n\n",
    );
    let head = "| Flag | Default | Meaning |\n|---|---|---|\n";
    out.push_str(head);
    let global: Command = Cli::command();
    for a in global.get_arguments() {
        flag_row(&mut out, a);
    }
    let global_longs: Vec<&str> = global.get_arguments().filter_map(Arg::get_long).collect();
    let full = command_with(registry);
    for d in registry {
        // No blank line between the heading's table header and its rows (or the rows render
        // as plain text).
        let _ = write!(out, "\n## Collector `{}`\n\n{head}", d.name);
        // A general flag named after a collector (--collector.sockets.source) is listed once,
        // under General.
        let own = |long: &str| {
            !global_longs.contains(&long)
                && (long == format!("collector.{}", d.name)
                    || long == format!("no-collector.{}", d.name)
                    || long.starts_with(&format!("collector.{}.", d.name))
                    || long.starts_with(&format!("no-collector.{}.", d.name)))
        };
        for a in full.get_arguments() {
            if a.get_long().is_some_and(own) {
                flag_row(&mut out, a);
            }
        }
    }
    out
}
