//! Running the dataflow: bounded (replay, tests) and live (demo, Kafka).
//!
//! Both build the same graph ([`crate::graph`]). A bounded run lets every
//! worker load its share, closes the inputs and drains to completion; a live
//! run lets worker 0 ingest from a channel, advance the watermark, and hand
//! every completed time's changes to a callback.

use crate::bounded::{Whole, run_sliced};
use crate::input::{Admission, Feeder};
use crate::live::{Mark, NoSource, Offer, Source, run_sources};
use crate::{Change, Settings, Time};
use shopflow_model::validate::{Record, ValidationError, validate};
use shopflow_model::{Event, EventKind, FxRate, Product, User};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A validated input record.
#[derive(Clone, Debug)]
pub enum Input {
    /// A shop event with the bytes it arrived as.
    Event(Event, Vec<u8>),
    /// An FX rate.
    Fx(FxRate),
    /// A product version.
    Product(Product),
    /// A user profile version.
    User(User),
}

impl Input {
    /// Validates one message of `kind` into an input.
    pub fn from_line(kind: EventKind, line: &[u8]) -> Result<Input, ValidationError> {
        Ok(match validate(kind, line)? {
            Record::Event(e) => Input::Event(e, line.to_vec()),
            Record::Fx(f) => Input::Fx(f),
            Record::Product(p) => Input::Product(p),
            Record::User(u) => Input::User(u),
        })
    }

    /// The record's event time (ms): an event's `ts`, the start of an FX
    /// rate's date, a product's or profile's `updated_at`.
    pub fn ts(&self) -> i64 {
        match self {
            Input::Event(e, _) => e.ts().0,
            Input::Fx(f) => f.date.start().0,
            Input::Product(p) => p.updated_at.0,
            Input::User(u) => u.updated_at.0,
        }
    }

    /// Whether worker `index` of `peers` feeds this record in a bounded run:
    /// events by their id (so all versions of one id meet in one feeder),
    /// reference data on worker 0 (so FX corrections apply in input order).
    pub fn is_for(&self, index: usize, peers: usize) -> bool {
        match self {
            Input::Event(e, _) => route(e.event_id(), peers) == index,
            _ => index == 0,
        }
    }

    /// Offers the record to a feeder: `None` for reference data (always
    /// applied), the admission of an event, or the event back if too late.
    pub fn feed(self, feeder: &mut Feeder) -> Option<Result<Admission, Box<Event>>> {
        match self {
            Input::Event(e, raw) => return Some(feeder.event(e, raw)),
            Input::Fx(f) => feeder.fx(f),
            Input::Product(p) => feeder.product(p),
            Input::User(u) => feeder.user(u),
        }
        None
    }
}

/// The worker that must feed every version of event `id` (FNV-1a of the id).
pub fn route(id: &str, peers: usize) -> usize {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % peers.max(1) as u64) as usize
}

/// Offers this worker's share of `inputs` (see [`Input::is_for`]).
pub fn feed_share(inputs: &[Input], index: usize, peers: usize, feeder: &mut Feeder) {
    for input in inputs.iter().filter(|i| i.is_for(index, peers)) {
        input.clone().feed(feeder);
    }
}

/// Runs the dataflow over bounded input on `workers` threads. `load` is
/// called on every worker with (index, peers, feeder) and must offer that
/// worker's share, all at once. Returns every output change, consolidated per
/// time. Large inputs should use [`run_sliced`] instead, which streams.
pub fn run_bounded<L>(settings: Settings, workers: usize, load: L) -> Result<Vec<Change>, String>
where
    L: Fn(usize, usize, &mut Feeder) + Send + Sync + 'static,
{
    let load = Arc::new(load);
    let mut changes = Vec::new();
    run_sliced(
        settings,
        workers,
        move |index, peers| {
            let load = load.clone();
            Whole::new(move |feeder: &mut Feeder| load(index, peers, feeder))
        },
        |time, batch| changes.extend(batch.into_iter().map(|(row, diff)| (row, time, diff))),
    )?;
    Ok(changes)
}

/// Counts of what a live run did with offered events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestCounts {
    /// Applied at their own time.
    pub on_time: u64,
    /// Applied late, correcting windows.
    pub late: u64,
    /// Beyond the allowed lateness: not applied.
    pub too_late: u64,
}

/// One completed step of a live run.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Every time before this is complete.
    pub upto: Time,
    /// The changes at completed times not reported before, consolidated.
    pub changes: Vec<Change>,
    /// Totals so far.
    pub ingest: IngestCounts,
    /// Events refused as too late since the last report.
    pub too_late: Vec<Event>,
}

/// Runs the dataflow live: worker 0 ingests from `rx` until it disconnects or
/// `stop()` is true, with its watermark trailing the newest event by the
/// out-of-orderness; `report` receives every completed step on worker 0, the
/// last one after the inputs close.
pub fn run_live<S, R>(
    settings: Settings,
    workers: usize,
    rx: Receiver<Input>,
    stop: S,
    mut report: R,
) -> Result<(), String>
where
    S: Fn() -> bool + Send + Sync + 'static,
    R: FnMut(Progress) + Send + 'static,
{
    let rx = Arc::new(Mutex::new(Some(rx)));
    let ooo = settings.out_of_orderness_ms;
    run_sources(
        settings,
        workers,
        move |index, _| {
            let rx = if index == 0 {
                rx.lock().expect("lock").take()
            } else {
                None
            };
            match rx {
                Some(rx) => Box::new(ChannelSource {
                    rx,
                    max_ts: None,
                    ooo,
                }) as Box<dyn Source>,
                None => Box::new(NoSource),
            }
        },
        stop,
        move |p| {
            let upto = p.upto;
            report(p);
            upto
        },
    )
}

/// Worker 0's source in [`run_live`]: a channel, its mark the newest event
/// time minus the out-of-orderness.
struct ChannelSource {
    rx: Receiver<Input>,
    max_ts: Option<i64>,
    ooo: i64,
}

impl Source for ChannelSource {
    fn poll(&mut self, offer: &mut Offer<'_>, _in_flight: u64) -> bool {
        let deadline = Instant::now() + Duration::from_millis(20);
        while Instant::now() < deadline {
            match self.rx.try_recv() {
                Ok(input) => {
                    if let Input::Event(e, _) = &input {
                        self.max_ts = self.max_ts.max(Some(e.ts().0));
                    }
                    offer.input(input);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn mark(&self) -> Mark {
        match self.max_ts {
            Some(t) => Mark::Active(t - self.ooo),
            None => Mark::Hold,
        }
    }

    fn durable(&mut self, _upto: Time) {}
}
