//! The per-scrape cost of the socket-destroy counters' typed rows (`flows::Bank::rows`, what
//! the snapshot and the page get) next to the rendering of their families from those rows
//! (`flows::render_rows`, what /metrics needs anyway) and the snapshot's JSON of the rows, for
//! one namespace whose bank is full: [`MAX_SERIES`] outbound keys, as many inbound keys and
//! failures keys of both reasons (the most a namespace can hold), half of them on outbound
//! keys, half on keys of their own. The three are run
//! round-robin, medians compared.
//!
//! Run: `cargo bench --bench flow_rows`. Options after `--`:
//!   --iterations 301

use std::time::Instant;

use netstat_exporter::flows::{render_rows, Bank, Reason, Totals, MAX_SERIES};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn full_bank() -> Bank {
    let mut bank = Bank::default();
    let t = Totals {
        closed: 123_456,
        sent: 987_654_321,
        received: 123_456_789,
        retransmits: 42,
    };
    for i in 0..MAX_SERIES {
        let port = (1000 + i).to_string();
        let service = format!("svc-{i}");
        bank.outbound.insert(
            vec![
                "tcp".into(),
                port.clone(),
                service.clone(),
                "public".into(),
                "unknown".into(),
                String::new(),
                String::new(),
            ],
            t,
        );
        bank.inbound.insert(
            vec![
                "tcp".into(),
                port.clone(),
                service.clone(),
                "nginx".into(),
                "private".into(),
            ],
            t,
        );
        // Half the failures on keys that also closed connections, half on keys of their own.
        let key = vec![
            "tcp".to_string(),
            if i % 2 == 0 {
                port
            } else {
                (3000 + i).to_string()
            },
            service,
            "public".into(),
            "unknown".into(),
        ];
        bank.failures.insert((key.clone(), Reason::Refused), 7);
        bank.failures.insert((key, Reason::Timeout), 3);
    }
    bank
}

fn main() {
    let iterations: usize = arg("--iterations")
        .and_then(|v| v.parse().ok())
        .unwrap_or(301);
    let bank = full_bank();
    let rows = bank.rows();
    assert_eq!(rows.outbound.len(), MAX_SERIES + MAX_SERIES / 2);
    let (mut t_rows, mut t_render, mut t_json) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for _ in 0..iterations {
        let t0 = Instant::now();
        let r = std::hint::black_box(bank.rows());
        t_rows.push(t0.elapsed().as_secs_f64() * 1e6);
        let t0 = Instant::now();
        let f = std::hint::black_box(render_rows(&r));
        t_render.push(t0.elapsed().as_secs_f64() * 1e6);
        let t0 = Instant::now();
        let mut j = serde_json::to_vec(&r.outbound).unwrap();
        j.extend(serde_json::to_vec(&r.inbound).unwrap());
        t_json.push(t0.elapsed().as_secs_f64() * 1e6);
        bytes = j.len();
        drop((r, f, j));
    }
    let (rows_us, render_us, json_us) = (median(t_rows), median(t_render), median(t_json));
    println!(
        "one full namespace bank ({MAX_SERIES} outbound, {MAX_SERIES} inbound, {} failures keys), {iterations} iterations, medians:",
        2 * MAX_SERIES
    );
    println!("  Bank::rows (typed rows):          {rows_us:8.0} us");
    println!(
        "  render_rows (the 7 families):     {render_us:8.0} us  (rows / render = {:.2}x)",
        rows_us / render_us
    );
    println!(
        "  snapshot JSON of the rows:        {json_us:8.0} us  ({:.0} kB)",
        bytes as f64 / 1000.0
    );
}
