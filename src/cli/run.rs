//! `shopflow run`: live Kafka into the dataflow.
//!
//! Start-up: load the configuration (reporting every problem at once),
//! create the topics if missing, read their partition counts, give each
//! worker its partitions, start the FX poller and the metrics endpoint. Then
//! the dataflow runs until SIGINT/SIGTERM (or, with `run.exit_when_idle_ms`,
//! until every partition is idle); it closes its inputs, drains, commits the
//! last offsets and, with `run.output_csv`, writes every table.

use super::warehouse::{Writer, open_warehouse};
use anyhow::{Context, anyhow};
use shopflow_connectors::fx_poller::FxPoller;
use shopflow_connectors::kafka::dead_letters::DeadLetters;
use shopflow_connectors::kafka::producer::{Producer, TopicPublisher};
use shopflow_connectors::kafka::recovery::Recovery;
use shopflow_connectors::kafka::relay::SinkRelay;
use shopflow_connectors::kafka::source::{KafkaSource, Wiring, assignment, partition_counts};
use shopflow_connectors::kafka::topics;
use shopflow_connectors::lake::Lake;
use shopflow_connectors::lake::writer::{Completion, RawWriter};
use shopflow_connectors::metrics::Metrics;
use shopflow_dataflow::live::{NoSource, Relay, Source, run_cluster};
use shopflow_dataflow::run::Progress;
use shopflow_dataflow::{Tables, Time};
use shopflow_model::{EventKind, Timestamp};
use shopflow_pipeline::config::RunConfig;
use shopflow_pipeline::console::{render, show};
use shopflow_pipeline::dashboard::{Dashboard, now_ms};
use shopflow_pipeline::shutdown::Shutdown;
use shopflow_web::{Board, WarehouseCommit};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `run`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Configuration: defaults < the TOML file < SHOPFLOW_* variables (docs/configuration.md).\nExample:\n  deploy/local/up.sh\n  shopflow run --config deploy/local/shopflow.toml"
)]
pub struct Args {
    /// TOML configuration file (optional: the defaults suit deploy/local).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Worker threads per process (overrides dataflow.workers).
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    cluster: super::ClusterArgs,
}

/// Arguments of `topics`.
#[derive(clap::Args, Debug)]
pub struct TopicsArgs {
    /// `create`: create every topic that is missing (idempotent).
    #[arg(value_parser = ["create"])]
    action: String,
    /// TOML configuration file (its [kafka] section is used).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Loads the configuration or fails with every problem listed.
pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<RunConfig> {
    shopflow_pipeline::config::load(path)
}

/// The runtime of the HTTP endpoints and Kafka admin calls.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// Runs `topics create`.
pub fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    let config = load(args.config.as_deref())?;
    let outcomes = topics::create(&config.kafka).map_err(|e| anyhow!(e))?;
    for (name, outcome) in outcomes {
        println!(
            "{name}: {}",
            match outcome {
                topics::Outcome::Created => "created",
                topics::Outcome::Existed => "exists",
            }
        );
    }
    Ok(())
}

