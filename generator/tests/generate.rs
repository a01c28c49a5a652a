//! The generator's promises: determinism, exact fault accounting, and traffic
//! statistics within the documented ranges (`docs/generator.md`).

mod common;

use common::{config, is_event, run};
use shopflow_model::validate::{Record, validate};
use shopflow_model::{Event, EventKind, Reason};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let mut cfg = config(7, 20_000);
    cfg.duplicates = 0.01;
    cfg.late = 0.05;
    cfg.malformed = 0.002;
    let (m1, a) = run(cfg.clone());
    let (m2, b) = run(cfg.clone());
    assert_eq!(m1, m2);
    assert!(a == b, "same seed must give identical lines");
    cfg.seed = 8;
    let (_, c) = run(cfg);
    assert!(a != c, "another seed must give other lines");
}

#[test]
fn every_fault_is_counted_and_every_other_line_is_valid() {
    let mut cfg = config(5, 60_000);
    cfg.duplicates = 0.02;
    cfg.late = 0.05;
    cfg.malformed = 0.01;
    cfg.max_delay_ms = 30_000;
    let (manifest, lines) = run(cfg);

    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen: HashMap<String, Vec<u8>> = HashMap::new();
    let (mut dups, mut out_of_order, mut max_ts) = (0u64, 0u64, i64::MIN);
    let mut valid: BTreeMap<String, u64> = BTreeMap::new();
    for (kind, _, line) in lines.iter().filter(|(k, ..)| is_event(*k)) {
        match validate(*kind, line) {
            Err(e) => *rejected.entry(e.reason.code().to_string()).or_default() += 1,
            Ok(Record::Event(event)) => {
                let id = event.event_id().to_string();
                if let Some(first) = seen.get(&id) {
                    assert_eq!(first, line, "a duplicate must be an exact re-send");
                    dups += 1;
                    continue;
                }
                seen.insert(id, line.clone());
                *valid.entry(kind.name().to_string()).or_default() += 1;
                let ts = event.ts().0;
                if ts < max_ts {
                    out_of_order += 1;
                    assert!(max_ts - ts <= 30_000, "late by more than --max-delay");
                }
                max_ts = max_ts.max(ts);
            }
            Ok(other) => panic!("an event file held {other:?}"),
        }
    }
    assert_eq!(rejected, manifest.faults.malformed_by_reason);
    assert_eq!(valid, manifest.valid_events);
    assert_eq!(dups, manifest.faults.duplicates.values().sum::<u64>());
    let late: u64 = manifest.faults.late.values().sum();
    assert!(
        out_of_order <= late && out_of_order * 10 >= late * 9,
        "{out_of_order} of {late}"
    );
    let total = 60_000f64;
    let share = |n: u64| n as f64 / total;
    assert!(
        (share(rejected.values().sum()) - 0.01).abs() < 0.003,
        "{rejected:?}"
    );
    assert!((share(dups) - 0.02).abs() < 0.004, "{dups}");
    for reason in [
        Reason::InvalidJson,
        Reason::MissingField,
        Reason::WrongType,
        Reason::TooLarge,
    ] {
        assert!(
            rejected.get(reason.code()).copied().unwrap_or(0) > 0,
            "no {reason} injected"
        );
    }
}

#[test]
fn reference_lines_are_valid_and_fx_covers_every_date() {
    let mut cfg = config(3, 30_000);
    cfg.world.rate = 0.2; // 30k events at 0.2/s: about 42 hours, so several dates
    let (manifest, lines) = run(cfg);
    let mut fx_dates = BTreeSet::new();
    let mut event_dates = BTreeSet::new();
    for (kind, _, line) in &lines {
        match validate(*kind, line).unwrap_or_else(|e| panic!("{kind}: {e}")) {
            Record::Fx(fx) => {
                fx_dates.insert(fx.date);
            }
            Record::Event(e) => {
                event_dates.insert(e.ts().date());
            }
            Record::Product(_) | Record::User(_) => {}
        }
    }
    assert!(event_dates.len() >= 2, "{event_dates:?}");
    assert!(
        event_dates.is_subset(&fx_dates),
        "fx dates {fx_dates:?} miss some of {event_dates:?}"
    );
    assert_eq!(manifest.fx_dates[1], fx_dates.last().unwrap().to_string());
    let fx_lines = lines.iter().filter(|(k, ..)| *k == EventKind::Fx).count();
    assert_eq!(
        fx_lines,
        fx_dates.len() * 9,
        "one rate per currency and date"
    );
}

#[test]
fn traffic_statistics_are_within_documented_ranges() {
    let (manifest, lines) = run(config(11, 100_000));
    let mut sessions: HashMap<String, (i64, bool, bool)> = HashMap::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    let mut items = Vec::new();
    for (kind, _, line) in lines.iter().filter(|(k, ..)| is_event(*k)) {
        let Ok(Record::Event(e)) = validate(*kind, line) else {
            panic!("clean run")
        };
        let ts = e.ts().0;
        (first, last) = (first.min(ts), last.max(ts));
        let (sid, carted, bought) = match &e {
            Event::Click(c) => (&c.session_id, false, false),
            Event::Cart(c) => (&c.session_id, true, false),
            Event::Purchase(p) => {
                items.push(p.items.len());
                (&p.session_id, false, true)
            }
        };
        let s = sessions
            .entry(sid.clone())
            .or_insert((i64::MIN, false, false));
        assert!(ts > s.0, "timestamps must increase within a session");
        *s = (ts, s.1 || carted, s.2 || bought);
    }
    let n = sessions.len() as f64;
    let carted = sessions.values().filter(|s| s.1).count() as f64 / n;
    let bought = sessions.values().filter(|s| s.2).count() as f64 / n;
    let per_session = 100_000.0 / n;
    let rate = 100_000.0 / ((last - first) as f64 / 1000.0);
    let avg_items = items.iter().sum::<usize>() as f64 / items.len() as f64;
    assert!((0.15..0.35).contains(&carted), "carted share {carted}");
    assert!((0.03..0.09).contains(&bought), "purchasing share {bought}");
    assert!(
        (5.0..12.0).contains(&per_session),
        "events per session {per_session}"
    );
    assert!(
        (17.0..23.0).contains(&rate),
        "events per second {rate} for --rate 20"
    );
    assert!(
        (1.0..3.0).contains(&avg_items),
        "lines per order {avg_items}"
    );
    assert!(manifest.sessions as f64 >= n * 0.9);
}
