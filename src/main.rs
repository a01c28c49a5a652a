//! `shopflow`: the command-line entry point.
//!
//! Parses the command line, sets up logging, and hands over to one
//! subcommand module in [`cli`], which calls the pipelines of
//! `shopflow_pipeline`. Library crates never see `clap`; only this binary
//! and the pipeline crate use `anyhow`.

mod cli;

use clap::Parser;

/// mimalloc instead of glibc's allocator: the dataflow allocates and frees
/// many small records from several threads, where glibc spent about 40% of
/// a replay's time (`docs/benchmarks.md`, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOPFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
