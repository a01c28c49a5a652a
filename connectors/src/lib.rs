//! shopflow's connections to the outside world.
//!
//! - [`kafka`]: topic layout and creation, the idempotent producer, the Kafka
//!   source that feeds the dataflow (explicit partition ownership, per-partition
//!   watermarks, backpressure, offsets committed once results are durable),
//!   and the dead-letter topic.
//! - [`files`]: generated input directories, replayed in event-time slices.
//! - [`fx_poller`]: polls a rates API and publishes to `fx_rates`.
//! - [`metrics`]: counters every part updates, rendered in Prometheus text.
//! - [`spill`]: a bounded run's CSV tables, final facts spilled to disk.
//! - [`warehouse`]: PostgreSQL migrations and the transactional sink.
//!
//! The dataflow itself knows nothing of these; it sees a
//! [`shopflow_dataflow::live::Source`] per worker.

pub mod files;
pub mod fx_poller;
pub mod kafka;
pub mod lake;
pub mod metrics;
pub mod spill;
pub mod warehouse;
