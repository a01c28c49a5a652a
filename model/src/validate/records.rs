//! One validator per record type: the contract's field list, in order.
//!
//! Fields are checked in the order of `docs/event-contract.md`, so a message
//! that breaks several rules always reports the same first one.

use super::ValidationError;
use super::raw::{self, Path, Slot, parse_message, parse_object};
use crate::{CartAdd, Click, FxRate, Item, Product, Purchase, User};
use serde::Deserialize;

type Result<T> = std::result::Result<T, ValidationError>;

#[derive(Deserialize)]
struct RawClick<'a> {
    #[serde(default, borrow)]
    event_id: Slot<'a>,
    #[serde(default, borrow)]
    user_id: Slot<'a>,
    #[serde(default, borrow)]
    session_id: Slot<'a>,
    #[serde(default, borrow)]
    product_id: Slot<'a>,
    #[serde(default, borrow)]
    ts: Slot<'a>,
    #[serde(default, borrow)]
    page: Slot<'a>,
    #[serde(default, borrow)]
    referrer: Slot<'a>,
}

/// Validates a click message.
pub fn validate_click(bytes: &[u8]) -> Result<Click> {
    let r: RawClick<'_> = parse_message(bytes)?;
    Ok(Click {
        event_id: raw::id(r.event_id, Path::Top("event_id"))?,
        user_id: raw::id(r.user_id, Path::Top("user_id"))?,
        session_id: raw::id(r.session_id, Path::Top("session_id"))?,
        product_id: raw::id(r.product_id, Path::Top("product_id"))?,
        ts: raw::timestamp(r.ts, Path::Top("ts"))?,
        page: raw::non_empty(r.page, Path::Top("page"))?,
        referrer: raw::any_string(r.referrer, Path::Top("referrer"))?,
    })
}

#[derive(Deserialize)]
struct RawCart<'a> {
    #[serde(default, borrow)]
    event_id: Slot<'a>,
    #[serde(default, borrow)]
    user_id: Slot<'a>,
    #[serde(default, borrow)]
    session_id: Slot<'a>,
    #[serde(default, borrow)]
    product_id: Slot<'a>,
    #[serde(default, borrow)]
    quantity: Slot<'a>,
    #[serde(default, borrow)]
    ts: Slot<'a>,
}

/// Validates a cart message.
pub fn validate_cart(bytes: &[u8]) -> Result<CartAdd> {
    let r: RawCart<'_> = parse_message(bytes)?;
    Ok(CartAdd {
        event_id: raw::id(r.event_id, Path::Top("event_id"))?,
        user_id: raw::id(r.user_id, Path::Top("user_id"))?,
        session_id: raw::id(r.session_id, Path::Top("session_id"))?,
        product_id: raw::id(r.product_id, Path::Top("product_id"))?,
        quantity: raw::quantity(r.quantity, Path::Top("quantity"))?,
        ts: raw::timestamp(r.ts, Path::Top("ts"))?,
    })
}

#[derive(Deserialize)]
struct RawPurchase<'a> {
    #[serde(default, borrow)]
    event_id: Slot<'a>,
    #[serde(default, borrow)]
    user_id: Slot<'a>,
    #[serde(default, borrow)]
    session_id: Slot<'a>,
    #[serde(default, borrow)]
    items: Slot<'a>,
    #[serde(default, borrow)]
    total_amount: Slot<'a>,
    #[serde(default, borrow)]
    currency: Slot<'a>,
    #[serde(default, borrow)]
    ts: Slot<'a>,
}

#[derive(Deserialize)]
struct RawItem<'a> {
    #[serde(default, borrow)]
    product_id: Slot<'a>,
    #[serde(default, borrow)]
    quantity: Slot<'a>,
    #[serde(default, borrow)]
    unit_price: Slot<'a>,
}

