//! `shopflow replay`: a bounded run over a generated directory (`--input`),
//! or over days of the lake (`--from`/`--to`), written as CSV and, from the
//! lake, into the warehouse. The runs are `shopflow_pipeline::replay`'s;
//! this module turns the arguments into their plans and reports the outcome.

use shopflow_model::Date;
use shopflow_pipeline::replay::{self, FilesPlan, LakePlan, LakeSummary};
use std::path::PathBuf;

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
    let settings = args.dataflow.settings()?;
    let cluster = args.cluster.cluster(args.workers, &Default::default())?;
    let summary = replay::from_files(FilesPlan {
        input,
        output_csv: output_csv.clone(),
        settings,
        cluster,
    })?;
    let seconds = format!("{:.2}", summary.elapsed.as_secs_f64());
    match summary.written {
        Some(w) => tracing::info!(
            lines = summary.lines,
            invalid = summary.invalid,
            orders = w.orders,
            conflicting_ids = w.conflicting_ids,
            minutes = w.minutes,
            output = %output_csv.display(),
            seconds,
            "replay complete"
        ),
        None => tracing::info!(
            invalid = summary.invalid,
            "replay complete (process 0 wrote the tables)"
        ),
    }
    Ok(())
}

/// `replay --from --to`: from the lake.
fn from_lake(args: Args) -> anyhow::Result<()> {
    let mut config = super::migrate::load_with_warehouse(
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
    let summary = replay::from_lake(LakePlan {
        lake: config.lake,
        warehouse: Some(config.warehouse).filter(|w| !w.url.is_empty()),
        from: args.from.expect("clap requires --from"),
        to: args.to.expect("clap requires --to"),
        output_csv: args.output_csv,
        cluster,
        settings: args.dataflow.settings()?,
        curated: !args.no_curated,
    })?;
    print_summary(&summary);
    Ok(())
}

/// Prints the summary of a replay from the lake to stdout.
fn print_summary(totals: &LakeSummary) {
    println!(
        "replay summary ({:.1} s, {} files, {} repeated copies dropped)",
        totals.elapsed.as_secs_f64(),
        totals.files,
        totals.copies
    );
    println!(
        "  time: reading the lake {:.1} s, dataflow {:.1} s, writing {:.1} s",
        totals.read_s, totals.dataflow_s, totals.write_s
    );
    println!("  messages by topic (valid; days overlapping by the margin count each time):");
    for (topic, n) in &totals.events {
        println!("    {topic:<12} {n}");
    }
    println!("  rejected by reason:");
    if totals.rejected.is_empty() {
        println!("    none");
    }
    for ((topic, reason), n) in &totals.rejected {
        println!("    {topic:<12} {reason:<24} {n}");
    }
    if !totals.written.is_empty() {
        println!("  warehouse rows upserted / deleted per table:");
        for (table, n) in totals
            .written
            .iter()
            .filter(|(t, _)| !t.starts_with("deleted_"))
        {
            let deleted = totals
                .written
                .get(format!("deleted_{table}").as_str())
                .copied()
                .unwrap_or(0);
            println!("    {table:<24} {n:>10} / {deleted}");
        }
    }
}
