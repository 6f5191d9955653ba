//! Connection health from the shared pass: the smoothed RTT of established TCP connections as a
//! gauge histogram, and how many of them are retransmitting now, per listener (connections it
//! accepted) and per outbound series. The kernel sends each socket's `tcp_info`
//! (`INET_DIAG_INFO`, see `source::tcp_info`) with the pass when `--collector.connections.health`
//! is given (off by default: see [`HealthFlags`]); nothing per socket is kept: each socket adds to its series' fixed bucket counters.
//!
//! The histogram is of sockets that exist NOW, not of events, so its buckets go up and down:
//! a gauge histogram (`metrics::Kind::GaugeHistogram`). `histogram_quantile()` over its
//! `_bucket` series gives the RTT quantiles of the live connections (no `rate()`).

use crate::collectors::rows::RowHealth;
use crate::flag_values::pair;
use crate::metrics::{Desc, Labels, MetricFamily};
use crate::source::inet::{InetSocket, Protocol, TCP_ESTABLISHED};

/// Upper bounds of the RTT buckets, microseconds: 100 us, 250 us, 500 us, then 1 ms doubling
/// to 4.096 s (about 2x apart; the edges 64 ms and 128 ms bracket an 80 ms path). Bucket
/// `BOUNDS_US.len()` is +Inf.
pub const BOUNDS_US: [u32; 16] = [
    100, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000,
    1_024_000, 2_048_000, 4_096_000,
];
const BUCKETS: usize = BOUNDS_US.len() + 1;

/// The flag (a pair, part of the connections collector's flags, read by the listeners
/// collector too through `BuildContext::health`). Off by default: at 100k TCP sockets the
/// kernel's dump with tcp_info alone costs about 1.34x the dump without it, and a default
/// scrape with health 1.6x, above the 1.35x budget of a default scrape (docs/benchmarks.md).
#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct HealthFlags {
    #[arg(
        id = "collector.connections.health",
        long = "collector.connections.health",
        overrides_with = "no-collector.connections.health",
        help = "Ask the kernel for tcp_info (INET_DIAG_INFO) with the socket pass and export the smoothed RTT of established TCP connections as gauge histograms and the connections retransmitting now, per listener and per outbound series. Off by default: it costs about 1.3x more kernel CPU per scrape (docs/benchmarks.md)."
    )]
    on: bool,
    #[arg(
        id = "no-collector.connections.health",
        long = "no-collector.connections.health",
        overrides_with = "collector.connections.health",
        help = "Do not ask for tcp_info (the default): no netstat_*_rtt_seconds and no netstat_*_connections_retransmitting series."
    )]
    off: bool,
}

impl HealthFlags {
    /// Whether health is on (off unless asked for).
    pub fn enabled(&self) -> bool {
        pair(self.on, self.off, false)
    }
}

pub static LISTENER_RTT: Desc = Desc::gauge_histogram(
    "netstat_listener_rtt_seconds",
    &["protocol", "family", "address", "port"],
    "TCP: smoothed RTT (tcpi_rtt, what ss -ti shows as rtt:) of the established connections this listener accepted, now: a gauge histogram (buckets go up and down with the connections; use histogram_quantile() on the _bucket series without rate()). Buckets from 100us to 4.096s.",
)
.unit("seconds");
pub static LISTENER_RETRANSMITTING: Desc = Desc::gauge(
    "netstat_listener_connections_retransmitting",
    &["protocol", "family", "address", "port"],
    "TCP: established connections of this listener in loss recovery or with retransmitted segments not yet acknowledged at the moment of the pass (tcpi_ca_state recovery or loss, tcpi_retrans or tcpi_retransmits not zero).",
);
pub static OUTBOUND_RTT: Desc = Desc::gauge_histogram(
    "netstat_outbound_rtt_seconds",
    crate::collectors::connections::OWNER_KEY,
    "TCP: smoothed RTT (tcpi_rtt, ss -ti rtt:) of the established outbound connections of this series of netstat_outbound_connections (folded the same way), now: a gauge histogram (use histogram_quantile() on the _bucket series without rate()). Buckets from 100us to 4.096s.",
)
.unit("seconds");
pub static OUTBOUND_RETRANSMITTING: Desc = Desc::gauge(
    "netstat_outbound_connections_retransmitting",
    crate::collectors::connections::OWNER_KEY,
    "TCP: established outbound connections of this series in loss recovery or with retransmitted segments not yet acknowledged at the moment of the pass (tcpi_ca_state recovery or loss, tcpi_retrans or tcpi_retransmits not zero).",
);

