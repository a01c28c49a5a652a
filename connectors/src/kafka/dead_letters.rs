//! The dead-letter topic: every message that failed validation, kept as
//! received, with headers that say why and where it came from.
//!
//! Headers: `reason` (the stable reason code), `field`, `message` (what was
//! wrong and what to do), `source_topic`, `source_partition`, `source_offset`.
//! The key is the original key. Dead letters are produced with no delivery
//! timeout (retried until the broker takes them), and the source flushes
//! them before it commits the offsets of the messages they came from: a
//! message is never committed unless its dead letter is stored.

use super::producer::Producer;
use crate::metrics::Metrics;
use rdkafka::message::{Header, OwnedHeaders};
use shopflow_model::validate::ValidationError;
use std::sync::Arc;
use std::time::Duration;

/// Where a rejected message came from.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key, if any.
    pub key: Option<&'a [u8]>,
}

/// A dead letter as the warehouse keeps it (`dq_dead_letters`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Reason code.
    pub reason: String,
    /// Field path.
    pub field: String,
    /// What was wrong.
    pub message: String,
    /// The message as received.
    pub payload: Vec<u8>,
}

/// Writes dead letters.
pub struct DeadLetters {
    producer: Arc<Producer>,
    topic: String,
    metrics: Arc<Metrics>,
    /// Kept for the warehouse sink, which drains it in each transaction.
    pending: Option<std::sync::Mutex<Vec<DeadLetter>>>,
    /// Refused dead letters already counted in the metrics.
    counted_lost: std::sync::atomic::AtomicU64,
}

impl DeadLetters {
    /// A writer to `topic` through `producer` (which must have no delivery timeout).
    pub fn new(producer: Arc<Producer>, topic: String, metrics: Arc<Metrics>) -> DeadLetters {
        DeadLetters {
            producer,
            topic,
            metrics,
            pending: None,
            counted_lost: Default::default(),
        }
    }

    /// Dead letters the broker refused for good (they are retried without a
    /// time limit, so only a permanent refusal counts here).
    pub fn lost(&self) -> u64 {
        self.producer
            .deliveries()
            .failed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Also keeps every dead letter for [`DeadLetters::drain`] (the warehouse).
    pub fn keeping(mut self) -> DeadLetters {
        self.pending = Some(std::sync::Mutex::default());
        self
    }

    /// The dead letters recorded since the last call.
    pub fn drain(&self) -> Vec<DeadLetter> {
        self.pending
            .as_ref()
            .map(|p| std::mem::take(&mut *p.lock().expect("dead letters")))
            .unwrap_or_default()
    }

    /// Keeps dead letters another process of the cluster stored, for this
    /// process's warehouse sink.
    pub fn keep_all(&self, mut letters: Vec<DeadLetter>) {
        if let Some(p) = &self.pending {
            p.lock().expect("dead letters").append(&mut letters);
        }
    }

    /// Records one rejected message and counts it.
    pub fn record(
        &self,
        origin: Origin<'_>,
        payload: &[u8],
        error: &ValidationError,
    ) -> Result<(), String> {
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(error.reason.code()),
            })
            .insert(Header {
                key: "field",
                value: Some(error.field.as_str()),
            })
            .insert(Header {
                key: "message",
                value: Some(error.message.as_str()),
            })
            .insert(Header {
                key: "source_topic",
                value: Some(origin.topic),
            })
            .insert(Header {
                key: "source_partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "source_offset",
                value: Some(offset.as_str()),
            });
        if let Err(e) = self
            .producer
            .send(&self.topic, origin.key, payload, Some(headers))
        {
            self.metrics
                .add("shopflow_dead_letter_errors_total", &[], 1);
            return Err(e);
        }
        if let Some(pending) = &self.pending {
            pending.lock().expect("dead letters").push(DeadLetter {
                topic: origin.topic.to_owned(),
                partition: origin.partition,
                offset: origin.offset,
                reason: error.reason.code().to_owned(),
                field: error.field.clone(),
                message: error.message.clone(),
                payload: payload.to_vec(),
            });
        }
        self.metrics.add(
            "shopflow_invalid_total",
            &[("topic", origin.topic), ("reason", error.reason.code())],
            1,
        );
        Ok(())
    }

    /// Waits until every dead letter so far is stored. An error if any
    /// could not be stored at all: then no offset may pass it, and the run
    /// must stop rather than lose it ([`DeadLetters::lost`]).
    pub fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.producer.flush(timeout)?;
        let lost = self.lost();
        let before = self
            .counted_lost
            .swap(lost, std::sync::atomic::Ordering::Relaxed);
        self.metrics
            .add("shopflow_dead_letter_errors_total", &[], lost - before);
        if lost > 0 {
            return Err(format!(
                "{lost} dead letter(s) could not be stored in {}; see the errors logged before this",
                self.topic
            ));
        }
        let delivered = self
            .producer
            .deliveries()
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed);
        self.metrics
            .set_counter("shopflow_dead_letters_total", delivered);
        Ok(())
    }
}