/// Validates a purchase message.
pub fn validate_purchase(bytes: &[u8]) -> Result<Purchase> {
    let r: RawPurchase<'_> = parse_message(bytes)?;
    let event_id = raw::id(r.event_id, Path::Top("event_id"))?;
    let user_id = raw::id(r.user_id, Path::Top("user_id"))?;
    let session_id = raw::id(r.session_id, Path::Top("session_id"))?;
    let lines = raw::array(r.items, Path::Top("items"), 1, 100)?;
    let mut items = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        let item: RawItem<'_> = parse_object(line.get(), Path::ItemRoot(i))?;
        items.push(Item {
            product_id: raw::id(item.product_id, Path::Item(i, "product_id"))?,
            quantity: raw::quantity(item.quantity, Path::Item(i, "quantity"))?,
            unit_price: raw::money(item.unit_price, Path::Item(i, "unit_price"))?,
        });
    }
    Ok(Purchase {
        event_id,
        user_id,
        session_id,
        items,
        total_amount: raw::money(r.total_amount, Path::Top("total_amount"))?,
        currency: raw::currency(r.currency, Path::Top("currency"))?,
        ts: raw::timestamp(r.ts, Path::Top("ts"))?,
    })
}

#[derive(Deserialize)]
struct RawFx<'a> {
    #[serde(default, borrow)]
    date: Slot<'a>,
    #[serde(default, borrow)]
    base: Slot<'a>,
    #[serde(default, borrow)]
    currency: Slot<'a>,
    #[serde(default, borrow)]
    rate: Slot<'a>,
}

/// Validates an FX rate record.
pub fn validate_fx(bytes: &[u8]) -> Result<FxRate> {
    let r: RawFx<'_> = parse_message(bytes)?;
    let date = raw::date(r.date, Path::Top("date"))?;
    raw::base_usd(r.base, Path::Top("base"))?;
    let currency = raw::currency(r.currency, Path::Top("currency"))?;
    if currency == crate::Currency::Usd {
        let msg = "USD is the base currency and needs no rate; drop this record";
        return Err(ValidationError::new(
            super::Reason::InvalidValue,
            "currency",
            msg,
        ));
    }
    Ok(FxRate {
        date,
        currency,
        rate: raw::rate(r.rate, Path::Top("rate"))?,
    })
}

#[derive(Deserialize)]
struct RawProduct<'a> {
    #[serde(default, borrow)]
    product_id: Slot<'a>,
    #[serde(default, borrow)]
    name: Slot<'a>,
    #[serde(default, borrow)]
    category: Slot<'a>,
    #[serde(default, borrow)]
    price: Slot<'a>,
    #[serde(default, borrow)]
    updated_at: Slot<'a>,
}

/// Validates a product (catalog) record.
pub fn validate_product(bytes: &[u8]) -> Result<Product> {
    let r: RawProduct<'_> = parse_message(bytes)?;
    Ok(Product {
        product_id: raw::id(r.product_id, Path::Top("product_id"))?,
        name: raw::non_empty(r.name, Path::Top("name"))?,
        category: raw::non_empty(r.category, Path::Top("category"))?,
        price: raw::money(r.price, Path::Top("price"))?,
        updated_at: raw::timestamp(r.updated_at, Path::Top("updated_at"))?,
    })
}

#[derive(Deserialize)]
struct RawUser<'a> {
    #[serde(default, borrow)]
    user_id: Slot<'a>,
    #[serde(default, borrow)]
    name: Slot<'a>,
    #[serde(default, borrow)]
    country: Slot<'a>,
    #[serde(default, borrow)]
    currency: Slot<'a>,
    #[serde(default, borrow)]
    updated_at: Slot<'a>,
}

/// Validates a user profile record.
pub fn validate_user(bytes: &[u8]) -> Result<User> {
    let r: RawUser<'_> = parse_message(bytes)?;
    Ok(User {
        user_id: raw::id(r.user_id, Path::Top("user_id"))?,
        name: raw::non_empty(r.name, Path::Top("name"))?,
        country: raw::country(r.country, Path::Top("country"))?,
        currency: raw::currency(r.currency, Path::Top("currency"))?,
        updated_at: raw::timestamp(r.updated_at, Path::Top("updated_at"))?,
    })
}
