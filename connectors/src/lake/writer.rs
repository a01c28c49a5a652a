//! The raw writer of `shopflow run`: one per worker, buffering the messages of
//! each partition it owns and writing them to the raw layer.
//!
//! - A partition's buffer is flushed when its payloads reach
//!   `lake.flush_bytes`, when its oldest record is `lake.flush_ms` old, and at
//!   every stop. A flush writes one file per event-time hour present in the
//!   buffer, named by the first and last offset it holds, so a retried flush
//!   writes the same objects.
//! - The source publishes a partition's positions (for offset commits and
//!   `pipeline_progress`) only after the flush covering them: the lake always
//!   holds every message before the committed position.
//! - An hour of a topic gets `_SUCCESS` once every worker's input time has
//!   passed its end plus the allowed lateness with all it read before then
//!   flushed ([`Completion`]); too-late messages for that hour still land in
//!   it afterwards.

use super::paths::{HOUR_MS, hour_of, raw_file, raw_file_of_run, success_marker};
use super::raw::{RawRecord, encode};
use super::{Lake, LakeError};
use crate::metrics::Metrics;
use shopflow_model::EventKind;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which hours have files, and how far every worker has flushed: shared by
/// the workers' writers, to write `_SUCCESS` markers.
#[derive(Debug, Default)]
pub struct Completion {
    /// Per registered worker: (the time before which everything it fed is
    /// flushed, its input time).
    flushed: Mutex<BTreeMap<usize, (u64, u64)>>,
    /// (topic, hour start) with files and no marker yet.
    hours: Mutex<BTreeSet<(String, i64)>>,
    /// Days with an hour marked complete (for the curated layer).
    days: Mutex<BTreeSet<shopflow_model::Date>>,
}

impl Completion {
    /// Registers a worker that writes raw files.
    pub fn register(&self, worker: usize) {
        self.flushed.lock().expect("flushed").insert(worker, (0, 0));
    }

    /// What the workers in `workers` reported: (worker, flushed, input time).
    pub fn snapshot(&self, workers: std::ops::Range<usize>) -> Vec<(usize, u64, u64)> {
        self.flushed
            .lock()
            .expect("flushed")
            .range(workers)
            .map(|(&w, &(f, i))| (w, f, i))
            .collect()
    }

    /// Takes in what the workers of another process reported ([`Completion::snapshot`]).
    pub fn merge(&self, reports: &[(usize, u64, u64)]) {
        for &(worker, flushed, input_time) in reports {
            self.report(worker, flushed, input_time);
        }
    }

    fn report(&self, worker: usize, flushed: u64, input_time: u64) {
        let mut map = self.flushed.lock().expect("flushed");
        let e = map.entry(worker).or_insert((0, 0));
        *e = (e.0.max(flushed), e.1.max(input_time));
    }

    /// The time before which every record any worker fed is in the lake:
    /// results before it may be committed (`u64::MAX` once every worker has
    /// finished and flushed everything).
    pub fn complete(&self) -> u64 {
        self.flushed
            .lock()
            .expect("flushed")
            .values()
            .map(|v| v.0)
            .min()
            .unwrap_or(0)
    }

    /// The smallest input time of the workers (the watermark they reached):
    /// the frontier recorded by a run that drained.
    pub fn input_time(&self) -> u64 {
        self.flushed
            .lock()
            .expect("flushed")
            .values()
            .map(|v| v.1)
            .min()
            .unwrap_or(0)
    }

    /// Days with an hour marked complete by this run.
    pub fn days(&self) -> Vec<shopflow_model::Date> {
        self.days.lock().expect("days").iter().copied().collect()
    }

    /// The watermark every worker has passed with all it read flushed.
    pub fn marked(&self) -> u64 {
        self.flushed
            .lock()
            .expect("flushed")
            .values()
            .map(|v| v.0.min(v.1))
            .min()
            .unwrap_or(0)
    }

    /// Writes the markers of every hour complete before `upto` (the smallest
    /// flushed time of all workers) minus the lateness.
    fn mark(&self, lake: &Lake, lateness_ms: i64) -> Result<(), LakeError> {
        let upto = self.marked().min(i64::MAX as u64) as i64;
        let due: Vec<(String, i64)> = {
            let hours = self.hours.lock().expect("hours");
            hours
                .iter()
                .filter(|(_, h)| h + HOUR_MS + lateness_ms <= upto)
                .cloned()
                .collect()
        };
        for (topic, hour) in due {
            lake.put(&success_marker(&topic, hour), bytes::Bytes::new())?;
            self.days
                .lock()
                .expect("days")
                .insert(shopflow_model::Timestamp(hour).date());
            self.hours.lock().expect("hours").remove(&(topic, hour));
        }
        Ok(())
    }
}

static STARTED: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// Sets the run's start time before anything reads it: the processes of a
/// cluster share process 0's, so that crash recovery treats the raw files
/// they all wrote as one run's. False if it was read or set already.
pub fn set_run_started(ms: i64) -> bool {
    STARTED.set(ms).is_ok()
}

