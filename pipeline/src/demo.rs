//! The demo (`shopflow demo`): the whole pipeline in one process, on a
//! simulated shop.
//!
//! A generator thread plays a busy shop in real time (with duplicates, late
//! and malformed events) and hands each line to the worker that owns it (by
//! event id, reference data to worker 0), as Kafka partitions would; every
//! worker validates its lines as it would from Kafka, keeps them in its part
//! of the raw layer, and feeds the dataflow, which runs live. The dashboard (http://127.0.0.1:8080 by
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
use shopflow_dataflow::live::{Mark, Offer, Source, run_sources};
use shopflow_dataflow::run::{Input, route};
use shopflow_generator::sim::World;
use shopflow_generator::{Config, Generator, Paced, Sink};
use shopflow_model::{EventKind, Timestamp};
use shopflow_web::Board;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
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

/// One generated line: its topic, when it arrived, its bytes.
type Line = (EventKind, Timestamp, Vec<u8>);

/// Hands each generated line to the worker that owns it: events by id (so
/// every version of an id meets in one feeder), reference data and lines
/// without a readable id to worker 0.
struct Ingest {
    txs: Vec<SyncSender<Line>>,
}

impl Ingest {
    fn owner(&self, kind: EventKind, line: &[u8]) -> usize {
        const KEY: &[u8] = b"\"event_id\":\"";
        if !matches!(
            kind,
            EventKind::Click | EventKind::Cart | EventKind::Purchase
        ) {
            return 0;
        }
        let id = memchr::memmem::find(line, KEY).and_then(|at| {
            let rest = &line[at + KEY.len()..];
            let end = memchr::memchr(b'"', rest)?;
            std::str::from_utf8(&rest[..end]).ok()
        });
        id.map_or(0, |id| route(id, self.txs.len()))
    }
}

impl Sink for Ingest {
    fn emit(&mut self, kind: EventKind, arrival: Timestamp, line: &[u8]) -> io::Result<()> {
        let worker = self.owner(kind, line);
        self.txs[worker]
            .send((kind, arrival, line.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::Interrupted, "dataflow stopped"))
    }
}

/// One worker's input: its share of the lines, validated here as they would
/// be from Kafka (rejections counted), kept in its part of the raw layer,
/// and offered to the dataflow. Its mark is the newest event time minus the
/// out-of-orderness.
struct DemoSource {
    rx: Receiver<Line>,
    metrics: Arc<Metrics>,
    lake: Option<DemoLake>,
    max_ts: Option<i64>,
    ooo: i64,
}

impl Source for DemoSource {
    fn poll(&mut self, offer: &mut Offer<'_>, _in_flight: u64) -> bool {
        let deadline = Instant::now() + Duration::from_millis(20);
        while Instant::now() < deadline {
            let (kind, arrival, line) = match self.rx.try_recv() {
                Ok(line) => line,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            };
            self.metrics
                .add("shopflow_messages_total", &[("topic", kind.topic())], 1);
            let input = Input::from_line(kind, &line);
            if let Some(lake) = &mut self.lake {
                lake.add(kind, arrival, &line, input.as_ref().ok());
            }
            match input {
                Ok(input) => {
                    if let Input::Event(e, _) = &input {
                        self.max_ts = self.max_ts.max(Some(e.ts().0));
                    }
                    offer.input(input);
                }
                Err(e) => {
                    let labels = [("topic", kind.topic()), ("reason", e.reason.code())];
                    self.metrics.add("shopflow_invalid_total", &labels, 1);
                }
            }
        }
        true
    }

    fn mark(&self) -> Mark {
        match self.max_ts {
            Some(t) => Mark::Active(t - self.ooo),
            None => Mark::Hold,
        }
    }

    fn durable(&mut self, _upto: shopflow_dataflow::Time) {}
}

/// One worker's part of the demo's raw layer: one partition per topic (the
/// worker's index), offsets counted per topic from the run's start time in
/// microseconds (two runs never share a file name). The dataflow judges lateness after a line is written, so
/// valid lines carry the admission `not_recorded`. Markers follow the
/// generator's clock minus the out-of-orderness.
struct DemoLake {
    writer: RawWriter,
    partition: i32,
    next: [i64; 6],
    out_of_orderness_ms: i64,
    input_time: u64,
}

impl DemoLake {
    fn add(&mut self, kind: EventKind, arrival: Timestamp, line: &[u8], input: Option<&Input>) {
        let k = EventKind::ALL.iter().position(|x| *x == kind).unwrap_or(0);
        let record = RawRecord {
            partition: self.partition,
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
        if self.writer.due(kind, self.partition) {
            self.flush(kind);
            self.writer.settle(self.input_time, false);
        }
    }

    fn flush(&mut self, kind: EventKind) {
        if let Err(e) = self
            .writer
            .flush(kind.topic(), kind, self.partition, self.input_time)
        {
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

/// Opens the demo's lake directory, if any: one part per worker, sharing
/// the markers' bookkeeping.
fn open_lake(
    dir: Option<&str>,
    workers: usize,
    settings: &shopflow_dataflow::Settings,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Vec<Option<DemoLake>>> {
    let Some(dir) = dir else {
        return Ok((0..workers).map(|_| None).collect());
    };
    let lake = Arc::new(
        Lake::open(
            &LakeSettings {
                url: dir.to_owned(),
                ..LakeSettings::default()
            },
            Some(metrics.clone()),
        )
        .map_err(|e| anyhow::anyhow!("{e}; or pass --lake \"\" to run without a lake"))?,
    );
    tracing::info!(lake = %dir, "raw layer on (docs/lake.md)");
    let completion = Arc::new(Completion::default());
    Ok((0..workers)
        .map(|worker| {
            Some(DemoLake {
                writer: RawWriter::new(
                    lake.clone(),
                    completion.clone(),
                    worker,
                    settings.allowed_lateness_ms,
                    metrics.clone(),
                ),
                partition: worker as i32,
                next: [now_ms() * 1000; 6],
                out_of_orderness_ms: settings.out_of_orderness_ms,
                input_time: 0,
            })
        })
        .collect())
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
    let workers = plan.workers.max(1);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..workers).map(|_| sync_channel::<Line>(50_000)).unzip();
    let stop = shutdown.clone();
    let lakes = open_lake(plan.lake.as_deref(), workers, &settings, &metrics)?;
    let ooo = settings.out_of_orderness_ms;
    let sources: Vec<Option<DemoSource>> = rxs
        .into_iter()
        .zip(lakes)
        .map(|(rx, lake)| {
            Some(DemoSource {
                rx,
                metrics: metrics.clone(),
                lake,
                max_ts: None,
                ooo,
            })
        })
        .collect();
    let sources = std::sync::Mutex::new(sources);
    let ingest = Ingest { txs };
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
            run_sources(
                settings,
                workers,
                move |index, _| {
                    let source = sources.lock().expect("sources")[index].take();
                    Box::new(source.expect("one source per worker")) as Box<dyn Source>
                },
                move || stop.requested(),
                move |p| {
                    crate::run::export_progress(&live_metrics, &p);
                    let (upto, allowed_at) = (p.upto, p.allowed_at);
                    live.absorb(p);
                    if let Some(at) = allowed_at {
                        live_metrics.observe("shopflow_dashboard_delay_seconds", &[], at.elapsed());
                    }
                    upto
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
