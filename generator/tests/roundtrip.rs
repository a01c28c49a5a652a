//! Property tests: whatever the seed, generated lines validate and survive a
//! parse → write round trip byte for byte; and any well-formed typed event
//! written by the generator's JSON writer parses back to itself.

mod common;

use proptest::prelude::*;
use shopflow_generator::json;
use shopflow_model::validate::{Record, validate};
use shopflow_model::{CartAdd, Click, Currency, Event, Item, Money, Purchase, Timestamp};

fn rewrite(record: &Record) -> Vec<u8> {
    let mut buf = Vec::new();
    match record {
        Record::Event(Event::Click(e)) => json::click(&mut buf, e),
        Record::Event(Event::Cart(e)) => json::cart(&mut buf, e),
        Record::Event(Event::Purchase(e)) => json::purchase(&mut buf, e),
        Record::Fx(f) => json::fx(&mut buf, f.date, f.currency, f.rate),
        Record::Product(p) => json::product(&mut buf, p),
        Record::User(u) => json::user(&mut buf, u),
    }
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn generated_lines_validate_and_round_trip(seed in any::<u64>(), rate in 1u32..300) {
        let mut cfg = common::config(seed, 2_000);
        cfg.world.rate = f64::from(rate);
        let (_, lines) = common::run(cfg);
        for (kind, _, line) in &lines {
            let record = validate(*kind, line).map_err(|e| TestCaseError::fail(format!("{kind}: {e}")))?;
            prop_assert_eq!(&rewrite(&record), line);
        }
    }

    #[test]
    fn typed_events_round_trip(
        ids in proptest::collection::vec("[a-zA-Z0-9_\\-\"\\\\é]{1,40}", 4),
        ts in 0i64..4_102_444_800_000,
        quantity in 1u32..=1000,
        cents in proptest::collection::vec(0i64..=Money::MAX.units(), 1..20),
        currency in 0usize..10,
    ) {
        let ts = Timestamp(ts);
        let click = Click {
            event_id: ids[0].clone(), user_id: ids[1].clone(), session_id: ids[2].clone(),
            product_id: ids[3].clone(), ts, page: format!("/p/{}", ids[0]), referrer: String::new(),
        };
        let cart = CartAdd {
            event_id: ids[0].clone(), user_id: ids[1].clone(), session_id: ids[2].clone(),
            product_id: ids[3].clone(), quantity, ts,
        };
        let purchase = Purchase {
            event_id: ids[0].clone(), user_id: ids[1].clone(), session_id: ids[2].clone(),
            items: cents.iter().map(|&c| Item { product_id: ids[3].clone(), quantity, unit_price: Money::from_units(c) }).collect(),
            total_amount: Money::from_units(cents[0]), currency: Currency::ALL[currency], ts,
        };
        for event in [Event::Click(click), Event::Cart(cart), Event::Purchase(purchase)] {
            let record = Record::Event(event);
            let kind = match &record {
                Record::Event(Event::Click(_)) => shopflow_model::EventKind::Click,
                Record::Event(Event::Cart(_)) => shopflow_model::EventKind::Cart,
                _ => shopflow_model::EventKind::Purchase,
            };
            let line = rewrite(&record);
            prop_assert_eq!(validate(kind, &line).expect("writer output validates"), record);
        }
    }
}
