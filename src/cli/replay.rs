//! `shopflow replay`: a bounded run over a generated directory (`--input`),
//! or over days of the lake (`--from`/`--to`, see [`super::replay_lake`]),
//! written as CSV and, from the lake, into the warehouse.

use anyhow::Context;
use shopflow_connectors::files::{FileSlices, Plan, Rejected};
use shopflow_connectors::spill::SpillTables;
use shopflow_dataflow::bounded::run_sliced;
use shopflow_dataflow::{Table, Tables};
use shopflow_model::Date;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Arguments of `replay`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  shopflow generate --seed 7 --out-dir data/gen\n  shopflow replay --input data/gen --output-csv data/out\n  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… SHOPFLOW_LAKE_S3_ENDPOINT=http://127.0.0.1:9000 \\\n    shopflow replay --lake s3://shopflow-lake --from 2026-11-29 --to 2026-11-29 \\\n    --database-url postgresql://postgres@127.0.0.1:5432/shopflow\n\nA replay from the lake rewrites each day of the range in the warehouse in one\ntransaction (idempotent: running it again changes nothing). Use the same\ndataflow settings as the live run."
)]
pub struct Args {
    /// Directory written by `generate` (clicks.jsonl, carts.jsonl, …); or use --from/--to.
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    input: Option<PathBuf>,
    /// First day to replay from the lake (YYYY-MM-DD, UTC).
    #[arg(long, requires = "to", value_parser = parse_date)]
    from: Option<Date>,
    /// Last day to replay from the lake, inclusive (YYYY-MM-DD, UTC).
    #[arg(long, requires = "from", value_parser = parse_date)]
    to: Option<Date>,
    /// The lake: s3://bucket/prefix or a directory (default: lake.url of --config or SHOPFLOW_LAKE_URL).
    #[arg(long)]
    lake: Option<String>,
    /// Warehouse to rewrite the days in (default: warehouse.url of --config or SHOPFLOW_WAREHOUSE_URL).
    #[arg(long)]
    database_url: Option<String>,
    /// Warehouse schema (default: warehouse.schema, shopflow).
    #[arg(long)]
    schema: Option<String>,
    /// Do not write the replayed days' curated layer (curated/<table>/dt=…/) to the lake.
    #[arg(long)]
    no_curated: bool,
    /// TOML configuration file ([lake] and [warehouse] sections).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for one `<table>.csv` per output table (created if missing).
    #[arg(long, required_unless_present = "from")]
    output_csv: Option<PathBuf>,
    /// Worker threads (per process); results are identical for any count.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[command(flatten)]
    dataflow: super::DataflowArgs,
    #[command(flatten)]
    cluster: super::ClusterArgs,
}

fn parse_date(text: &str) -> Result<Date, String> {
    Date::parse(text).map_err(|_| format!("expected a date like 2026-11-30, got {text:?}"))
}

