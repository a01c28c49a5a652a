//! Turns the simulation into output lines, injecting faults, and counts
//! everything it did in a [`Manifest`].

use crate::faults::{self, Corruption};
use crate::json;
use crate::rng::{Rng, to_ppm};
use crate::sim::{Sim, SimRecord, World};
use crate::sink::Sink;
use crate::world::fx_currency;
use serde::Serialize;
use shopflow_model::{Date, Event, EventKind, Timestamp};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    /// The seed: same seed and configuration, same bytes.
    pub seed: u64,
    /// Event time of the first record.
    pub start: Timestamp,
    /// Stop after this many lines in the three event files (faults included).
    pub events: Option<u64>,
    /// Stop when event time reaches `start + duration_ms`.
    pub duration_ms: Option<i64>,
    /// The simulated shop.
    pub world: World,
    /// Fraction of lines that re-send an earlier event exactly.
    pub duplicates: f64,
    /// Fraction of events emitted late (out of order).
    pub late: f64,
    /// Fraction of lines that are malformed.
    pub malformed: f64,
    /// Largest delay of a late event, in ms of event time.
    pub max_delay_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 0,
            start: Timestamp(1_795_478_400_000), // 2026-11-24T00:00:00Z
            events: Some(100_000),
            duration_ms: None,
            world: World::default(),
            duplicates: 0.0,
            late: 0.0,
            malformed: 0.0,
            max_delay_ms: 60_000,
        }
    }
}

/// Counts of what a run wrote; `manifest.json` in a generated directory.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Manifest {
    /// Generator name and version.
    pub generator: String,
    /// The seed used.
    pub seed: u64,
    /// Event time of the first record (RFC 3339).
    pub start: String,
    /// Event time of the last event (RFC 3339).
    pub end: String,
    /// Lines written per file (`clicks.jsonl`, …), faults included.
    pub lines: BTreeMap<String, u64>,
    /// Valid, distinct events written, per event type (late ones included).
    pub valid_events: BTreeMap<String, u64>,
    /// Sessions started.
    pub sessions: u64,
    /// Daily FX dates covered, first and last.
    pub fx_dates: [String; 2],
    /// Injected faults.
    pub faults: FaultCounts,
}

/// The injected faults of a run.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct FaultCounts {
    /// Exact re-sends, per event type.
    pub duplicates: BTreeMap<String, u64>,
    /// Events emitted out of order, per event type.
    pub late: BTreeMap<String, u64>,
    /// Malformed lines per corruption kind.
    pub malformed: BTreeMap<String, u64>,
    /// Malformed lines per reason code the validator must give.
    pub malformed_by_reason: BTreeMap<String, u64>,
}

/// A generator run in progress.
pub struct Generator {
    cfg: Config,
    sim: Sim,
    rng: Rng,
    buf: Vec<u8>,
    ring: Vec<(EventKind, Vec<u8>)>,
    ring_next: usize,
    late: BinaryHeap<Reverse<Held>>,
    clock: i64,
    fx_last: Date,
    manifest: Manifest,
}

const RING: usize = 4096;

/// A late event held back: (release time, order of holding, kind, line).
type Held = (i64, u64, EventKind, Vec<u8>);

impl Generator {
    /// Prepares a run.
    pub fn new(cfg: Config) -> Generator {
        let sim = Sim::new(cfg.seed, cfg.start, cfg.world.clone());
        let manifest = Manifest {
            generator: format!("shopflow-generator {}", env!("CARGO_PKG_VERSION")),
            seed: cfg.seed,
            start: cfg.start.to_string(),
            ..Manifest::default()
        };
        Generator {
            rng: Rng::new(cfg.seed, 3),
            sim,
            buf: Vec::with_capacity(512),
            ring: Vec::new(),
            ring_next: 0,
            late: BinaryHeap::new(),
            clock: cfg.start.0,
            fx_last: cfg.start.date(),
            manifest,
            cfg,
        }
    }

