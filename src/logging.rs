//! Logging to stderr in logfmt (node_exporter's default) or JSON.
//!
//! tracing-subscriber has no logfmt output; the small formatter below writes
//! `ts=... level=... msg="..." key=value` lines.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub fn level_from_str(s: &str) -> Level {
    match s {
        "debug" => Level::DEBUG,
        "warn" => Level::WARN,
        "error" => Level::ERROR,
        _ => Level::INFO,
    }
}

/// Install the global subscriber. Safe to call more than once (later calls are ignored).
pub fn init(level: &str, format: &str) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level_from_str(level))
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = if format == "json" {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.event_format(Logfmt).try_init()
    };
}

pub struct Logfmt;

fn write_logfmt_value(w: &mut Writer<'_>, v: &str) -> fmt::Result {
    let needs_quotes = v.is_empty() || v.contains([' ', '"', '=', '\\', '\n', '\t']);
    if !needs_quotes {
        return w.write_str(v);
    }
    w.write_char('"')?;
    for c in v.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            '\t' => w.write_str("\\t")?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

struct LogfmtVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Visit for LogfmtVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let key = if field.name() == "message" {
            "msg"
        } else {
            field.name()
        };
        self.result =
            write!(self.writer, " {key}=").and_then(|_| write_logfmt_value(self.writer, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("ts=")?;
        SystemTime.format_time(&mut writer)?;
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        write!(writer, " level={level}")?;
        let mut v = LogfmtVisitor {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut v);
        v.result?;
        writeln!(writer)
    }
}