/// Runs `run`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = load(args.config.as_deref())?;
    if let Some(w) = args.workers {
        anyhow::ensure!(w > 0, "--workers must be at least 1");
        config.workers = w;
    }
    let mut cluster = args.cluster.cluster(config.workers, &config.cluster)?;
    let leader = cluster.is_leader();
    if !leader {
        // The dashboard, the console and the FX poller are process 0's.
        config.dashboard_listen = None;
        config.console = false;
        config.fx.url.clear();
        config.output_csv = None;
    }
    let shutdown = Shutdown::install()?;
    let rt = runtime()?;
    let metrics = Arc::new(Metrics::default());
    if leader {
        let created = topics::create(&config.kafka).map_err(|e| anyhow!(e))?;
        for (name, outcome) in &created {
            if *outcome == topics::Outcome::Created {
                tracing::info!(topic = %name, "created topic");
            }
        }
    }
    if cluster.processes() > 1 {
        // Connect before reading where to resume: every process of this
        // generation is up, so no process of the last one still commits.
        // They share process 0's run start, which marks their raw files.
        let mine = if leader {
            shopflow_connectors::lake::writer::run_started() as u64
        } else {
            0
        };
        tracing::info!(process = cluster.process, processes = cluster.processes(), peers = ?cluster.addresses, "connecting to the cluster");
        let token = cluster.connect(mine).map_err(|e| anyhow!(e))?;
        if !leader {
            shopflow_connectors::lake::writer::set_run_started(token as i64);
        }
    }
    if let Some(addr) = config.metrics_listen {
        let routes = metrics_routes(metrics.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("cannot listen on {addr} for /metrics; set metrics.listen (SHOPFLOW_METRICS_LISTEN) to a free address, or to \"\" to disable it"))?;
        let bound = listener.local_addr()?;
        rt.spawn(warp::serve(routes).incoming(listener).run());
        tracing::info!(%bound, "metrics on http://{bound}/metrics");
    }
    let counts = partition_counts(&config.kafka).map_err(|e| anyhow!(e))?;
    let (mut sink, resume, positions) = open_warehouse(&config, &metrics)?;
    let (lake, completion, recovery) = open_lake(&config, &metrics, sink.as_mut(), &resume)?;
    let dead_producer = Arc::new(Producer::new(&config.kafka, None).map_err(|e| anyhow!(e))?);
    let mut dead = DeadLetters::new(dead_producer, config.kafka.dead_letters(), metrics.clone());
    if sink.is_some() {
        dead = dead.keeping();
    }
    let dead = Arc::new(dead);
    let exit_when_idle =
        (config.exit_when_idle_ms > 0).then(|| Duration::from_millis(config.exit_when_idle_ms));
    let peers = cluster.peers();
    let first = cluster.process * cluster.workers;
    let mine = first..first + cluster.workers;
    if lake.is_some() {
        // Commits and _SUCCESS markers wait for every worker that writes
        // raw files, in every process (the others' reach us by the relay).
        for index in (0..peers).filter(|i| !mine.contains(i)) {
            if !assignment(&counts, index, peers).is_empty() {
                completion.register(index);
            }
        }
    }
    let mut sources: Vec<Option<Box<dyn Source + Send>>> = Vec::new();
    for index in mine.clone() {
        let parts = assignment(&counts, index, peers);
        let source: Box<dyn Source + Send> = if parts.is_empty() {
            Box::new(NoSource)
        } else {
            Box::new(
                KafkaSource::new(
                    &config.kafka,
                    &config.dataflow,
                    &parts,
                    Wiring {
                        dead: dead.clone(),
                        metrics: metrics.clone(),
                        exit_when_idle,
                        resume: resume.clone(),
                        positions: positions.clone(),
                        raw: lake.as_ref().map(|l| {
                            RawWriter::new(
                                l.clone(),
                                completion.clone(),
                                index,
                                config.dataflow.allowed_lateness_ms,
                                metrics.clone(),
                            )
                        }),
                        recovery: recovery.clone(),
                    },
                )
                .map_err(|e| anyhow!(e))?,
            )
        };
        tracing::info!(worker = index, partitions = ?parts, "partitions assigned");
        sources.push(Some(source));
    }
    let fx = start_fx_poller(&config, &metrics, &shutdown)?;

    let dashboard = Dashboard::new(Board::new(config.dataflow.clone(), "run"), metrics.clone());
    if let Some(listen) = config.dashboard_listen {
        let bound = dashboard.start(&rt, listen, config.dashboard_token.clone())?;
        tracing::info!(%bound, "dashboard on http://{bound}/");
    }
    let tables = config
        .output_csv
        .as_ref()
        .map(|_| Arc::new(Mutex::new(Tables::new(config.dataflow.clone()))));
    let sources = Arc::new(Mutex::new(sources));
    let (live, live_tables, live_metrics) = (dashboard.clone(), tables.clone(), metrics.clone());
    let stop = shutdown.clone();
    let failed: Arc<Mutex<Option<String>>> = Arc::default();
    let mut last_durable = 0;
    let mut writer = sink.filter(|_| leader).map(|s| Writer {
        sink: s,
        dead: dead.clone(),
        positions: positions.clone().expect("positions go with the sink"),
        durable: 0,
        pending: Vec::new(),
        interval: Duration::from_millis(config.commit_interval_ms),
        floor: recovery.as_ref().map_or(0, |r| r.frontier),
        completion: lake.as_ref().map(|_| completion.clone()),
        last_commit: Instant::now(),
        failed: failed.clone(),
        shutdown: shutdown.clone(),
        metrics: metrics.clone(),
    });
    let relay = (cluster.processes() > 1).then(|| {
        Box::new(SinkRelay::new(
            leader,
            mine.clone(),
            positions.clone(),
            completion.clone(),
            dead.clone(),
        )) as Box<dyn Relay>
    });
    let settings = config.dataflow.clone();
    let dataflow = std::thread::Builder::new()
        .name("dataflow".into())
        .spawn(move || {
            run_cluster(
                settings,
                cluster,
                move |index, _| {
                    let source = sources.lock().expect("sources")[index - first].take();
                    match source {
                        Some(s) => s as Box<dyn Source>,
                        None => Box::new(NoSource),
                    }
                },
                move || stop.requested(),
                move |progress| {
                    let upto = progress.upto;
                    let durable = match &mut writer {
                        Some(w) => w.write(&progress),
                        None => upto,
                    };
                    if let Some(tables) = &live_tables {
                        let mut tables = tables.lock().expect("tables");
                        let mut by_time: std::collections::BTreeMap<Time, Vec<_>> =
                            Default::default();
                        for (row, t, d) in &progress.changes {
                            by_time.entry(*t).or_default().push((row.clone(), *d));
                        }
                        for (t, batch) in by_time {
                            tables.apply_time(t, batch);
                        }
                    }
                    export_progress(&live_metrics, &progress);
                    if writer.is_some() && durable != last_durable {
                        last_durable = durable;
                        live.committed(WarehouseCommit {
                            commits: live_metrics.total("shopflow_warehouse_commits_total"),
                            at_ms: now_ms(),
                            upto: durable,
                        });
                    }
                    live.absorb(progress);
                    // Without a warehouse, delivered to the console (and the
                    // CSV tables) is durable; with one, its commit is.
                    durable
                },
                relay,
            )
        })?;
    tracing::info!(workers = config.workers, brokers = %config.kafka.brokers, "running; Ctrl-C to stop");
    let mut curator = lake.as_ref().filter(|_| leader).map(|l| {
        shopflow_pipeline::curate::Curator::new(
            l.clone(),
            completion.clone(),
            config.dataflow.clone(),
            recovery.as_ref().map(|r| r.frontier),
            metrics.clone(),
        )
    });
    let mut last_log = Instant::now();
    while !dataflow.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(c) = &mut curator {
            c.poll();
        }
        dashboard.refresh_if_quiet();
        if config.console && last_log.elapsed() >= Duration::from_secs(1) {
            let view = render(&dashboard.board(), Timestamp(now_ms()));
            show(&view)?;
            last_log = Instant::now();
        } else if !config.console && last_log.elapsed() >= Duration::from_secs(10) {
            let board = dashboard.board();
            tracing::info!(messages = board.lines(), upto = %Timestamp(board.upto() as i64), "progress");
            last_log = Instant::now();
        }
    }
    dataflow
        .join()
        .map_err(|_| anyhow!("the dataflow thread panicked"))?
        .map_err(|e| anyhow!("the dataflow failed: {e}"))?;
    if let Some(why) = failed.lock().expect("failed").take() {
        anyhow::bail!(
            "stopped: {why}. Nothing after the last committed step was lost: fix the cause and start `shopflow run` again; it resumes from pipeline_progress"
        );
    }
    shutdown.request();
    if let Some(c) = curator {
        c.finish(); // days completed by the last steps
    }
    dashboard.close();
    if let Some(fx) = fx {
        fx.join().map_err(|_| anyhow!("the FX poller panicked"))?;
    }
    dead.flush(Duration::from_secs(60))
        .map_err(|e| anyhow!("dead letters not all stored: {e}"))?;
    if let (Some(dir), Some(tables)) = (&config.output_csv, &tables) {
        shopflow_pipeline::replay::write_csv(&tables.lock().expect("tables"), dir)?;
        tracing::info!(dir = %dir.display(), "tables written");
    }
    tracing::info!(
        messages = metrics.total("shopflow_messages_total"),
        invalid = metrics.total("shopflow_invalid_total"),
        dead_letters = metrics.total("shopflow_dead_letters_total"),
        "stopped"
    );
    Ok(())
}

