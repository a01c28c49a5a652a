//! Crash recovery: a worker rebuilds its share of the dataflow's state from
//! the lake before it reads Kafka.
//!
//! The warehouse holds every result before its committed frontier `F`: the
//! results of exactly the messages that entered the dataflow before the
//! frontier the run reading them committed. The sink commits a frontier only
//! once every message that entered before it is in the lake
//! ([`crate::lake::writer::Completion`]); the raw layer records when each
//! copy entered (`entered_at`) and which run wrote it (`run_started_at`),
//! and `pipeline_runs` the frontier each run committed. So the worker feeds
//! again, from the raw layer, every message of its partitions with a copy
//! that entered before its run's committed frontier: reference topics whole,
//! event topics from the hour of `F − 1 h − horizon` on (older ones have
//! left the live state by `F`). A copy written by a run that stopped before
//! committing it does not count: that run's results were never committed.
//! Every copy of a run that drained (stopped cleanly, committing all it
//! read) counts.
//! Then it moves its input time to `F` and reads Kafka from the committed
//! offsets (`pipeline_progress`), skipping the messages it has just fed. The
//! warehouse sink drops changes before `F` (already committed); from `F` on,
//! the state is that of a run that never stopped.

use crate::lake::paths::{HOUR_MS, hour_of};
use crate::lake::raw::RawRow;
use crate::lake::{Lake, LakeError, read};
use shopflow_dataflow::live::Offer;
use shopflow_dataflow::run::Input;
use shopflow_dataflow::{Settings, Time};
use shopflow_model::EventKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a restarted run recovers from.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The lake.
    pub lake: Arc<Lake>,
    /// The warehouse's committed frontier.
    pub frontier: Time,
    /// Next offset per (topic, partition), from `pipeline_progress`.
    pub resume: BTreeMap<(String, i32), i64>,
    /// The frontier each earlier run committed and whether it drained, by
    /// its start time (ms), from `pipeline_runs`.
    pub runs: BTreeMap<i64, (Time, bool)>,
}

/// The newest event time fed per (topic, partition).
pub type Newest = BTreeMap<(EventKind, i32), i64>;

/// Offsets at or after the committed position that were fed, per (topic,
/// partition): Kafka delivers them again, and they must be skipped.
pub type Skip = BTreeMap<(EventKind, i32), std::collections::BTreeSet<i64>>;

/// Counts of one worker's recovery.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recovered {
    /// Raw files read.
    pub files: usize,
    /// Messages fed again.
    pub fed: u64,
    /// Messages skipped: rejected, too late, or at or past the committed offset.
    pub skipped: u64,
}

/// Feeds the messages of `parts` ((kind, topic, partition), reference topics
/// first) that entered before the frontier; returns the counts, the newest
/// event time fed per event partition, and the offsets Kafka will deliver
/// again that must be skipped.
pub fn recover(
    recovery: &Recovery,
    settings: &Settings,
    parts: &[(EventKind, String, i32)],
    offer: &mut Offer<'_>,
) -> Result<(Recovered, Newest, Skip), LakeError> {
    let since = hour_of(recovery.frontier as i64 - HOUR_MS - settings.horizon_ms) - HOUR_MS;
    // A run that drained committed inputs that entered after its frontier
    // too (future event times): look a week ahead.
    let until = hour_of(recovery.frontier as i64) + 7 * 24 * HOUR_MS;
    let mut counts = Recovered::default();
    let mut newest = Newest::new();
    let mut skip = Skip::new();
    let frontier = recovery.frontier as i64;
    let mut kinds: Vec<EventKind> = parts.iter().map(|p| p.0).collect();
    kinds.dedup();
    for kind in kinds {
        let hours = (!crate::kafka::is_reference(kind)).then_some((since, until));
        let owned: BTreeMap<i32, i64> = parts
            .iter()
            .filter(|p| p.0 == kind)
            .map(|p| (p.2, *recovery.resume.get(&(p.1.clone(), p.2)).unwrap_or(&0)))
            .collect();
        let files: Vec<_> = read::list(&recovery.lake, kind, hours)?
            .into_iter()
            .filter(|f| owned.contains_key(&f.partition))
            .collect();
        counts.files += files.len();
        let mut rows = read::read(&recovery.lake, &files, &mut |_| {})?;
        // A copy is reflected in the warehouse when it entered before the
        // frontier its own run committed; keep one such copy per message.
        let reflected = |r: &RawRow| {
            let (committed, drained) = recovery.runs.get(&r.run).copied().unwrap_or((0, false));
            r.error.is_none()
                && r.entered
                    .is_some_and(|t| drained || t < (committed as i64).min(frontier))
        };
        let total = rows.len();
        rows.retain(reflected);
        read::dedup(&mut rows);
        counts.skipped += (total - rows.len()) as u64;
        for row in rows {
            let next = owned.get(&row.partition).copied().unwrap_or(0);
            if row.offset >= next {
                skip.entry((kind, row.partition))
                    .or_default()
                    .insert(row.offset);
            }
            match Input::from_line(kind, &row.payload) {
                Ok(input) => {
                    if matches!(input, Input::Event(..)) {
                        let e = newest.entry((kind, row.partition)).or_insert(i64::MIN);
                        *e = (*e).max(input.ts());
                    }
                    offer.recover(input);
                    counts.fed += 1;
                }
                Err(_) => counts.skipped += 1,
            }
        }
    }
    offer.advance_to(recovery.frontier);
    Ok((counts, newest, skip))
}
