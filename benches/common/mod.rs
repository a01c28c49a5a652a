//! Inputs shared by the benches: generated traffic, as lines, as parsed
//! records, and as a directory of files like `shopflow generate` writes.

#![allow(dead_code)]

use shopflow_dataflow::run::Input;
use shopflow_generator::{Config, FileSink, Generator, Sink};
use shopflow_model::{EventKind, Timestamp};
use std::io;
use std::path::Path;

struct Lines(Vec<(EventKind, Vec<u8>)>);

impl Sink for Lines {
    fn emit(&mut self, kind: EventKind, _: Timestamp, line: &[u8]) -> io::Result<()> {
        self.0.push((kind, line.to_vec()));
        Ok(())
    }
}

/// The benches' shop: `events` lines (seed 1, 200 events/s, realistic faults).
fn config(events: u64) -> Config {
    let mut cfg = Config {
        seed: 1,
        events: Some(events),
        duplicates: 0.01,
        late: 0.05,
        ..Config::default()
    };
    cfg.world.rate = 200.0;
    cfg
}

/// `events` generated lines, with their kinds.
pub fn lines(events: u64) -> Vec<(EventKind, Vec<u8>)> {
    let mut sink = Lines(Vec::new());
    Generator::new(config(events))
        .run(&mut sink)
        .expect("in-memory sink");
    sink.0
}

/// The same lines written into `dir`, one file per kind.
pub fn write_dir(events: u64, dir: &Path) {
    let mut files = FileSink::create(dir).expect("a writable directory");
    Generator::new(config(events))
        .run(&mut files)
        .expect("files written");
}

/// The same lines, validated into dataflow inputs.
pub fn inputs(events: u64) -> Vec<Input> {
    lines(events)
        .into_iter()
        .filter_map(|(kind, line)| Input::from_line(kind, &line).ok())
        .collect()
}
