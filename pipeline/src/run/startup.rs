//! `run`'s start-up, in the order it happens: topics, the cluster's
//! handshake, the metrics endpoint, the warehouse and the lake (with crash
//! recovery), dead letters, each worker's source, the FX poller.

use super::Sources;
use crate::config::RunConfig;
use crate::shutdown::Shutdown;
use crate::warehouse::open_warehouse;
use anyhow::{Context, anyhow};
use shopflow_connectors::fx_poller::FxPoller;
use shopflow_connectors::kafka::dead_letters::DeadLetters;
use shopflow_connectors::kafka::producer::{Producer, TopicPublisher};
use shopflow_connectors::kafka::recovery::Recovery;
use shopflow_connectors::kafka::source::{
    KafkaSource, Positions, Wiring, assignment, partition_counts,
};
use shopflow_connectors::kafka::{KafkaSettings, topics};
use shopflow_connectors::lake::Lake;
use shopflow_connectors::lake::writer::{Completion, RawWriter};
use shopflow_connectors::metrics::Metrics;
use shopflow_connectors::warehouse::sink::Sink;
use shopflow_dataflow::Cluster;
use shopflow_dataflow::live::{NoSource, Source};
use shopflow_model::{EventKind, Timestamp};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Creates every topic that is missing (idempotent), logging those created.
pub(super) fn create_topics(kafka: &KafkaSettings) -> anyhow::Result<()> {
    let created = topics::create(kafka).map_err(|e| anyhow!(e))?;
    for (name, outcome) in &created {
        if *outcome == topics::Outcome::Created {
            tracing::info!(topic = %name, "created topic");
        }
    }
    Ok(())
}

/// Connects the processes of the cluster. It comes before reading where to
/// resume: every process of this generation is up, so no process of the
/// last one still commits. They share process 0's run start, which marks
/// their raw files.
pub(super) fn connect(cluster: &mut Cluster) -> anyhow::Result<()> {
    let leader = cluster.is_leader();
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
    Ok(())
}

/// Serves `/metrics` and `/healthz` on `addr`.
pub(super) fn serve_metrics(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let routes = metrics_routes(metrics);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("cannot listen on {addr} for /metrics; set metrics.listen (SHOPFLOW_METRICS_LISTEN) to a free address, or to \"\" to disable it"))?;
    let bound = listener.local_addr()?;
    rt.spawn(warp::serve(routes).incoming(listener).run());
    tracing::info!(%bound, "metrics on http://{bound}/metrics");
    Ok(())
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

/// What the run reads from and writes to besides the dataflow.
pub(super) struct Connections {
    /// Partitions of each topic.
    pub counts: Vec<(EventKind, i32)>,
    /// The warehouse sink, if configured (taken by process 0's writer).
    pub sink: Option<Sink>,
    /// The offset each partition resumes from (from `pipeline_progress`).
    pub resume: BTreeMap<(String, i32), i64>,
    /// Positions the sources record for the writer (with a warehouse).
    pub positions: Option<Positions>,
    /// The lake, if configured.
    pub lake: Option<Arc<Lake>>,
    /// How far every message fed is in the lake.
    pub completion: Arc<Completion>,
    /// With a lake and a warehouse that has committed before: the state to rebuild.
    pub recovery: Option<Recovery>,
    /// Invalid messages on their way to the dead-letter topic.
    pub dead: Arc<DeadLetters>,
}

impl Connections {
    /// Reads the partition counts, opens the warehouse and the lake, and
    /// connects the dead-letter producer.
    pub fn open(config: &RunConfig, metrics: &Arc<Metrics>) -> anyhow::Result<Connections> {
        let counts = partition_counts(&config.kafka).map_err(|e| anyhow!(e))?;
        let (mut sink, resume, positions) = open_warehouse(config, metrics)?;
        let (lake, completion, recovery) = open_lake(config, metrics, sink.as_mut(), &resume)?;
        let dead_producer = Arc::new(Producer::new(&config.kafka, None).map_err(|e| anyhow!(e))?);
        let mut dead =
            DeadLetters::new(dead_producer, config.kafka.dead_letters(), metrics.clone());
        if sink.is_some() {
            dead = dead.keeping();
        }
        Ok(Connections {
            counts,
            sink,
            resume,
            positions,
            lake,
            completion,
            recovery,
            dead: Arc::new(dead),
        })
    }
}

/// Opens the lake if configured, and plans crash recovery: with a warehouse
/// that has committed before, the dataflow state is rebuilt from the lake.
#[allow(clippy::type_complexity)]
fn open_lake(
    config: &RunConfig,
    metrics: &Arc<Metrics>,
    sink: Option<&mut Sink>,
    resume: &BTreeMap<(String, i32), i64>,
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

/// The source of each of this process's workers: its share of the Kafka
/// partitions (none: a source that is empty at once).
pub(super) fn sources(
    config: &RunConfig,
    cluster: &Cluster,
    conn: &Connections,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Sources> {
    let exit_when_idle =
        (config.exit_when_idle_ms > 0).then(|| Duration::from_millis(config.exit_when_idle_ms));
    let peers = cluster.peers();
    let first = cluster.process * cluster.workers;
    let mine = first..first + cluster.workers;
    if conn.lake.is_some() {
        // Commits and _SUCCESS markers wait for every worker that writes
        // raw files, in every process (the others' reach us by the relay).
        for index in (0..peers).filter(|i| !mine.contains(i)) {
            if !assignment(&conn.counts, index, peers).is_empty() {
                conn.completion.register(index);
            }
        }
    }
    let mut sources: Sources = Vec::new();
    for index in mine {
        let parts = assignment(&conn.counts, index, peers);
        let source: Box<dyn Source + Send> = if parts.is_empty() {
            Box::new(NoSource)
        } else {
            Box::new(
                KafkaSource::new(
                    &config.kafka,
                    &config.dataflow,
                    &parts,
                    Wiring {
                        dead: conn.dead.clone(),
                        metrics: metrics.clone(),
                        exit_when_idle,
                        resume: conn.resume.clone(),
                        positions: conn.positions.clone(),
                        raw: conn.lake.as_ref().map(|l| {
                            RawWriter::new(
                                l.clone(),
                                conn.completion.clone(),
                                index,
                                config.dataflow.allowed_lateness_ms,
                                metrics.clone(),
                            )
                        }),
                        recovery: conn.recovery.clone(),
                    },
                )
                .map_err(|e| anyhow!(e))?,
            )
        };
        tracing::info!(worker = index, partitions = ?parts, "partitions assigned");
        sources.push(Some(source));
    }
    Ok(sources)
}

/// Starts the FX poller's thread, if `fx.url` is set: it publishes the
/// rates to the FX topic until `shutdown` is raised.
pub(super) fn start_fx_poller(
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
