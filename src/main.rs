//! netstat_exporter: flags -> config -> serve (or print one scrape with --once).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use netstat_exporter::config::{self, Config};
use netstat_exporter::scrape::Scraper;
use netstat_exporter::web_config::WebRuntime;
use netstat_exporter::{logging, metrics, server};

/// `--version` / `-V`, laid out like the Prometheus exporters' (prometheus/common version.Print).
fn version_text() -> String {
    format!(
        "netstat_exporter, version {} (branch: {}, revision: {})\n  build user:       {}\n  build date:       {}\n  rustc version:    {}\n  platform:         {}\n",
        netstat_exporter::self_metrics::VERSION,
        env!("NETSTAT_EXPORTER_BRANCH"),
        netstat_exporter::self_metrics::REVISION,
        env!("NETSTAT_EXPORTER_BUILD_USER"),
        env!("NETSTAT_EXPORTER_BUILD_DATE"),
        netstat_exporter::self_metrics::RUSTC,
        env!("NETSTAT_EXPORTER_PLATFORM"),
    )
}

fn main() -> ExitCode {
    // Collections run on short-lived threads (one per job, workers per network namespace);
    // glibc gives each new thread its own malloc arena, and idle arenas keep their memory.
    // Two arenas bound the RSS without contention worth measuring at this load.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        // Blocks of 256 KiB and more (a scrape's per-socket vectors and tables at 100k
        // sockets and up) always come from mmap: returned to the kernel when freed, grown in
        // place by mremap, and resident only where touched. Setting it fixes glibc's
        // threshold, which otherwise rises to the largest block freed so far and then serves
        // such blocks from the heap, where they stay resident after the scrape
        // (docs/benchmarks.md: the peak at 300k sockets).
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
    let matches = match config::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            if e.kind() == ErrorKind::DisplayVersion {
                print!("{}", version_text());
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelp {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line naming the problem (clap's own text without the usage block).
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("netstat_exporter: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_matches(matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netstat_exporter: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config.log_level, &config.log_format);
    let scraper = match Scraper::from_config(&config) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("netstat_exporter: {e}");
            return ExitCode::from(2);
        }
    };

    if config.once {
        // The watch's first tick names every listener (and its metrics are in the output).
        if let Err(e) = scraper.start_watch(&config) {
            eprintln!("netstat_exporter: {e}");
            return ExitCode::from(2);
        }
        let families = scraper.scrape(None);
        let text = metrics::encode(families, metrics::Format::Text);
        let mut out = std::io::stdout().lock();
        return match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("netstat_exporter: cannot write to stdout: {e}");
                ExitCode::from(1)
            }
        };
    }

    // A web config that does not load is a startup error, like a bad flag.
    let web = match WebRuntime::from_option(config.web_config_file.as_deref()) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            eprintln!("netstat_exporter: {e}");
            return ExitCode::from(2);
        }
    };

    tracing::info!(
        version = netstat_exporter::self_metrics::VERSION,
        revision = netstat_exporter::self_metrics::REVISION,
        collectors = %scraper.collector_names().join(","),
        "starting netstat_exporter"
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("netstat_exporter: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(server::serve_with(&config, scraper, web)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netstat_exporter: {e}");
            ExitCode::from(1)
        }
    }
}
