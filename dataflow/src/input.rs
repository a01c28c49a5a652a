//! Feeding the dataflow: event time, watermarks, lateness and lifetimes.
//!
//! A [`Feeder`] owns one worker's input sessions. Each event enters at
//! `max(tick(ts), input time)`, carrying [`Settings::dedup_expiry`] of the
//! first version of its id, when the dedup operator forgets the id
//! (downstream keeps the winner until [`Settings::expiry`], see `graph.rs`); an
//! event whose time is more than the allowed lateness behind the input time is
//! *too late*: not applied, and returned to the caller to report. In bounded
//! mode (replay) nothing is late: every record enters at its own tick.
//!
//! [`Input`] is one validated record of any topic, with the worker that
//! must feed it ([`route`]).

use crate::{Settings, Time};
use differential_dataflow::input::InputSession;
use serde::{Deserialize, Serialize};
use shopflow_model::validate::{Record, ValidationError, validate};
use shopflow_model::{Currency, Date, Event, EventKind, FxRate, Product, Rate, User};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A shared, cheaply cloned id: arrangements copy their records on every
/// merge, and an `Arc` makes that a reference-count bump instead of an allocation.
pub type Id = Arc<str>;

/// One received version of an event, keyed in the dataflow by its id.
/// Versions order by time, then raw bytes: the smallest is kept.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// The event time.
    pub ts: i64,
    /// When every version of this id leaves the deduplication state.
    pub expires: Time,
    /// The message bytes as received.
    pub raw: Arc<[u8]>,
    /// The parsed event.
    pub event: Arc<Event>,
}

/// The input sessions of one worker.
pub struct Inputs {
    /// `(event_id, version)`.
    pub events: InputSession<Time, (Id, Version), isize>,
    /// Daily FX rates.
    pub fx: InputSession<Time, FxRate, isize>,
    /// Product versions.
    pub products: InputSession<Time, Product, isize>,
    /// User profile versions.
    pub users: InputSession<Time, User, isize>,
}

/// What happened to an offered event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Applied at its own time.
    OnTime,
    /// Behind the input time but within the allowed lateness: applied now,
    /// correcting the windows it belongs to.
    Late,
    /// Beyond the allowed lateness: not applied.
    TooLate,
}

/// Feeds one worker's inputs. All versions of one event id must go through
/// the same feeder (route by id), so they share one lifetime.
pub struct Feeder {
    inputs: Inputs,
    settings: Settings,
    bounded: bool,
    fx_seen: HashMap<(Date, Currency), Rate>,
    /// Expiry of every event id in the live state, so all versions of an id
    /// leave together (a losing version must never outlive the winner).
    expiry_of: HashMap<String, Time>,
    /// The same ids by expiry, to forget them once expired.
    expiring: BTreeMap<Time, Vec<String>>,
}

impl Feeder {
    /// A feeder for a live run (watermarks, lateness) or a bounded one.
    pub fn new(inputs: Inputs, settings: Settings, bounded: bool) -> Feeder {
        Feeder {
            inputs,
            settings,
            bounded,
            fx_seen: HashMap::new(),
            expiry_of: HashMap::new(),
            expiring: BTreeMap::new(),
        }
    }

    /// The current input time: nothing can be inserted before it.
    pub fn time(&self) -> Time {
        *self.inputs.events.time()
    }

    /// Offers an event with its raw bytes. A too-late event is handed back
    /// (`Err`), so the caller can report it without copying every event.
    pub fn event(&mut self, event: Event, raw: Vec<u8>) -> Result<Admission, Box<Event>> {
        let ts = event.ts().0;
        let now = self.time();
        let own = self.settings.tick(ts);
        let admission = if self.bounded || own >= now {
            Admission::OnTime
        } else if self.settings.tick(ts + self.settings.allowed_lateness_ms) >= now {
            Admission::Late
        } else {
            return Err(Box::new(event));
        };
        let enter = own.max(now);
        let id = event.event_id().to_string();
        let expire = match self.expiry_of.get(&id) {
            Some(&group) => group,
            None => {
                let e = self.settings.dedup_expiry(ts);
                self.expiry_of.insert(id.clone(), e);
                self.expiring.entry(e).or_default().push(id.clone());
                e
            }
        };
        if expire <= enter {
            return Err(Box::new(event)); // a re-send of an event that already aged out
        }
        let record = (
            Id::from(id.as_str()),
            Version {
                ts,
                expires: expire,
                raw: raw.into(),
                event: Arc::new(event),
            },
        );
        // Only the insertion: the dedup operator forgets the id at `expire`.
        self.inputs.events.update_at(record, enter, 1);
        Ok(admission)
    }

    /// Offers an FX rate; it takes effect from the start of its date. A second
    /// rate for the same date and currency replaces the first (a correction),
    /// so all FX records must go through one feeder.
    pub fn fx(&mut self, fx: FxRate) {
        let at = self.settings.tick(fx.date.start().0).max(self.time());
        match self.fx_seen.insert((fx.date, fx.currency), fx.rate) {
            Some(old) if old == fx.rate => return,
            Some(old) => self.inputs.fx.update_at(
                FxRate {
                    rate: old,
                    ..fx.clone()
                },
                at,
                -1,
            ),
            None => {}
        }
        self.inputs.fx.update_at(fx, at, 1);
    }

    /// Offers a product version.
    pub fn product(&mut self, p: Product) {
        let at = self.settings.tick(p.updated_at.0).max(self.time());
        self.inputs.products.update_at(p, at, 1);
    }

    /// Offers a user profile version.
    pub fn user(&mut self, u: User) {
        let at = self.settings.tick(u.updated_at.0).max(self.time());
        self.inputs.users.update_at(u, at, 1);
    }

    /// Moves every input to `time` (if later than now).
    pub fn advance_to(&mut self, time: Time) {
        while let Some(entry) = self.expiring.first_entry() {
            if *entry.key() > time {
                break;
            }
            for id in entry.remove() {
                self.expiry_of.remove(&id);
            }
        }
        if time > self.time() {
            self.inputs.events.advance_to(time);
            self.inputs.fx.advance_to(time);
            self.inputs.products.advance_to(time);
            self.inputs.users.advance_to(time);
        }
    }

    /// Sends buffered updates into the dataflow.
    pub fn flush(&mut self) {
        self.inputs.events.flush();
        self.inputs.fx.flush();
        self.inputs.products.flush();
        self.inputs.users.flush();
    }
}

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