/// Runs `replay`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (Some(input), Some(output_csv)) = (args.input.clone(), args.output_csv.clone()) else {
        return from_lake(args);
    };
    let began = Instant::now();
    let settings = args.dataflow.settings()?;
    let cluster = args.cluster.cluster(args.workers, &Default::default())?;
    let plan = Arc::new(Plan::scan(&input, &settings).map_err(|e| anyhow::anyhow!(e))?);
    let total = plan.lines();
    tracing::info!(input = %input.display(), lines = total, workers = args.workers, processes = cluster.processes(), process = cluster.process, "replaying");
    let rejected: Arc<Mutex<Rejected>> = Arc::default();
    let failed: Arc<Mutex<Option<String>>> = Arc::default();
    if !cluster.is_leader() {
        return follow(cluster, settings, plan, rejected, failed);
    }
    std::fs::create_dir_all(&output_csv)
        .with_context(|| format!("cannot create {}", output_csv.display()))?;
    let mut tables = SpillTables::new(settings.clone(), &output_csv)
        .with_context(|| format!("cannot write temporary files in {}", output_csv.display()))?;
    let mut spill_error = None;
    let (r, f) = (rejected.clone(), failed.clone());
    run_sliced(
        settings,
        cluster,
        // Every worker reads every chunk and validates the lines it owns.
        move |index, peers| FileSlices::new(plan.clone(), index, peers, r.clone(), f.clone()),
        |time, batch| {
            if spill_error.is_none() {
                spill_error = tables.apply_time(time, batch).err();
            }
        },
    )
    .map_err(|e| anyhow::anyhow!("the dataflow failed: {e}"))?;
    if let Some(e) = failed.lock().expect("workers done").take() {
        anyhow::bail!("{e}");
    }
    if let Some(e) = spill_error {
        anyhow::bail!(
            "cannot write temporary files in {}: {e}; free some disk space and run the replay again",
            output_csv.display()
        );
    }
    let invalid = report_rejected(&rejected);
    let orders = tables.count(Table::FactOrders);
    let conflicting_ids = tables.count(Table::Conflicts);
    let minutes = tables.count(Table::AggSalesMinute);
    tables
        .write_csv(&output_csv)
        .with_context(|| format!("cannot write the tables into {}", output_csv.display()))?;
    tracing::info!(
        lines = total,
        invalid,
        orders,
        conflicting_ids,
        minutes,
        output = %output_csv.display(),
        seconds = format!("{:.2}", began.elapsed().as_secs_f64()),
        "replay complete"
    );
    Ok(())
}

/// The lines rejected by this process's workers, logged; their number.
fn report_rejected(rejected: &Mutex<Rejected>) -> u64 {
    let rejected = std::mem::take(&mut *rejected.lock().expect("workers done"));
    for ((kind, reason), n) in rejected.iter() {
        tracing::warn!(
            file = format!("{}.jsonl", kind.topic()),
            reason,
            lines = n,
            "rejected lines"
        );
    }
    rejected.values().sum()
}

/// A process other than 0 of a cluster: feeds its workers' share and runs
/// its part of the dataflow; process 0 receives every change and writes the
/// tables. Each process logs the lines its own workers rejected.
fn follow(
    cluster: shopflow_dataflow::Cluster,
    settings: shopflow_dataflow::Settings,
    plan: Arc<Plan>,
    rejected: Arc<Mutex<Rejected>>,
    failed: Arc<Mutex<Option<String>>>,
) -> anyhow::Result<()> {
    let (r, f) = (rejected.clone(), failed.clone());
    run_sliced(
        settings,
        cluster,
        move |index, peers| FileSlices::new(plan.clone(), index, peers, r.clone(), f.clone()),
        |_, _| {},
    )
    .map_err(|e| anyhow::anyhow!("the dataflow failed: {e}"))?;
    if let Some(e) = failed.lock().expect("workers done").take() {
        anyhow::bail!("{e}");
    }
    let invalid = report_rejected(&rejected);
    tracing::info!(invalid, "replay complete (process 0 wrote the tables)");
    Ok(())
}

/// `replay --from --to`: from the lake.
fn from_lake(args: Args) -> anyhow::Result<()> {
    let mut config = super::warehouse::load_with_warehouse(
        args.config.as_deref(),
        args.database_url,
        args.schema,
    )?;
    if let Some(lake) = args.lake {
        config.lake.url = lake;
    }
    anyhow::ensure!(
        !config.lake.url.is_empty(),
        "no lake to replay from: pass --lake s3://bucket/prefix (or a directory), or set lake.url"
    );
    let cluster = args.cluster.cluster(args.workers, &config.cluster)?;
    super::replay_lake::run(super::replay_lake::Plan {
        config,
        from: args.from.expect("clap requires --from"),
        to: args.to.expect("clap requires --to"),
        output_csv: args.output_csv,
        cluster,
        settings: args.dataflow.settings()?,
        curated: !args.no_curated,
    })
}

/// Writes every warehouse table (and `dq_conflicts`) as `<table>.csv` into `dir`.
pub fn write_csv(tables: &Tables, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for table in Table::WAREHOUSE.into_iter().chain([Table::Conflicts]) {
        let path = dir.join(format!("{}.csv", table.name()));
        std::fs::write(&path, tables.to_csv(table))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
