//! `shopflow replay`: a bounded run over a generated directory (`--input`),
//! or over days of the lake (`--from`/`--to`, see [`super::replay_lake`]),
//! written as CSV and, from the lake, into the warehouse.

use anyhow::Context;
use shopflow_dataflow::run::{Input, feed_share, run_bounded};
use shopflow_dataflow::{Table, Tables};
use shopflow_model::{Date, EventKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    /// Worker threads; results are identical for any count.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[command(flatten)]
    dataflow: super::DataflowArgs,
}

/// Lines of one input file.
struct Source {
    kind: EventKind,
    lines: Vec<Vec<u8>>,
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
    let sources = Arc::new(read_sources(&input)?);
    let total: usize = sources.iter().map(|s| s.lines.len()).sum();
    tracing::info!(input = %input.display(), lines = total, workers = args.workers, "replaying");
    let (inputs, rejected) = validate_all(&sources);
    let inputs = Arc::new(inputs);
    let settings = args.dataflow.settings()?;
    let changes = run_bounded(
        settings.clone(),
        args.workers,
        move |index, peers, feeder| {
            // Every version of an event goes through one worker (by id), so they
            // share one lifetime; reference data goes through worker 0 so FX
            // corrections apply in file order.
            feed_share(&inputs, index, peers, feeder);
        },
    )
    .map_err(|e| anyhow::anyhow!("the dataflow failed: {e}"))?;
    let mut tables = Tables::new(settings);
    tables.apply_all(changes);
    write_csv(&tables, &output_csv)?;
    for ((kind, reason), n) in rejected.iter() {
        tracing::warn!(
            file = format!("{}.jsonl", kind.topic()),
            reason,
            lines = n,
            "rejected lines"
        );
    }
    let invalid: u64 = rejected.values().sum();
    tracing::info!(
        lines = total,
        invalid,
        orders = tables.rows(Table::FactOrders).count(),
        conflicting_ids = tables.rows(Table::Conflicts).count(),
        minutes = tables.rows(Table::AggSalesMinute).count(),
        output = %output_csv.display(),
        seconds = format!("{:.2}", began.elapsed().as_secs_f64()),
        "replay complete"
    );
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
    super::replay_lake::run(super::replay_lake::Plan {
        config,
        from: args.from.expect("clap requires --from"),
        to: args.to.expect("clap requires --to"),
        output_csv: args.output_csv,
        workers: args.workers,
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

/// Validates every line; returns the inputs in file order and the rejections
/// counted per file and reason.
fn validate_all(sources: &[Source]) -> (Vec<Input>, BTreeMap<(EventKind, &'static str), u64>) {
    let mut inputs = Vec::new();
    let mut rejected = BTreeMap::new();
    for source in sources {
        for line in &source.lines {
            match Input::from_line(source.kind, line) {
                Ok(input) => inputs.push(input),
                Err(e) => *rejected.entry((source.kind, e.reason.code())).or_default() += 1,
            }
        }
    }
    (inputs, rejected)
}

fn read_sources(dir: &Path) -> anyhow::Result<Vec<Source>> {
    // Reference data first, so it is offered before the events that use it.
    let order = [
        EventKind::Fx,
        EventKind::Product,
        EventKind::User,
        EventKind::Click,
        EventKind::Cart,
        EventKind::Purchase,
    ];
    let mut out = Vec::new();
    for kind in order {
        let path = dir.join(format!("{}.jsonl", kind.topic()));
        if !path.exists() {
            tracing::warn!(file = %path.display(), "missing input file; treating it as empty");
            continue;
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let lines = if body.is_empty() {
            Vec::new()
        } else {
            body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
        };
        out.push(Source { kind, lines });
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no input files in {}; expected the files `shopflow generate` writes",
        dir.display()
    );
    Ok(out)
}
