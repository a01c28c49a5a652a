//! Raw bytes in, a typed record or a reasoned rejection out.
//!
//! Every input of shopflow (Kafka messages, lake files, generator output) goes
//! through these functions, so they decide what "valid" means. A rejection is a
//! [`ValidationError`]: a stable [`Reason`] code for dead letters and metrics,
//! the field path, and a message that says what was wrong and what is expected.
//!
//! The parsing is two-step for exactness and for precise errors: serde reads
//! each known field as an unparsed JSON fragment ([`raw`]), then the field
//! readers check its JSON type and value. Numbers are read from their text, so
//! money is exact.

mod raw;
mod records;

use crate::event::{Event, EventKind};
use std::fmt;

pub use records::{
    validate_cart, validate_click, validate_fx, validate_product, validate_purchase, validate_user,
};

/// The largest message accepted, in bytes (64 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Stable, machine-readable reason codes for a rejected record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Over [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// Not UTF-8, not JSON, or a duplicated key.
    InvalidJson,
    /// A required field is absent.
    MissingField,
    /// A field (or the message) has the wrong JSON type, `null` included.
    WrongType,
    /// Right type, value outside the contract.
    InvalidValue,
    /// A currency outside the supported set.
    UnknownCurrency,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 6] = [
        Reason::TooLarge,
        Reason::InvalidJson,
        Reason::MissingField,
        Reason::WrongType,
        Reason::InvalidValue,
        Reason::UnknownCurrency,
    ];

    /// The stable code (`too_large`, `invalid_json`, …).
    pub const fn code(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::InvalidJson => "invalid_json",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::InvalidValue => "invalid_value",
            Reason::UnknownCurrency => "unknown_currency",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A rejected record: why, where, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at `{field}`: {message}")]
pub struct ValidationError {
    /// The stable reason code.
    pub reason: Reason,
    /// The field path (`ts`, `items[2].quantity`), or `$` for the whole message.
    pub field: String,
    /// What was wrong and what is expected.
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(
        reason: Reason,
        field: impl fmt::Display,
        message: impl Into<String>,
    ) -> Self {
        ValidationError {
            reason,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// A validated record of any kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A shop event.
    Event(Event),
    /// An FX rate.
    Fx(crate::FxRate),
    /// A product version.
    Product(crate::Product),
    /// A user profile version.
    User(crate::User),
}

/// Validates one message of the given kind.
pub fn validate(kind: EventKind, bytes: &[u8]) -> Result<Record, ValidationError> {
    Ok(match kind {
        EventKind::Click => Record::Event(Event::Click(validate_click(bytes)?)),
        EventKind::Cart => Record::Event(Event::Cart(validate_cart(bytes)?)),
        EventKind::Purchase => Record::Event(Event::Purchase(validate_purchase(bytes)?)),
        EventKind::Fx => Record::Fx(validate_fx(bytes)?),
        EventKind::Product => Record::Product(validate_product(bytes)?),
        EventKind::User => Record::User(validate_user(bytes)?),
    })
}
