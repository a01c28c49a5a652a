//! The lake side of the Kafka source: each partition's raw buffer is
//! flushed to the lake before its positions become committable, and crash
//! recovery feeds the worker's share of the state again from the lake
//! ([`crate::kafka::recovery`]).

use super::KafkaSource;
use shopflow_dataflow::Time;
use shopflow_dataflow::live::Offer;
use shopflow_model::EventKind;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

impl KafkaSource {
    /// Makes part `i`'s positions so far committable (once their results are
    /// durable): everything before them is in the lake, if there is one.
    pub(super) fn publish(&mut self, i: usize) {
        let part = &mut self.parts[i];
        for (bound, next) in part.unflushed.drain(..) {
            push_position(&mut part.pending, bound, next);
            if let Some(positions) = &self.positions {
                let mut map = positions.lock().expect("positions");
                let queue = map.entry((part.topic.clone(), part.partition)).or_default();
                push_position(queue, bound, next);
            }
        }
    }

    /// Flushes part `i`'s raw buffer if due (or if `force`), then publishes
    /// its positions. A failed flush blocks the partition's reading until a
    /// retry (at most once a second) succeeds: nothing is committed past
    /// what the lake holds, and the buffer stops growing.
    pub(super) fn flush_lake(&mut self, i: usize, input_time: Time, force: bool) {
        let Some(writer) = self.raw.as_mut() else {
            return;
        };
        let part = &mut self.parts[i];
        if !force {
            let waiting = part
                .lake_blocked
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
            if waiting || (part.lake_blocked.is_none() && !writer.due(part.kind, part.partition)) {
                return;
            }
        }
        if let Err(e) = writer.flush(part.kind.topic(), part.kind, part.partition, input_time) {
            self.metrics.add("shopflow_lake_flush_errors_total", &[], 1);
            tracing::error!(error = %e, topic = %part.topic, partition = part.partition, "cannot write raw files; the partition waits and retries (nothing is committed past the lake)");
            part.lake_blocked = Some(Instant::now());
            return;
        }
        part.lake_blocked = None;
        self.publish(i);
    }

    /// Rebuilds this worker's share of the state from the lake (see
    /// [`super::recovery`]). A lake that cannot be read stops the run: going
    /// on would silently lose the state the warehouse rows depend on.
    pub(super) fn recover(
        &mut self,
        recovery: &crate::kafka::recovery::Recovery,
        offer: &mut Offer<'_>,
    ) {
        let parts: Vec<(EventKind, String, i32)> = self
            .parts
            .iter()
            .map(|p| (p.kind, p.topic.clone(), p.partition))
            .collect();
        let began = Instant::now();
        match crate::kafka::recovery::recover(recovery, &self.dataflow, &parts, offer) {
            Ok((counts, newest, mut skip)) => {
                for p in &mut self.parts {
                    if let Some(&ts) = newest.get(&(p.kind, p.partition)) {
                        p.max_ts = p.max_ts.max(Some(ts));
                    }
                    p.skip = skip.remove(&(p.kind, p.partition)).unwrap_or_default();
                }
                self.metrics
                    .add("shopflow_recovered_total", &[], counts.fed);
                tracing::info!(
                    files = counts.files,
                    messages = counts.fed,
                    skipped = counts.skipped,
                    frontier = %shopflow_model::Timestamp(recovery.frontier as i64),
                    seconds = format!("{:.2}", began.elapsed().as_secs_f64()),
                    "state recovered from the lake"
                );
            }
            Err(e) => panic!(
                "cannot recover the dataflow state from the lake ({e}); nothing was written since the last commit: fix the lake and start `shopflow run` again"
            ),
        }
    }

    /// Flushes every raw buffer and writes due `_SUCCESS` markers. `last`:
    /// nothing more will be read, so once all is flushed this worker holds
    /// no later result back ([`RawWriter::finish`]).
    pub(super) fn flush_all(&mut self, input_time: Time, last: bool) {
        for i in 0..self.parts.len() {
            self.flush_lake(i, input_time, true);
        }
        if let Some(writer) = &mut self.raw {
            if last {
                writer.finish(input_time);
            } else {
                writer.settle(input_time, true);
            }
        }
    }
}

/// Appends (time bound, next offset), merging with the last entry of the same bound.
pub(super) fn push_position(queue: &mut VecDeque<(Time, i64)>, bound: Time, next: i64) {
    match queue.back_mut() {
        Some((b, n)) if *b == bound => *n = next,
        _ => queue.push_back((bound, next)),
    }
}