/// The health of a group of established TCP connections, aggregated while the pass streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Connections per RTT bucket (not cumulative; the last is +Inf).
    pub buckets: [u64; BUCKETS],
    /// Sum of the RTTs, microseconds.
    pub sum_us: u64,
    pub retransmitting: u64,
}

/// The compact health of one socket, for sockets whose series is known only after the pass
/// (outbound sockets wait for their owner): 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub rtt_us: u32,
    pub retransmitting: bool,
}

impl Probe {
    /// The health of an established TCP socket that came with its tcp_info.
    pub fn of(s: &InetSocket) -> Option<Probe> {
        if s.protocol != Protocol::Tcp || s.state != TCP_ESTABLISHED {
            return None;
        }
        s.tcp.map(|t| Probe {
            rtt_us: t.rtt_us,
            retransmitting: t.retransmitting(),
        })
    }
}

/// Index of the bucket of an RTT in microseconds.
pub fn bucket(rtt_us: u32) -> usize {
    BOUNDS_US.partition_point(|b| *b < rtt_us)
}

impl Health {
    pub fn add(&mut self, p: Probe) {
        self.buckets[bucket(p.rtt_us)] += 1;
        self.sum_us += u64::from(p.rtt_us);
        self.retransmitting += u64::from(p.retransmitting);
    }

    pub fn merge(&mut self, o: &Health) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
        self.sum_us += o.sum_us;
        self.retransmitting += o.retransmitting;
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Quantile `q` of the RTT in seconds as `histogram_quantile()` computes it from the
    /// rendered buckets (None without connections).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let bounds = bounds_seconds();
        let mut cumulative = Vec::with_capacity(BUCKETS);
        let mut total = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            total += n;
            let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
            cumulative.push((le, total));
        }
        bucket_quantile(q, &cumulative)
    }
}

/// Bucket bounds in seconds, for the exposition.
fn bounds_seconds() -> [f64; BOUNDS_US.len()] {
    BOUNDS_US.map(|b| f64::from(b) / 1e6)
}

