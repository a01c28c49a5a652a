//! Field readers over unparsed JSON fragments.
//!
//! serde reads each known field of a message into a [`Slot`] (the field's raw
//! JSON text, or nothing if absent); the readers here then check the JSON type
//! and the value and build the typed field, naming the field in any error.

use super::{MAX_MESSAGE_BYTES, Reason, ValidationError};
use crate::decimal::DecimalError;
use crate::{Currency, Date, Money, Rate, Timestamp};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// One field of a message: its raw JSON text, or `None` when absent.
#[derive(Default, Clone, Copy)]
pub(super) struct Slot<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Slot<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Not `Option<&RawValue>`: that would read `null` as absent.
        <&'a RawValue>::deserialize(d).map(|v| Slot(Some(v)))
    }
}

/// Where a field sits in the message, for error messages.
#[derive(Clone, Copy)]
pub(super) enum Path {
    /// A top-level field.
    Top(&'static str),
    /// A field of the n-th order line.
    Item(usize, &'static str),
    /// The n-th order line itself.
    ItemRoot(usize),
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Top(name) => f.write_str(name),
            Path::Item(i, name) => write!(f, "items[{i}].{name}"),
            Path::ItemRoot(i) => write!(f, "items[{i}]"),
        }
    }
}

type Result<T> = std::result::Result<T, ValidationError>;

/// Parses a whole message into the slot struct `T` after the size and syntax checks.
pub(super) fn parse_message<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        let msg = format!(
            "the message is {} bytes, over the {MAX_MESSAGE_BYTES}-byte limit; send large payloads by reference",
            bytes.len()
        );
        return Err(ValidationError::new(Reason::TooLarge, "$", msg));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let msg = format!("the message is not valid UTF-8 ({e}); encode JSON as UTF-8");
        ValidationError::new(Reason::InvalidJson, "$", msg)
    })?;
    parse_object(text, "$")
}

/// Parses one JSON object (a message or an order line) into the slot struct `T`.
pub(super) fn parse_object<'a, T: Deserialize<'a>>(
    text: &'a str,
    path: impl fmt::Display,
) -> Result<T> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        let found = json_type_name(trimmed.as_bytes().first().copied());
        let msg = format!("expected a JSON object, found {found}");
        return Err(ValidationError::new(Reason::WrongType, path, msg));
    }
    serde_json::from_str(text).map_err(|e| {
        let msg = format!("not valid JSON: {e}; send one JSON object per message");
        ValidationError::new(Reason::InvalidJson, path, msg)
    })
}

fn json_type_name(first: Option<u8>) -> &'static str {
    match first {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn present(slot: Slot<'_>, path: Path) -> Result<&RawValue> {
    slot.0.ok_or_else(|| {
        ValidationError::new(
            Reason::MissingField,
            path,
            format!("the required field `{path}` is absent"),
        )
    })
}

fn wrong_type(raw: &RawValue, path: Path, expected: &str) -> ValidationError {
    let found = json_type_name(raw.get().as_bytes().first().copied());
    ValidationError::new(
        Reason::WrongType,
        path,
        format!("expected {expected}, found {found}"),
    )
}

fn invalid(path: Path, message: String) -> ValidationError {
    ValidationError::new(Reason::InvalidValue, path, message)
}

/// The field as a JSON string, unescaped (borrowed when it has no escapes).
fn string<'a>(slot: Slot<'a>, path: Path) -> Result<Cow<'a, str>> {
    let raw = present(slot, path)?;
    let text = raw.get();
    if !text.starts_with('"') {
        return Err(wrong_type(raw, path, "a string"));
    }
    if !text.contains('\\') {
        return Ok(Cow::Borrowed(&text[1..text.len() - 1]));
    }
    let owned: String = serde_json::from_str(text).map_err(|e| {
        ValidationError::new(Reason::InvalidJson, path, format!("bad string escape: {e}"))
    })?;
    Ok(Cow::Owned(owned))
}

/// An id: a string of 1 to 128 bytes.
pub(super) fn id(slot: Slot<'_>, path: Path) -> Result<String> {
    let s = string(slot, path)?;
    if s.is_empty() || s.len() > 128 {
        return Err(invalid(
            path,
            format!("an id must be 1 to 128 bytes, got {} bytes", s.len()),
        ));
    }
    Ok(s.into_owned())
}

/// A string that must not be empty.
pub(super) fn non_empty(slot: Slot<'_>, path: Path) -> Result<String> {
    let s = string(slot, path)?;
    if s.is_empty() {
        return Err(invalid(path, format!("`{path}` must not be empty")));
    }
    Ok(s.into_owned())
}

/// Any string, empty included.
pub(super) fn any_string(slot: Slot<'_>, path: Path) -> Result<String> {
    string(slot, path).map(Cow::into_owned)
}

/// An RFC 3339 date-time with a zone.
pub(super) fn timestamp(slot: Slot<'_>, path: Path) -> Result<Timestamp> {
    let s = string(slot, path)?;
    Timestamp::parse_rfc3339(&s).map_err(|_| {
        invalid(
            path,
            format!(
                "`{s}` is not an RFC 3339 date-time with a zone, like 2026-11-24T10:05:00.123Z"
            ),
        )
    })
}

