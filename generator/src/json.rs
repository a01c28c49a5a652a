//! Hand-rolled JSON line writers for generated records.
//!
//! Formatting without serde keeps the generator far from being a bottleneck
//! (it writes well over a million lines a second) and fixes the exact bytes:
//! field order as in the contract, money with two decimals, timestamps with
//! milliseconds and `Z`.

use shopflow_model::time::push_digits;
use shopflow_model::{CartAdd, Click, Currency, Date, Product, Purchase, Rate, Timestamp, User};

/// A line under construction.
pub struct Line<'a>(&'a mut Vec<u8>, bool);

impl<'a> Line<'a> {
    /// Starts an object in `buf` (which is cleared).
    pub fn start(buf: &'a mut Vec<u8>) -> Line<'a> {
        buf.clear();
        buf.push(b'{');
        Line(buf, true)
    }

    fn key(&mut self, key: &str) {
        if !self.1 {
            self.0.push(b',');
        }
        self.1 = false;
        self.0.push(b'"');
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    /// A string field.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_string(self.0, value);
        self
    }

    /// An integer field.
    pub fn int(mut self, key: &str, value: i64) -> Self {
        self.key(key);
        if value < 0 {
            self.0.push(b'-');
        }
        push_digits(self.0, value.unsigned_abs() as i64, 1);
        self
    }

    /// A money or rate field, as a JSON number with its fixed decimals.
    pub fn decimal<const S: u32>(
        mut self,
        key: &str,
        value: shopflow_model::decimal::Fixed<S>,
    ) -> Self {
        self.key(key);
        let units = value.units();
        if units < 0 {
            self.0.push(b'-');
        }
        let one = 10u64.pow(S);
        push_digits(self.0, (units.unsigned_abs() / one) as i64, 1);
        self.0.push(b'.');
        push_digits(self.0, (units.unsigned_abs() % one) as i64, S as usize);
        self
    }

    /// A timestamp field.
    pub fn ts(mut self, key: &str, value: Timestamp) -> Self {
        self.key(key);
        self.0.push(b'"');
        value.write_rfc3339(self.0);
        self.0.push(b'"');
        self
    }

    /// A field whose value is already JSON text.
    pub fn raw(mut self, key: &str, json: &[u8]) -> Self {
        self.key(key);
        self.0.extend_from_slice(json);
        self
    }

    /// Closes the object.
    pub fn end(self) {
        self.0.push(b'}');
    }
}

/// Appends `value` as a JSON string literal.
pub fn push_string(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    if !bytes.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// A click line.
pub fn click(buf: &mut Vec<u8>, e: &Click) {
    Line::start(buf)
        .str("event_id", &e.event_id)
        .str("user_id", &e.user_id)
        .str("session_id", &e.session_id)
        .str("product_id", &e.product_id)
        .ts("ts", e.ts)
        .str("page", &e.page)
        .str("referrer", &e.referrer)
        .end();
}

/// A cart line.
pub fn cart(buf: &mut Vec<u8>, e: &CartAdd) {
    Line::start(buf)
        .str("event_id", &e.event_id)
        .str("user_id", &e.user_id)
        .str("session_id", &e.session_id)
        .str("product_id", &e.product_id)
        .int("quantity", i64::from(e.quantity))
        .ts("ts", e.ts)
        .end();
}

/// A purchase line.
pub fn purchase(buf: &mut Vec<u8>, e: &Purchase) {
    let mut items = Vec::with_capacity(64 * e.items.len());
    let mut one = Vec::with_capacity(64);
    items.push(b'[');
    for (i, item) in e.items.iter().enumerate() {
        if i > 0 {
            items.push(b',');
        }
        Line::start(&mut one)
            .str("product_id", &item.product_id)
            .int("quantity", i64::from(item.quantity))
            .decimal("unit_price", item.unit_price)
            .end();
        items.extend_from_slice(&one);
    }
    items.push(b']');
    Line::start(buf)
        .str("event_id", &e.event_id)
        .str("user_id", &e.user_id)
        .str("session_id", &e.session_id)
        .raw("items", &items)
        .decimal("total_amount", e.total_amount)
        .str("currency", e.currency.code())
        .ts("ts", e.ts)
        .end();
}

/// An FX rate line.
pub fn fx(buf: &mut Vec<u8>, date: Date, currency: Currency, rate: Rate) {
    Line::start(buf)
        .str("date", &date.to_string())
        .str("base", "USD")
        .str("currency", currency.code())
        .decimal("rate", rate)
        .end();
}

/// A product line.
pub fn product(buf: &mut Vec<u8>, p: &Product) {
    Line::start(buf)
        .str("product_id", &p.product_id)
        .str("name", &p.name)
        .str("category", &p.category)
        .decimal::<2>("price", p.price)
        .ts("updated_at", p.updated_at)
        .end();
}

/// A user line.
pub fn user(buf: &mut Vec<u8>, u: &User) {
    Line::start(buf)
        .str("user_id", &u.user_id)
        .str("name", &u.name)
        .str("country", &u.country)
        .str("currency", u.currency.code())
        .ts("updated_at", u.updated_at)
        .end();
}
