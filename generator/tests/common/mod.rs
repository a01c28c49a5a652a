//! Helpers shared by the generator's integration tests.

#![allow(dead_code)] // each test file uses a different subset

use shopflow_generator::{Config, Generator, Manifest, Sink};
use shopflow_model::{EventKind, Timestamp};
use std::io;

/// A sink that keeps every line in memory.
#[derive(Default)]
pub struct Collect(pub Vec<(EventKind, Timestamp, Vec<u8>)>);

impl Sink for Collect {
    fn emit(&mut self, kind: EventKind, arrival: Timestamp, line: &[u8]) -> io::Result<()> {
        self.0.push((kind, arrival, line.to_vec()));
        Ok(())
    }
}

/// Runs the generator into memory.
pub fn run(cfg: Config) -> (Manifest, Vec<(EventKind, Timestamp, Vec<u8>)>) {
    let mut sink = Collect::default();
    let manifest = Generator::new(cfg)
        .run(&mut sink)
        .expect("in-memory sink never fails");
    (manifest, sink.0)
}

/// A configuration with `events` lines and the given seed.
pub fn config(seed: u64, events: u64) -> Config {
    Config {
        seed,
        events: Some(events),
        ..Config::default()
    }
}

/// True for the three shop event kinds.
pub fn is_event(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Click | EventKind::Cart | EventKind::Purchase
    )
}