/// A `YYYY-MM-DD` calendar date.
pub(super) fn date(slot: Slot<'_>, path: Path) -> Result<Date> {
    let s = string(slot, path)?;
    Date::parse(&s).map_err(|_| invalid(path, format!("`{s}` is not a calendar date YYYY-MM-DD")))
}

/// An ISO 3166-1 alpha-2 country code.
pub(super) fn country(slot: Slot<'_>, path: Path) -> Result<String> {
    let s = string(slot, path)?;
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            path,
            format!("`{s}` is not a two-letter upper-case country code like DE"),
        ));
    }
    Ok(s.into_owned())
}

/// A quantity: an integer literal from 1 to 1000.
pub(super) fn quantity(slot: Slot<'_>, path: Path) -> Result<u32> {
    let raw = present(slot, path)?;
    let text = raw.get();
    let is_integer = text
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'));
    if !is_integer || text == "-" {
        return Err(wrong_type(raw, path, "an integer").with_hint(text));
    }
    match text.parse::<i64>() {
        Ok(q @ 1..=1000) => Ok(q as u32),
        _ => Err(invalid(
            path,
            format!("quantity must be 1 to 1000, got {text}"),
        )),
    }
}

/// Money: a non-negative JSON number with at most 2 decimal places.
pub(super) fn money(slot: Slot<'_>, path: Path) -> Result<Money> {
    let (raw, text) = number(slot, path)?;
    Money::parse(text, 0, Money::MAX.units())
        .map_err(|e| decimal_error(e, raw, path, "an amount", 2))
}

/// An FX rate: a positive JSON number with at most 6 decimal places.
pub(super) fn rate(slot: Slot<'_>, path: Path) -> Result<Rate> {
    let (raw, text) = number(slot, path)?;
    Rate::parse(text, 1, Rate::MAX.units()).map_err(|e| decimal_error(e, raw, path, "a rate", 6))
}

fn number(slot: Slot<'_>, path: Path) -> Result<(&RawValue, &str)> {
    let raw = present(slot, path)?;
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => Ok((raw, text)),
        _ => Err(wrong_type(raw, path, "a JSON number")),
    }
}

fn decimal_error(
    e: DecimalError,
    raw: &RawValue,
    path: Path,
    what: &str,
    places: u32,
) -> ValidationError {
    let text = raw.get();
    let msg = match e {
        DecimalError::Syntax => return wrong_type(raw, path, "a JSON number"),
        DecimalError::TooSmall if places == 2 => format!("{what} must not be negative, got {text}"),
        DecimalError::TooSmall => format!("{what} must be greater than 0, got {text}"),
        DecimalError::TooLarge => format!("{what} is too large: {text}"),
        DecimalError::TooPrecise => {
            format!("{what} has at most {places} decimal places, got {text}")
        }
    };
    invalid(path, msg)
}

/// A supported currency code.
pub(super) fn currency(slot: Slot<'_>, path: Path) -> Result<Currency> {
    let s = string(slot, path)?;
    Currency::from_code(&s).ok_or_else(|| {
        let supported: Vec<&str> = Currency::ALL.iter().map(|c| c.code()).collect();
        let msg = format!(
            "`{s}` is not a supported currency; use one of {}",
            supported.join(", ")
        );
        ValidationError::new(Reason::UnknownCurrency, path, msg)
    })
}

/// The `base` of an FX record: always `"USD"`.
pub(super) fn base_usd(slot: Slot<'_>, path: Path) -> Result<()> {
    let s = string(slot, path)?;
    if s != "USD" {
        return Err(invalid(
            path,
            format!("rates are quoted against USD; base must be \"USD\", got `{s}`"),
        ));
    }
    Ok(())
}

/// A JSON array of `min..=max` elements, left unparsed.
pub(super) fn array<'a>(
    slot: Slot<'a>,
    path: Path,
    min: usize,
    max: usize,
) -> Result<Vec<&'a RawValue>> {
    let raw = present(slot, path)?;
    if !raw.get().starts_with('[') {
        return Err(wrong_type(raw, path, "an array"));
    }
    let elements: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|e| {
        ValidationError::new(Reason::InvalidJson, path, format!("not valid JSON: {e}"))
    })?;
    if elements.len() < min || elements.len() > max {
        return Err(invalid(
            path,
            format!(
                "`{path}` must have {min} to {max} entries, got {}",
                elements.len()
            ),
        ));
    }
    Ok(elements)
}

trait WithHint {
    fn with_hint(self, text: &str) -> Self;
}

impl WithHint for ValidationError {
    /// Adds why a number-looking value is not an integer.
    fn with_hint(mut self, text: &str) -> Self {
        if text
            .as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_digit() || *b == b'-')
        {
            self.message =
                format!("expected an integer literal, found {text} (no fraction or exponent)");
        }
        self
    }
}
