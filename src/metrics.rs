//! The exporter's metric model and its two exposition formats.
//!
//! Collectors render [`MetricFamily`] values (plain data, easy to assert on in unit tests).
//! OpenMetrics output goes through `prometheus-client` (the official Rust client) via its
//! `Collector`/`DescriptorEncoder` API. The Prometheus text format 0.0.4 is written by hand
//! below because `prometheus-client` only speaks OpenMetrics; the two differ only in the
//! `_total` naming of counter TYPE lines, `# EOF` and escaping rules, all covered by tests.

use std::borrow::Cow;
use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Metric kinds the exporter emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// A distribution of things that exist now (not of events): bucket counts go up and down.
    /// Text format 0.0.4 has no such type, so it is exposed there as `histogram`
    /// (`_bucket{le}`, `_sum`, `_count`: what `promtool check metrics` accepts and
    /// `histogram_quantile()` reads); OpenMetrics has `gaugehistogram` (`_bucket{le}`,
    /// `_gsum`, `_gcount`). See docs/collectors.md, "Connection health".
    GaugeHistogram,
}

/// A sample value: integers stay exact (kernel counters can be near 2^64), floats for
/// durations and ratios.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        }
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(u64::from(v))
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(v as u64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(u64::from(v))
    }
}

pub type Labels = Vec<(&'static str, String)>;

/// The one declaration of a metric family: name, type, help, label names and unit.
/// Collectors render families from these (`DESC.family()`), the docs table
/// (`docs/metrics.md`), the JSON snapshot and the tests read them; no name is typed twice.
#[derive(Debug, PartialEq, Eq)]
pub struct Desc {
    /// Base name; counters without `_total` (the encoders add it).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Label names in the order the collector writes them. Per-namespace families also get
    /// `netns` from the scrape layer when namespaces other than the exporter's own are read
    /// (see [`per_netns`](Self::per_netns)).
    pub labels: &'static [&'static str],
    /// Unit suffix of the name (`bytes`, `seconds`) or "" for counts and info metrics.
    pub unit: &'static str,
    /// A collector's family rendered per network namespace (true unless declared
    /// [`host_wide`](Self::host_wide)): with `--netns=all`, its series of namespaces other than
    /// the exporter's own carry `netns`, when the collector is in `--netns.collectors`.
    /// Families rendered once per scrape (`Collector::end_scrape`) are host-wide and never do.
    pub per_netns: bool,
}

impl Desc {
    pub const fn gauge(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Desc {
        Desc {
            name,
            help,
            kind: Kind::Gauge,
            labels,
            unit: "",
            per_netns: true,
        }
    }

    /// A gauge histogram ([`Kind::GaugeHistogram`]); `labels` are those of every series,
    /// without `le`.
    pub const fn gauge_histogram(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Desc {
        Desc {
            name,
            help,
            kind: Kind::GaugeHistogram,
            labels,
            unit: "",
            per_netns: true,
        }
    }

    pub const fn counter(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Desc {
        Desc {
            name,
            help,
            kind: Kind::Counter,
            labels,
            unit: "",
            per_netns: true,
        }
    }

    /// Builder: the unit of the values (must be the name's suffix, checked by a test).
    pub const fn unit(mut self, unit: &'static str) -> Desc {
        self.unit = unit;
        self
    }

    /// Builder: rendered once per scrape for the whole host, never labelled with `netns`.
    pub const fn host_wide(mut self) -> Desc {
        self.per_netns = false;
        self
    }

    /// The label names a sample of this family may carry: its declared labels, plus `netns`
    /// when `foreign` (a series of another namespace, read because the collector is in
    /// `--netns.collectors`) and the family is per namespace.
    pub fn labels_in(&self, foreign: bool) -> Vec<&'static str> {
        let mut out = self.labels.to_vec();
        if foreign && self.per_netns {
            out.push("netns");
        }
        out
    }

    /// An empty family of this declaration, to push samples into.
    pub fn family(&'static self) -> MetricFamily {
        MetricFamily {
            name: self.name,
            help: self.help,
            kind: self.kind,
            samples: Vec::new(),
        }
    }

    /// Exposed sample name: counters carry the `_total` suffix.
    pub fn sample_name(&self) -> Cow<'static, str> {
        match self.kind {
            Kind::Counter => Cow::Owned(format!("{}_total", self.name)),
            Kind::Gauge | Kind::GaugeHistogram => Cow::Borrowed(self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: Value,
    /// Which part of a gauge histogram this sample is (always [`Part::Value`] otherwise).
    pub part: Part,
}

/// The part of a [`Kind::GaugeHistogram`] series a sample holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A counter's or a gauge's value.
    Value,
    /// A cumulative bucket; its labels end with `le`.
    Bucket,
    /// The sum of the observed values (`_sum` in text 0.0.4, `_gsum` in OpenMetrics).
    Sum,
    /// The number of observations (`_count` / `_gcount`).
    Count,
}

/// The value of label `name` of a sample ("" when it has none, as Prometheus reads it).
pub fn label<'a>(s: &'a Sample, name: &str) -> &'a str {
    s.labels
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// One metric family. For counters `name` is the base name *without* `_total`; both encoders
/// append it to the samples (and the 0.0.4 encoder to the TYPE/HELP lines too).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl MetricFamily {
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Self {
        MetricFamily {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }
    pub fn gauge(name: &'static str, help: &'static str) -> Self {
        Self::new(name, help, Kind::Gauge)
    }
    pub fn counter(name: &'static str, help: &'static str) -> Self {
        Self::new(name, help, Kind::Counter)
    }
    pub fn push(&mut self, labels: Labels, value: impl Into<Value>) {
        self.samples.push(Sample {
            labels,
            value: value.into(),
            part: Part::Value,
        });
    }
    /// One series of a gauge histogram: `counts[i]` observations fell in bucket `i` (not
    /// cumulative; `counts` has one more entry than `bounds`, the +Inf bucket), `sum` is the
    /// sum of the observed values.
    pub fn push_histogram(&mut self, labels: Labels, bounds: &[f64], counts: &[u64], sum: f64) {
        let mut cumulative = 0u64;
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            let le = match bounds.get(i) {
                Some(b) => format_float(*b),
                None => "+Inf".to_string(),
            };
            let mut l = labels.clone();
            l.push(("le", le));
            self.samples.push(Sample {
                labels: l,
                value: Value::Int(cumulative),
                part: Part::Bucket,
            });
        }
        self.samples.push(Sample {
            labels: labels.clone(),
            value: Value::Float(sum),
            part: Part::Sum,
        });
        self.samples.push(Sample {
            labels,
            value: Value::Int(cumulative),
            part: Part::Count,
        });
    }
    /// Builder form of [`push`](Self::push).
    pub fn with(mut self, labels: Labels, value: impl Into<Value>) -> Self {
        self.push(labels, value);
        self
    }
    /// Exposed sample name: counters carry the `_total` suffix.
    pub fn sample_name(&self) -> Cow<'static, str> {
        match self.kind {
            Kind::Counter => Cow::Owned(format!("{}_total", self.name)),
            Kind::Gauge | Kind::GaugeHistogram => Cow::Borrowed(self.name),
        }
    }
}

