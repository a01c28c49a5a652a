//! `shopflow demo`: the whole pipeline in one process, on embedded defaults.
//!
//! A generator thread plays a busy shop in real time (with duplicates, late
//! and malformed events), every line is validated as it would be from Kafka,
//! and the dataflow runs live. The dashboard (http://127.0.0.1:8080 by
//! default) gets a new state per completed timestamp; the console view
//! refreshes every second. Every line is also kept in the lake's raw layer,
//! in a local directory (`data/lake` by default; `docs/lake.md`).

use super::{parse_duration_ms, parse_fraction};
use shopflow_connectors::lake::raw::RawRecord;
use shopflow_connectors::lake::writer::{Completion, RawWriter};
use shopflow_connectors::lake::{Lake, LakeSettings};
use shopflow_connectors::metrics::Metrics;
use shopflow_dataflow::run::{Input, run_live};
use shopflow_generator::sim::World;
use shopflow_generator::{Config, Generator, Paced, Sink};
use shopflow_model::{EventKind, Timestamp};
use shopflow_pipeline::console::{render, show};
use shopflow_pipeline::dashboard::{Dashboard, TOKEN_VAR, now_ms, token};
use shopflow_pipeline::shutdown::Shutdown;
use shopflow_web::Board;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
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
    /// Event time to play before now, as fast as possible, so the views start
    /// full (like 10m; 0 starts empty). Catching up takes about a second
    /// per 20,000 events on 2 cores.
    #[arg(long, default_value = "5m", value_parser = parse_duration_ms)]
    history: i64,
    /// Address of the dashboard. It binds loopback by default; to expose it
    /// on a network, give an address like 0.0.0.0:8080 and set a token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the lake's raw layer (every generated message as Parquet,
    /// docs/lake.md); "" turns it off.
    #[arg(long, default_value = "data/lake")]
    lake: String,
    /// File holding the token the dashboard's /api/* and /ws require
    /// (SHOPFLOW_DASHBOARD_TOKEN wins over it). Without either: no token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    dataflow: super::DataflowArgs,
}

/// Validates generated lines and passes them to the dataflow, counting
/// rejections; with a lake, keeps every line in its raw layer.
struct Ingest {
    tx: SyncSender<Input>,
    metrics: Arc<Metrics>,
    lake: Option<DemoLake>,
}

/// The demo's raw layer: one partition (0) per topic, offsets counted per
/// topic from the run's start time in microseconds (two runs never share a
/// file name). The dataflow judges lateness after a line is written, so
/// valid lines carry the admission `not_recorded`. Markers follow the
/// generator's clock minus the out-of-orderness.
struct DemoLake {
    writer: RawWriter,
    next: [i64; 6],
    out_of_orderness_ms: i64,
    input_time: u64,
}

impl DemoLake {
    fn add(&mut self, kind: EventKind, arrival: Timestamp, line: &[u8], input: Option<&Input>) {
        let k = EventKind::ALL.iter().position(|x| *x == kind).unwrap_or(0);
        let record = RawRecord {
            partition: 0,
            offset: self.next[k],
            kafka_ts: Some(arrival.0),
            key: None,
            payload: line.to_vec(),
            admission: input.map(|_| "not_recorded"),
            entered: None,
        };
        self.next[k] += 1;
        self.writer
            .add(kind, input.map_or(arrival.0, Input::ts), record);
        self.input_time = self
            .input_time
            .max((arrival.0 - self.out_of_orderness_ms).max(0) as u64);
        if self.writer.due(kind, 0) {
            self.flush(kind);
            self.writer.settle(self.input_time, false);
        }
    }

    fn flush(&mut self, kind: EventKind) {
        if let Err(e) = self.writer.flush(kind.topic(), kind, 0, self.input_time) {
            tracing::warn!(error = %e, "cannot write the demo's raw files; retried at the next flush");
        }
    }
}

