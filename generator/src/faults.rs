//! Malformed-record injection: seven ways a producer can break a message.
//!
//! Each corruption breaks exactly one rule of the contract, so the validator's
//! verdict is known in advance ([`Corruption::expected_reason`]); the manifest
//! counts them by kind, and tests check the validator rejects each one with
//! that reason.

use crate::rng::Rng;
use serde_json::{Map, Value};
use shopflow_model::validate::MAX_MESSAGE_BYTES;
use shopflow_model::{EventKind, Reason};

/// A kind of malformed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Corruption {
    /// Cut off mid-message.
    BrokenJson,
    /// A required field removed.
    MissingField,
    /// A field with the wrong JSON type.
    WrongType,
    /// A timestamp that is not RFC 3339 with a zone.
    BadTimestamp,
    /// A negative quantity (carts and purchases only).
    NegativeQuantity,
    /// A currency outside the supported set (purchases only).
    UnknownCurrency,
    /// Padded past the size limit.
    Oversized,
}

impl Corruption {
    /// Every kind, in manifest order.
    pub const ALL: [Corruption; 7] = [
        Corruption::BrokenJson,
        Corruption::MissingField,
        Corruption::WrongType,
        Corruption::BadTimestamp,
        Corruption::NegativeQuantity,
        Corruption::UnknownCurrency,
        Corruption::Oversized,
    ];

    /// The name used in the manifest.
    pub const fn name(self) -> &'static str {
        match self {
            Corruption::BrokenJson => "broken_json",
            Corruption::MissingField => "missing_field",
            Corruption::WrongType => "wrong_type",
            Corruption::BadTimestamp => "bad_timestamp",
            Corruption::NegativeQuantity => "negative_quantity",
            Corruption::UnknownCurrency => "unknown_currency",
            Corruption::Oversized => "oversized",
        }
    }

    /// The reason the validator must give.
    pub const fn expected_reason(self) -> Reason {
        match self {
            Corruption::BrokenJson => Reason::InvalidJson,
            Corruption::MissingField => Reason::MissingField,
            Corruption::WrongType => Reason::WrongType,
            Corruption::BadTimestamp | Corruption::NegativeQuantity => Reason::InvalidValue,
            Corruption::UnknownCurrency => Reason::UnknownCurrency,
            Corruption::Oversized => Reason::TooLarge,
        }
    }

    fn applies_to(self, kind: EventKind) -> bool {
        match self {
            Corruption::NegativeQuantity => matches!(kind, EventKind::Cart | EventKind::Purchase),
            Corruption::UnknownCurrency => kind == EventKind::Purchase,
            _ => true,
        }
    }

    /// Draws a corruption that applies to `kind`.
    pub fn draw(rng: &mut Rng, kind: EventKind) -> Corruption {
        let options: Vec<Corruption> = Corruption::ALL
            .into_iter()
            .filter(|c| c.applies_to(kind))
            .collect();
        options[rng.below(options.len() as u64) as usize]
    }
}

/// Returns `line` (a valid message of `kind`) broken in the way of `c`.
pub fn corrupt(line: &[u8], c: Corruption, rng: &mut Rng) -> Vec<u8> {
    if c == Corruption::BrokenJson {
        let cut = 1 + rng.below(line.len() as u64 - 1) as usize;
        return line[..cut].to_vec();
    }
    let mut obj: Map<String, Value> =
        serde_json::from_slice(line).expect("generated lines are valid JSON objects");
    match c {
        Corruption::MissingField => {
            let keys: Vec<String> = obj.keys().cloned().collect();
            obj.remove(&keys[rng.below(keys.len() as u64) as usize]);
        }
        Corruption::WrongType => {
            let keys: Vec<String> = obj.keys().cloned().collect();
            let key = &keys[rng.below(keys.len() as u64) as usize];
            let swapped = match &obj[key] {
                Value::String(_) => Value::from(42),
                Value::Number(n) => Value::from(n.to_string()),
                _ => Value::from("not an array"),
            };
            obj.insert(key.clone(), swapped);
        }
        Corruption::BadTimestamp => {
            const BAD: [&str; 4] = [
                "2026-13-45T25:61:00Z",
                "2026-11-24 10:00:00",
                "yesterday",
                "2026-11-24T10:00:00",
            ];
            obj.insert("ts".into(), Value::from(BAD[rng.below(4) as usize]));
        }
        Corruption::NegativeQuantity => {
            let negative = Value::from(-rng.range(1, 5));
            match obj.get_mut("items").and_then(Value::as_array_mut) {
                Some(items) => {
                    let i = rng.below(items.len() as u64) as usize;
                    items[i]["quantity"] = negative;
                }
                None => {
                    obj.insert("quantity".into(), negative);
                }
            }
        }
        Corruption::UnknownCurrency => {
            const BAD: [&str; 3] = ["XYZ", "BTC", "usd"];
            obj.insert("currency".into(), Value::from(BAD[rng.below(3) as usize]));
        }
        Corruption::Oversized => {
            let pad = MAX_MESSAGE_BYTES + 1 + rng.below(1024) as usize;
            obj.insert("padding".into(), Value::from("x".repeat(pad)));
        }
        Corruption::BrokenJson => unreachable!("handled above"),
    }
    serde_json::to_vec(&obj).expect("a JSON map serializes")
}