/// When this process's run started (ms since the epoch): the first call's
/// time, written into every raw file it writes and recorded with its
/// commits in `pipeline_runs`.
pub fn run_started() -> i64 {
    *STARTED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// A buffered record and the hour it is dated in.
struct Buffered {
    hour: i64,
    record: RawRecord,
}

#[derive(Default)]
struct PartBuf {
    records: Vec<Buffered>,
    bytes: u64,
    oldest: Option<Instant>,
    /// Input time at the last moment this buffer held nothing unflushed.
    flushed_time: u64,
}

/// One worker's raw writer.
pub struct RawWriter {
    lake: Arc<Lake>,
    completion: Arc<Completion>,
    worker: usize,
    lateness_ms: i64,
    metrics: Arc<Metrics>,
    parts: BTreeMap<(EventKind, i32), PartBuf>,
    last_mark: Instant,
    /// When this process's run started (ms): written into every file.
    run: i64,
}

impl RawWriter {
    /// A writer for worker `worker` (registered with `completion`).
    pub fn new(
        lake: Arc<Lake>,
        completion: Arc<Completion>,
        worker: usize,
        lateness_ms: i64,
        metrics: Arc<Metrics>,
    ) -> RawWriter {
        completion.register(worker);
        RawWriter {
            lake,
            completion,
            worker,
            lateness_ms,
            metrics,
            parts: BTreeMap::new(),
            last_mark: Instant::now(),
            run: run_started(),
        }
    }

    /// Buffers one message of `kind`'s topic, dated by `ts_ms` (its event
    /// time, or its Kafka time if it has none).
    pub fn add(&mut self, kind: EventKind, ts_ms: i64, record: RawRecord) {
        let buf = self.parts.entry((kind, record.partition)).or_default();
        buf.bytes += record.payload.len() as u64;
        buf.oldest.get_or_insert_with(Instant::now);
        buf.records.push(Buffered {
            hour: hour_of(ts_ms),
            record,
        });
    }

    /// Whether a partition's buffer should be flushed now.
    pub fn due(&self, kind: EventKind, partition: i32) -> bool {
        let s = self.lake.settings();
        self.parts.get(&(kind, partition)).is_some_and(|b| {
            b.bytes >= s.flush_bytes
                || b.oldest
                    .is_some_and(|t| t.elapsed() >= Duration::from_millis(s.flush_ms))
        })
    }

    /// Writes a partition's buffer, one file per hour. On success the buffer
    /// is empty; on failure it is kept whole (files already written are
    /// written again identically by the next try).
    pub fn flush(
        &mut self,
        topic: &str,
        kind: EventKind,
        partition: i32,
        input_time: u64,
    ) -> Result<(), LakeError> {
        let Some(buf) = self.parts.get_mut(&(kind, partition)) else {
            return Ok(());
        };
        if buf.records.is_empty() {
            buf.flushed_time = buf.flushed_time.max(input_time);
            return Ok(());
        }
        let mut by_hour: BTreeMap<i64, Vec<RawRecord>> = BTreeMap::new();
        for b in &buf.records {
            by_hour.entry(b.hour).or_default().push(b.record.clone());
        }
        let began = Instant::now();
        for (hour, records) in &by_hour {
            let first = records.first().map_or(0, |r| r.offset);
            let last = records.last().map_or(0, |r| r.offset);
            let key = raw_file(topic, *hour, partition, first, last);
            let bytes: bytes::Bytes = encode(kind, records, self.run)
                .map_err(|why| LakeError::Corrupt {
                    key: key.clone(),
                    why: format!("cannot encode: {why}"),
                })?
                .into();
            match self.lake.put(&key, bytes.clone()) {
                Ok(_) => {}
                Err(LakeError::Conflict(_)) => {
                    // The same messages, written by an earlier run that stopped
                    // before committing them: this run's copy (its own
                    // admissions and entry times) goes beside it, named by run.
                    self.metrics.add("shopflow_lake_conflicts_total", &[], 1);
                    let again = raw_file_of_run(topic, *hour, partition, first, last, self.run);
                    tracing::debug!(%key, %again, "raw file written by an earlier run; this run's copy goes beside it");
                    self.lake.put(&again, bytes)?;
                }
                Err(e) => return Err(e),
            }
            self.metrics.add(
                "shopflow_lake_records_total",
                &[("topic", topic)],
                records.len() as u64,
            );
        }
        {
            let mut hours = self.completion.hours.lock().expect("hours");
            for hour in by_hour.keys() {
                hours.insert((topic.to_owned(), *hour));
            }
        }
        self.metrics
            .observe("shopflow_lake_flush_seconds", &[], began.elapsed());
        tracing::debug!(
            topic,
            partition,
            files = by_hour.len(),
            ms = began.elapsed().as_millis() as u64,
            "raw files written"
        );
        let buf = self.parts.get_mut(&(kind, partition)).expect("buffer");
        buf.records.clear();
        buf.bytes = 0;
        buf.oldest = None;
        buf.flushed_time = buf.flushed_time.max(input_time);
        Ok(())
    }

    /// The worker reads nothing more: if every buffer is flushed, it no
    /// longer holds results back; otherwise it settles at `input_time`.
    pub fn finish(&mut self, input_time: u64) {
        if self.parts.values().all(|b| b.records.is_empty()) {
            self.completion.report(self.worker, u64::MAX, input_time);
            if let Err(e) = self.completion.mark(&self.lake, self.lateness_ms) {
                tracing::warn!(error = %e, "cannot write _SUCCESS markers");
            }
        } else {
            self.settle(input_time, true);
        }
    }

    /// Notes that every partition with an empty buffer is flushed up to
    /// `input_time`, tells the others, and writes due `_SUCCESS` markers (at
    /// most once a second unless `now`).
    pub fn settle(&mut self, input_time: u64, now: bool) {
        for buf in self.parts.values_mut() {
            if buf.records.is_empty() {
                buf.flushed_time = buf.flushed_time.max(input_time);
            }
        }
        let mine = self
            .parts
            .values()
            .map(|b| b.flushed_time)
            .min()
            .unwrap_or(input_time);
        self.completion.report(self.worker, mine, input_time);
        if now || self.last_mark.elapsed() >= Duration::from_secs(1) {
            self.last_mark = Instant::now();
            if let Err(e) = self.completion.mark(&self.lake, self.lateness_ms) {
                tracing::warn!(error = %e, "cannot write _SUCCESS markers yet; retried later");
            }
        }
    }
}
