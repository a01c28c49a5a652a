//! Regression (issue 13): an order waiting for its FX rate was priced after
//! its minute had frozen, so the minute never got it; with the rate later
//! than the order's lifetime, the order was lost from `fact_orders` too. Now
//! a window stays open while an order in it waits, live ends equal to the
//! batch definitions, and a window without waiting orders freezes on time.

mod reference;

use shopflow_dataflow::rows::{SalesMinute, Stat, StatName};
use shopflow_dataflow::run::{Input, Progress, run_live};
use shopflow_dataflow::{Row, Settings, Table, Tables, Time};
use shopflow_model::{Currency, Date, Event, FxRate, Item, Money, Purchase, Rate, Timestamp};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn order(id: &str, ts: &str, cents: i64, currency: Currency) -> Input {
    let p = Purchase {
        event_id: id.into(),
        user_id: format!("u-{id}"),
        session_id: format!("s-{id}"),
        items: vec![Item {
            product_id: format!("p-{id}"),
            quantity: 1,
            unit_price: Money::from_units(cents),
        }],
        total_amount: Money::from_units(cents),
        currency,
        ts: at(ts),
    };
    Input::Event(Event::Purchase(p), id.as_bytes().to_vec())
}

fn eur_rate(units: i64) -> Input {
    Input::Fx(FxRate {
        date: Date::parse("2026-11-24").unwrap(),
        currency: Currency::Eur,
        rate: Rate::from_units(units),
    })
}

/// Applies reports to `tables` until the frontier passes `time`; returns the
/// last report's stats.
fn wait_until(reports: &Receiver<Progress>, tables: &mut Tables, time: &str) -> Vec<Stat> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stats = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let p = reports
            .recv_timeout(left)
            .expect("progress before the deadline");
        for (row, _, d) in &p.changes {
            if let (Row::Stat(s), true) = (row, *d > 0) {
                stats.push(s.clone());
            }
        }
        tables.apply_all(p.changes);
        if p.upto > at(time).0 as Time {
            return stats;
        }
    }
}

fn minute(tables: &Tables, start: &str) -> Option<SalesMinute> {
    tables.rows(Table::AggSalesMinute).find_map(|r| match r {
        Row::SalesMinute(m) if m.window_start == at(start) => Some(m.clone()),
        _ => None,
    })
}

#[test]
fn an_order_priced_after_its_minute_froze_still_reaches_it() {
    let settings = Settings {
        out_of_orderness_ms: 0,
        ..Settings::default()
    };
    let (tx, rx) = channel();
    let (report_tx, reports) = channel();
    let live = settings.clone();
    let runner = std::thread::spawn(move || {
        run_live(
            live,
            2,
            rx,
            || false,
            move |p| {
                let _ = report_tx.send(p);
            },
        )
    });
    let mut tables = Tables::new(settings);
    let mut sent = Vec::new();
    let mut send = |input: Input| {
        sent.push(input.clone());
        tx.send(input).unwrap();
    };

    // Two EUR orders with no rate yet, one USD order beside them, and a
    // minute with USD orders only.
    send(order("eur-1", "2026-11-24T10:00:10Z", 2000, Currency::Eur));
    send(order("usd-1", "2026-11-24T10:00:20Z", 1000, Currency::Usd));
    send(order("eur-2", "2026-11-24T10:01:30Z", 800, Currency::Eur));
    send(order("usd-2", "2026-11-24T10:02:00Z", 300, Currency::Usd));
    // Event time runs 40 minutes on: minute 10:00 is long past its freeze
    // (window end + 10 min horizon).
    for (i, ts) in ["10:05:00", "10:15:00", "10:25:00", "10:40:00"]
        .iter()
        .enumerate()
    {
        send(order(
            &format!("tick-{i}"),
            &format!("2026-11-24T{ts}Z"),
            1,
            Currency::Usd,
        ));
    }
    let stats = wait_until(&reports, &mut tables, "2026-11-24T10:39:00Z");
    let held = minute(&tables, "2026-11-24T10:00:00Z").expect("minute 10:00");
    assert_eq!(
        (held.orders, held.revenue_usd),
        (1, Money::from_units(1000))
    );
    assert!(
        stats
            .iter()
            .any(|s| s.name == StatName::OrdersWaitingFx && s.value == 2),
        "two orders wait: {stats:?}"
    );
    let usd_only_before = minute(&tables, "2026-11-24T10:02:00Z").expect("minute 10:02");

    // The rate arrives 40 minutes late: 0.8 EUR per USD.
    send(eur_rate(800_000));
    send(order("tick-late", "2026-11-24T10:41:00Z", 1, Currency::Usd));
    wait_until(&reports, &mut tables, "2026-11-24T10:40:30Z");
    let priced = minute(&tables, "2026-11-24T10:00:00Z").unwrap();
    assert_eq!(
        (
            priced.orders,
            priced.items,
            priced.revenue_usd,
            priced.buyers
        ),
        (2, 2, Money::from_units(1000 + 2500), 2),
        "the waiting order reaches its minute"
    );
    assert_eq!(
        minute(&tables, "2026-11-24T10:01:00Z")
            .unwrap()
            .revenue_usd
            .units(),
        1000
    );
    assert_eq!(
        minute(&tables, "2026-11-24T10:02:00Z").unwrap(),
        usd_only_before,
        "a minute without waiting orders froze on time"
    );

    // Closing the inputs runs every expiry: held windows age out like the
    // others and keep their rows; the end equals the batch definitions.
    drop(tx);
    while let Ok(p) = reports.recv_timeout(Duration::from_secs(60)) {
        tables.apply_all(p.changes);
    }
    runner.join().unwrap().unwrap();
    let expected = reference::recompute(&sent);
    for table in [
        Table::FactOrders,
        Table::FactOrderItems,
        Table::AggSalesMinute,
        Table::AggTopProductsHour,
    ] {
        let got: Vec<&Row> = tables.rows(table).collect();
        let want: Vec<&Row> = expected[table.name()].iter().collect();
        assert_eq!(got, want, "{}", table.name());
    }
}
