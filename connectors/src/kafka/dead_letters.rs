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

/// Writes dead letters.
pub struct DeadLetters {
    producer: Arc<Producer>,
    topic: String,
    metrics: Arc<Metrics>,
}

impl DeadLetters {
    /// A writer to `topic` through `producer` (which must have no delivery timeout).
    pub fn new(producer: Arc<Producer>, topic: String, metrics: Arc<Metrics>) -> DeadLetters {
        DeadLetters {
            producer,
            topic,
            metrics,
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
        self.producer
            .send(&self.topic, origin.key, payload, Some(headers))?;
        self.metrics.add(
            "shopflow_invalid_total",
            &[("topic", origin.topic), ("reason", error.reason.code())],
            1,
        );
        Ok(())
    }

    /// Waits until every dead letter so far is stored.
    pub fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.producer.flush(timeout)?;
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