/// A float as Prometheus writes it (`le` values): the shortest form that reads back exactly.
pub fn format_float(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    format!("{v}")
}

/// Wire formats offered on /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    pub const TEXT_CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
    pub const OPENMETRICS_CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Pick the format from an HTTP `Accept` header: OpenMetrics only when the client
    /// lists it with a non-zero quality, as Prometheus does when it prefers it.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        for part in accept.split(',') {
            let mut params = part.split(';').map(str::trim);
            let media = params.next().unwrap_or("");
            if !media.eq_ignore_ascii_case("application/openmetrics-text") {
                continue;
            }
            let zero_q = params.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if !zero_q {
                return Format::OpenMetrics;
            }
        }
        Format::Text
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => Self::TEXT_CONTENT_TYPE,
            Format::OpenMetrics => Self::OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Encode families in the requested format.
/// Families without samples are left out.
pub fn encode(families: Vec<MetricFamily>, format: Format) -> String {
    match format {
        Format::Text => encode_text(&families),
        Format::OpenMetrics => encode_openmetrics(families),
    }
}

/// Escape a label value (both formats use the same rules for `\`, `"` and newline).
fn escape_label_value(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 4);
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// One sample line, `name<suffix>{labels} value` (both formats escape label values alike).
fn write_sample(out: &mut String, name: &str, suffix: &str, s: &Sample) {
    out.push_str(name);
    out.push_str(suffix);
    if !s.labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in s.labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
        }
        out.push('}');
    }
    out.push(' ');
    write_value(out, s.value);
    out.push('\n');
}

fn write_value(out: &mut String, v: Value) {
    match v {
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" }),
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
    }
}

/// Prometheus text format 0.0.4 (hand-written: prometheus-client has no encoder for it).
pub fn encode_text(families: &[MetricFamily]) -> String {
    let mut out = String::with_capacity(families.len() * 256);
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let name = f.sample_name();
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            // 0.0.4 has no gauge histogram: see Kind::GaugeHistogram.
            Kind::GaugeHistogram => "histogram",
        };
        // HELP text escaping in 0.0.4: backslash and newline.
        let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in &f.samples {
            let suffix = match s.part {
                Part::Value => "",
                Part::Bucket => "_bucket",
                Part::Sum => "_sum",
                Part::Count => "_count",
            };
            write_sample(&mut out, &name, suffix, s);
        }
    }
    out
}

