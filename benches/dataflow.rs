//! Throughput of the whole bounded dataflow (dedup, facts, dimensions, windows,
//! funnel, top products; rolling figures are live-only) on pre-parsed events, as a bounded
//! run on 1 and 2 workers. Elements are shop events offered (duplicates
//! included); reference data (users, products, FX) rides along.
//!
//! This is the bare dataflow: no files, no validation, no output. The
//! `replay` bench measures the same traffic through the entry point the
//! binary uses (`shopflow_pipeline::replay::from_files`).
//!
//! Run: `cargo bench --bench dataflow`. Figures go in `docs/benchmarks.md`.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shopflow_dataflow::Settings;
use shopflow_dataflow::run::{Input, feed_share, run_bounded};
use std::sync::Arc;

/// The allocator the `shopflow` binary uses (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: u64 = 100_000;

fn bench(c: &mut Criterion) {
    let inputs = Arc::new(common::inputs(EVENTS));
    let events = inputs
        .iter()
        .filter(|i| matches!(i, Input::Event(..)))
        .count() as u64;
    let mut group = c.benchmark_group("dataflow");
    group.throughput(Throughput::Elements(events));
    group.sample_size(10);
    for workers in [1, 2] {
        group.bench_function(format!("{workers}_workers"), |b| {
            b.iter(|| {
                let inputs = inputs.clone();
                let changes =
                    run_bounded(Settings::default(), workers, move |index, peers, feeder| {
                        feed_share(&inputs, index, peers, feeder);
                    })
                    .expect("dataflow runs");
                changes.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
