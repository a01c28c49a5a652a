//! `run`: live from Kafka into the dataflow, and from it into the
//! warehouse, the lake, the dashboard and the console.
//!
//! Start-up (`startup.rs`): create the topics if missing, connect the
//! processes of a cluster, start the metrics endpoint, read the partition
//! counts, open the warehouse and the lake (planning crash recovery), give
//! each worker its partitions, start the FX poller. Then the dataflow runs
//! on its own thread until the shutdown flag is raised (SIGINT/SIGTERM, a
//! permanent warehouse error) or, with `run.exit_when_idle_ms`, every
//! partition is idle; it closes its inputs, drains, commits the last offsets
//! and, with `run.output_csv`, writes every table. Each completed step goes
//! to the warehouse, the dashboard and the metrics (`steps.rs`); meanwhile the
//! calling thread shows the console and builds the lake's curated layer.

mod startup;
mod steps;

pub(crate) use steps::export_progress;

use crate::config::RunConfig;
use crate::console::{render, show};
use crate::curate::Curator;
use crate::dashboard::{Dashboard, now_ms};
use crate::shutdown::Shutdown;
use crate::warehouse::Writer;
use anyhow::anyhow;
use shopflow_connectors::kafka::relay::SinkRelay;
use shopflow_connectors::metrics::Metrics;
use shopflow_dataflow::live::{NoSource, Relay, Source, run_cluster};
use shopflow_dataflow::{Cluster, Tables};
use shopflow_model::Timestamp;
use shopflow_web::Board;
use startup::Connections;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs the pipeline live with `config` as process `cluster.process` of
/// `cluster`, until `shutdown` is raised (or every partition is idle, with
/// `run.exit_when_idle_ms`). Process 0 writes the warehouse and serves the
/// dashboard; the others feed their workers' partitions and relay what they
/// read to it.
pub fn run(mut config: RunConfig, mut cluster: Cluster, shutdown: Shutdown) -> anyhow::Result<()> {
    let leader = cluster.is_leader();
    if !leader {
        // The dashboard, the console and the FX poller are process 0's.
        config.dashboard_listen = None;
        config.console = false;
        config.fx.url.clear();
        config.output_csv = None;
    }
    let rt = crate::runtime()?;
    let metrics = Arc::new(Metrics::default());
    if leader {
        startup::create_topics(&config.kafka)?;
    }
    if cluster.processes() > 1 {
        startup::connect(&mut cluster)?;
    }
    if let Some(addr) = config.metrics_listen {
        startup::serve_metrics(&rt, addr, metrics.clone())?;
    }
    let mut conn = Connections::open(&config, &metrics)?;
    let sources = startup::sources(&config, &cluster, &conn, &metrics)?;
    let fx = startup::start_fx_poller(&config, &metrics, &shutdown)?;

    let dashboard = Dashboard::new(Board::new(config.dataflow.clone(), "run"), metrics.clone());
    if let Some(listen) = config.dashboard_listen {
        let bound = dashboard.start(&rt, listen, config.dashboard_token.clone())?;
        tracing::info!(%bound, "dashboard on http://{bound}/");
    }
    let tables = config
        .output_csv
        .as_ref()
        .map(|_| Arc::new(Mutex::new(Tables::new(config.dataflow.clone()))));
    let failed: Arc<Mutex<Option<String>>> = Arc::default();
    let writer = conn.sink.take().filter(|_| leader).map(|sink| Writer {
        sink,
        dead: conn.dead.clone(),
        positions: conn.positions.clone().expect("positions go with the sink"),
        durable: 0,
        pending: Vec::new(),
        interval: Duration::from_millis(config.commit_interval_ms),
        floor: conn.recovery.as_ref().map_or(0, |r| r.frontier),
        completion: conn.lake.as_ref().map(|_| conn.completion.clone()),
        last_commit: Instant::now(),
        failed: failed.clone(),
        shutdown: shutdown.clone(),
        metrics: metrics.clone(),
    });
    let steps = steps::Steps::new(writer, tables.clone(), dashboard.clone(), metrics.clone());
    let dataflow = spawn_dataflow(&config, cluster, &conn, sources, steps, &shutdown)?;
    tracing::info!(workers = config.workers, brokers = %config.kafka.brokers, "running; Ctrl-C to stop");
    let mut curator = conn.lake.as_ref().filter(|_| leader).map(|l| {
        Curator::new(
            l.clone(),
            conn.completion.clone(),
            config.dataflow.clone(),
            conn.recovery.as_ref().map(|r| r.frontier),
            metrics.clone(),
        )
    });
    watch(&dataflow, curator.as_mut(), &dashboard, config.console)?;
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
    conn.dead
        .flush(Duration::from_secs(60))
        .map_err(|e| anyhow!("dead letters not all stored: {e}"))?;
    if let (Some(dir), Some(tables)) = (&config.output_csv, &tables) {
        crate::replay::write_csv(&tables.lock().expect("tables"), dir)?;
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

/// The sources of this process's workers, taken once each by the worker
/// that owns them.
type Sources = Vec<Option<Box<dyn Source + Send>>>;

/// Starts the dataflow thread: this process's part of the cluster, fed by
/// `sources`, reporting each completed step to `steps`; in a cluster, what
/// the sources record reaches process 0's sink by the relay.
fn spawn_dataflow(
    config: &RunConfig,
    cluster: Cluster,
    conn: &Connections,
    sources: Sources,
    mut steps: steps::Steps,
    shutdown: &Shutdown,
) -> anyhow::Result<JoinHandle<Result<(), String>>> {
    let first = cluster.process * cluster.workers;
    let relay = (cluster.processes() > 1).then(|| {
        Box::new(SinkRelay::new(
            cluster.is_leader(),
            first..first + cluster.workers,
            conn.positions.clone(),
            conn.completion.clone(),
            conn.dead.clone(),
        )) as Box<dyn Relay>
    });
    let sources = Arc::new(Mutex::new(sources));
    let settings = config.dataflow.clone();
    let stop = shutdown.clone();
    Ok(std::thread::Builder::new()
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
                move |progress| steps.apply(progress),
                relay,
            )
        })?)
}

/// Until the dataflow thread ends: builds the curated layer of completed
/// days, keeps the dashboard's health figures current, and shows the
/// console view every second (or, without it, a progress line every 10 s).
fn watch(
    dataflow: &JoinHandle<Result<(), String>>,
    mut curator: Option<&mut Curator>,
    dashboard: &Dashboard,
    console: bool,
) -> anyhow::Result<()> {
    let mut last_log = Instant::now();
    while !dataflow.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(c) = &mut curator {
            c.poll();
        }
        dashboard.refresh_if_quiet();
        if console && last_log.elapsed() >= Duration::from_secs(1) {
            let view = render(&dashboard.board(), Timestamp(now_ms()));
            show(&view)?;
            last_log = Instant::now();
        } else if !console && last_log.elapsed() >= Duration::from_secs(10) {
            let board = dashboard.board();
            tracing::info!(messages = board.lines(), upto = %Timestamp(board.upto() as i64), "progress");
            last_log = Instant::now();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use shopflow_connectors::metrics::DEFINITIONS;
    use std::path::{Path, PathBuf};

    /// The `.rs` files under `dir`, at any depth.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every `shopflow_*` metric named in the sources is declared (an
    /// undeclared one would be missing from /metrics in release builds).
    #[test]
    fn every_metric_used_is_declared() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for dir in ["src", "pipeline/src", "connectors/src"] {
            sources(&root.join(dir), &mut files);
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
