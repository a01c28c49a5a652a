//! The Kafka source: one per dataflow worker, each owning its partitions.
//!
//! - **Ownership:** every partition of the six input topics is listed in a
//!   fixed order (topic, then partition) and the i-th goes to worker
//!   `i % workers` ([`assignment`]), assigned explicitly (no group
//!   rebalancing), so each partition has exactly one owner.
//! - **Order of reading:** each partition has its own queue. Reference topics
//!   (`fx_rates`, `products`, `users`) are drained first on every poll, so a
//!   product or rate is in the dataflow before the events that follow it;
//!   then up to `batch` messages from each event partition.
//! - **Watermarks:** per event partition, the newest event time minus the
//!   out-of-orderness. A partition holds the worker back until it has
//!   delivered something or reached its end. One that is at its end and quiet
//!   for `idle_timeout_ms` is idle: an empty one holds nobody back, and one
//!   with data vouches for as much more event time as it has been quiet in
//!   wall-clock time (its mark grows with the clock). So a quiet partition
//!   never stalls live traffic, yet a partition that resumes after a pause
//!   (a producer restart, a broker restart) finds the others at most that
//!   pause ahead, not wherever the fastest partition ran to.
//! - **Reference data first:** a reference partition with unread messages
//!   holds the watermark at the newest time it has read (an FX rate applies
//!   from its date's start, a product or profile version from `updated_at`),
//!   so no event time completes before the rates and versions that apply to
//!   it are in the dataflow, whatever order Kafka delivers partitions in. One
//!   that has reached its end holds nobody back, however long it is quiet.
//! - **Backpressure:** while more than `max_in_flight` records of this worker
//!   are not complete, its partitions that are ahead of the watermark are
//!   paused: no longer read, so librdkafka stops fetching them once their
//!   8 MiB prefetch queue is full. The ones holding the watermark back keep
//!   reading (only they can complete what is in flight); paused ones resume
//!   when they are no longer ahead, all of them below half the limit.
//! - **Validation:** every message is validated; a failure goes to
//!   `dead_letters` and is counted, never dropped.
//! - **Offsets:** after each batch a partition remembers (time bound, next
//!   offset); once results before the bound are durable, the dead letters are
//!   flushed and the offset is committed to the consumer group, so standard
//!   lag tools see the pipeline's real progress.
//!
//! Submodules: `layout` (ownership, partition counts, positions) and `lake`
//! (raw flushes before positions are published, crash recovery).

mod lake;
mod layout;

pub use layout::{
    Positions, assignment, drain_positions, partition_counts, push_positions, take_positions,
};

use super::dead_letters::{DeadLetters, Origin};
use super::startup::committed;
use super::{KafkaSettings, StartAt, is_reference};
use crate::lake::raw::RawRecord;
use crate::lake::writer::RawWriter;
use crate::metrics::Metrics;
use lake::push_position;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, consumer::base_consumer::PartitionQueue};
use shopflow_dataflow::input::Admission;
use shopflow_dataflow::live::{Mark, Offer, Source};
use shopflow_dataflow::run::Input;
use shopflow_dataflow::{Settings, Time};
use shopflow_model::EventKind;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Client callbacks: errors, commit results and statistics go to logs and metrics.
pub struct Callbacks(Arc<Metrics>);

/// How often the consumer reports its statistics (the consumer lag gauge).
const STATISTICS_INTERVAL_MS: &str = "5000";

