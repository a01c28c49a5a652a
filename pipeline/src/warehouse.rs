//! The warehouse side of the pipelines: migrating the schema, opening the
//! sink, resuming from `pipeline_progress`, and writing each completed step
//! of `run`.

use crate::config::RunConfig;
use crate::shutdown::Shutdown;
use anyhow::anyhow;
use shopflow_connectors::kafka::dead_letters::DeadLetters;
use shopflow_connectors::kafka::source::{Positions, take_positions};
use shopflow_connectors::metrics::Metrics;
use shopflow_connectors::warehouse::WarehouseSettings;
use shopflow_connectors::warehouse::sink::{Batch, Permanent, Sink};
use shopflow_dataflow::Time;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Applies the warehouse migrations still pending (idempotent); returns
/// the versions applied.
pub fn migrate(settings: &WarehouseSettings) -> anyhow::Result<Vec<i32>> {
    shopflow_connectors::warehouse::migrate::migrate(settings).map_err(|e| anyhow!(e))
}

/// Opens the warehouse if configured: applies pending migrations, reads where
/// each partition resumes, and shares the positions the sources record.
#[allow(clippy::type_complexity)]
pub(crate) fn open_warehouse(
    config: &RunConfig,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(
    Option<Sink>,
    std::collections::BTreeMap<(String, i32), i64>,
    Option<Positions>,
)> {
    if config.warehouse.url.is_empty() {
        return Ok((None, Default::default(), None));
    }
    let applied = migrate(&config.warehouse)?;
    if !applied.is_empty() {
        tracing::info!(?applied, schema = %config.warehouse.schema, "warehouse migrated");
    }
    let mut sink = Sink::open(&config.warehouse, &config.dataflow)
        .map_err(|e| anyhow!(e))?
        .with_metrics(metrics.clone());
    let resume = sink.positions().map_err(|e| anyhow!(e))?;
    if !resume.is_empty() {
        tracing::info!(partitions = resume.len(), "resuming from pipeline_progress");
    }
    Ok((Some(sink), resume, Some(Positions::default())))
}

/// Writes each completed step to the warehouse; on a permanent error, stops
/// the run and keeps answering the last durable time.
pub(crate) struct Writer {
    pub sink: Sink,
    pub dead: Arc<DeadLetters>,
    /// Offsets read, recorded by the sources, committed with the results.
    pub positions: Positions,
    /// The time up to which results are committed.
    pub durable: Time,
    /// Changes of completed steps not yet committed (coalesced).
    pub pending: Vec<shopflow_dataflow::Change>,
    /// Least time between commits.
    pub interval: Duration,
    /// Changes before this time are in the warehouse already (a restart that
    /// recovered its state from the lake replays them): not written again.
    pub floor: Time,
    /// With a lake: how far every message fed is in the lake.
    pub completion: Option<Arc<shopflow_connectors::lake::writer::Completion>>,
    pub last_commit: Instant,
    /// Why the sink stopped the run, once it has.
    pub failed: Arc<Mutex<Option<String>>>,
    pub shutdown: Shutdown,
    pub metrics: Arc<Metrics>,
}

impl Writer {
    /// Takes one completed step; commits what is due; returns the time up
    /// to which results are durable.
    pub fn write(&mut self, progress: &shopflow_dataflow::run::Progress) -> Time {
        if self.failed.lock().expect("failed").is_some() {
            return self.durable;
        }
        let floor = self.floor;
        self.pending
            .extend(progress.changes.iter().filter(|c| c.1 >= floor).cloned());
        // With a lake, results are committed only up to where every message
        // that entered before is in the lake: what crash recovery rebuilds from.
        // In a cluster, also only up to where the other processes' positions
        // and dead letters are in (`Progress::relayed`).
        let upto = match &self.completion {
            Some(c) => progress.upto.min(c.complete()),
            None => progress.upto,
        }
        .min(progress.relayed);
        if upto < Time::MAX && (self.last_commit.elapsed() < self.interval || upto <= self.durable)
        {
            return self.durable; // coalesced into the next commit
        }
        // Dead letters must be in Kafka before the warehouse records their offsets.
        if let Err(e) = self.dead.flush(Duration::from_secs(60)) {
            if self.dead.lost() > 0 {
                let why = format!("{e}; fix the dead_letters topic (size limit, permissions)");
                tracing::error!(%why, "stopping: a dead letter cannot be stored");
                *self.failed.lock().expect("failed") = Some(why);
                self.shutdown.request();
            } else {
                tracing::warn!(error = %e, "dead letters not yet stored; the warehouse waits");
            }
            return self.durable;
        }
        let (changes, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|c| c.1 < upto);
        self.pending = later;
        let batch = Batch {
            upto,
            changes,
            dead_letters: self.dead.drain(),
            positions: take_positions(&self.positions, upto),
            run: self
                .completion
                .as_ref()
                .map(|_| shopflow_connectors::lake::writer::run_started()),
            final_frontier: self.completion.as_ref().map(|c| c.input_time()),
        };
        let began = Instant::now();
        match self.sink.write(&batch) {
            Ok(written) => {
                self.metrics
                    .observe("shopflow_warehouse_commit_seconds", &[], began.elapsed());
                for (table, n) in written {
                    self.metrics
                        .add("shopflow_warehouse_rows_total", &[("table", table)], n);
                }
                self.metrics.add("shopflow_warehouse_commits_total", &[], 1);
                self.durable = upto;
                self.last_commit = Instant::now();
            }
            Err(Permanent(why)) => {
                tracing::error!(%why, "the warehouse sink stopped the pipeline");
                *self.failed.lock().expect("failed") = Some(why);
                self.shutdown.request();
            }
        }
        self.durable
    }
}
