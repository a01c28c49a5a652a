//! `replay::from_files`, the entry point behind `shopflow replay --input`,
//! on a small generated directory with duplicates, late and malformed
//! lines: the tables are the same bytes for 1 and 2 workers, and they hold
//! what the files say (every line counted, every invalid one rejected, one
//! order per distinct valid purchase id).

use shopflow_dataflow::{Cluster, Settings};
use shopflow_generator::{Config, FileSink, Generator};
use shopflow_model::validate::{Record, validate};
use shopflow_model::{Event, EventKind};
use shopflow_pipeline::replay::{FilesPlan, Summary, from_files};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shopflow-pipeline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Writes what `shopflow generate` would: about five minutes of a shop.
fn generate(dir: &Path) {
    let cfg = Config {
        seed: 11,
        events: Some(6_000),
        duplicates: 0.02,
        late: 0.05,
        malformed: 0.005,
        ..Config::default()
    };
    let mut files = FileSink::create(dir).unwrap();
    Generator::new(cfg).run(&mut files).unwrap();
}

fn replay(input: &Path, output_csv: &Path, workers: usize) -> Summary {
    from_files(FilesPlan {
        input: input.to_path_buf(),
        output_csv: output_csv.to_path_buf(),
        settings: Settings::default(),
        cluster: Cluster::single(workers),
    })
    .unwrap()
}

/// Every file of `dir` by name, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// The lines of a generated file of `kind`.
fn lines(dir: &Path, kind: EventKind) -> Vec<Vec<u8>> {
    let body = std::fs::read(dir.join(format!("{}.jsonl", kind.topic()))).unwrap();
    body.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn one_and_two_workers_write_the_same_tables_of_what_the_files_hold() {
    let (input, one, two) = (scratch("gen"), scratch("w1"), scratch("w2"));
    generate(&input);
    let s1 = replay(&input, &one, 1);
    let s2 = replay(&input, &two, 2);

    let (csv1, csv2) = (files(&one), files(&two));
    assert!(csv1.contains_key("fact_orders.csv"), "{:?}", csv1.keys());
    assert_eq!(
        csv1.keys().collect::<Vec<_>>(),
        csv2.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &csv1 {
        assert!(
            bytes == &csv2[name],
            "{name} differs between 1 and 2 workers"
        );
    }
    assert_eq!(s1.written, s2.written);
    assert_eq!((s1.lines, s1.invalid), (s2.lines, s2.invalid));

    let (mut total, mut invalid, mut purchases) = (0, 0, Vec::new());
    for kind in EventKind::ALL {
        for line in lines(&input, kind) {
            total += 1;
            match validate(kind, &line) {
                Ok(Record::Event(Event::Purchase(p))) => purchases.push(p.event_id),
                Ok(_) => {}
                Err(_) => invalid += 1,
            }
        }
    }
    assert_eq!(s1.lines, total);
    assert_eq!(s1.invalid, invalid);
    assert!(invalid > 0, "the files should hold malformed lines");

    let distinct: BTreeSet<_> = purchases.iter().collect();
    assert!(
        distinct.len() < purchases.len(),
        "the files should re-send some purchases"
    );
    let written = s1.written.expect("a single process writes the tables");
    assert_eq!(written.orders, distinct.len() as u64);
    let rows = csv1["fact_orders.csv"]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        - 1;
    assert_eq!(rows, distinct.len(), "rows of fact_orders.csv");

    for dir in [input, one, two] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
