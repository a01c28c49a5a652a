//! A replay of days of the lake (`replay --from DATE --to DATE`): history from the lake's raw
//! layer, through the same validation and dataflow as the live run, into the
//! warehouse (each day in one transaction) and/or CSV files.
//!
//! Each day is its own bounded run over its raw hours plus a margin of the
//! allowed lateness and the horizon on both sides (so that conflicting
//! versions of an event resolve as they did live), with the reference topics
//! whole, fed in event-time slices (`bounded::StreamSlices`) so that the
//! dataflow's state stays at the live horizon's size. Only the day's facts
//! and windows are kept, with the dimensions: memory is one day of records
//! and rows, whatever the range.

use super::write_csv;
use anyhow::{Context, anyhow};
use shopflow_connectors::lake::paths::{DAY_MS, HOUR_MS};
use shopflow_connectors::lake::raw::RawRow;
use shopflow_connectors::lake::{Lake, LakeSettings, curated, read};
use shopflow_connectors::warehouse::WarehouseSettings;
use shopflow_connectors::warehouse::sink::Sink;
use shopflow_dataflow::bounded::{StreamSlices, run_sliced};
use shopflow_dataflow::run::Input;
use shopflow_dataflow::{Cluster, Row, Settings, Table, Tables};
use shopflow_model::{Date, EventKind};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a replay of days of the lake is asked to do.
#[derive(Clone, Debug)]
pub struct LakePlan {
    /// The lake to read (and to write the curated layer into).
    pub lake: LakeSettings,
    /// The warehouse to rewrite the days in; `None`: no warehouse.
    pub warehouse: Option<WarehouseSettings>,
    /// First day.
    pub from: Date,
    /// Last day (inclusive).
    pub to: Date,
    /// CSV output directory.
    pub output_csv: Option<PathBuf>,
    /// Dataflow workers and processes; only process 0 writes.
    pub cluster: Cluster,
    /// Dataflow settings (must match the live run's).
    pub settings: Settings,
    /// Also write each day's curated layer.
    pub curated: bool,
}

