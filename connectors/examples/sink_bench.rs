//! Warehouse sink throughput: click facts written through the real sink
//! (COPY into staging, key resolution, upsert, one transaction per step) into
//! a migrated schema, in steps of a fixed size.
//!
//! `cargo run --release -p shopflow-connectors --example sink_bench -- URL [FACTS] [STEP]`
//! (URL without password; the schema `sink_bench` is dropped and recreated).
//! Prints fact rows/s and the commit latency p50/p99.

use shopflow_connectors::warehouse::WarehouseSettings;
use shopflow_connectors::warehouse::migrate::migrate;
use shopflow_connectors::warehouse::sink::{Batch, Sink};
use shopflow_dataflow::rows::{DimProduct, DimUser};
use shopflow_dataflow::{Row, Settings};
use shopflow_model::{Click, Currency, Money, Timestamp};
use std::time::Instant;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .ok_or("usage: sink_bench URL [FACTS] [STEP]")?;
    let facts: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let step: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let settings = WarehouseSettings {
        url,
        schema: "sink_bench".into(),
        retries: 0,
        backoff_ms: 100,
        ..WarehouseSettings::default()
    };
    let mut admin = shopflow_connectors::warehouse::connect(&WarehouseSettings {
        schema: "public".into(),
        ..settings.clone()
    })?;
    admin
        .batch_execute("DROP SCHEMA IF EXISTS sink_bench CASCADE")
        .map_err(|e| e.to_string())?;
    migrate(&settings)?;
    let dataflow = Settings::default();
    let mut sink = Sink::open(&settings, &dataflow)?;
    let start = 1_795_478_400_000i64;
    // Dimensions first: 20k users, 500 products, one step.
    let mut dims = Vec::new();
    for u in 0..20_000 {
        dims.push((
            Row::DimUser(DimUser {
                user_id: format!("u{u:06}"),
                profile: Some(("Name".into(), "DE".into(), Currency::Eur)),
                first_seen: Some(Timestamp(start)),
                last_seen: Some(Timestamp(start)),
            }),
            1_000,
            1,
        ));
    }
    for p in 0..500 {
        dims.push((
            Row::DimProduct(DimProduct {
                product_id: format!("p{p:05}"),
                valid_from: Timestamp(start - 86_400_000),
                valid_to: None,
                name: "Thing".into(),
                category: "things".into(),
                price: Money::from_units(1999),
            }),
            1_000,
            1,
        ));
    }
    sink.write(&Batch {
        upto: 2_000,
        changes: dims,
        ..Batch::default()
    })
    .map_err(|e| e.0)?;
    let mut latencies = Vec::new();
    let began = Instant::now();
    let mut written = 0usize;
    let mut step_no = 0u64;
    while written < facts {
        let n = step.min(facts - written);
        let t = start + (step_no as i64) * 1_000;
        let changes = (0..n)
            .map(|i| {
                let k = written + i;
                (
                    Row::FactClick(Click {
                        event_id: format!("e{k:012}"),
                        user_id: format!("u{:06}", k % 20_000),
                        session_id: format!("s{:08}", k / 7),
                        product_id: format!("p{:05}", k % 500),
                        ts: Timestamp(t + (i as i64 % 1_000)),
                        page: "/product".into(),
                        referrer: String::new(),
                    }),
                    (t + 1_000) as u64,
                    1,
                )
            })
            .collect();
        let batch = Batch {
            upto: (t + 2_000) as u64,
            changes,
            ..Batch::default()
        };
        let t0 = Instant::now();
        sink.write(&batch).map_err(|e| e.0)?;
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        written += n;
        step_no += 1;
    }
    let secs = began.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "facts={written} step={step} seconds={secs:.2} rows_per_second={:.0} commit_ms_p50={:.1} commit_ms_p99={:.1}",
        written as f64 / secs,
        q(0.5),
        q(0.99)
    );
    Ok(())
}
