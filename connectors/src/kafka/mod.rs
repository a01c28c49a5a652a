//! Kafka: settings, topic layout and the clients built on them.

pub mod dead_letters;
pub mod producer;
pub mod recovery;
pub mod relay;
pub mod source;
pub mod startup;
pub mod topics;

use rdkafka::ClientConfig;
use shopflow_model::EventKind;

/// The dead-letter topic: every message that failed validation, as received.
pub const DEAD_LETTERS: &str = "dead_letters";

/// Where a consumer starts in a partition it has no reason to resume from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest retained message.
    Earliest,
    /// Only messages produced from now on.
    Latest,
    /// The consumer group's committed offset, or the oldest message if none.
    Committed,
}

impl StartAt {
    /// Parses `earliest`, `latest` or `committed`.
    pub fn parse(text: &str) -> Option<StartAt> {
        match text {
            "earliest" => Some(StartAt::Earliest),
            "latest" => Some(StartAt::Latest),
            "committed" => Some(StartAt::Committed),
            _ => None,
        }
    }
}

/// Everything shopflow needs to know about the Kafka cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Prefix of every topic name (empty by default; tests use it to isolate runs).
    pub topic_prefix: String,
    /// Consumer group whose offsets `run` commits.
    pub group_id: String,
    /// Partitions of `clicks`, `carts` and `purchases` when created.
    pub event_partitions: i32,
    /// Replication factor of created topics (1 on a single broker).
    pub replication: i32,
    /// Where to start reading.
    pub start: StartAt,
    /// A partition that has reached its end and received nothing for this
    /// long no longer holds the watermark back (ms).
    pub idle_timeout_ms: u64,
    /// A worker pauses its partitions while this many offered records are not
    /// complete, and resumes below half of it.
    pub max_in_flight: u64,
    /// Messages taken from one partition per poll.
    pub batch: usize,
    /// Retention of the event topics (ms).
    pub event_retention_ms: u64,
    /// Retention of `dead_letters` (ms).
    pub dead_letter_retention_ms: u64,
    /// How long start-up calls (partition counts, committed offsets) are
    /// retried on retriable broker errors before `run` gives up (ms).
    pub startup_timeout_ms: u64,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            group_id: "shopflow".into(),
            event_partitions: 4,
            replication: 1,
            start: StartAt::Committed,
            idle_timeout_ms: 2_000,
            max_in_flight: 200_000,
            batch: 1_000,
            event_retention_ms: 7 * 24 * 3_600_000,
            dead_letter_retention_ms: 30 * 24 * 3_600_000,
            startup_timeout_ms: 60_000,
        }
    }
}

impl KafkaSettings {
    /// The topic of a kind of record, with the prefix.
    pub fn topic(&self, kind: EventKind) -> String {
        format!("{}{}", self.topic_prefix, kind.topic())
    }

    /// The dead-letter topic, with the prefix.
    pub fn dead_letters(&self) -> String {
        format!("{}{DEAD_LETTERS}", self.topic_prefix)
    }

    /// The kind of record a topic carries.
    pub fn kind_of(&self, topic: &str) -> Option<EventKind> {
        let bare = topic.strip_prefix(self.topic_prefix.as_str())?;
        EventKind::ALL.into_iter().find(|k| k.topic() == bare)
    }

    /// A client configuration with the brokers set.
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "shopflow")
            // Reconnect quickly after a broker restart.
            .set("reconnect.backoff.max.ms", "2000");
        config
    }
}

/// Whether a kind's topic is reference data (compacted, one partition, read
/// whole, and holding the watermark back only while it has unread messages).
pub fn is_reference(kind: EventKind) -> bool {
    matches!(kind, EventKind::Fx | EventKind::Product | EventKind::User)
}