/// Opens the lake if configured, and plans crash recovery: with a warehouse
/// that has committed before, the dataflow state is rebuilt from the lake.
#[allow(clippy::type_complexity)]
fn open_lake(
    config: &RunConfig,
    metrics: &Arc<Metrics>,
    sink: Option<&mut shopflow_connectors::warehouse::sink::Sink>,
    resume: &std::collections::BTreeMap<(String, i32), i64>,
) -> anyhow::Result<(Option<Arc<Lake>>, Arc<Completion>, Option<Recovery>)> {
    let completion = Arc::new(Completion::default());
    if config.lake.url.is_empty() {
        if sink.is_some() {
            tracing::warn!(
                "no lake (lake.url): a restart cannot rebuild window state; see docs/lake.md"
            );
        }
        return Ok((None, completion, None));
    }
    let lake = Arc::new(Lake::open(&config.lake, Some(metrics.clone())).map_err(|e| anyhow!(e))?);
    tracing::info!(lake = %lake.url(), "raw layer on");
    let (frontier, runs) = match sink {
        Some(sink) => (
            sink.frontier().map_err(|e| anyhow!(e))?,
            sink.runs().map_err(|e| anyhow!(e))?,
        ),
        None => (None, Default::default()),
    };
    let recovery = frontier.map(|frontier| {
        tracing::info!(frontier = %Timestamp(frontier as i64), runs = runs.len(), "restart: recovering the dataflow state from the lake");
        Recovery {
            lake: lake.clone(),
            frontier,
            resume: resume.clone(),
            runs,
        }
    });
    Ok((Some(lake), completion, recovery))
}

