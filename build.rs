//! Build metadata for `netstat_exporter_build_info` and `--version`: git revision and branch,
//! rustc version, build date (SOURCE_DATE_EPOCH when set, for reproducible builds), build user
//! and platform.
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Seconds since the epoch as Prometheus' build date format, `YYYYMMDD-HH:MM:SS` (UTC).
fn format_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn main() {
    let revision =
        output("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let branch =
        output("git", &["rev-parse", "--abbrev-ref", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    // Reproducible builds (https://reproducible-builds.org/specs/source-date-epoch/): the date
    // comes from SOURCE_DATE_EPOCH, and no build user or host name is recorded.
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let (date, user) = match epoch.as_deref().map(str::parse::<u64>) {
        Some(Ok(secs)) => (format_date(secs), "reproducible".to_string()),
        Some(Err(_)) => panic!("SOURCE_DATE_EPOCH is not a number of seconds: {epoch:?}"),
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let user = std::env::var("USER")
                .ok()
                .or_else(|| output("id", &["-un"]))
                .unwrap_or_else(|| "unknown".into());
            let host = output("hostname", &[])
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|| "unknown".into());
            (format_date(now), format!("{user}@{host}"))
        }
    };
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "amd64".to_string(),
        Ok("aarch64") => "arm64".to_string(),
        Ok("x86") => "386".to_string(),
        Ok(other) => other.to_string(),
        Err(_) => "unknown".to_string(),
    };
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=NETSTAT_EXPORTER_REVISION={revision}");
    println!("cargo:rustc-env=NETSTAT_EXPORTER_BRANCH={branch}");
    println!("cargo:rustc-env=NETSTAT_EXPORTER_RUSTC={rustc_version}");
    println!("cargo:rustc-env=NETSTAT_EXPORTER_BUILD_DATE={date}");
    println!("cargo:rustc-env=NETSTAT_EXPORTER_BUILD_USER={user}");
    println!("cargo:rustc-env=NETSTAT_EXPORTER_PLATFORM={os}/{arch}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Some(r) = output("git", &["symbolic-ref", "-q", "HEAD"]) {
        println!("cargo:rerun-if-changed=.git/{r}");
    }
}
