//! The demo (`shopflow demo`): the whole pipeline in one process, on a
//! simulated shop.
//!
//! A generator thread plays a busy shop in real time (with duplicates, late
//! and malformed events), every line is validated as it would be from Kafka,
//! and the dataflow runs live. The dashboard (http://127.0.0.1:8080 by
//! default) gets a new state per completed timestamp; the console view
//! refreshes every second. Every line is also kept in the lake's raw layer,
//! in a local directory (`docs/lake.md`).

use crate::console::{render, show};
use crate::dashboard::{Dashboard, TOKEN_VAR, now_ms, token};
use crate::shutdown::Shutdown;
use shopflow_connectors::lake::raw::RawRecord;
use shopflow_connectors::lake::writer::{Completion, RawWriter};
use shopflow_connectors::lake::{Lake, LakeSettings};
use shopflow_connectors::metrics::Metrics;
use shopflow_dataflow::run::{Input, run_live};
use shopflow_generator::sim::World;
use shopflow_generator::{Config, Generator, Paced, Sink};
use shopflow_model::{EventKind, Timestamp};
use shopflow_web::Board;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// What the demo is asked to do.
#[derive(Clone, Debug)]
pub struct DemoPlan {
    /// Dataflow settings, already validated.
    pub settings: shopflow_dataflow::Settings,
    /// Dataflow worker threads.
    pub workers: usize,
    /// Events per second the simulated shop sends (wall clock).
    pub rate: f64,
    /// Seed of the simulated shop.
    pub seed: u64,
    /// Stop after this long; `None`: when the shutdown flag is raised.
    pub duration: Option<Duration>,
    /// Fraction of exact re-sends.
    pub duplicates: f64,
    /// Fraction of events that arrive late.
    pub late: f64,
    /// Largest delay of a late event (ms).
    pub max_delay_ms: i64,
    /// Fraction of malformed messages.
    pub malformed: f64,
    /// Event time played before now, as fast as possible, so the views
    /// start full (ms).
    pub history_ms: i64,
    /// Address of the dashboard.
    pub listen: SocketAddr,
    /// Directory of the lake's raw layer; `None`: no lake.
    pub lake: Option<String>,
    /// File holding the dashboard token (the `SHOPFLOW_DASHBOARD_TOKEN`
    /// variable wins over it); without either, no token.
    pub token_file: Option<PathBuf>,
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
    dir: Option<&str>,
    settings: &shopflow_dataflow::Settings,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Option<DemoLake>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
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

/// The simulated shop of `plan`, starting at `start`.
fn shop(plan: &DemoPlan, start: Timestamp) -> Config {
    Config {
        seed: plan.seed,
        start,
        events: None,
        world: World {
            rate: plan.rate,
            users: 20_000,
            ..World::default()
        },
        duplicates: plan.duplicates,
        late: plan.late,
        malformed: plan.malformed,
        max_delay_ms: plan.max_delay_ms,
        ..Config::default()
    }
}

/// Runs the demo until `shutdown` is raised (or `plan.duration` has passed).
pub fn run(plan: DemoPlan, shutdown: Shutdown) -> anyhow::Result<()> {
    let settings = plan.settings.clone();
    let metrics = Arc::new(Metrics::default());
    let dashboard = Dashboard::new(Board::new(settings.clone(), "demo"), metrics.clone());
    let rt = crate::runtime()?;
    let token = token(std::env::var(TOKEN_VAR).ok(), plan.token_file.as_deref())?;
    let bound = dashboard.start(&rt, plan.listen, token)?;
    tracing::info!(%bound, "dashboard on http://{bound}/");
    // The history is played as fast as the dataflow takes it, then the
    // shop goes on in real time: the dashboard has something to show at once.
    let now = Timestamp(now_ms());
    let cfg = shop(&plan, Timestamp(now.0 - plan.history_ms));
    let (tx, rx) = sync_channel(50_000);
    let stop = shutdown.clone();
    let lake = open_lake(plan.lake.as_deref(), &settings, &metrics)?;
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
                plan.workers,
                rx,
                move || stop.requested(),
                move |p| {
                    crate::run::export_progress(&live_metrics, &p);
                    let allowed_at = p.allowed_at;
                    live.absorb(p);
                    if let Some(at) = allowed_at {
                        live_metrics.observe("shopflow_dashboard_delay_seconds", &[], at.elapsed());
                    }
                },
            )
        })?;
    tracing::info!(
        rate = plan.rate,
        workers = plan.workers,
        "demo running; Ctrl-C to stop"
    );
    let began = Instant::now();
    while !shutdown.requested() {
        std::thread::sleep(Duration::from_secs(1));
        dashboard.refresh_if_quiet();
        let view = render(&dashboard.board(), Timestamp(now_ms()));
        show(&format!("dashboard: http://{bound}/\n{view}"))?;
        if plan.duration.is_some_and(|d| began.elapsed() >= d) {
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
