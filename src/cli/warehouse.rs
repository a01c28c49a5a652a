//! `shopflow migrate`, and the warehouse side of `shopflow run`: opening the
//! sink, resuming from `pipeline_progress`, and writing each completed step.

use super::run::load;
use anyhow::anyhow;
use shopflow_connectors::kafka::dead_letters::DeadLetters;
use shopflow_connectors::kafka::source::{Positions, take_positions};
use shopflow_connectors::metrics::Metrics;
use shopflow_connectors::warehouse::sink::{Batch, Permanent, Sink};
use shopflow_dataflow::Time;
use shopflow_pipeline::config::RunConfig;
use shopflow_pipeline::shutdown::Shutdown;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `migrate`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The password comes from SHOPFLOW_WAREHOUSE_PASSWORD or warehouse.password_file, never the URL.\nExample:\n  shopflow migrate --database-url postgresql://postgres@127.0.0.1:5432/shopflow"
)]
pub struct MigrateArgs {
    /// PostgreSQL URL (overrides warehouse.url of the configuration).
    #[arg(long)]
    database_url: Option<String>,
    /// Schema to migrate (overrides warehouse.schema; default shopflow).
    #[arg(long)]
    schema: Option<String>,
    /// TOML configuration file (its [warehouse] section is used).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Loads the configuration, then applies `--database-url` and `--schema`.
pub fn load_with_warehouse(
    file: Option<&std::path::Path>,
    database_url: Option<String>,
    schema: Option<String>,
) -> anyhow::Result<RunConfig> {
    let mut config = load(file)?;
    if let Some(url) = database_url {
        config.warehouse.url = url;
    }
    if let Some(schema) = schema {
        config.warehouse.schema = schema;
    }
    Ok(config)
}

/// Runs `migrate`: applies pending migrations, reports what it did.
pub fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let config = load_with_warehouse(args.config.as_deref(), args.database_url, args.schema)?;
    anyhow::ensure!(
        !config.warehouse.url.is_empty(),
        "no warehouse to migrate: pass --database-url or set warehouse.url"
    );
    let applied = shopflow_connectors::warehouse::migrate::migrate(&config.warehouse)
        .map_err(|e| anyhow!(e))?;
    if applied.is_empty() {
        println!("schema {}: up to date", config.warehouse.schema);
    } else {
        for v in applied {
            println!("schema {}: applied V{v:03}", config.warehouse.schema);
        }
    }
    Ok(())
}

/// Opens the warehouse if configured: applies pending migrations, reads where
/// each partition resumes, and shares the positions the sources record.
#[allow(clippy::type_complexity)]
pub fn open_warehouse(
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
    let applied = shopflow_connectors::warehouse::migrate::migrate(&config.warehouse)
        .map_err(|e| anyhow!(e))?;
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
pub struct Writer {
    pub sink: Sink,
    pub dead: Arc<DeadLetters>,
    pub positions: Positions,
    pub durable: Time,
    /// Changes of completed steps not yet committed (coalesced).
    pub pending: Vec<shopflow_dataflow::Change>,
    pub interval: Duration,
    /// Changes before this time are in the warehouse already (a restart that
    /// recovered its state from the lake replays them): not written again.
    pub floor: Time,
    /// With a lake: how far every message fed is in the lake.
    pub completion: Option<Arc<shopflow_connectors::lake::writer::Completion>>,
    pub last_commit: Instant,
    pub failed: Arc<Mutex<Option<String>>>,
    pub shutdown: Shutdown,
    pub metrics: Arc<Metrics>,
}

impl Writer {
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
