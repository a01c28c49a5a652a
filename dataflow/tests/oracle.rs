//! Oracle tests: the dataflow's final tables equal a plain recomputation of
//! the definitions (`reference/`), on seeded generated traffic with
//! duplicates, out-of-order and late events, conflicting re-sends, late and
//! corrected FX rates and missing rates, for 1, 2 and 4 workers.

mod reference;

use shopflow_dataflow::bounded::{StreamSlices, run_sliced};
use shopflow_dataflow::run::{Input, feed_share, run_bounded};
use shopflow_dataflow::{Row, Settings, Table, Tables};
use shopflow_generator::rng::Rng;
use shopflow_generator::{Config, Generator, Sink};
use shopflow_model::validate::{Record, validate};
use shopflow_model::{Currency, Event, EventKind, Timestamp};
use std::io;
use std::sync::Arc;

struct Lines(Vec<(EventKind, Vec<u8>)>);

impl Sink for Lines {
    fn emit(&mut self, kind: EventKind, _: Timestamp, line: &[u8]) -> io::Result<()> {
        self.0.push((kind, line.to_vec()));
        Ok(())
    }
}

/// Generated traffic, made harder: conflicts, shuffled events, FX moved to
/// the end (late), one corrected rate, one currency without any rate.
fn inputs(seed: u64) -> Vec<Input> {
    let mut cfg = Config {
        seed,
        events: Some(3_000),
        duplicates: 0.03,
        late: 0.1,
        malformed: 0.01,
        ..Config::default()
    };
    cfg.start = Timestamp::parse_rfc3339("2026-11-24T22:30:00Z").unwrap();
    cfg.world.rate = 0.6; // about 80 minutes, across midnight
    let mut lines = Lines(Vec::new());
    Generator::new(cfg).run(&mut lines).unwrap();
    let mut rng = Rng::new(seed, 77);
    let (mut events, mut reference, mut fx) = (Vec::new(), Vec::new(), Vec::new());
    for (kind, line) in lines.0 {
        match validate(kind, &line) {
            Ok(Record::Event(e)) => {
                if rng.below(50) == 0 {
                    // A conflicting re-send: same id, other payload and time.
                    // The raw bytes name the shift: one payload, one version.
                    let mut other = e.clone();
                    let by = rng.range(-90_000, 90_000);
                    shift(&mut other, by);
                    events.push(Input::Event(
                        other,
                        format!("{line:?}-shifted-{by}").into_bytes(),
                    ));
                }
                events.push(Input::Event(e, line));
            }
            Ok(Record::Fx(f)) if f.currency == Currency::Jpy => {} // JPY orders wait forever
            Ok(Record::Fx(f)) => fx.push(Input::Fx(f)),
            Ok(Record::Product(p)) => reference.push(Input::Product(p)),
            Ok(Record::User(u)) => reference.push(Input::User(u)),
            Err(_) => {}
        }
    }
    for i in (1..events.len()).rev() {
        if rng.below(4) == 0 {
            events.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    if let Some(Input::Fx(first)) = fx.first().cloned() {
        let mut fixed = first.clone();
        fixed.rate = shopflow_model::Rate::from_units(first.rate.units() + 12_345);
        fx.push(Input::Fx(fixed)); // a correction, offered last: it wins
    }
    reference.extend(events);
    reference.extend(fx);
    reference
}

fn shift(e: &mut Event, ms: i64) {
    match e {
        Event::Click(c) => c.ts.0 += ms,
        Event::Cart(c) => c.ts.0 += ms,
        Event::Purchase(p) => p.ts.0 += ms,
    }
}

fn dataflow_tables(inputs: Arc<Vec<Input>>, workers: usize) -> Tables {
    let settings = Settings::default();
    let changes = run_bounded(settings.clone(), workers, move |index, peers, feeder| {
        feed_share(&inputs, index, peers, feeder);
    })
    .expect("dataflow runs");
    let mut tables = Tables::new(settings);
    tables.apply_all(changes);
    tables
}

/// The same inputs in event-time slices: one stream per record type, in
/// their order, in chunks of 100 records (many slices).
fn sliced_tables(inputs: Arc<Vec<Input>>, workers: usize) -> Tables {
    let settings = Settings::default();
    let mut streams: Vec<Vec<Input>> = vec![Vec::new(); 3];
    for input in inputs.iter() {
        let s = match input {
            Input::Event(..) => 0,
            Input::Fx(_) => 1,
            _ => 2,
        };
        streams[s].push(input.clone());
    }
    let steps = StreamSlices::plan(&streams, 100, &settings);
    assert!(steps.len() > 20, "many slices");
    let streams = Arc::new(streams);
    let mut tables = Tables::new(settings.clone());
    run_sliced(
        settings,
        workers,
        move |i, n| StreamSlices::new(streams.clone(), steps.clone(), 100, i, n),
        |time, batch| tables.apply_time(time, batch),
    )
    .expect("dataflow runs");
    tables
}

fn compare(seed: u64, workers: usize) {
    compare_with(seed, workers, dataflow_tables);
}

fn compare_with(seed: u64, workers: usize, run: fn(Arc<Vec<Input>>, usize) -> Tables) {
    let inputs = Arc::new(inputs(seed));
    let expected = reference::recompute(&inputs);
    let tables = run(inputs, workers);
    let mut problems = Vec::new();
    for table in Table::WAREHOUSE.into_iter().chain([Table::Conflicts]) {
        let got: Vec<&Row> = tables.rows(table).collect();
        let want: Vec<&Row> = expected
            .get(table.name())
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        if got != want {
            let first = got
                .iter()
                .zip(&want)
                .position(|(g, w)| g != w)
                .unwrap_or(got.len().min(want.len()));
            problems.push(format!(
                "{}: {} rows vs {} expected; first difference at {first}:\n  got  {:?}\n  want {:?}",
                table.name(), got.len(), want.len(), got.get(first), want.get(first)
            ));
        }
        assert!(
            !want.is_empty() || table == Table::DimCurrency,
            "{} is empty in the reference",
            table.name()
        );
    }
    assert!(
        problems.is_empty(),
        "seed {seed}, {workers} workers:\n{}",
        problems.join("\n")
    );
}

#[test]
fn one_worker_matches_the_reference() {
    for seed in [1, 2, 3] {
        compare(seed, 1);
    }
}

#[test]
fn event_time_slices_match_the_reference() {
    compare_with(6, 1, sliced_tables);
    compare_with(7, 2, sliced_tables);
}

#[test]
fn two_and_four_workers_match_the_reference() {
    compare(4, 2);
    compare(5, 4);
}
