//! Which partitions a worker owns, how many there are, and the positions
//! the sources record for the warehouse.

use crate::kafka::KafkaSettings;
use crate::kafka::startup::with_retries;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use shopflow_dataflow::Time;
use shopflow_model::EventKind;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// (time bound, next offset) per (topic, partition), oldest first: what the
/// warehouse records in `pipeline_progress` once results before the bound are
/// in it. Shared by the sources (which push) and the sink (which takes).
pub type Positions = Arc<std::sync::Mutex<BTreeMap<(String, i32), VecDeque<(Time, i64)>>>>;

/// Takes from `positions` the next offset of every partition whose entries
/// are complete before `upto`.
pub fn take_positions(positions: &Positions, upto: Time) -> Vec<(String, i32, i64)> {
    let mut map = positions.lock().expect("positions");
    let mut out = Vec::new();
    for ((topic, partition), queue) in map.iter_mut() {
        let mut next = None;
        while let Some(&(bound, offset)) = queue.front() {
            if bound >= upto {
                break;
            }
            next = Some(offset);
            queue.pop_front();
        }
        if let Some(offset) = next {
            out.push((topic.clone(), *partition, offset));
        }
    }
    out
}

/// Takes every entry of `positions` (a process of a cluster hands them to
/// process 0's sink): (topic, partition, bound, next offset).
pub fn drain_positions(positions: &Positions) -> Vec<(String, i32, Time, i64)> {
    let mut map = positions.lock().expect("positions");
    let mut out = Vec::new();
    for ((topic, partition), queue) in map.iter_mut() {
        out.extend(
            queue
                .drain(..)
                .map(|(b, n)| (topic.clone(), *partition, b, n)),
        );
    }
    out
}

/// Adds entries taken by [`drain_positions`] in another process.
pub fn push_positions(positions: &Positions, entries: Vec<(String, i32, Time, i64)>) {
    let mut map = positions.lock().expect("positions");
    for (topic, partition, bound, next) in entries {
        let queue = map.entry((topic, partition)).or_default();
        match queue.back_mut() {
            Some((b, n)) if *b == bound => *n = next,
            _ => queue.push_back((bound, next)),
        }
    }
}

/// The partitions worker `index` of `peers` owns, given each topic's
/// partition count (in [`EventKind::ALL`] order).
pub fn assignment(
    counts: &[(EventKind, i32)],
    index: usize,
    peers: usize,
) -> Vec<(EventKind, i32)> {
    counts
        .iter()
        .flat_map(|&(kind, n)| (0..n).map(move |p| (kind, p)))
        .enumerate()
        .filter(|(i, _)| i % peers.max(1) == index)
        .map(|(_, tp)| tp)
        .collect()
}

/// Partition counts of the six input topics, from the cluster's metadata.
pub fn partition_counts(settings: &KafkaSettings) -> Result<Vec<(EventKind, i32)>, String> {
    let consumer: BaseConsumer = settings
        .client()
        .create()
        .map_err(|e| format!("cannot create a Kafka client for {}: {e}", settings.brokers))?;
    let timeout = Duration::from_millis(settings.startup_timeout_ms);
    let mut out = Vec::new();
    for kind in EventKind::ALL {
        let topic = settings.topic(kind);
        let what = format!(
            "read the metadata of topic {topic} from {}",
            settings.brokers
        );
        let n = with_retries(&what, timeout, || {
            let metadata =
                consumer.fetch_metadata(Some(&topic), Duration::from_secs(10).min(timeout))?;
            let found = metadata.topics().iter().find(|t| t.name() == topic);
            if let Some(code) = found.and_then(|t| t.error()) {
                // A topic whose leader is not elected yet, say: worth a retry.
                return Err(KafkaError::MetadataFetch(code.into()));
            }
            Ok(found.map_or(0, |t| t.partitions().len()))
        })?;
        if n == 0 {
            return Err(format!(
                "topic {topic} has no partitions; run `shopflow topics create` first"
            ));
        }
        out.push((kind, n as i32));
    }
    Ok(out)
}