/// The RTT histogram and retransmitting gauge of the rows that have health
/// ([`RowHealth::rtt`]), each labelled by `labels`: the one place where these families are
/// made.
pub fn render_rows<'a, R: 'a>(
    rtt: &'static Desc,
    retransmitting: &'static Desc,
    rows: impl Iterator<Item = &'a R>,
    health: impl Fn(&'a R) -> &'a RowHealth,
    labels: impl Fn(&R) -> Labels,
) -> [MetricFamily; 2] {
    render(
        rtt,
        retransmitting,
        rows.filter_map(|r| health(r).rtt.as_ref().map(|h| (labels(r), h))),
    )
}

/// The RTT histogram and retransmitting gauge of each series. A series is rendered when it has
/// connections (an idle listener has no RTT histogram, as it has nothing to measure).
fn render<'a>(
    rtt: &'static Desc,
    retransmitting: &'static Desc,
    series: impl Iterator<Item = (Labels, &'a Health)>,
) -> [MetricFamily; 2] {
    let bounds = bounds_seconds();
    let mut h = rtt.family();
    let mut r = retransmitting.family();
    for (labels, health) in series {
        if health.count() == 0 {
            continue;
        }
        r.push(labels.clone(), health.retransmitting);
        h.push_histogram(labels, &bounds, &health.buckets, health.sum_us as f64 / 1e6);
    }
    [h, r]
}

/// Quantile `q` of one gauge histogram series from its cumulative buckets `(le, count)` sorted
/// by `le` (the last `+Inf`), exactly as Prometheus' `histogram_quantile()` interpolates: None
/// without observations.
pub fn bucket_quantile(q: f64, buckets: &[(f64, u64)]) -> Option<f64> {
    let (&(_, total), _) = buckets.split_last()?;
    if total == 0 || buckets.len() < 2 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total as f64;
    let b = buckets
        .iter()
        .position(|&(_, c)| c as f64 >= rank)
        .unwrap_or(buckets.len() - 1);
    if b == buckets.len() - 1 {
        // In the +Inf bucket: the highest finite bound, as Prometheus answers.
        return Some(buckets[b - 1].0);
    }
    let (start, below) = if b == 0 {
        (0.0, 0)
    } else {
        (buckets[b - 1].0, buckets[b - 1].1)
    };
    let (end, upto) = buckets[b];
    let count = (upto - below) as f64;
    Some(start + (end - start) * ((rank - below as f64) / count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode_text, Part};

    #[test]
    fn buckets_are_upper_inclusive() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(100), 0);
        assert_eq!(bucket(101), 1);
        assert_eq!(bucket(80_400), 10); // le 0.128
        assert_eq!(BOUNDS_US[bucket(80_400)], 128_000);
        assert_eq!(bucket(4_096_000), 15);
        assert_eq!(bucket(u32::MAX), 16);
    }

    #[test]
    fn renders_a_cumulative_gauge_histogram() {
        let mut a = Health::default();
        a.add(Probe {
            rtt_us: 80_000,
            retransmitting: false,
        });
        a.add(Probe {
            rtt_us: 81_000,
            retransmitting: true,
        });
        a.add(Probe {
            rtt_us: 50,
            retransmitting: false,
        });
        let idle = Health::default();
        let labels = |p: &str| vec![("port", p.to_string())];
        let [h, r] = render(
            &LISTENER_RTT,
            &LISTENER_RETRANSMITTING,
            [(labels("1"), &a), (labels("2"), &idle)].into_iter(),
        );
        assert_eq!(r.samples.len(), 1);
        assert_eq!(r.samples[0].value.as_f64(), 1.0);
        assert_eq!(h.samples.len(), BUCKETS + 2);
        let text = encode_text(std::slice::from_ref(&h));
        assert!(text.contains("# TYPE netstat_listener_rtt_seconds histogram\n"));
        assert!(text.contains("netstat_listener_rtt_seconds_bucket{port=\"1\",le=\"0.0001\"} 1\n"));
        assert!(text.contains("netstat_listener_rtt_seconds_bucket{port=\"1\",le=\"0.064\"} 1\n"));
        assert!(text.contains("netstat_listener_rtt_seconds_bucket{port=\"1\",le=\"0.128\"} 3\n"));
        assert!(text.contains("netstat_listener_rtt_seconds_bucket{port=\"1\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("netstat_listener_rtt_seconds_sum{port=\"1\"} 0.16105\n"));
        assert!(text.contains("netstat_listener_rtt_seconds_count{port=\"1\"} 3\n"));
        assert_eq!(h.samples.last().map(|s| s.part), Some(Part::Count));
        let om = crate::metrics::encode_openmetrics(vec![h]);
        assert!(
            om.contains("# TYPE netstat_listener_rtt_seconds gaugehistogram\n"),
            "{om}"
        );
        assert!(om.contains("netstat_listener_rtt_seconds_gcount{port=\"1\"} 3\n"));
        assert!(om.contains("netstat_listener_rtt_seconds_gsum{port=\"1\"} 0.16105\n"));
        assert!(om.ends_with("# EOF\n"));
        assert_eq!(om.matches("# EOF").count(), 1);
    }
}
