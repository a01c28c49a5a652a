//! shopflow's one differential dataflow.
//!
//! Typed collections in ([`input`]), typed change streams out ([`rows`]):
//! deduplication, facts, dimensions, windowed sales, the conversion funnel,
//! top products and rolling dashboard figures, all maintained incrementally
//! by `differential-dataflow` on event time. The crate knows nothing of Kafka,
//! files, PostgreSQL or HTTP. [`input`] feeds it; [`bounded`] runs it over
//! bounded input in event-time slices, [`live`] over per-worker sources and
//! [`run`] from a channel; [`apply`] turns its changes into table contents
//! with the sinks' freeze rule.
//!
//! Time: the timely timestamp is event time in milliseconds, rounded up to a
//! tick ([`Settings::tick_ms`]). Every record lives in the dataflow from the
//! time it enters until one hour (the longest window) plus
//! [`Settings::horizon_ms`] after its event time; that delayed retraction is
//! what keeps state bounded. See `docs/ARCHITECTURE.md` and `docs/metrics.md`.

pub mod apply;
pub mod bounded;
pub mod cluster;
pub mod csv;
pub mod input;
pub mod live;
pub mod rows;
pub mod run;
pub mod settings;

mod control;
mod dedup;
mod graph;
mod lifetime;
mod seen;

pub use apply::Tables;
pub use cluster::Cluster;
pub use rows::{Row, Table};
pub use settings::Settings;

/// The dataflow's timestamp: event time in ms, a multiple of the tick.
pub type Time = u64;

/// A change to an output row at a time.
pub type Change = (Row, Time, isize);
