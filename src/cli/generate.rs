//! `shopflow generate`: writes a directory of generated traffic plus its manifest.

use super::{parse_duration_ms, parse_fraction};
use anyhow::{Context, bail};
use shopflow_generator::sim::World;
use shopflow_generator::{Config, FileSink, Generator, Paced, Sink};
use shopflow_model::{EventKind, Timestamp};
use shopflow_pipeline::shutdown::Shutdown;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `generate`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  shopflow generate --seed 7 --events 100000 --duplicates 0.01 \\\n    --late 0.05 --malformed 0.002 --out-dir data/gen"
)]
pub struct Args {
    /// Seed of every random choice: same seed and arguments, byte-identical files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Lines to write to the three event files, faults included
    /// [default: 100000 unless --duration or --realtime is given].
    #[arg(long)]
    events: Option<u64>,
    /// Event time to cover instead of a line count, like 30m, 6h or 2d.
    #[arg(long, value_parser = parse_duration_ms)]
    duration: Option<i64>,
    /// Event time of the first record, RFC 3339
    /// [default: 2026-11-24T00:00:00Z, or now with --realtime].
    #[arg(long, value_parser = |s: &str| Timestamp::parse_rfc3339(s).map_err(|_| format!("`{s}` is not an RFC 3339 time like 2026-11-24T10:00:00Z")))]
    start: Option<Timestamp>,
    /// Average events per second of event time (and of wall-clock time with --realtime).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Users existing at the start (more sign up during the run).
    #[arg(long, default_value_t = 2_000)]
    users: usize,
    /// Products in the catalog.
    #[arg(long, default_value_t = 500)]
    products: usize,
    /// Fraction of lines that exactly re-send an earlier event.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    duplicates: f64,
    /// Fraction of events emitted out of order, up to --max-delay behind.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    late: f64,
    /// Largest delay of a late event, like 30s or 5m.
    #[arg(long, default_value = "60s", value_parser = parse_duration_ms)]
    max_delay: i64,
    /// Fraction of lines that are malformed (broken JSON, missing field, wrong
    /// type, bad timestamp, negative quantity, unknown currency, oversized).
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    malformed: f64,
    /// Pace output at --rate events per wall-clock second (event time = wall time).
    #[arg(long)]
    realtime: bool,
    /// Directory for clicks.jsonl, carts.jsonl, purchases.jsonl, fx_rates.jsonl,
    /// products.jsonl, users.jsonl and manifest.json (created if missing).
    #[arg(long, required_unless_present = "kafka")]
    out_dir: Option<PathBuf>,
    /// Also (or instead) produce every line to its Kafka topic on these
    /// brokers, keyed by session (events) or record id (reference data).
    #[arg(long, value_name = "BROKERS")]
    kafka: Option<String>,
    /// Prefix of the topic names with --kafka.
    #[arg(long, default_value = "")]
    topic_prefix: String,
}

/// Runs `generate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.duplicates + args.malformed > 1.0 {
        bail!("--duplicates plus --malformed is over 1: no line would be left for fresh events");
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!(
            "--rate must be a positive number of events per second, got {}",
            args.rate
        );
    }
    let start = match (args.start, args.realtime) {
        (Some(t), _) => t,
        (None, true) => now(),
        (None, false) => Config::default().start,
    };
    let events = match (args.events, args.duration, args.realtime) {
        (Some(n), _, _) => Some(n),
        (None, None, false) => Config::default().events,
        _ => None,
    };
    let cfg = Config {
        seed: args.seed,
        start,
        events,
        duration_ms: args.duration,
        world: World {
            users: args.users,
            products: args.products,
            rate: args.rate,
            ..World::default()
        },
        duplicates: args.duplicates,
        late: args.late,
        malformed: args.malformed,
        max_delay_ms: args.max_delay,
    };
    let shutdown = Shutdown::install()?;
    let files = match &args.out_dir {
        Some(dir) => Some(
            FileSink::create(dir)
                .with_context(|| format!("cannot create output files in {}", dir.display()))?,
        ),
        None => None,
    };
    let kafka = match &args.kafka {
        Some(brokers) => Some(super::produce::KafkaSink::connect(
            brokers,
            &args.topic_prefix,
        )?),
        None => None,
    };
    let stop = move || shutdown.requested();
    let paced = Paced::new(Tee(files, kafka), args.realtime, start, stop);
    let mut sink = Progress {
        inner: paced,
        last_report: Instant::now(),
    };
    let began = Instant::now();
    let manifest = Generator::new(cfg)
        .run(&mut sink)
        .context("writing generated lines failed")?;
    if let Some(dir) = &args.out_dir {
        let path = dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&manifest)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let secs = began.elapsed().as_secs_f64();
    let events: u64 = manifest
        .lines
        .iter()
        .filter(|(f, _)| is_event_file(f))
        .map(|(_, n)| n)
        .sum();
    tracing::info!(
        dir = ?args.out_dir,
        kafka = ?args.kafka,
        events,
        lines_per_second = format!("{:.0}", manifest.lines.values().sum::<u64>() as f64 / secs.max(1e-9)),
        sessions = manifest.sessions,
        end = %manifest.end,
        seconds = format!("{secs:.2}"),
        "generated"
    );
    Ok(())
}

fn is_event_file(name: &str) -> bool {
    [EventKind::Click, EventKind::Cart, EventKind::Purchase]
        .iter()
        .any(|k| name == format!("{}.jsonl", k.topic()))
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp(ms)
}

/// Logs progress every few seconds on long runs.
struct Progress<S> {
    inner: S,
    last_report: Instant,
}

impl<S: Sink> Sink for Progress<S> {
    fn emit(&mut self, kind: EventKind, arrival: Timestamp, line: &[u8]) -> io::Result<()> {
        self.inner.emit(kind, arrival, line)?;
        if self.last_report.elapsed() >= Duration::from_secs(5) {
            self.last_report = Instant::now();
            tracing::info!(event_time = %arrival, "generating");
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
}

/// Writes to the files, Kafka, or both.
struct Tee(Option<FileSink>, Option<super::produce::KafkaSink>);

impl Sink for Tee {
    fn emit(&mut self, kind: EventKind, arrival: Timestamp, line: &[u8]) -> io::Result<()> {
        if let Some(files) = &mut self.0 {
            files.emit(kind, arrival, line)?;
        }
        if let Some(kafka) = &mut self.1 {
            kafka.emit(kind, arrival, line)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(files) = &mut self.0 {
            files.finish()?;
        }
        if let Some(kafka) = &mut self.1 {
            kafka.finish()?;
        }
        Ok(())
    }
}