fn start_fx_poller(
    config: &RunConfig,
    metrics: &Arc<Metrics>,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<std::thread::JoinHandle<()>>> {
    if config.fx.url.is_empty() {
        return Ok(None);
    }
    let producer = Arc::new(
        Producer::new(&config.kafka, Some(Duration::from_secs(60))).map_err(|e| anyhow!(e))?,
    );
    let publisher = TopicPublisher {
        producer,
        topic: config.kafka.topic(EventKind::Fx),
    };
    let poller = FxPoller::new(config.fx.clone(), publisher, metrics.clone());
    let stop = shutdown.clone();
    tracing::info!(url = %config.fx.url, interval_ms = config.fx.interval_ms, "FX poller started");
    Ok(Some(
        std::thread::Builder::new()
            .name("fx-poller".into())
            .spawn(move || poller.run(&move || stop.requested()))?,
    ))
}

/// Sets the metrics a completed step tells: events by admission, the frontier and its lag.
pub(super) fn export_progress(metrics: &Metrics, progress: &Progress) {
    let ingest = progress.ingest;
    for (label, n) in [
        ("on_time", ingest.on_time),
        ("late", ingest.late),
        ("too_late", ingest.too_late),
    ] {
        metrics.set("shopflow_events_total", &[("admission", label)], n);
    }
    if progress.upto < Time::MAX {
        // Kind::Seconds: set in milliseconds, rendered in seconds.
        metrics.set("shopflow_frontier_seconds", &[], progress.upto);
        let lag = (now_ms() - progress.upto as i64).max(0) as u64;
        metrics.set("shopflow_frontier_lag_seconds", &[], lag);
    }
}

fn metrics_routes(
    metrics: Arc<Metrics>,
) -> impl warp::Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    use warp::Filter;
    let m = warp::path("metrics").and(warp::path::end()).map(move || {
        warp::reply::with_header(
            metrics.render(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    });
    let health = warp::path("healthz").and(warp::path::end()).map(|| "ok\n");
    warp::get().and(m.or(health))
}

#[cfg(test)]
mod tests {
    use shopflow_connectors::metrics::DEFINITIONS;

    /// Every `shopflow_*` metric named in the sources is declared (an
    /// undeclared one would be missing from /metrics in release builds).
    #[test]
    fn every_metric_used_is_declared() {
        let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        let mut files = Vec::new();
        for dir in [
            "src",
            "src/cli",
            "connectors/src",
            "connectors/src/metrics",
            "connectors/src/kafka",
            "connectors/src/kafka/source",
            "connectors/src/warehouse",
            "connectors/src/lake",
        ] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut used = 0;
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            for part in text.split("\"shopflow_").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.is_empty() || !part[name.len()..].starts_with('"') {
                    continue;
                }
                let full = format!("shopflow_{name}");
                used += 1;
                assert!(
                    DEFINITIONS.iter().any(|d| d.0 == full),
                    "{full} (in {}) is not declared in connectors/src/metrics.rs",
                    path.display()
                );
            }
        }
        assert!(used > 10, "the scan found too few metric names: {used}");
    }
}