impl Drop for DemoLake {
    fn drop(&mut self) {
        for kind in EventKind::ALL {
            self.flush(kind);
        }
        self.writer.settle(self.input_time, true);
    }
}

impl Sink for Ingest {
    fn emit(&mut self, kind: EventKind, arrival: Timestamp, line: &[u8]) -> io::Result<()> {
        self.metrics
            .add("shopflow_messages_total", &[("topic", kind.topic())], 1);
        let input = Input::from_line(kind, line);
        if let Some(lake) = &mut self.lake {
            lake.add(kind, arrival, line, input.as_ref().ok());
        }
        let input = match input {
            Ok(input) => input,
            Err(e) => {
                let reason = e.reason.code();
                let labels = [("topic", kind.topic()), ("reason", reason)];
                self.metrics.add("shopflow_invalid_total", &labels, 1);
                return Ok(());
            }
        };
        self.tx
            .send(input)
            .map_err(|_| io::Error::new(io::ErrorKind::Interrupted, "dataflow stopped"))
    }
}

/// Opens the demo's lake directory, if any.
fn open_lake(
    dir: &str,
    settings: &shopflow_dataflow::Settings,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Option<DemoLake>> {
    if dir.is_empty() {
        return Ok(None);
    }
    let lake = Lake::open(
        &LakeSettings {
            url: dir.to_owned(),
            ..LakeSettings::default()
        },
        Some(metrics.clone()),
    )
    .map_err(|e| anyhow::anyhow!("{e}; or pass --lake \"\" to run without a lake"))?;
    tracing::info!(lake = %dir, "raw layer on (docs/lake.md)");
    let writer = RawWriter::new(
        Arc::new(lake),
        Arc::new(Completion::default()),
        0,
        settings.allowed_lateness_ms,
        metrics.clone(),
    );
    Ok(Some(DemoLake {
        writer,
        next: [now_ms() * 1000; 6],
        out_of_orderness_ms: settings.out_of_orderness_ms,
        input_time: 0,
    }))
}

/// Runs `demo` until Ctrl-C (or `--duration`).
pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = args.dataflow.settings()?;
    let shutdown = Shutdown::install()?;
    let metrics = Arc::new(Metrics::default());
    let dashboard = Dashboard::new(Board::new(settings.clone(), "demo"), metrics.clone());
    let rt = super::run::runtime()?;
    let token = token(std::env::var(TOKEN_VAR).ok(), args.token_file.as_deref())?;
    let bound = dashboard.start(&rt, args.listen, token)?;
    tracing::info!(%bound, "dashboard on http://{bound}/");
    // The history is played as fast as the dataflow takes it, then the
    // shop goes on in real time: the dashboard has something to show at once.
    let now = Timestamp(now_ms());
    let start = Timestamp(now.0 - args.history);
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
    let lake = open_lake(&args.lake, &settings, &metrics)?;
    let ingest = Ingest {
        tx,
        metrics: metrics.clone(),
        lake,
    };
    let generator = std::thread::Builder::new()
        .name("generator".into())
        .spawn(move || {
            let mut sink = Paced::new(ingest, true, now, move || stop.requested());
            Generator::new(cfg).run(&mut sink)
        })?;
    let (live, live_metrics, stop) = (dashboard.clone(), metrics.clone(), shutdown.clone());
    let dataflow = std::thread::Builder::new()
        .name("dataflow".into())
        .spawn(move || {
            run_live(
                settings,
                args.workers,
                rx,
                move || stop.requested(),
                move |p| {
                    super::run::export_progress(&live_metrics, &p);
                    live.absorb(p);
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
        dashboard.refresh_if_quiet();
        let view = render(&dashboard.board(), Timestamp(now_ms()));
        show(&format!("dashboard: http://{bound}/\n{view}"))?;
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
    dashboard.close();
    let board = dashboard.board();
    tracing::info!(lines = board.lines(), upto = %Timestamp(board.upto() as i64), "demo stopped");
    Ok(())
}
