//! shopflow's pipelines, end to end.
//!
//! This crate runs what the `shopflow` binary offers, so that the binary
//! only parses its command line and calls in here, and the tests and
//! benchmarks drive the very same entry points:
//!
//! - [`run::run`]: live from Kafka into the warehouse, the lake and the
//!   dashboard, with the lake's curated layer built as days complete;
//! - [`replay::from_files`] and [`replay::from_lake`]: replays of generated
//!   files and of days of the lake;
//! - [`demo::run`]: a simulated shop, the whole pipeline in one process;
//! - [`warehouse::migrate`]: the warehouse schema.
//!
//! It wires the other crates together and owns none of their concepts:
//! `shopflow-dataflow` computes, `shopflow-connectors` talks to Kafka,
//! PostgreSQL, S3 and the FX API, `shopflow-web` serves the dashboard. Its
//! inputs are plain typed values: a [`config::RunConfig`], a
//! [`shopflow_dataflow::Cluster`], the dataflow's
//! [`shopflow_dataflow::Settings`] and a plan per command; it knows nothing
//! of `clap`. Stopping is a [`shutdown::Shutdown`] flag the caller owns.
//! Errors are `anyhow` errors whose messages say what to do next, printed
//! as they are by the binary.

pub mod config;
mod console;
mod curate;
mod dashboard;
pub mod demo;
pub mod replay;
pub mod run;
pub mod shutdown;
pub mod warehouse;

/// The runtime of the HTTP endpoints (dashboard, metrics).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}
