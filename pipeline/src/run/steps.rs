//! What `run` does with each completed step of the dataflow, on the
//! dataflow's thread: write it to the warehouse (process 0), keep the CSV
//! tables (`run.output_csv`), set the metrics, and publish it to the
//! dashboard, with the warehouse's last commit.

use crate::dashboard::{Dashboard, now_ms};
use crate::warehouse::Writer;
use shopflow_connectors::metrics::Metrics;
use shopflow_dataflow::run::Progress;
use shopflow_dataflow::{Tables, Time};
use shopflow_web::WarehouseCommit;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The consumers of completed steps.
pub(super) struct Steps {
    writer: Option<Writer>,
    tables: Option<Arc<Mutex<Tables>>>,
    dashboard: Dashboard,
    metrics: Arc<Metrics>,
    last_durable: Time,
    /// (upto, when the watermark allowed it) of steps not yet committed.
    allowed: std::collections::VecDeque<(Time, std::time::Instant)>,
}

impl Steps {
    /// Steps written by `writer` (if any), kept in `tables` (if any), shown
    /// on `dashboard`.
    pub fn new(
        writer: Option<Writer>,
        tables: Option<Arc<Mutex<Tables>>>,
        dashboard: Dashboard,
        metrics: Arc<Metrics>,
    ) -> Steps {
        Steps {
            writer,
            tables,
            dashboard,
            metrics,
            last_durable: 0,
            allowed: Default::default(),
        }
    }

    /// Takes one completed step; returns the time up to which results are
    /// durable. Without a warehouse, delivered to the console (and the CSV
    /// tables) is durable; with one, its commit is.
    pub fn apply(&mut self, progress: Progress) -> Time {
        if let (Some(at), Some(_)) = (progress.allowed_at, &self.writer) {
            self.allowed.push_back((progress.upto, at));
        }
        let durable = match &mut self.writer {
            Some(w) => w.write(&progress),
            None => progress.upto,
        };
        if let Some(tables) = &self.tables {
            let mut tables = tables.lock().expect("tables");
            let mut by_time: BTreeMap<Time, Vec<_>> = Default::default();
            for (row, t, d) in &progress.changes {
                by_time.entry(*t).or_default().push((row.clone(), *d));
            }
            for (t, batch) in by_time {
                tables.apply_time(t, batch);
            }
        }
        export_progress(&self.metrics, &progress);
        if self.writer.is_some() && durable != self.last_durable {
            self.last_durable = durable;
            // The pipeline's delay to the warehouse: from the watermark
            // allowing the committed step to complete to its commit.
            let mut committed = None;
            while self.allowed.front().is_some_and(|(t, _)| *t <= durable) {
                committed = self.allowed.pop_front();
            }
            if let Some((_, at)) = committed {
                self.metrics
                    .observe("shopflow_warehouse_delay_seconds", &[], at.elapsed());
            }
            self.dashboard.committed(WarehouseCommit {
                commits: self.metrics.total("shopflow_warehouse_commits_total"),
                at_ms: now_ms(),
                upto: durable,
            });
        }
        let allowed_at = progress.allowed_at;
        self.dashboard.absorb(progress);
        if let Some(at) = allowed_at {
            // The pipeline's delay to the dashboard: the state is published
            // to every websocket client now.
            self.metrics
                .observe("shopflow_dashboard_delay_seconds", &[], at.elapsed());
        }
        durable
    }
}

/// Sets the metrics a completed step tells: events by admission, the frontier and its lag.
pub(crate) fn export_progress(metrics: &Metrics, progress: &Progress) {
    let ingest = progress.ingest;
    for (label, n) in [
        ("on_time", ingest.on_time),
        ("late", ingest.late),
        ("too_late", ingest.too_late),
    ] {
        metrics.set("shopflow_events_total", &[("admission", label)], n);
    }
    if progress.upto < Time::MAX {
        // Kind::Seconds: set in milliseconds, rendered in seconds.
        metrics.set("shopflow_frontier_seconds", &[], progress.upto);
        let lag = (now_ms() - progress.upto as i64).max(0) as u64;
        metrics.set("shopflow_frontier_lag_seconds", &[], lag);
    }
}
