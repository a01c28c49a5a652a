//! The lake: the durable history of every message, as Parquet on S3 or a
//! local directory.
//!
//! - [`store`]: one storage API for S3 and the local filesystem (the
//!   `object_store` crate), with idempotent create-only writes and retries;
//! - [`raw`]: the raw layer's schema, and encoding to and decoding from Parquet;
//! - [`paths`]: object names (`raw/<topic>/dt=…/hr=…/part-…parquet`);
//! - [`curated`]: the curated layer (a day's facts and dimension snapshots);
//! - [`writer`]: the raw writer of `shopflow run` (buffers per partition,
//!   flushes by size or age, marks complete hours with `_SUCCESS`);
//! - [`read`]: listing and reading the raw layer back, for replays and for
//!   crash recovery.
//!
//! Design and guarantees: `docs/lake.md`.

pub mod curated;
pub mod paths;
pub mod raw;
pub mod read;
pub mod store;
pub mod writer;

pub use store::{Lake, LakeError, LakeSettings};
