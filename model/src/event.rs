//! Typed records: what a valid input line becomes.
//!
//! Field names follow the wire contract exactly. Every type derives the traits
//! timely and differential need to exchange it between workers (`Ord`, `Hash`,
//! serde), so the dataflow can use them as they are.

use crate::{Currency, Date, Money, Rate, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A page view.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Click {
    /// Unique per event; re-sends carry the same id.
    pub event_id: String,
    /// The shopper.
    pub user_id: String,
    /// The browsing session.
    pub session_id: String,
    /// The product the page is about (the featured one on non-product pages).
    pub product_id: String,
    /// When it happened (UTC, ms).
    pub ts: Timestamp,
    /// Page path, for example `/product/p_00042`.
    pub page: String,
    /// Referring URL; empty for direct traffic.
    pub referrer: String,
}

/// An add-to-cart.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CartAdd {
    /// Unique per event.
    pub event_id: String,
    /// The shopper.
    pub user_id: String,
    /// The browsing session.
    pub session_id: String,
    /// The product added.
    pub product_id: String,
    /// Units added, 1..=1000.
    pub quantity: u32,
    /// When it happened (UTC, ms).
    pub ts: Timestamp,
}

/// One order line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Item {
    /// The product bought.
    pub product_id: String,
    /// Units bought, 1..=1000.
    pub quantity: u32,
    /// Price of one unit in the order's currency.
    pub unit_price: Money,
}

/// An order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Purchase {
    /// Unique per event (the order id).
    pub event_id: String,
    /// The buyer.
    pub user_id: String,
    /// The browsing session.
    pub session_id: String,
    /// 1..=100 lines.
    pub items: Vec<Item>,
    /// Amount charged in `currency`; may differ from the sum of lines.
    pub total_amount: Money,
    /// Currency of every amount in the order.
    pub currency: Currency,
    /// When it happened (UTC, ms).
    pub ts: Timestamp,
}

/// A daily FX rate: `rate` units of `currency` per 1 USD on `date`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FxRate {
    /// The UTC date the rate is for.
    pub date: Date,
    /// Never USD.
    pub currency: Currency,
    /// Units of `currency` per 1 USD.
    pub rate: Rate,
}

/// A version of a catalog product, valid from `updated_at`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Product {
    /// Natural key.
    pub product_id: String,
    /// Display name.
    pub name: String,
    /// Category, for example `electronics`.
    pub category: String,
    /// List price in USD.
    pub price: Money,
    /// When this version took effect.
    pub updated_at: Timestamp,
}

/// A version of a user profile, valid from `updated_at`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct User {
    /// Natural key.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Home country, ISO 3166-1 alpha-2.
    pub country: String,
    /// Home currency.
    pub currency: Currency,
    /// When this version took effect.
    pub updated_at: Timestamp,
}

/// A shop event of any of the three types.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Event {
    /// A page view.
    Click(Click),
    /// An add-to-cart.
    Cart(CartAdd),
    /// An order.
    Purchase(Purchase),
}

impl Event {
    /// The event's id.
    pub fn event_id(&self) -> &str {
        match self {
            Event::Click(e) => &e.event_id,
            Event::Cart(e) => &e.event_id,
            Event::Purchase(e) => &e.event_id,
        }
    }

    /// The shopper.
    pub fn user_id(&self) -> &str {
        match self {
            Event::Click(e) => &e.user_id,
            Event::Cart(e) => &e.user_id,
            Event::Purchase(e) => &e.user_id,
        }
    }

    /// The browsing session.
    pub fn session_id(&self) -> &str {
        match self {
            Event::Click(e) => &e.session_id,
            Event::Cart(e) => &e.session_id,
            Event::Purchase(e) => &e.session_id,
        }
    }

    /// The event's time.
    pub fn ts(&self) -> Timestamp {
        match self {
            Event::Click(e) => e.ts,
            Event::Cart(e) => e.ts,
            Event::Purchase(e) => e.ts,
        }
    }
}

/// The kinds of input record, each with its own topic and file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// `clicks` topic / `clicks.jsonl`.
    Click,
    /// `carts` topic / `carts.jsonl`.
    Cart,
    /// `purchases` topic / `purchases.jsonl`.
    Purchase,
    /// `fx_rates` topic / `fx_rates.jsonl`.
    Fx,
    /// `products` topic / `products.jsonl`.
    Product,
    /// `users` topic / `users.jsonl`.
    User,
}

impl EventKind {
    /// Every kind, in file order.
    pub const ALL: [EventKind; 6] = [
        EventKind::Click,
        EventKind::Cart,
        EventKind::Purchase,
        EventKind::Fx,
        EventKind::Product,
        EventKind::User,
    ];

    /// The short name used on the command line (`click`, `cart`, …).
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Click => "click",
            EventKind::Cart => "cart",
            EventKind::Purchase => "purchase",
            EventKind::Fx => "fx",
            EventKind::Product => "product",
            EventKind::User => "user",
        }
    }

    /// The Kafka topic and file stem (`clicks`, `carts`, …).
    pub const fn topic(self) -> &'static str {
        match self {
            EventKind::Click => "clicks",
            EventKind::Cart => "carts",
            EventKind::Purchase => "purchases",
            EventKind::Fx => "fx_rates",
            EventKind::Product => "products",
            EventKind::User => "users",
        }
    }

    /// Parses a short name or a topic name.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.name() == name || k.topic() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
