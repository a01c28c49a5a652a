//! The event model every other shopflow crate speaks.
//!
//! Shops send JSON; shopflow computes on typed records. This crate is the border
//! between the two and depends on nothing heavier than `serde_json`, so the
//! generator, the connectors and the dataflow can share it without pulling in
//! each other:
//!
//! - [`decimal`]: exact fixed-point money and FX rates (never `f64`);
//! - [`time`]: UTC millisecond timestamps and calendar dates, RFC 3339 in and out;
//! - [`currency`]: the supported ISO 4217 codes;
//! - [`event`]: the typed records (clicks, cart adds, purchases, FX rates,
//!   products, users);
//! - [`validate`]: raw bytes in, a typed record or a [`ValidationError`] with a
//!   stable reason code out.
//!
//! The contract itself is written down in `docs/event-contract.md`.

pub mod currency;
pub mod decimal;
pub mod event;
pub mod time;
pub mod validate;

pub use currency::Currency;
pub use decimal::{Money, Rate};
pub use event::{CartAdd, Click, Event, EventKind, FxRate, Item, Product, Purchase, User};
pub use time::{Date, Timestamp};
pub use validate::{Reason, ValidationError};
