//! An idempotent Kafka producer shared by `generate --kafka`, the dead-letter
//! writer and the FX poller.
//!
//! Idempotence (`enable.idempotence=true`, which implies `acks=all`) makes the
//! client's retries safe: a message is written once and in order per
//! partition, even across a broker restart. A full local queue blocks the
//! caller (backpressure) instead of failing.

use super::KafkaSettings;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Delivery outcomes, counted by the client's background thread.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Messages the broker acknowledged.
    pub delivered: AtomicU64,
    /// Messages that could not be delivered before `message.timeout.ms`.
    pub failed: AtomicU64,
}

struct Context(Arc<Deliveries>);

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, message)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, topic = rdkafka::Message::topic(message), "a message was not delivered");
            }
        }
    }
}

/// An idempotent producer.
pub struct Producer {
    inner: ThreadedProducer<Context>,
    deliveries: Arc<Deliveries>,
}

impl Producer {
    /// Connects a producer. `message_timeout` bounds how long one message is
    /// retried (`None`: forever, for records that must never be dropped).
    pub fn new(
        settings: &KafkaSettings,
        message_timeout: Option<Duration>,
    ) -> Result<Producer, String> {
        let deliveries = Arc::new(Deliveries::default());
        let timeout_ms = message_timeout.map_or(0, |d| d.as_millis().max(1) as u64);
        let inner = settings
            .client()
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.kbytes", "262144")
            .set("message.timeout.ms", timeout_ms.to_string())
            .set(
                "message.max.bytes",
                (super::topics::DEAD_LETTER_MAX_BYTES + 65_536).to_string(),
            )
            .create_with_context(Context(deliveries.clone()))
            .map_err(|e| {
                format!(
                    "cannot create a Kafka producer for {}: {e}",
                    settings.brokers
                )
            })?;
        Ok(Producer { inner, deliveries })
    }

    /// Queues one message, waiting while the local queue is full.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), String> {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        loop {
            match self.inner.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(format!("cannot produce to {topic}: {e}")),
            }
        }
    }

    /// Waits until every queued message is delivered or failed, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.inner
            .flush(timeout)
            .map_err(|e| format!("messages still in flight after {timeout:?}: {e}"))
    }

    /// Messages queued but not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }

    /// Delivery counts so far.
    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }
}

/// Publishes fx records to a topic and waits until the broker has them.
pub struct TopicPublisher {
    /// The producer.
    pub producer: Arc<Producer>,
    /// The topic.
    pub topic: String,
}

impl crate::fx_poller::Publish for TopicPublisher {
    fn publish(&mut self, key: &str, record: &[u8]) -> Result<(), String> {
        self.producer
            .send(&self.topic, Some(key.as_bytes()), record, None)?;
        self.producer.flush(Duration::from_secs(30))
    }
}
