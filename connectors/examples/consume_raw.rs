//! The practical limit for `shopflow run`: a bare librdkafka consumer that
//! reads every partition of the six input topics from the beginning to their
//! current end and validates each message, doing nothing else.
//!
//! `cargo run --release -p shopflow-connectors --example consume_raw -- BROKERS [PREFIX] [THREADS]`
//! prints one line: `messages=N valid=N seconds=S per_second=R`.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use shopflow_connectors::kafka::KafkaSettings;
use shopflow_connectors::kafka::source::{assignment, partition_counts};
use shopflow_model::validate::validate;
use std::time::{Duration, Instant};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let settings = KafkaSettings {
        brokers: args
            .get(1)
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:9092".into()),
        topic_prefix: args.get(2).cloned().unwrap_or_default(),
        ..KafkaSettings::default()
    };
    let threads: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let counts = partition_counts(&settings)?;
    let began = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|index| {
            let parts = assignment(&counts, index, threads);
            let settings = settings.clone();
            std::thread::spawn(move || consume(&settings, &parts))
        })
        .collect();
    let (mut messages, mut valid) = (0u64, 0u64);
    for h in handles {
        let (m, v) = h.join().map_err(|_| "a consumer thread panicked")??;
        messages += m;
        valid += v;
    }
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "messages={messages} valid={valid} seconds={seconds:.2} per_second={:.0}",
        messages as f64 / seconds
    );
    Ok(())
}

fn consume(
    settings: &KafkaSettings,
    parts: &[(shopflow_model::EventKind, i32)],
) -> Result<(u64, u64), String> {
    let consumer: BaseConsumer = settings
        .client()
        .set("group.id", "shopflow-consume-raw")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| e.to_string())?;
    let mut list = TopicPartitionList::new();
    for &(kind, p) in parts {
        list.add_partition_offset(&settings.topic(kind), p, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&list).map_err(|e| e.to_string())?;
    let (mut messages, mut valid, mut ended) = (0u64, 0u64, 0usize);
    while ended < parts.len() {
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => ended += 1,
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(m)) => {
                messages += 1;
                let kind = settings
                    .kind_of(m.topic())
                    .ok_or("message from an unexpected topic")?;
                if validate(kind, m.payload().unwrap_or_default()).is_ok() {
                    valid += 1;
                }
            }
        }
    }
    Ok((messages, valid))
}
