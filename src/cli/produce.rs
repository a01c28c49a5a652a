//! `generate --kafka`: the generator's lines produced to their Kafka topics.
//!
//! Keys keep related records together and ordered: events by `session_id`
//! (a session stays in one partition, and every re-send of an event with it),
//! products by `product_id`, users by `user_id`, FX by `CUR/YYYY-MM-DD` (the
//! compaction key). A line that is not JSON enough to have its key (the
//! generator's malformed lines) is produced without one.

use anyhow::anyhow;
use serde::Deserialize;
use shopflow_connectors::kafka::KafkaSettings;
use shopflow_connectors::kafka::producer::Producer;
use shopflow_generator::Sink;
use shopflow_model::{EventKind, Timestamp};
use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Deserialize)]
struct KeyFields {
    session_id: Option<String>,
    product_id: Option<String>,
    user_id: Option<String>,
    currency: Option<String>,
    date: Option<String>,
}

/// The key of a line of `kind`, if it has one.
pub fn key_of(kind: EventKind, line: &[u8]) -> Option<String> {
    let f: KeyFields = serde_json::from_slice(line).ok()?;
    match kind {
        EventKind::Click | EventKind::Cart | EventKind::Purchase => f.session_id,
        EventKind::Product => f.product_id,
        EventKind::User => f.user_id,
        EventKind::Fx => Some(format!("{}/{}", f.currency?, f.date?)),
    }
}

/// A generator sink producing to Kafka.
pub struct KafkaSink {
    producer: Producer,
    settings: KafkaSettings,
    sent: u64,
    began: Instant,
}

impl KafkaSink {
    /// Connects an idempotent producer.
    pub fn connect(brokers: &str, prefix: &str) -> anyhow::Result<KafkaSink> {
        let settings = KafkaSettings {
            brokers: brokers.to_owned(),
            topic_prefix: prefix.to_owned(),
            ..KafkaSettings::default()
        };
        let producer =
            Producer::new(&settings, Some(Duration::from_secs(120))).map_err(|e| anyhow!(e))?;
        Ok(KafkaSink {
            producer,
            settings,
            sent: 0,
            began: Instant::now(),
        })
    }
}

impl Sink for KafkaSink {
    fn emit(&mut self, kind: EventKind, _arrival: Timestamp, line: &[u8]) -> io::Result<()> {
        let key = key_of(kind, line);
        self.producer
            .send(
                &self.settings.topic(kind),
                key.as_deref().map(str::as_bytes),
                line,
                None,
            )
            .map_err(io::Error::other)?;
        self.sent += 1;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.producer
            .flush(Duration::from_secs(300))
            .map_err(io::Error::other)?;
        let failed = self.producer.deliveries().failed.load(Ordering::Relaxed);
        let secs = self.began.elapsed().as_secs_f64();
        tracing::info!(
            messages = self.sent,
            seconds = format!("{secs:.2}"),
            per_second = format!("{:.0}", self.sent as f64 / secs.max(1e-9)),
            "produced to Kafka"
        );
        if failed > 0 {
            return Err(io::Error::other(format!(
                "{failed} of {} messages were not delivered to {}; check the broker and produce again",
                self.sent, self.settings.brokers
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_sessions_and_records_together() {
        let click = br#"{"event_id":"e1","session_id":"s-9","user_id":"u"}"#;
        assert_eq!(key_of(EventKind::Click, click).as_deref(), Some("s-9"));
        let fx = br#"{"date":"2026-11-24","base":"USD","currency":"EUR","rate":0.9}"#;
        assert_eq!(key_of(EventKind::Fx, fx).as_deref(), Some("EUR/2026-11-24"));
        assert_eq!(key_of(EventKind::Click, b"{broken"), None);
    }
}
