//! Adding a collector takes its own file and one line in a registry: flags, `--help`,
//! `collect[]`, the scrape and the generated docs all follow from its declaration. The
//! "file" of a dummy collector is the first half of this test; the registry line is `REG`.

use netstat_exporter::collectors::{
    sockets, BuildContext, Collected, Collector, CollectorDecl, CollectorFlags, FlagsDecl,
    SimpleCollector,
};
use netstat_exporter::config::{command_with, Config};
use netstat_exporter::docs::{flags_markdown, metrics_markdown};
use netstat_exporter::metrics::{encode_text, Desc};
use netstat_exporter::scrape::Scraper;
use netstat_exporter::source::netns::Netns;

// ---- the collector's file -------------------------------------------------------------

pub const DECL: CollectorDecl = CollectorDecl {
    name: "dummy",
    default_enabled: false,
    help: "a dummy collector that reports a configured number",
    metrics,
    flags: FlagsDecl::of::<DummyFlags>(),
};

pub static ANSWER: Desc = Desc::gauge(
    "netstat_dummy_answer",
    &["dir"],
    "The number given with --collector.dummy.answer, labelled with the namespace's net directory.",
);

fn metrics() -> Vec<&'static Desc> {
    vec![&ANSWER]
}

#[derive(clap::Args, Clone, Debug)]
#[group(skip)]
pub struct DummyFlags {
    #[arg(
        id = "collector.dummy.answer",
        long = "collector.dummy.answer",
        value_name = "N",
        default_value = "42",
        help = "The number the dummy collector reports."
    )]
    answer: u64,
}

impl CollectorFlags for DummyFlags {
    fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Collector>, String> {
        Ok(Box::new(Dummy(self.answer)))
    }
}

struct Dummy(u64);

impl SimpleCollector for Dummy {
    fn name(&self) -> &'static str {
        DECL.name
    }

    fn collect(&self, ns: &Netns) -> Collected {
        Collected {
            families: vec![ANSWER
                .family()
                .with(vec![("dir", ns.net_dir().display().to_string())], self.0)],
            errors: Vec::new(),
            ..Collected::default()
        }
    }
}

// ---- the registry line ----------------------------------------------------------------

static REG: &[&CollectorDecl] = &[&sockets::DECL, &DECL];

// ---- what follows from it -------------------------------------------------------------

#[test]
fn a_new_collector_needs_only_its_file_and_one_registry_line() {
    let help = command_with(REG).render_long_help().to_string();
    for needle in [
        "--collector.dummy",
        "--no-collector.dummy",
        "--collector.dummy.answer",
        "The number the dummy collector reports.",
        DECL.help,
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }

    // Disabled by default, as declared; enabled by its flag, with its own flag parsed.
    let default = Config::from_args_with(REG, ["netstat_exporter"]).unwrap();
    assert_eq!(default.enabled, vec!["sockets"]);
    let config = Config::from_args_with(
        REG,
        [
            "netstat_exporter",
            "--no-collector.sockets",
            "--collector.dummy",
            "--collector.dummy.answer=7",
        ],
    )
    .unwrap();
    assert_eq!(config.enabled, vec!["dummy"]);
    let built = config.build_collectors().unwrap();
    assert_eq!(built.len(), 1);
    assert!(Config::from_args_with(REG, ["x", "--collector.dummy.answer=many"]).is_err());

    // Scraped, selectable with collect[], with its success and duration.
    let scraper = Scraper::new(built, "/proc".into());
    scraper.check_selection(&["dummy".into()]).unwrap();
    assert!(scraper.check_selection(&["sockets".into()]).is_err());
    let text = encode_text(&scraper.scrape(Some(&["dummy".into()])));
    assert!(
        text.contains("netstat_dummy_answer{dir=\"/proc/net\"} 7\n"),
        "{text}"
    );
    assert!(
        text.contains("netstat_scrape_collector_success{collector=\"dummy\"} 1\n"),
        "{text}"
    );

    // Documented.
    let metrics_md = metrics_markdown(REG, &[]);
    assert!(metrics_md.contains("## Collector `dummy` (disabled by default)"));
    assert!(metrics_md.contains("| `netstat_dummy_answer` | gauge |"));
    let flags_md = flags_markdown(REG);
    assert!(flags_md.contains("## Collector `dummy`"));
    assert!(flags_md.contains("`--collector.dummy.answer=N` | `42`"));
}
