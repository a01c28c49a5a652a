//! A replay of a generated directory (`replay --input`): one bounded run
//! over the files, in event-time slices, with every table written as CSV.
//!
//! The files are planned by a cheap first pass (`Plan::scan`), every worker
//! validates the lines it owns, and process 0 applies each completed time to
//! [`SpillTables`], which keeps final fact rows in sorted runs on disk and
//! merges them into the CSV files at the end: memory follows the live
//! horizon, not the input.

use anyhow::Context;
use shopflow_connectors::files::{FileSlices, Plan, Rejected};
use shopflow_connectors::spill::SpillTables;
use shopflow_dataflow::bounded::run_sliced;
use shopflow_dataflow::{Cluster, Settings, Table};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a replay of a generated directory is asked to do.
#[derive(Clone, Debug)]
pub struct FilesPlan {
    /// Directory written by `generate` (clicks.jsonl, carts.jsonl, …).
    pub input: PathBuf,
    /// Directory for one `<table>.csv` per output table (created if missing;
    /// written by process 0 only).
    pub output_csv: PathBuf,
    /// Dataflow settings, already validated.
    pub settings: Settings,
    /// Workers and processes; results are identical for any shape.
    pub cluster: Cluster,
}

/// What a replay of a generated directory did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Lines in the input files.
    pub lines: u64,
    /// Lines this process's workers rejected (logged by reason).
    pub invalid: u64,
    /// Rows written, on process 0; `None` on the other processes of a
    /// cluster, which feed their share and leave the writing to process 0.
    pub written: Option<Written>,
    /// Wall time of the whole replay, the first pass over the files included.
    pub elapsed: Duration,
}

/// Row counts of some tables a replay wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Rows of `fact_orders`.
    pub orders: u64,
    /// Rows of `dq_conflicts`: event ids sent with different contents.
    pub conflicting_ids: u64,
    /// Rows of `agg_sales_minute`.
    pub minutes: u64,
}

/// Replays the generated directory of `plan` and writes every table as CSV.
pub fn from_files(plan: FilesPlan) -> anyhow::Result<Summary> {
    let began = Instant::now();
    let FilesPlan {
        input,
        output_csv,
        settings,
        cluster,
    } = plan;
    let files = Arc::new(Plan::scan(&input, &settings).map_err(|e| anyhow::anyhow!(e))?);
    let lines = files.lines();
    tracing::info!(input = %input.display(), lines, workers = cluster.workers, processes = cluster.processes(), process = cluster.process, "replaying");
    let rejected: Arc<Mutex<Rejected>> = Arc::default();
    let failed: Arc<Mutex<Option<String>>> = Arc::default();
    if !cluster.is_leader() {
        let invalid = follow(cluster, settings, files, rejected, failed)?;
        return Ok(Summary {
            lines,
            invalid,
            written: None,
            elapsed: began.elapsed(),
        });
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
        move |index, peers| FileSlices::new(files.clone(), index, peers, r.clone(), f.clone()),
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
    let written = Written {
        orders: tables.count(Table::FactOrders),
        conflicting_ids: tables.count(Table::Conflicts),
        minutes: tables.count(Table::AggSalesMinute),
    };
    tables
        .write_csv(&output_csv)
        .with_context(|| format!("cannot write the tables into {}", output_csv.display()))?;
    Ok(Summary {
        lines,
        invalid,
        written: Some(written),
        elapsed: began.elapsed(),
    })
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
/// tables. Each process logs the lines its own workers rejected; returns
/// their number.
fn follow(
    cluster: Cluster,
    settings: Settings,
    files: Arc<Plan>,
    rejected: Arc<Mutex<Rejected>>,
    failed: Arc<Mutex<Option<String>>>,
) -> anyhow::Result<u64> {
    let (r, f) = (rejected.clone(), failed.clone());
    run_sliced(
        settings,
        cluster,
        move |index, peers| FileSlices::new(files.clone(), index, peers, r.clone(), f.clone()),
        |_, _| {},
    )
    .map_err(|e| anyhow::anyhow!("the dataflow failed: {e}"))?;
    if let Some(e) = failed.lock().expect("workers done").take() {
        anyhow::bail!("{e}");
    }
    Ok(report_rejected(&rejected))
}