impl ClientContext for Callbacks {
    /// Consumer lag per partition this consumer reads: the high watermark
    /// minus the group's committed offset. Offsets are committed once the
    /// results are durable, so this is the end-to-end backlog. A partition
    /// with nothing committed yet reports no lag (librdkafka gives -1).
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for p in t.partitions.values() {
                if p.desired && p.partition >= 0 && p.consumer_lag >= 0 {
                    let partition = p.partition.to_string();
                    self.0.set(
                        "shopflow_kafka_consumer_lag",
                        &[("topic", topic.as_str()), ("partition", partition.as_str())],
                        p.consumer_lag as u64,
                    );
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        {
            return; // reaching the end of a partition is tracked, not an error
        }
        self.0.add("shopflow_kafka_errors_total", &[], 1);
        // librdkafka reports here what it handles itself (lost broker
        // connections, which it re-establishes); a request that fails for
        // good is reported where shopflow made it.
        tracing::warn!(%error, reason, "Kafka client error");
    }
}

impl ConsumerContext for Callbacks {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        // Commits are synchronous and counted where they are made.
        if let Err(e) = result {
            tracing::debug!(error = %e, "offset commit result");
        }
    }
}

type Queue = PartitionQueue<Callbacks>;

struct Part {
    kind: EventKind,
    topic: String,
    partition: i32,
    queue: Queue,
    max_ts: Option<i64>,
    at_end: bool,
    last_message: Instant,
    next_offset: Option<i64>,
    /// (time bound, next offset) after each batch, oldest first.
    pending: VecDeque<(Time, i64)>,
    /// The newest offset that may be committed and is not yet.
    committable: Option<i64>,
    /// Paused for backpressure.
    paused: bool,
    /// (time bound, next offset) not yet covered by a lake flush: published
    /// to `pending` and the warehouse's positions once they are.
    unflushed: VecDeque<(Time, i64)>,
    /// The last lake flush failed: not read until one succeeds.
    lake_blocked: Option<Instant>,
    /// Offsets already fed from the lake by crash recovery, to skip.
    skip: std::collections::BTreeSet<i64>,
}

impl Part {
    fn idle(&self, timeout: Duration) -> bool {
        self.at_end && self.last_message.elapsed() >= timeout
    }
}

/// One worker's Kafka source.
pub struct KafkaSource {
    consumer: Arc<BaseConsumer<Callbacks>>,
    parts: Vec<Part>,
    settings: KafkaSettings,
    dataflow: Settings,
    dead: Arc<DeadLetters>,
    metrics: Arc<Metrics>,
    exit_when_idle: Option<Duration>,
    positions: Option<Positions>,
    last_commit: Instant,
    last_state_log: Instant,
    /// The raw layer, when the run has a lake.
    raw: Option<RawWriter>,
    /// Crash recovery still to do on the first poll.
    recovery: Option<crate::kafka::recovery::Recovery>,
    /// The input time at the last poll.
    input_time: Time,
}

/// What a source is wired to.
pub struct Wiring {
    /// The dead-letter writer.
    pub dead: Arc<DeadLetters>,
    /// The run's metrics.
    pub metrics: Arc<Metrics>,
    /// End once every partition is idle this long (backfills, tests).
    pub exit_when_idle: Option<Duration>,
    /// Next offset per (topic, partition) to resume event partitions from
    /// (the warehouse's `pipeline_progress`); others start at `kafka.start`.
    pub resume: BTreeMap<(String, i32), i64>,
    /// Where to record positions for the warehouse, if there is one.
    pub positions: Option<Positions>,
    /// This worker's raw writer, when the run has a lake.
    pub raw: Option<RawWriter>,
    /// Rebuild the dataflow's state from the lake before reading Kafka
    /// (a restart with a committed frontier). Reference partitions then
    /// resume from `resume` too, instead of the beginning.
    pub recovery: Option<crate::kafka::recovery::Recovery>,
}

