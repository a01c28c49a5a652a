//! `shopflow demo`: the whole pipeline in one process, on embedded defaults
//! (`shopflow_pipeline::demo`), until Ctrl-C or `--duration`.

use super::{parse_duration_ms, parse_fraction};
use shopflow_pipeline::demo::DemoPlan;
use shopflow_pipeline::shutdown::Shutdown;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events per second the simulated shop sends (wall clock).
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// Seed of the simulated shop.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Dataflow worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Stop after this long (like 30s or 10m) instead of waiting for Ctrl-C.
    #[arg(long, value_parser = parse_duration_ms)]
    duration: Option<i64>,
    /// Fraction of exact re-sends.
    #[arg(long, default_value_t = 0.005, value_parser = parse_fraction)]
    duplicates: f64,
    /// Fraction of events that arrive late.
    #[arg(long, default_value_t = 0.02, value_parser = parse_fraction)]
    late: f64,
    /// Largest delay of a late event; beyond the allowed lateness (5m) it is too late.
    #[arg(long, default_value = "6m", value_parser = parse_duration_ms)]
    max_delay: i64,
    /// Fraction of malformed messages.
    #[arg(long, default_value_t = 0.001, value_parser = parse_fraction)]
    malformed: f64,
    /// Event time to play before now, as fast as possible, so the views start
    /// full (like 10m; 0 starts empty). Catching up takes about a second
    /// per 20,000 events on 2 cores.
    #[arg(long, default_value = "5m", value_parser = parse_duration_ms)]
    history: i64,
    /// Address of the dashboard. It binds loopback by default; to expose it
    /// on a network, give an address like 0.0.0.0:8080 and set a token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the lake's raw layer (every generated message as Parquet,
    /// docs/lake.md); "" turns it off.
    #[arg(long, default_value = "data/lake")]
    lake: String,
    /// File holding the token the dashboard's /api/* and /ws require
    /// (SHOPFLOW_DASHBOARD_TOKEN wins over it). Without either: no token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    dataflow: super::DataflowArgs,
}

/// Runs `demo` until Ctrl-C (or `--duration`).
pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = args.dataflow.settings()?;
    let shutdown = Shutdown::install()?;
    let plan = DemoPlan {
        settings,
        workers: args.workers,
        rate: args.rate,
        seed: args.seed,
        duration: args.duration.map(|d| Duration::from_millis(d as u64)),
        duplicates: args.duplicates,
        late: args.late,
        max_delay_ms: args.max_delay,
        malformed: args.malformed,
        history_ms: args.history,
        listen: args.listen,
        lake: Some(args.lake).filter(|dir| !dir.is_empty()),
        token_file: args.token_file,
    };
    shopflow_pipeline::demo::run(plan, shutdown)
}
