//! Flag values as the collectors' typed flags read them (durations, anchored regexes, the
//! `--NAME`/`--no-NAME` pairs): a leaf module, so that the collectors do not depend on the
//! configuration that is generated from their declarations.

use std::time::Duration;

use regex::Regex;

/// A duration as Prometheus writes them: `10s`, `500ms`, `1m`, `1.5s` (a bare number is
/// seconds), at most a day.
pub fn parse_duration(flag: &str, s: &str) -> Result<Duration, String> {
    parse_duration_max(flag, s, 86400.0)
}

/// [`parse_duration`] with `h` and `d` units too, up to `max_seconds`.
pub fn parse_duration_max(flag: &str, s: &str, max_seconds: f64) -> Result<Duration, String> {
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
        "d" => 86400.0,
        _ => return Err(format!("invalid {flag} {s:?}: use e.g. 10s, 500ms or 1m")),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * scale <= max_seconds => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        _ => Err(format!("invalid {flag} {s:?}: not a positive duration")),
    }
}

/// Compile a user regex anchored at both ends, as Prometheus and node_exporter do.
pub fn anchored_regex(flag: &str, re: Option<&str>) -> Result<Option<Regex>, String> {
    re.map(|r| Regex::new(&format!("^(?:{r})$")).map_err(|e| format!("invalid {flag} {r:?}: {e}")))
        .transpose()
}

/// Value of a `--NAME` / `--no-NAME` pair declared with `overrides_with` (the one given last
/// wins, so at most one is set): `on`, `off`, else `default`.
pub fn pair(on: bool, off: bool, default: bool) -> bool {
    if on {
        true
    } else if off {
        false
    } else {
        default
    }
}
