//! Throughput of `shopflow replay --input` as the binary runs it: the entry
//! point `shopflow_pipeline::replay::from_files` on a generated directory,
//! on 1 and 2 workers. It covers the first pass over the files, validation
//! on every worker, the bounded dataflow in event-time slices, the spilled
//! fact rows and the CSV files. Elements are shop events in the files
//! (duplicates and late ones included); reference data rides along.
//!
//! The `dataflow` bench measures the same traffic through the bare
//! dataflow, pre-parsed and without output: the difference between the two
//! is reading, validating and writing.
//!
//! Run: `cargo bench --bench replay`. Figures go in `docs/benchmarks.md`.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shopflow_dataflow::{Cluster, Settings};
use shopflow_pipeline::replay::{FilesPlan, from_files};

/// The allocator the `shopflow` binary uses (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: u64 = 100_000;

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("shopflow-bench-replay-{}", std::process::id()));
    let input = dir.join("input");
    common::write_dir(EVENTS, &input);
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    for workers in [1, 2] {
        group.bench_function(format!("{workers}_workers"), |b| {
            b.iter(|| {
                let summary = from_files(FilesPlan {
                    input: input.clone(),
                    output_csv: dir.join(format!("out-{workers}")),
                    settings: Settings::default(),
                    cluster: Cluster::single(workers),
                })
                .expect("replay runs");
                summary.written.map(|w| w.orders)
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
