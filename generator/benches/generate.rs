//! Generator throughput: lines per second written to a counting sink (no I/O),
//! with and without fault injection, on one core.
//!
//! Run with `cargo bench -p shopflow-generator --bench generate`; criterion
//! reports elements (lines) per second. Figures go in `docs/benchmarks.md`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shopflow_generator::sink::CountingSink;
use shopflow_generator::{Config, Generator};

const LINES: u64 = 500_000;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(LINES));
    group.sample_size(10);
    // The default rate (20 events/s) keeps the 10-minute warm-up negligible,
    // so this measures steady-state generation.
    let clean = Config {
        events: Some(LINES),
        ..Config::default()
    };
    let faulty = Config {
        duplicates: 0.01,
        late: 0.05,
        malformed: 0.002,
        ..clean.clone()
    };
    for (name, cfg) in [("clean", clean), ("faults", faulty)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut sink = CountingSink::default();
                Generator::new(cfg.clone())
                    .run(&mut sink)
                    .expect("counting never fails");
                sink.lines
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