/// Adapter that lets prometheus-client's encoder walk our families: registered as a
/// `Collector` in a registry built for one response.
#[derive(Debug)]
struct Families(Vec<MetricFamily>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in self.0.iter().filter(|f| !f.samples.is_empty()) {
            let metric_type = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                // prometheus-client 0.24 has no gaugehistogram: written by hand, see
                // encode_openmetrics.
                Kind::GaugeHistogram => continue,
            };
            let mut family = encoder.encode_descriptor(f.name, f.help, None, metric_type)?;
            if let [s] = &f.samples[..] {
                if s.labels.is_empty() {
                    // A single unlabelled sample: encode on the descriptor itself, which
                    // writes `name value` rather than `name{} value`.
                    encode_value(f.kind, s.value, family)?;
                    continue;
                }
            }
            for s in &f.samples {
                // prometheus-client writes label values verbatim, so escape them first.
                let labels: Vec<(&str, Cow<'_, str>)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (*k, escape_label_value(v)))
                    .collect();
                encode_value(f.kind, s.value, family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

fn encode_value(
    kind: Kind,
    value: Value,
    metric: prometheus_client::encoding::MetricEncoder,
) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (Kind::Counter, Value::Int(v)) => ConstCounter::new(v).encode(metric),
        (Kind::Counter, Value::Float(v)) => ConstCounter::new(v).encode(metric),
        (Kind::Gauge, Value::Int(v)) => ConstGauge::new(v).encode(metric),
        (Kind::Gauge, Value::Float(v)) => ConstGauge::new(v).encode(metric),
        // Never reached: Families skips gauge histograms.
        (Kind::GaugeHistogram, _) => Ok(()),
    }
}

/// OpenMetrics 1.0.0 text through prometheus-client, terminated by `# EOF`.
/// Gauge histograms, which prometheus-client 0.24 cannot encode, are written by hand
/// (`# TYPE name gaugehistogram`, `_bucket{le}`, `_gsum`, `_gcount`) before the `# EOF`.
pub fn encode_openmetrics(families: Vec<MetricFamily>) -> String {
    let mut out = String::with_capacity(families.len() * 256);
    let (histograms, others): (Vec<MetricFamily>, Vec<MetricFamily>) = families
        .into_iter()
        .partition(|f| f.kind == Kind::GaugeHistogram);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(others)));
    // Writing into a String cannot fail; an Err could only come from a bug in the encoder.
    let encoded = prometheus_client::encoding::text::encode(&mut out, &registry);
    debug_assert!(encoded.is_ok());
    if histograms.iter().any(|f| !f.samples.is_empty()) {
        let eof = out.len() - if out.ends_with("# EOF\n") { 6 } else { 0 };
        out.truncate(eof);
        for f in histograms.iter().filter(|f| !f.samples.is_empty()) {
            // OpenMetrics escapes backslash, double quote and newline in HELP.
            let help = escape_label_value(f.help.replace('\n', " ").as_str()).into_owned();
            let _ = writeln!(out, "# HELP {} {help}", f.name);
            let _ = writeln!(out, "# TYPE {} gaugehistogram", f.name);
            for s in &f.samples {
                let suffix = match s.part {
                    Part::Bucket => "_bucket",
                    Part::Sum => "_gsum",
                    Part::Count => "_gcount",
                    Part::Value => "",
                };
                write_sample(&mut out, f.name, suffix, s);
            }
        }
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_families() -> Vec<MetricFamily> {
        vec![
            MetricFamily::gauge("netstat_x", "A gauge.")
                .with(vec![("a", "1".into())], 3u64)
                .with(vec![("a", "q\"b\\c\nd".into())], 0.5),
            MetricFamily::counter("netstat_y", "A counter.").with(vec![], u64::MAX),
        ]
    }

    #[test]
    fn text_format_is_0_0_4() {
        let t = encode_text(&sample_families());
        assert_eq!(
            t,
            "# HELP netstat_x A gauge.\n# TYPE netstat_x gauge\nnetstat_x{a=\"1\"} 3\n\
             netstat_x{a=\"q\\\"b\\\\c\\nd\"} 0.5\n\
             # HELP netstat_y_total A counter.\n# TYPE netstat_y_total counter\n\
             netstat_y_total 18446744073709551615\n"
        );
    }

    #[test]
    fn openmetrics_format() {
        let t = encode_openmetrics(sample_families());
        assert!(t.contains("# TYPE netstat_y counter\n"), "{t}");
        assert!(t.contains("netstat_y_total 18446744073709551615\n"), "{t}");
        assert!(t.contains("netstat_x{a=\"q\\\"b\\\\c\\nd\"} 0.5\n"), "{t}");
        assert!(t.ends_with("# EOF\n"));
    }

    #[test]
    fn negotiation() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain")),
            Format::Text
        );
    }

    #[test]
    fn special_floats() {
        let f = vec![MetricFamily::gauge("g", "h")
            .with(vec![], f64::NAN)
            .with(vec![("x", "1".into())], f64::INFINITY)];
        let t = encode_text(&f);
        assert!(
            t.contains("g NaN\n") && t.contains("g{x=\"1\"} +Inf\n"),
            "{t}"
        );
    }
}
