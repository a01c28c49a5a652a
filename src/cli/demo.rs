//! `shopflow demo`: the whole pipeline in one process, on embedded defaults.
//!
//! A generator thread plays a busy shop in real time (with duplicates, late
//! and malformed events), every line is validated as it would be from Kafka,
//! and the dataflow runs live; the console view refreshes every second.

use super::console::{DemoState, render, show};
use super::{parse_duration_ms, parse_fraction};
use crate::shutdown::Shutdown;
use shopflow_dataflow::run::{Input, run_live};
use shopflow_generator::sim::World;
use shopflow_generator::{Config, Generator, Paced, Sink};
use shopflow_model::{EventKind, Timestamp};
use std::io;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events per second the simulated shop sends (wall clock).
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// Seed of the simulated shop.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Dataflow worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Stop after this long (like 30s or 10m) instead of waiting for Ctrl-C.
    #[arg(long, value_parser = parse_duration_ms)]
    duration: Option<i64>,
    /// Fraction of exact re-sends.
    #[arg(long, default_value_t = 0.005, value_parser = parse_fraction)]
    duplicates: f64,
    /// Fraction of events that arrive late.
    #[arg(long, default_value_t = 0.02, value_parser = parse_fraction)]
    late: f64,
    /// Largest delay of a late event; beyond the allowed lateness (5m) it is too late.
    #[arg(long, default_value = "6m", value_parser = parse_duration_ms)]
    max_delay: i64,
    /// Fraction of malformed messages.
    #[arg(long, default_value_t = 0.001, value_parser = parse_fraction)]
    malformed: f64,
    #[command(flatten)]
    dataflow: super::DataflowArgs,
}

/// Validates generated lines and passes them to the dataflow, counting rejections.
struct Ingest {
    tx: SyncSender<Input>,
    state: Arc<Mutex<DemoState>>,
}

impl Sink for Ingest {
    fn emit(&mut self, kind: EventKind, _arrival: Timestamp, line: &[u8]) -> io::Result<()> {
        let input = match Input::from_line(kind, line) {
            Ok(input) => input,
            Err(e) => {
                self.state.lock().expect("state").rejected(e.reason.code());
                return Ok(());
            }
        };
        self.state.lock().expect("state").lines += 1;
        self.tx
            .send(input)
            .map_err(|_| io::Error::new(io::ErrorKind::Interrupted, "dataflow stopped"))
    }
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp(ms)
}

/// Runs `demo` until Ctrl-C (or `--duration`).
pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = args.dataflow.settings()?;
    let shutdown = Shutdown::install()?;
    let state = Arc::new(Mutex::new(DemoState::new(settings.clone())));
    let start = now();
    let cfg = Config {
        seed: args.seed,
        start,
        events: None,
        world: World {
            rate: args.rate,
            users: 20_000,
            ..World::default()
        },
        duplicates: args.duplicates,
        late: args.late,
        malformed: args.malformed,
        max_delay_ms: args.max_delay,
        ..Config::default()
    };
    let (tx, rx) = sync_channel(50_000);
    let stop = shutdown.clone();
    let ingest = Ingest {
        tx,
        state: state.clone(),
    };
    let generator = std::thread::Builder::new()
        .name("generator".into())
        .spawn(move || {
            let mut sink = Paced::new(ingest, true, start, move || stop.requested());
            Generator::new(cfg).run(&mut sink)
        })?;
    let (live_state, stop) = (state.clone(), shutdown.clone());
    let dataflow = std::thread::Builder::new()
        .name("dataflow".into())
        .spawn(move || {
            run_live(
                settings,
                args.workers,
                rx,
                move || stop.requested(),
                move |p| {
                    live_state.lock().expect("state").absorb(p);
                },
            )
        })?;
    tracing::info!(
        rate = args.rate,
        workers = args.workers,
        "demo running; Ctrl-C to stop"
    );
    let began = Instant::now();
    while !shutdown.requested() {
        std::thread::sleep(Duration::from_secs(1));
        show(&render(&state.lock().expect("state"), now()))?;
        if args
            .duration
            .is_some_and(|d| began.elapsed() >= Duration::from_millis(d as u64))
        {
            shutdown.request();
        }
    }
    generator
        .join()
        .map_err(|_| anyhow::anyhow!("the generator thread panicked"))??;
    dataflow
        .join()
        .map_err(|_| anyhow::anyhow!("the dataflow thread panicked"))?
        .map_err(|e| anyhow::anyhow!(e))?;
    let s = state.lock().expect("state");
    tracing::info!(lines = s.lines, upto = %Timestamp(s.upto as i64), "demo stopped");
    Ok(())
}
