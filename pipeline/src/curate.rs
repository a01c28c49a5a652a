//! `run`'s curated-layer builder. Once the lake's watermark (every worker
//! past it with all it read flushed) is beyond a day's end plus the allowed
//! lateness, no more on-time message can arrive for that day: it is replayed
//! from the raw layer on one thread in the background and written under
//! `curated/` (`docs/lake.md`). Candidates are the days whose hours this run
//! marked complete, and after a restart the days around the recovered
//! frontier, so a build interrupted by a crash is done again. A day whose
//! curated marker exists is skipped.

use shopflow_connectors::lake::paths::DAY_MS;
use shopflow_connectors::lake::writer::Completion;
use shopflow_connectors::lake::{Lake, curated};
use shopflow_connectors::metrics::Metrics;
use shopflow_dataflow::{Settings, Time};
use shopflow_model::{Date, Timestamp};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Builds the curated layer of complete days, one at a time.
pub struct Curator {
    lake: Arc<Lake>,
    completion: Arc<Completion>,
    settings: Settings,
    candidates: BTreeSet<Date>,
    done: BTreeSet<Date>,
    running: Option<(Date, JoinHandle<anyhow::Result<usize>>)>,
    last_check: Instant,
    metrics: Arc<Metrics>,
}

impl Curator {
    /// A curator; `recovered` is the frontier a restart recovered from.
    pub fn new(
        lake: Arc<Lake>,
        completion: Arc<Completion>,
        settings: Settings,
        recovered: Option<Time>,
        metrics: Arc<Metrics>,
    ) -> Curator {
        let mut candidates = BTreeSet::new();
        if let Some(f) = recovered {
            let day = Timestamp(f as i64).date();
            candidates.insert(day);
            candidates.insert(Date(day.0 - 1));
        }
        Curator {
            lake,
            completion,
            settings,
            candidates,
            done: BTreeSet::new(),
            running: None,
            last_check: Instant::now(),
            metrics,
        }
    }

    /// Starts the next due build, if none is running (cheap; call often).
    pub fn poll(&mut self) {
        if self.running.as_ref().is_some_and(|(_, h)| h.is_finished()) {
            self.join();
        }
        if self.running.is_some() || self.last_check.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.last_check = Instant::now();
        self.start_due();
    }

    /// Joins the running build (waiting for it), logging its outcome; a
    /// failed day goes back to the candidates.
    fn join(&mut self) {
        let Some((day, handle)) = self.running.take() else {
            return;
        };
        let outcome = handle.join();
        if matches!(outcome, Ok(Ok(_))) {
            // Kind::Seconds, in ms: the end of the latest day with its _SUCCESS.
            let end = (day.start().0 + DAY_MS).max(0) as u64;
            if end > self.metrics.get("shopflow_lake_curated_until_seconds", &[]) {
                self.metrics
                    .set("shopflow_lake_curated_until_seconds", &[], end);
            }
        }
        match outcome {
            Ok(Ok(0)) => tracing::debug!(%day, "curated layer already written"),
            Ok(Ok(objects)) => tracing::info!(%day, objects, "curated layer written"),
            Ok(Err(e)) => {
                tracing::error!(%day, error = %e, "cannot write the curated layer; retried later");
                self.done.remove(&day);
                self.candidates.insert(day);
            }
            Err(_) => tracing::error!(%day, "the curated builder panicked"),
        }
    }

    /// Starts the build of the first due day; returns it.
    fn start_due(&mut self) -> Option<Date> {
        self.candidates.extend(self.completion.days());
        let watermark = self.completion.marked().min(i64::MAX as u64) as i64;
        let day = self.candidates.iter().copied().find(|d| {
            !self.done.contains(d)
                && d.start().0 + DAY_MS + self.settings.allowed_lateness_ms <= watermark
        })?;
        self.candidates.remove(&day);
        self.done.insert(day);
        let (lake, settings) = (self.lake.clone(), self.settings.clone());
        let spawned = std::thread::Builder::new()
            .name("curator".into())
            .spawn(move || {
                if curated::is_written(&lake, day).map_err(|e| anyhow::anyhow!(e))? {
                    return Ok(0);
                }
                crate::replay::curate_day(&lake, &settings, day)
            });
        match spawned {
            Ok(handle) => self.running = Some((day, handle)),
            Err(e) => tracing::error!(error = %e, "cannot start the curated builder"),
        }
        Some(day)
    }

    /// At shutdown: waits for the running build, then builds every other
    /// due day once, in order.
    pub fn finish(mut self) {
        self.join();
        let mut attempted = BTreeSet::new();
        while let Some(day) = self.start_due() {
            self.join();
            if !attempted.insert(day) {
                break; // failed twice: left for the next run
            }
        }
    }
}
