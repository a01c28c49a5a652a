//! Memory under a long steady stream: a live run (watermarks, late events,
//! delayed retractions) fed as fast as it goes with 6 hours of event time at
//! 100 events/s, printing the process's resident memory every 15 minutes of
//! event time. State is bounded by the horizon, so RSS should level off once
//! the first records expire (about 70 minutes of event time in) and stay flat.
//!
//! Run: `cargo bench --bench memory` (about five minutes); set
//! `SHOPFLOW_BENCH_RATE` (events/s, default 100) and `SHOPFLOW_BENCH_HOURS`
//! (default 6) for other shapes. Figures go in `docs/benchmarks.md`.

use shopflow_dataflow::Settings;
use shopflow_dataflow::run::{Input, run_live};
use shopflow_generator::{Config, Generator, Sink};
use shopflow_model::{EventKind, Timestamp};
use std::io;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Instant;

/// The allocator the `shopflow` binary uses (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Feed(SyncSender<Input>);

impl Sink for Feed {
    fn emit(&mut self, kind: EventKind, _: Timestamp, line: &[u8]) -> io::Result<()> {
        let Ok(input) = Input::from_line(kind, line) else {
            return Ok(()); // malformed: counted elsewhere, not fed
        };
        self.0
            .send(input)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "dataflow gone"))
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench asks benches to list themselves
    }
    let env = |name: &str, default: f64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let hours = env("SHOPFLOW_BENCH_HOURS", 6.0);
    let rate = env("SHOPFLOW_BENCH_RATE", 100.0);
    let mut cfg = Config {
        seed: 9,
        events: None,
        duration_ms: Some((hours * 3_600_000.0) as i64),
        duplicates: 0.01,
        late: 0.02,
        malformed: 0.001,
        ..Config::default()
    };
    cfg.world.rate = rate;
    let start = cfg.start;
    let (tx, rx) = sync_channel(10_000);
    let generator = std::thread::spawn(move || Generator::new(cfg).run(&mut Feed(tx)));
    let began = Instant::now();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores; {rate} events/s of event time, {hours} h");
    println!("{:>10} {:>10} {:>10}", "event min", "RSS MiB", "wall s");
    let mut next_mark = 0i64;
    run_live(
        Settings::default(),
        1,
        rx,
        || false,
        move |p| {
            let minutes = (p.upto as i64 - start.0) / 60_000;
            if minutes >= next_mark && p.upto != u64::MAX {
                println!(
                    "{minutes:>10} {:>10.1} {:>10.1}",
                    rss_mib(),
                    began.elapsed().as_secs_f64()
                );
                next_mark += 15;
            }
        },
    )
    .expect("live run");
    generator
        .join()
        .expect("generator thread")
        .expect("generator");
}
