//! `shopflow topics create`: the topic layout, created idempotently.
//!
//! | topic | partitions | cleanup | retention |
//! |---|---|---|---|
//! | `clicks`, `carts`, `purchases` | `event_partitions` (4) | delete | `event_retention_ms` (7 days) |
//! | `fx_rates`, `products`, `users` | 1 | compact | forever (latest per key) |
//! | `dead_letters` | 1 | delete | `dead_letter_retention_ms` (30 days) |
//!
//! Reference topics have one partition so that one worker applies their
//! corrections in order.

use super::startup::with_retries;
use super::{KafkaSettings, is_reference};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use shopflow_model::EventKind;
use std::time::Duration;

/// Largest dead letter (bytes): the `dead_letters` topic's `max.message.bytes`
/// and the dead-letter producer's `message.max.bytes`.
pub const DEAD_LETTER_MAX_BYTES: usize = 4 * 1024 * 1024;

/// What happened to one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Created now.
    Created,
    /// Was already there (left as it is).
    Existed,
}

/// One topic of the layout: name, partitions and its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Topic name, prefix included.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Topic configuration entries.
    pub config: Vec<(&'static str, String)>,
}

/// The whole layout for these settings.
pub fn layout(settings: &KafkaSettings) -> Vec<Spec> {
    let mut out: Vec<Spec> = EventKind::ALL
        .into_iter()
        .map(|kind| {
            if is_reference(kind) {
                Spec {
                    name: settings.topic(kind),
                    partitions: 1,
                    config: vec![("cleanup.policy", "compact".into())],
                }
            } else {
                Spec {
                    name: settings.topic(kind),
                    partitions: settings.event_partitions,
                    config: vec![
                        ("cleanup.policy", "delete".into()),
                        ("retention.ms", settings.event_retention_ms.to_string()),
                    ],
                }
            }
        })
        .collect();
    out.push(Spec {
        name: settings.dead_letters(),
        partitions: 1,
        config: vec![
            // Room for any message the source topics accept (1 MiB by
            // default) plus the headers that say why it was rejected.
            ("max.message.bytes", DEAD_LETTER_MAX_BYTES.to_string()),
            ("cleanup.policy", "delete".into()),
            (
                "retention.ms",
                settings.dead_letter_retention_ms.to_string(),
            ),
        ],
    });
    out
}

/// Creates every topic of the layout that does not exist yet. A broker that
/// is not up or not ready yet is retried until `kafka.startup_timeout_ms`
/// (`startup.rs`); then the error says what to check.
pub fn create(settings: &KafkaSettings) -> Result<Vec<(String, Outcome)>, String> {
    let admin: AdminClient<DefaultClientContext> = settings.client().create().map_err(|e| {
        format!(
            "cannot create a Kafka admin client for {}: {e}",
            settings.brokers
        )
    })?;
    let timeout = Duration::from_millis(settings.startup_timeout_ms);
    let what = format!("create the topics on {}", settings.brokers);
    // rdkafka's admin futures complete from its own background thread; a
    // current-thread runtime only waits for them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start a runtime for the Kafka admin client: {e}"))?;
    with_retries(&what, timeout, || {
        rt.block_on(attempt(&admin, settings, timeout))
    })
}

/// One try: every topic created or found; the first other error fails it.
async fn attempt(
    admin: &AdminClient<DefaultClientContext>,
    settings: &KafkaSettings,
    timeout: Duration,
) -> Result<Vec<(String, Outcome)>, KafkaError> {
    let specs = layout(settings);
    let topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            s.config.iter().fold(
                NewTopic::new(
                    &s.name,
                    s.partitions,
                    TopicReplication::Fixed(settings.replication),
                ),
                |t, (k, v)| t.set(k, v),
            )
        })
        .collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10).min(timeout)));
    let mut out = Vec::new();
    for result in admin.create_topics(topics.iter(), &options).await? {
        match result {
            Ok(name) => out.push((name, Outcome::Created)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => out.push((name, Outcome::Existed)),
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(out)
}
