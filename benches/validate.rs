//! Parse-and-validate throughput on generated shop events (clicks, carts,
//! purchases in their natural mix), one core: bytes in, typed events out.
//!
//! Run: `cargo bench --bench validate`. Figures go in `docs/benchmarks.md`.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shopflow_model::EventKind;
use shopflow_model::validate::validate;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let lines: Vec<_> = common::lines(200_000)
        .into_iter()
        .filter(|(k, _)| matches!(k, EventKind::Click | EventKind::Cart | EventKind::Purchase))
        .collect();
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(10);
    group.bench_function("events", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|(kind, line)| black_box(validate(*kind, line)).is_ok())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