    /// Generates until the configured size, then flushes `sink`. A sink error
    /// of kind `Interrupted` ends the run early but still counts it.
    pub fn run(mut self, sink: &mut dyn Sink) -> io::Result<Manifest> {
        let interrupted = match self.produce(sink) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) => return Err(e),
            Ok(()) => false,
        };
        if !interrupted {
            while let Some(Reverse((release, _, kind, line))) = self.late.pop() {
                self.write(sink, kind, release, &line)?;
            }
        }
        sink.finish()?;
        self.manifest.end = Timestamp(self.clock).to_string();
        self.manifest.fx_dates = [self.cfg.start.date().to_string(), self.fx_last.to_string()];
        self.manifest.sessions = self.sim.sessions_started;
        Ok(self.manifest)
    }

    fn produce(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let (dup, late, bad) = (
            to_ppm(self.cfg.duplicates),
            to_ppm(self.cfg.late),
            to_ppm(self.cfg.malformed),
        );
        let budget = self.cfg.events.unwrap_or(u64::MAX);
        let mut slots = 0u64;
        let mut seq = 0u64;
        while slots < budget {
            slots += 1;
            let draw = self.rng.below(1_000_000) as u32;
            if draw < dup + bad && draw >= bad && !self.ring.is_empty() {
                let i = self.rng.below(self.ring.len() as u64) as usize;
                let (kind, line) = self.ring[i].clone();
                bump(&mut self.manifest.faults.duplicates, kind.name());
                self.write(sink, kind, self.clock, &line)?;
                continue;
            }
            let Some((kind, ts)) = self.next_event(sink)? else {
                break;
            };
            if draw < bad {
                let c = Corruption::draw(&mut self.rng, kind);
                let line = faults::corrupt(&self.buf, c, &mut self.rng);
                bump(&mut self.manifest.faults.malformed, c.name());
                bump(
                    &mut self.manifest.faults.malformed_by_reason,
                    c.expected_reason().code(),
                );
                self.write(sink, kind, ts, &line)?;
                continue;
            }
            bump(&mut self.manifest.valid_events, kind.name());
            if self.rng.below(1_000_000) < u64::from(late) {
                let release = ts + self.rng.range(1, self.cfg.max_delay_ms.max(1));
                seq += 1;
                bump(&mut self.manifest.faults.late, kind.name());
                self.late
                    .push(Reverse((release, seq, kind, self.buf.clone())));
                continue;
            }
            let line = std::mem::take(&mut self.buf);
            self.write(sink, kind, ts, &line)?;
            if dup > 0 {
                self.remember(kind, &line);
            }
            self.buf = line;
        }
        Ok(())
    }

    /// Advances the simulation to its next shop event, emitting reference
    /// records on the way; leaves the event's line in `self.buf`.
    fn next_event(&mut self, sink: &mut dyn Sink) -> io::Result<Option<(EventKind, i64)>> {
        let end = self
            .cfg
            .duration_ms
            .map_or(i64::MAX, |d| self.cfg.start.0 + d);
        loop {
            match self.sim.next_record() {
                SimRecord::Event(e) => {
                    let ts = e.ts().0;
                    if ts >= end {
                        return Ok(None);
                    }
                    self.release_late(sink, ts)?;
                    self.clock = self.clock.max(ts);
                    let kind = match &e {
                        Event::Click(c) => (EventKind::Click, json::click(&mut self.buf, c)).0,
                        Event::Cart(c) => (EventKind::Cart, json::cart(&mut self.buf, c)).0,
                        Event::Purchase(p) => {
                            (EventKind::Purchase, json::purchase(&mut self.buf, p)).0
                        }
                    };
                    return Ok(Some((kind, ts)));
                }
                SimRecord::Product(p) => {
                    json::product(&mut self.buf, &p);
                    let line = std::mem::take(&mut self.buf);
                    self.write(sink, EventKind::Product, p.updated_at.0, &line)?;
                    self.buf = line;
                }
                SimRecord::User(u) => {
                    json::user(&mut self.buf, &u);
                    let line = std::mem::take(&mut self.buf);
                    self.write(sink, EventKind::User, u.updated_at.0, &line)?;
                    self.buf = line;
                }
                SimRecord::FxDay(date) => {
                    if date.start().0 >= end {
                        return Ok(None);
                    }
                    self.fx_last = date;
                    let rates = self.sim.fx.day(date);
                    for (i, rate) in rates.into_iter().enumerate() {
                        json::fx(&mut self.buf, date, fx_currency(i), rate);
                        let line = std::mem::take(&mut self.buf);
                        self.write(sink, EventKind::Fx, date.start().0.max(self.clock), &line)?;
                        self.buf = line;
                    }
                }
            }
        }
    }

    fn release_late(&mut self, sink: &mut dyn Sink, now: i64) -> io::Result<()> {
        while self
            .late
            .peek()
            .is_some_and(|Reverse((release, ..))| *release <= now)
        {
            let Reverse((release, _, kind, line)) = self.late.pop().expect("peeked");
            self.write(sink, kind, release, &line)?;
            if self.cfg.duplicates > 0.0 {
                self.remember(kind, &line);
            }
        }
        Ok(())
    }

    fn remember(&mut self, kind: EventKind, line: &[u8]) {
        if self.ring.len() < RING {
            self.ring.push((kind, line.to_vec()));
        } else {
            self.ring[self.ring_next] = (kind, line.to_vec());
            self.ring_next = (self.ring_next + 1) % RING;
        }
    }

    fn write(
        &mut self,
        sink: &mut dyn Sink,
        kind: EventKind,
        at: i64,
        line: &[u8],
    ) -> io::Result<()> {
        *self
            .manifest
            .lines
            .entry(format!("{}.jsonl", kind.topic()))
            .or_default() += 1;
        sink.emit(kind, Timestamp(at), line)
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_string()).or_default() += 1;
}
