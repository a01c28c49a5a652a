//! The shopflow traffic generator.
//!
//! A deterministic simulation of a web shop ([`sim`]) produces clicks, cart
//! adds and orders from interleaved sessions, plus the catalog, user profiles
//! and daily FX rates they depend on. [`Generator`] then injects the faults a
//! real pipeline meets (duplicates, late arrivals, malformed messages) and
//! hands every line to a [`Sink`]: files, an in-process channel, or Kafka.
//!
//! Same seed and configuration, same bytes: all randomness comes from
//! [`rng::Rng`] streams derived from the seed, and no wall-clock time is read.

pub mod faults;
pub mod fx_server;
pub mod json;
pub mod rng;
pub mod session;
pub mod sim;
pub mod sink;
pub mod world;

mod generator;

pub use generator::{Config, Generator, Manifest};
pub use sink::{FileSink, Paced, Sink};