/// What a replay from the lake did, for its summary.
#[derive(Clone, Debug, Default)]
pub struct LakeSummary {
    /// Raw files read.
    pub files: usize,
    /// Valid messages by topic (days overlapping by the margin count each time).
    pub events: BTreeMap<&'static str, u64>,
    /// Rejected messages by topic and reason code.
    pub rejected: BTreeMap<(&'static str, String), u64>,
    /// Repeated copies dropped: a partition's offset found in more than one
    /// raw file (the copy of the latest run is kept).
    pub copies: usize,
    /// Warehouse rows upserted per table, and deleted as `deleted_<table>`.
    pub written: BTreeMap<&'static str, u64>,
    /// Seconds spent listing, reading, decoding and validating the lake.
    pub read_s: f64,
    /// Seconds spent in the dataflow.
    pub dataflow_s: f64,
    /// Seconds spent writing the warehouse and the curated layer.
    pub write_s: f64,
    /// Wall time of the whole replay.
    pub elapsed: Duration,
}

/// A one-line progress display on stderr: redrawn in place on a terminal,
/// a log line every 5 s otherwise.
struct Progress {
    began: Instant,
    last: Instant,
    tty: bool,
    files: usize,
    total_files: usize,
    events: u64,
}

impl Progress {
    fn show(&mut self, force: bool) {
        let every = if self.tty { 0.2 } else { 5.0 };
        if !force && self.last.elapsed().as_secs_f64() < every {
            return;
        }
        self.last = Instant::now();
        let secs = self.began.elapsed().as_secs_f64().max(1e-9);
        let line = format!(
            "files {}/{}  events {}  {:.0} events/s",
            self.files,
            self.total_files,
            self.events,
            self.events as f64 / secs
        );
        if self.tty {
            let width = 30;
            let done = (self.files * width) / self.total_files.max(1);
            eprint!(
                "\r[{}{}] {line}   ",
                "#".repeat(done),
                ".".repeat(width - done)
            );
            let _ = std::io::stderr().flush();
        } else {
            tracing::info!("{line}");
        }
    }
}

/// Replays the days of `plan` from the lake; returns what it did.
pub fn from_lake(plan: LakePlan) -> anyhow::Result<LakeSummary> {
    anyhow::ensure!(
        plan.from <= plan.to,
        "--from ({}) is after --to ({})",
        plan.from,
        plan.to
    );
    let lake = Lake::open(&plan.lake, None).map_err(|e| anyhow!(e))?;
    let leader = plan.cluster.is_leader();
    let mut sink = match plan.warehouse.as_ref().filter(|_| leader) {
        None => None,
        Some(warehouse) => {
            crate::warehouse::migrate(warehouse)?;
            Some(Sink::open(warehouse, &plan.settings).map_err(|e| anyhow!(e))?)
        }
    };
    if sink.is_none() && plan.output_csv.is_none() {
        tracing::info!(
            "no --database-url and no --output-csv: computing only (a check, or a benchmark)"
        );
    }
    let margin = margin(&plan.settings);
    // List every file first, for the progress bar.
    let reference: Vec<_> = [EventKind::Fx, EventKind::Product, EventKind::User]
        .into_iter()
        .map(|k| Ok((k, read::list(&lake, k, None)?)))
        .collect::<Result<_, shopflow_connectors::lake::LakeError>>()
        .map_err(|e| anyhow!(e))?;
    let mut days = Vec::new();
    let mut day = plan.from;
    while day <= plan.to {
        let (start, end) = (day.start().0, day.start().0 + DAY_MS);
        let mut files = Vec::new();
        for kind in [EventKind::Click, EventKind::Cart, EventKind::Purchase] {
            let listed = read::list(&lake, kind, Some((start - margin, end + margin)))
                .map_err(|e| anyhow!(e))?;
            files.push((kind, listed));
        }
        days.push((day, files));
        day = day.succ();
    }
    let mut progress = Progress {
        began: Instant::now(),
        last: Instant::now(),
        tty: std::io::stderr().is_terminal(),
        files: 0,
        total_files: reference.iter().map(|(_, f)| f.len()).sum::<usize>()
            + days
                .iter()
                .flat_map(|(_, f)| f.iter().map(|(_, f)| f.len()))
                .sum::<usize>(),
        events: 0,
    };
    let mut totals = LakeSummary::default();
    tracing::info!(lake = %lake.url(), from = %plan.from, to = %plan.to, files = progress.total_files, "replaying from the lake");
    let t = Instant::now();
    let refs = load(&lake, &reference, &mut progress, &mut totals)?;
    totals.read_s += t.elapsed().as_secs_f64();
    let mut csv_tables = plan
        .output_csv
        .as_ref()
        .filter(|_| leader)
        .map(|_| Tables::new(plan.settings.clone()));
    for (day, files) in days {
        let t = Instant::now();
        let mut streams = refs.clone();
        streams.extend(load(&lake, &files, &mut progress, &mut totals)?);
        totals.read_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        // Each day is its own run: its own generation, so that a process
        // still on another day never joins it.
        let cluster = plan
            .cluster
            .generation(plan.cluster.generation ^ (day.start().0 as u64).rotate_left(20));
        let rows = day_rows(&plan.settings, cluster, day, streams)?;
        totals.dataflow_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (start, end) = (day.start().0, day.start().0 + DAY_MS);
        if plan.curated && leader {
            curated::write_day(&lake, day, &rows).map_err(|e| anyhow!("day {day}: {e}"))?;
        }
        if let Some(sink) = &mut sink {
            let written = sink.rewrite_day(start, end, &rows).map_err(|e| {
                anyhow!(
                    "day {day}: {}; the day's transaction was rolled back: nothing of it changed",
                    e.0
                )
            })?;
            for (table, n) in written {
                *totals.written.entry(table).or_default() += n;
            }
        }
        if let Some(t) = &mut csv_tables {
            t.apply_time(0, rows.into_iter().map(|r| (r, 1)).collect());
        }
        totals.write_s += t.elapsed().as_secs_f64();
        progress.show(true);
        if !progress.tty {
            tracing::info!(%day, "day replayed");
        }
    }
    if progress.tty {
        eprintln!();
    }
    if let (Some(dir), Some(tables)) = (&plan.output_csv, &csv_tables) {
        write_csv(tables, dir).with_context(|| format!("writing {}", dir.display()))?;
    }
    totals.elapsed = progress.began.elapsed();
    Ok(totals)
}

/// The rows of `day` (its facts and windows, every dimension member and
/// conflict) computed by one bounded run over `streams` (the records of
/// each topic file list, in order), fed in event-time slices so that the
/// dataflow's state stays at the live horizon's size.
fn day_rows(
    settings: &Settings,
    cluster: Cluster,
    day: Date,
    streams: Vec<Vec<Input>>,
) -> anyhow::Result<Vec<Row>> {
    let steps = StreamSlices::plan(&streams, SLICE_RECORDS, settings);
    let streams = Arc::new(streams);
    let mut tables = Tables::new(settings.clone());
    run_sliced(
        settings.clone(),
        cluster,
        move |i, n| StreamSlices::new(streams.clone(), steps.clone(), SLICE_RECORDS, i, n),
        |time, batch| tables.apply_time(time, batch),
    )
    .map_err(|e| anyhow!("the dataflow failed: {e}"))?;
    let (start, end) = (day.start().0, day.start().0 + DAY_MS);
    Ok(Table::WAREHOUSE
        .into_iter()
        .chain([Table::Conflicts])
        .flat_map(|t| tables.rows(t).cloned().collect::<Vec<_>>())
        .filter(|r| r.event_time().is_none_or(|t| (start..end).contains(&t)))
        .collect())
}

/// Records per slice of a day's replay.
const SLICE_RECORDS: usize = 8192;

/// Replays one day from the lake (one worker, no progress display) and
/// writes its curated layer: what `run` does once a day is complete.
pub(crate) fn curate_day(lake: &Lake, settings: &Settings, day: Date) -> anyhow::Result<usize> {
    let (start, end) = (day.start().0, day.start().0 + DAY_MS);
    let m = margin(settings);
    let mut files = Vec::new();
    for kind in EventKind::ALL {
        let hours = (!matches!(kind, EventKind::Fx | EventKind::Product | EventKind::User))
            .then_some((start - m, end + m));
        files.push((kind, read::list(lake, kind, hours).map_err(|e| anyhow!(e))?));
    }
    let mut progress = Progress {
        began: Instant::now(),
        last: Instant::now(),
        tty: false,
        files: 0,
        total_files: 0,
        events: 0,
    };
    let streams = load(lake, &files, &mut progress, &mut LakeSummary::default())?;
    let rows = day_rows(settings, Cluster::single(1), day, streams)?;
    curated::write_day(lake, day, &rows).map_err(|e| anyhow!(e))
}

/// The margin read around a day: the allowed lateness plus the horizon,
/// rounded up to whole hours.
fn margin(settings: &Settings) -> i64 {
    round_up_hour(settings.allowed_lateness_ms + settings.horizon_ms)
}

fn round_up_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
        + if ms.rem_euclid(HOUR_MS) > 0 {
            HOUR_MS
        } else {
            0
        }
}

/// Reads, deduplicates and validates the files of each topic: one stream
/// of records per topic, in the order read.
fn load(
    lake: &Lake,
    files: &[(EventKind, Vec<shopflow_connectors::lake::paths::RawFile>)],
    progress: &mut Progress,
    totals: &mut LakeSummary,
) -> anyhow::Result<Vec<Vec<Input>>> {
    let mut streams = Vec::new();
    for (kind, list) in files {
        let mut out = Vec::new();
        let mut rows: Vec<RawRow> = read::read(lake, list, &mut |n| {
            progress.files += 1;
            progress.events += n as u64;
            progress.show(false);
        })
        .map_err(|e| anyhow!(e))?;
        totals.files += list.len();
        totals.copies += read::dedup(&mut rows);
        for row in rows {
            match Input::from_line(*kind, &row.payload) {
                Ok(input) => {
                    *totals.events.entry(kind.topic()).or_default() += 1;
                    out.push(input);
                }
                Err(e) => {
                    *totals
                        .rejected
                        .entry((kind.topic(), e.reason.code().to_owned()))
                        .or_default() += 1;
                }
            }
        }
        streams.push(out);
    }
    Ok(streams)
}
