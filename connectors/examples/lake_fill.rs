//! Fills a lake's raw layer from the JSON-lines files of `shopflow generate`,
//! as `shopflow run` would have written it (one partition per topic, offsets
//! in file order, every valid message admitted on time), without Kafka: the
//! input of the replay benchmark (`scripts/bench-lake.sh`).
//!
//! `cargo run --release -p shopflow-connectors --example lake_fill -- GEN_DIR LAKE_URL [S3_ENDPOINT]`
//! prints one line: `files=N messages=N seconds=S`.

use shopflow_connectors::lake::paths::{hour_of, raw_file};
use shopflow_connectors::lake::raw::{RawRecord, encode};
use shopflow_connectors::lake::{Lake, LakeSettings};
use shopflow_dataflow::run::Input;
use shopflow_model::EventKind;
use std::collections::BTreeMap;
use std::time::Instant;

/// Messages per raw file at most (as if flushed by size).
const PER_FILE: usize = 200_000;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(url)) = (args.get(1), args.get(2)) else {
        return Err("usage: lake_fill GEN_DIR LAKE_URL [S3_ENDPOINT]".into());
    };
    let lake = Lake::open(
        &LakeSettings {
            url: url.clone(),
            s3_endpoint: args.get(3).cloned().unwrap_or_default(),
            ..LakeSettings::default()
        },
        None,
    )
    .map_err(|e| e.to_string())?;
    let began = Instant::now();
    let (mut files, mut messages) = (0, 0);
    for kind in EventKind::ALL {
        let path = format!("{dir}/{}.jsonl", kind.topic());
        let text = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        let mut by_hour: BTreeMap<i64, Vec<RawRecord>> = BTreeMap::new();
        for (offset, line) in text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let parsed = Input::from_line(kind, line).ok();
            let record = RawRecord {
                partition: 0,
                offset: offset as i64,
                kafka_ts: None,
                key: None,
                payload: line.to_vec(),
                admission: parsed.as_ref().map(|i| match i {
                    Input::Event(..) => "on_time",
                    _ => "applied",
                }),
                entered: parsed.as_ref().map(|i| i.ts()),
            };
            let hour = hour_of(parsed.map_or(0, |i| i.ts()));
            by_hour.entry(hour).or_default().push(record);
            messages += 1;
        }
        for (hour, records) in by_hour {
            for chunk in records.chunks(PER_FILE) {
                let (first, last) = (chunk[0].offset, chunk[chunk.len() - 1].offset);
                let bytes = encode(kind, chunk, 0)?;
                lake.put(&raw_file(kind.topic(), hour, 0, first, last), bytes.into())
                    .map_err(|e| e.to_string())?;
                files += 1;
            }
        }
    }
    println!(
        "files={files} messages={messages} seconds={:.2}",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}
