//! Live behaviour: a late event corrects a window that was already emitted,
//! a too-late event is reported and not applied, and a later conflicting
//! version with a smaller time replaces the winner.

use shopflow_dataflow::rows::SalesMinute;
use shopflow_dataflow::run::{Input, Progress, run_live};
use shopflow_dataflow::{Row, Settings, Tables, Time};
use shopflow_model::{Currency, Event, Item, Money, Purchase, Timestamp};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn order(id: &str, ts: &str, cents: i64) -> Input {
    let p = Purchase {
        event_id: id.into(),
        user_id: format!("u-{id}"),
        session_id: format!("s-{id}"),
        items: vec![Item {
            product_id: "p1".into(),
            quantity: 1,
            unit_price: Money::from_units(cents),
        }],
        total_amount: Money::from_units(cents),
        currency: Currency::Usd,
        ts: at(ts),
    };
    Input::Event(Event::Purchase(p), id.as_bytes().to_vec())
}

/// Waits for reports until `upto` passes `time`, applying them to `tables`.
fn wait_until(
    reports: &Receiver<Progress>,
    tables: &mut Tables,
    time: Timestamp,
    late: &mut Vec<Event>,
) -> Progress {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let p = reports
            .recv_timeout(left)
            .expect("the live run reports progress before the deadline");
        for (row, t, d) in &p.changes {
            tables.apply_time(*t, vec![(row.clone(), *d)]);
        }
        late.extend(p.too_late.iter().cloned());
        if p.upto > time.0 as Time {
            return p;
        }
    }
}

fn minute(tables: &Tables, start: &str) -> Option<SalesMinute> {
    tables
        .rows(shopflow_dataflow::Table::AggSalesMinute)
        .find_map(|r| match r {
            Row::SalesMinute(m) if m.window_start == at(start) => Some(m.clone()),
            _ => None,
        })
}

#[test]
fn late_event_corrects_and_too_late_event_is_reported() {
    let settings = Settings {
        out_of_orderness_ms: 0,
        ..Settings::default()
    };
    let (tx, rx): (Sender<Input>, _) = channel();
    let (report_tx, reports) = channel();
    let live_settings = settings.clone();
    let runner = std::thread::spawn(move || {
        run_live(
            live_settings,
            2,
            rx,
            || false,
            move |p| {
                let _ = report_tx.send(p);
            },
        )
    });
    let mut tables = Tables::new(settings);
    let mut too_late = Vec::new();

    tx.send(order("a", "2026-11-24T10:00:40Z", 1000)).unwrap();
    tx.send(order("b", "2026-11-24T10:04:00Z", 500)).unwrap();
    wait_until(
        &reports,
        &mut tables,
        at("2026-11-24T10:03:59Z"),
        &mut too_late,
    );
    let first = minute(&tables, "2026-11-24T10:00:00Z").expect("minute 10:00 emitted");
    assert_eq!(
        (first.orders, first.revenue_usd),
        (1, Money::from_units(1000))
    );

    // 3m10s behind the watermark: late, within the allowed 5 minutes.
    tx.send(order("c", "2026-11-24T10:00:50Z", 250)).unwrap();
    // 6 minutes behind: too late.
    tx.send(order("d", "2026-11-24T09:58:00Z", 99)).unwrap();
    tx.send(order("e", "2026-11-24T10:05:00Z", 1)).unwrap();
    let p = wait_until(
        &reports,
        &mut tables,
        at("2026-11-24T10:04:59Z"),
        &mut too_late,
    );
    let corrected = minute(&tables, "2026-11-24T10:00:00Z").unwrap();
    assert_eq!(
        (corrected.orders, corrected.revenue_usd, corrected.buyers),
        (2, Money::from_units(1250), 2)
    );
    assert_eq!(
        minute(&tables, "2026-11-24T09:58:00Z"),
        None,
        "a too-late event must not be applied"
    );
    assert_eq!(too_late.len(), 1);
    assert_eq!(too_late[0].event_id(), "d");
    assert_eq!((p.ingest.late, p.ingest.too_late), (1, 1));
    drop(tx);
    runner.join().unwrap().unwrap();
}

