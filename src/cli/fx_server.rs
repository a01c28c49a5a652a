//! `shopflow fx-server`: a stand-in for a public FX rates API.

use anyhow::Context;
use shopflow_generator::fx_server::{FxTable, routes};
use shopflow_model::{Date, Timestamp};
use shopflow_pipeline::shutdown::Shutdown;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `fx-server`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Try: curl http://127.0.0.1:8081/latest?symbols=EUR,GBP")]
pub struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Serve the generator's rates for this seed (as `generate --seed`).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First date of the rates (the generator's start date).
    #[arg(long, default_value = "2026-11-24", value_parser = |s: &str| Date::parse(s).map_err(|_| format!("`{s}` is not a date YYYY-MM-DD")))]
    from: Date,
    /// Number of days of rates to serve.
    #[arg(long, default_value_t = 800)]
    days: u32,
    /// Serve the rates of a generated fx_rates.jsonl instead of a seed.
    #[arg(long)]
    input: Option<PathBuf>,
}

/// Runs `fx-server` until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let table = match &args.input {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            FxTable::from_jsonl(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => FxTable::from_seed(
            args.seed,
            args.from,
            Date(args.from.0 + args.days.saturating_sub(1) as i32),
        ),
    };
    anyhow::ensure!(!table.is_empty(), "no rates to serve");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}; is the port in use? pass --listen",
                    args.listen
                )
            })?;
        tracing::info!(addr = %listener.local_addr()?, dates = table.len(), "fx-server listening");
        let shutdown = Shutdown::default();
        warp::serve(routes(Arc::new(table), today))
            .incoming(listener)
            .graceful(shutdown.wait_for_signal())
            .run()
            .await;
        Ok(())
    })
}

fn today() -> Date {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp(ms).date()
}
