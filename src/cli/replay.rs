//! `shopflow replay`: a bounded run over a generated directory, written as CSV.

use anyhow::Context;
use shopflow_dataflow::run::{Input, feed_share, run_bounded};
use shopflow_dataflow::{Table, Tables};
use shopflow_model::EventKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `replay`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  shopflow generate --seed 7 --out-dir data/gen\n  shopflow replay --input data/gen --output-csv data/out"
)]
pub struct Args {
    /// Directory written by `generate` (clicks.jsonl, carts.jsonl, …).
    #[arg(long)]
    input: PathBuf,
    /// Directory for one `<table>.csv` per output table (created if missing).
    #[arg(long)]
    output_csv: PathBuf,
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

/// Runs `replay`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let began = Instant::now();
    let sources = Arc::new(read_sources(&args.input)?);
    let total: usize = sources.iter().map(|s| s.lines.len()).sum();
    tracing::info!(input = %args.input.display(), lines = total, workers = args.workers, "replaying");
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
    write_csv(&tables, &args.output_csv)?;
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
        output = %args.output_csv.display(),
        seconds = format!("{:.2}", began.elapsed().as_secs_f64()),
        "replay complete"
    );
    Ok(())
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
