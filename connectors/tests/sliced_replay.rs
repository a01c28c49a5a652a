//! A replay in event-time slices ([`Plan`], [`FileSlices`], [`SpillTables`])
//! writes exactly the tables of a run that feeds everything at once and
//! keeps every row in memory: on seeded generated files with duplicates,
//! late and malformed lines, conflicting re-sends and shuffled lines, with
//! small chunks (many slices) and facts spilled, for 1, 2 and 3 workers.

use shopflow_connectors::files::{FileSlices, ORDER, Plan, Rejected};
use shopflow_connectors::spill::SpillTables;
use shopflow_dataflow::bounded::run_sliced;
use shopflow_dataflow::run::{Input, feed_share, run_bounded};
use shopflow_dataflow::{Settings, Table, Tables};
use shopflow_generator::rng::Rng;
use shopflow_generator::{Config, Generator, Sink};
use shopflow_model::{EventKind, Timestamp};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

struct Lines(BTreeMap<EventKind, Vec<Vec<u8>>>);

impl Sink for Lines {
    fn emit(&mut self, kind: EventKind, _: Timestamp, line: &[u8]) -> io::Result<()> {
        self.0.entry(kind).or_default().push(line.to_vec());
        Ok(())
    }
}

/// Writes a generated directory, made harder: conflicting re-sends (another
/// page, same id and time) and one click in eight moved elsewhere in its file.
fn write_input(dir: &Path, seed: u64) {
    let mut cfg = Config {
        seed,
        events: Some(4_000),
        duplicates: 0.03,
        late: 0.1,
        malformed: 0.01,
        ..Config::default()
    };
    cfg.start = Timestamp::parse_rfc3339("2026-11-24T22:30:00Z").unwrap();
    cfg.world.rate = 0.3; // about three hours, across midnight
    let mut lines = Lines(BTreeMap::new());
    Generator::new(cfg).run(&mut lines).unwrap();
    let mut rng = Rng::new(seed, 91);
    std::fs::create_dir_all(dir).unwrap();
    for (kind, mut lines) in lines.0 {
        if kind == EventKind::Click {
            let mut extra = Vec::new();
            for line in &lines {
                let text = String::from_utf8_lossy(line);
                if rng.below(40) == 0 && text.contains("\"page\":\"/\"") {
                    extra.push(
                        text.replace("\"page\":\"/\"", "\"page\":\"/sale\"")
                            .into_bytes(),
                    );
                }
            }
            lines.extend(extra);
            for i in (1..lines.len()).rev() {
                if rng.below(8) == 0 {
                    lines.swap(i, rng.below(i as u64 + 1) as usize);
                }
            }
        }
        let mut body = lines.join(&b'\n');
        body.push(b'\n');
        std::fs::write(dir.join(format!("{}.jsonl", kind.topic())), body).unwrap();
    }
}

/// The tables of one run that feeds every valid line at once, in file order
/// (reference files first), as CSV text per table.
fn all_at_once(dir: &Path, settings: &Settings) -> BTreeMap<&'static str, String> {
    let mut inputs = Vec::new();
    for kind in ORDER {
        let body = std::fs::read(dir.join(format!("{}.jsonl", kind.topic()))).unwrap();
        for line in body.strip_suffix(b"\n").unwrap().split(|&b| b == b'\n') {
            if let Ok(input) = Input::from_line(kind, line) {
                inputs.push(input);
            }
        }
    }
    let inputs = Arc::new(inputs);
    let changes = run_bounded(settings.clone(), 1, move |i, n, feeder| {
        feed_share(&inputs, i, n, feeder)
    })
    .unwrap();
    let mut tables = Tables::new(settings.clone());
    tables.apply_all(changes);
    tables_csv(|t| tables.to_csv(t))
}

fn tables_csv(mut csv: impl FnMut(Table) -> String) -> BTreeMap<&'static str, String> {
    Table::WAREHOUSE
        .into_iter()
        .chain([Table::Conflicts])
        .map(|t| (t.name(), csv(t)))
        .collect()
}

/// The sliced replay's CSV files, its rejections and the rows it spilled.
fn sliced(
    dir: &Path,
    out: &Path,
    settings: &Settings,
    workers: usize,
) -> (BTreeMap<&'static str, String>, Rejected, u64) {
    let plan = Arc::new(Plan::scan_chunked(dir, settings, 64).unwrap());
    assert!(plan.chunks() > 50, "small chunks make many slices");
    let rejected: Arc<Mutex<Rejected>> = Arc::default();
    let failed: Arc<Mutex<Option<String>>> = Arc::default();
    std::fs::create_dir_all(out).unwrap();
    let mut tables = SpillTables::new(settings.clone(), out).unwrap();
    let (r, f) = (rejected.clone(), failed.clone());
    run_sliced(
        settings.clone(),
        workers,
        move |index, peers| FileSlices::new(plan.clone(), index, peers, r.clone(), f.clone()),
        |time, batch| tables.apply_time(time, batch).unwrap(),
    )
    .unwrap();
    assert_eq!(*failed.lock().unwrap(), None);
    let spilled = tables.spilled();
    tables.write_csv(out).unwrap();
    let files =
        tables_csv(|t| std::fs::read_to_string(out.join(format!("{}.csv", t.name()))).unwrap());
    let leftovers: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|x| x != "csv"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let rejected = std::mem::take(&mut *rejected.lock().unwrap());
    (files, rejected, spilled)
}

#[test]
fn slices_write_the_tables_of_an_all_at_once_run() {
    let root = std::env::temp_dir().join(format!("shopflow-sliced-{}", std::process::id()));
    let input = root.join("in");
    write_input(&input, 11);
    let settings = Settings::default();
    let want = all_at_once(&input, &settings);
    assert!(want["fact_clicks"].lines().count() > 2_000);
    assert!(
        want["dq_conflicts"].lines().count() > 10,
        "conflicts exercised"
    );
    for workers in [1, 2, 3] {
        let (got, rejected, spilled) = sliced(
            &input,
            &root.join(format!("out{workers}")),
            &settings,
            workers,
        );
        for (table, text) in &want {
            assert!(
                got[table] == *text,
                "{table} differs with {workers} workers:\n got {} lines, want {}",
                got[table].lines().count(),
                text.lines().count()
            );
        }
        let malformed: u64 = rejected.values().sum();
        assert!(malformed > 0, "malformed lines are counted");
        assert!(spilled > 1_000, "facts were spilled ({spilled})");
    }
    std::fs::remove_dir_all(&root).unwrap();
}