/// Regression: a panic in worker 0's report left the other workers waiting
/// for it forever; now the run ends with an error.
#[test]
fn a_panicking_report_stops_every_worker() {
    let (tx, rx) = channel::<Input>();
    let (done_tx, done_rx) = channel();
    std::thread::spawn(move || {
        let mut calls = 0;
        let result = run_live(
            Settings::default(),
            2,
            rx,
            || false,
            move |_| {
                calls += 1;
                assert!(calls < 3, "report fails on purpose");
            },
        );
        done_tx.send(result).unwrap();
    });
    // One order every 20 ms, a minute of event time apart, until the run
    // stops taking them: each one completes a new step, so reports follow.
    for i in 0..3_000 {
        let ts = Timestamp(at("2026-11-24T00:00:00Z").0 + i * 60_000);
        let sent = tx.send(order(&format!("o{i}"), &ts.to_rfc3339_seconds(), 100));
        if sent.is_err() {
            break; // the run stopped
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the run ends instead of hanging");
    assert!(result.unwrap_err().contains("panicked"));
    drop(tx);
}

/// The dedup operator (dedup.rs): a conflicting version of an id that arrives
/// later with a smaller time replaces the winner at its arrival, and the id is
/// reported as a conflict; an exact re-send changes nothing but the count.
#[test]
fn a_later_smaller_version_replaces_the_winner() {
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
    let version = |ts: &str, cents: i64, raw: &str| match order("x", ts, cents) {
        Input::Event(e, _) => Input::Event(e, raw.as_bytes().to_vec()),
        other => other,
    };
    tx.send(version("2026-11-24T10:00:40Z", 700, "first"))
        .unwrap();
    tx.send(version("2026-11-24T10:00:40Z", 700, "first"))
        .unwrap(); // exact re-send
    tx.send(order("y", "2026-11-24T10:02:00Z", 1)).unwrap();
    apply_until(&reports, &mut tables, at("2026-11-24T10:01:59Z"));
    let first = minute(&tables, "2026-11-24T10:00:00Z").expect("minute 10:00");
    assert_eq!(
        (first.orders, first.revenue_usd),
        (1, Money::from_units(700))
    );
    // 1m40s behind the watermark, smaller ts: it wins from now on.
    tx.send(version("2026-11-24T10:00:20Z", 300, "second"))
        .unwrap();
    tx.send(order("z", "2026-11-24T10:03:00Z", 1)).unwrap();
    apply_until(&reports, &mut tables, at("2026-11-24T10:02:59Z"));
    let replaced = minute(&tables, "2026-11-24T10:00:00Z").unwrap();
    assert_eq!(
        (replaced.orders, replaced.revenue_usd),
        (1, Money::from_units(300))
    );
    drop(tx);
    while let Ok(p) = reports.recv_timeout(Duration::from_secs(60)) {
        tables.apply_all(p.changes);
    }
    runner.join().unwrap().unwrap();
    let conflicts: Vec<&Row> = tables.rows(shopflow_dataflow::Table::Conflicts).collect();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let Row::Conflict(c) = conflicts[0] else {
        unreachable!()
    };
    assert_eq!(
        (c.event_id.as_str(), c.versions, c.kept_ts),
        ("x", 2, at("2026-11-24T10:00:20Z"))
    );
}

/// Applies whole reports (a replaced row's retraction and insertion together)
/// until the frontier passes `time`.
fn apply_until(reports: &Receiver<Progress>, tables: &mut Tables, time: Timestamp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let p = reports
            .recv_timeout(left)
            .expect("progress before the deadline");
        tables.apply_all(p.changes);
        if p.upto > time.0 as Time {
            return;
        }
    }
}