impl KafkaSource {
    /// Connects and assigns `parts` (from [`assignment`]). With
    /// `exit_when_idle`, the source ends once all its partitions are idle for
    /// that long (backfills and tests); otherwise it runs until stopped.
    pub fn new(
        settings: &KafkaSettings,
        dataflow: &Settings,
        parts: &[(EventKind, i32)],
        wiring: Wiring,
    ) -> Result<KafkaSource, String> {
        let Wiring {
            dead,
            metrics,
            exit_when_idle,
            resume,
            positions,
            raw,
            recovery,
        } = wiring;
        let consumer: BaseConsumer<Callbacks> = settings
            .client()
            .set("group.id", &settings.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            // Prefetch bound per partition (each has its own queue): what a
            // paused partition can hold in memory.
            .set("queued.max.messages.kbytes", "8192")
            .set("queued.min.messages", "20000")
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
            .create_with_context(Callbacks(metrics.clone()))
            .map_err(|e| {
                format!(
                    "cannot create a Kafka consumer for {}: {e}",
                    settings.brokers
                )
            })?;
        let consumer = Arc::new(consumer);
        // Where each partition starts. Reference topics are compacted
        // tables the dataflow needs whole: read from the beginning, except
        // with recovery from the lake, where what came before the committed
        // offset comes from the raw layer. Event partitions resume from the
        // warehouse's positions, else from `kafka.start`.
        let starts: Vec<(String, i32, Option<Offset>)> = parts
            .iter()
            .map(|&(kind, p)| {
                let topic = settings.topic(kind);
                let at = if is_reference(kind) && recovery.is_none() {
                    Some(Offset::Beginning)
                } else if let Some(&next) = resume.get(&(topic.clone(), p)) {
                    Some(Offset::Offset(next))
                } else {
                    match settings.start {
                        StartAt::Earliest => Some(Offset::Beginning),
                        StartAt::Latest => Some(Offset::End),
                        StartAt::Committed => None, // fetched below
                    }
                };
                (topic, p, at)
            })
            .collect();
        // The group's commits are fetched here, with retries, rather than
        // left to librdkafka (`Offset::Stored`): a fetch it makes that fails
        // with `NotCoordinator` on a fresh broker is never retried, and the
        // partition is never read (`startup.rs`).
        let unknown: Vec<(String, i32)> = starts
            .iter()
            .filter(|(_, _, at)| at.is_none())
            .map(|(t, p, _)| (t.clone(), *p))
            .collect();
        let commits = if unknown.is_empty() {
            BTreeMap::new()
        } else {
            let timeout = Duration::from_millis(settings.startup_timeout_ms);
            committed(&consumer, &unknown, timeout)?
        };
        let mut list = TopicPartitionList::new();
        for (topic, p, at) in starts {
            // No commit yet: `committed` falls back to the earliest offset.
            let at = at.unwrap_or_else(|| match commits.get(&(topic.clone(), p)) {
                Some(Some(next)) => Offset::Offset(*next),
                _ => Offset::Beginning,
            });
            tracing::debug!(%topic, partition = p, ?at, "start position");
            list.add_partition_offset(&topic, p, at)
                .map_err(|e| format!("cannot assign {topic}/{p}: {e}"))?;
        }
        consumer
            .assign(&list)
            .map_err(|e| format!("cannot assign partitions: {e}"))?;
        let mut owned = Vec::new();
        for &(kind, partition) in parts {
            let topic = settings.topic(kind);
            let queue = consumer
                .split_partition_queue(&topic, partition)
                .ok_or_else(|| format!("cannot open a queue for {topic}/{partition}"))?;
            owned.push(Part {
                kind,
                topic,
                partition,
                queue,
                max_ts: None,
                at_end: false,
                last_message: Instant::now(),
                next_offset: None,
                pending: VecDeque::new(),
                committable: None,
                paused: false,
                unflushed: VecDeque::new(),
                lake_blocked: None,
                skip: Default::default(),
            });
        }
        // Reference partitions first: they are drained before events.
        owned.sort_by_key(|p| !is_reference(p.kind));
        Ok(KafkaSource {
            consumer,
            parts: owned,
            settings: settings.clone(),
            dataflow: dataflow.clone(),
            dead,
            metrics,
            exit_when_idle,
            positions,
            last_commit: Instant::now(),
            last_state_log: Instant::now(),
            raw,
            recovery,
            input_time: 0,
        })
    }

    /// Pauses or resumes partitions. Over the limit, every event partition
    /// whose mark is ahead of the input time is paused; the ones holding the
    /// watermark back keep reading, since only they can complete the records
    /// in flight (pausing those would deadlock). Paused partitions resume once
    /// they are no longer ahead, and all of them below half the limit.
    ///
    /// Pausing means no longer draining the partition's queue: librdkafka
    /// stops fetching it once its prefetch queue is full
    /// (`queued.max.messages.kbytes`, set per partition here). librdkafka's
    /// own pause call is not used: with per-partition queues it stalled
    /// partitions that were never paused (librdkafka 2.12, seen in the
    /// backpressure test).
    fn backpressure(&mut self, in_flight: u64, input_time: Time) {
        let max = self.settings.max_in_flight;
        let ahead = input_time as i64 + self.dataflow.tick_ms;
        let ooo = self.dataflow.out_of_orderness_ms;
        let mut change = 0;
        let pause = in_flight > max;
        for p in &mut self.parts {
            // Re-judged every poll: a paused partition that fell behind the
            // others resumes, or the watermark could never pass it.
            let is_ahead = !is_reference(p.kind) && p.max_ts.is_some_and(|t| t - ooo > ahead);
            let want = if pause {
                is_ahead
            } else {
                p.paused && is_ahead && in_flight > max / 2
            };
            if want != p.paused {
                change += 1;
                p.paused = want;
            }
        }
        if change == 0 {
            return;
        }
        if pause {
            self.metrics.add("shopflow_partition_pauses_total", &[], 1);
            tracing::debug!(
                in_flight,
                partitions = change,
                "paused partitions ahead of the watermark: the dataflow is behind"
            );
        }
    }

    /// Takes up to `limit` messages from part `i` into the dataflow.
    fn drain(&mut self, i: usize, limit: usize, offer: &mut Offer<'_>) -> usize {
        let mut taken = 0;
        // The latest time a record of this batch can enter at: its bound. Not
        // the partition's all-time newest, or one far-future event would hold
        // every later offset back.
        let mut batch_max = i64::MIN;
        while taken < limit {
            let part = &self.parts[i];
            let Some(result) = part.queue.poll(Duration::ZERO) else {
                break;
            };
            let (offset, outcome) = match result {
                Ok(message) if part.skip.contains(&message.offset()) => {
                    // Fed from the lake at start-up (it entered before the
                    // committed frontier): not again.
                    let offset = message.offset();
                    self.parts[i].skip.remove(&offset);
                    (offset, Err(Ok(None)))
                }
                Ok(message) => {
                    let payload = message.payload().unwrap_or_default();
                    let offset = message.offset();
                    let raw = self.raw.is_some().then(|| RawRecord {
                        partition: part.partition,
                        offset,
                        kafka_ts: message.timestamp().to_millis(),
                        key: message.key().map(<[u8]>::to_vec),
                        payload: payload.to_vec(),
                        admission: None,
                        entered: None,
                    });
                    let outcome = match Input::from_line(part.kind, payload) {
                        Ok(input) => Ok((input, raw)),
                        Err(error) => {
                            let origin = Origin {
                                topic: &part.topic,
                                partition: part.partition,
                                offset,
                                key: message.key(),
                            };
                            Err(self.dead.record(origin, payload, &error).map(|()| raw))
                        }
                    };
                    (offset, outcome)
                }
                Err(KafkaError::PartitionEOF(_)) => {
                    self.parts[i].at_end = true;
                    break;
                }
                Err(e) => {
                    self.metrics.add("shopflow_kafka_errors_total", &[], 1);
                    tracing::warn!(error = %e, topic = %part.topic, partition = part.partition, "consume error");
                    break;
                }
            };
            match outcome {
                Ok((input, raw)) => {
                    let ts = input.ts();
                    batch_max = batch_max.max(ts);
                    let part = &mut self.parts[i];
                    part.max_ts = part.max_ts.max(Some(ts));
                    let kind = part.kind;
                    let admission = offer.input(input);
                    if let (Some(writer), Some(mut record)) = (&mut self.raw, raw) {
                        record.admission = Some(match admission {
                            None => "applied",
                            Some(Admission::OnTime) => "on_time",
                            Some(Admission::Late) => "late",
                            Some(Admission::TooLate) => "too_late",
                        });
                        // Where the feeder put it (`Feeder::event`, `product`, …).
                        record.entered = (admission != Some(Admission::TooLate))
                            .then(|| self.dataflow.tick(ts).max(offer.time()) as i64);
                        writer.add(kind, ts, record);
                    }
                }
                Err(Ok(raw)) => {
                    if let (Some(writer), Some(record)) = (&mut self.raw, raw) {
                        let kind = self.parts[i].kind;
                        let dated = record.kafka_ts.unwrap_or(0);
                        writer.add(kind, dated, record);
                    }
                }
                Err(Err(e)) => {
                    // Not committed past this offset until recorded: read
                    // this message again after a seek.
                    tracing::error!(error = %e, "cannot queue a dead letter; will retry");
                    let part = &self.parts[i];
                    if let Err(e) = self.consumer.seek(
                        &part.topic,
                        part.partition,
                        Offset::Offset(offset),
                        Duration::from_secs(5),
                    ) {
                        tracing::error!(error = %e, "cannot seek back to the rejected message");
                    }
                    break;
                }
            }
            taken += 1;
            let part = &mut self.parts[i];
            part.next_offset = Some(offset + 1);
            part.at_end = false;
            part.last_message = Instant::now();
        }
        if taken > 0 {
            let part = &mut self.parts[i];
            self.metrics.add(
                "shopflow_messages_total",
                &[("topic", &part.topic)],
                taken as u64,
            );
            let bound = if batch_max == i64::MIN {
                offer.time()
            } else {
                offer.time().max(self.dataflow.tick(batch_max))
            };
            if let Some(next) = part.next_offset {
                push_position(&mut part.unflushed, bound, next);
                if self.raw.is_none() {
                    self.publish(i);
                }
            }
        }
        taken
    }

    fn commit(&mut self) {
        let mut list = TopicPartitionList::new();
        for p in &self.parts {
            if let Some(offset) = p.committable {
                let _ = list.add_partition_offset(&p.topic, p.partition, Offset::Offset(offset));
            }
        }
        if list.count() == 0 {
            return;
        }
        if let Err(e) = self.dead.flush(Duration::from_secs(30)) {
            tracing::warn!(error = %e, "dead letters not yet stored; offsets are committed later");
            return;
        }
        // Synchronous (at most about once a second): a failed commit keeps
        // its offsets committable and is retried next time, even on a
        // partition that has gone quiet.
        match self.consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                for p in &mut self.parts {
                    p.committable = None;
                }
                self.metrics.add("shopflow_offset_commits_total", &[], 1);
            }
            Err(e) => {
                self.metrics
                    .add("shopflow_offset_commit_errors_total", &[], 1);
                tracing::warn!(error = %e, "offset commit failed; retried at the next durable time");
            }
        }
        self.last_commit = Instant::now();
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, offer: &mut Offer<'_>, in_flight: u64) -> bool {
        // Serves client events (errors, commit results); split partitions
        // deliver their messages through their own queues.
        while let Some(result) = self.consumer.poll(Duration::ZERO) {
            if let Err(e) = result {
                self.metrics.add("shopflow_kafka_errors_total", &[], 1);
                tracing::warn!(error = %e, "Kafka consumer error");
            }
        }
        self.backpressure(in_flight, offer.time());
        if self.last_state_log.elapsed() >= Duration::from_secs(5) {
            let parts: Vec<String> = self
                .parts
                .iter()
                .map(|p| {
                    format!(
                        "{}/{} max_ts={:?} next={:?} end={} paused={}",
                        p.topic, p.partition, p.max_ts, p.next_offset, p.at_end, p.paused
                    )
                })
                .collect();
            tracing::debug!(in_flight, input_time = offer.time(), ?parts, "partitions");
            self.last_state_log = Instant::now();
        }
        if let Some(recovery) = self.recovery.take() {
            self.recover(&recovery, offer);
        }
        self.input_time = offer.time();
        let batch = self.settings.batch.max(1);
        for i in 0..self.parts.len() {
            if self.parts[i].paused || self.parts[i].lake_blocked.is_some() {
                self.flush_lake(i, offer.time(), false);
                continue;
            }
            let limit = if is_reference(self.parts[i].kind) {
                usize::MAX
            } else {
                batch
            };
            self.drain(i, limit, offer);
            self.flush_lake(i, offer.time(), false);
        }
        if let Some(writer) = &mut self.raw {
            writer.settle(offer.time(), false);
        }
        let open = match self.exit_when_idle {
            Some(quiet) => !self.parts.iter().all(|p| p.idle(quiet)),
            None => true,
        };
        if !open {
            self.flush_all(offer.time(), true);
        }
        open
    }

    fn close(&mut self) {
        self.flush_all(self.input_time, true);
    }

    fn mark(&self) -> Mark {
        let idle = Duration::from_millis(self.settings.idle_timeout_ms);
        let ooo = self.dataflow.out_of_orderness_ms;
        let mut all_idle = true;
        let mut mark: Option<i64> = None;
        for p in &self.parts {
            let m = if is_reference(p.kind) {
                // A reference partition with unread messages holds event time
                // at what it has read: the records still to come may apply
                // from there on (an FX rate from its date's start, a product
                // or profile version from its `updated_at`). Once it has
                // caught up it holds nobody back, however long it stays quiet.
                if p.at_end {
                    continue;
                }
                all_idle = false;
                match p.max_ts {
                    None => return Mark::Hold,
                    Some(t) => t - ooo,
                }
            } else {
                let quiet = p.idle(idle);
                all_idle &= quiet;
                match (p.max_ts, quiet) {
                    (None, false) => return Mark::Hold,
                    (None, true) => continue, // empty: holds nobody back
                    (Some(t), false) => t - ooo,
                    // Quiet for d: it vouches for d more of event time.
                    (Some(t), true) => t - ooo + p.last_message.elapsed().as_millis() as i64,
                }
            };
            mark = Some(mark.map_or(m, |a| a.min(m)));
        }
        match (mark, all_idle) {
            (m, true) => Mark::Idle(m),
            (Some(m), false) => Mark::Active(m),
            (None, false) => Mark::Hold,
        }
    }

    fn durable(&mut self, upto: Time) {
        for p in &mut self.parts {
            while let Some(&(bound, next)) = p.pending.front() {
                if bound >= upto {
                    break;
                }
                p.committable = Some(next);
                p.pending.pop_front();
            }
        }
        if upto == Time::MAX || self.last_commit.elapsed() >= Duration::from_secs(1) {
            self.commit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_exactly_one_owner() {
        let counts = [
            (EventKind::Click, 4),
            (EventKind::Cart, 4),
            (EventKind::Purchase, 4),
            (EventKind::Fx, 1),
            (EventKind::Product, 1),
            (EventKind::User, 1),
        ];
        for peers in 1..=5 {
            let mut all: Vec<(EventKind, i32)> = (0..peers)
                .flat_map(|i| assignment(&counts, i, peers))
                .collect();
            all.sort();
            let mut expected: Vec<(EventKind, i32)> = counts
                .iter()
                .flat_map(|&(k, n)| (0..n).map(move |p| (k, p)))
                .collect();
            expected.sort();
            assert_eq!(all, expected, "{peers} workers");
        }
    }
}
