//! shopflow's live dashboard.
//!
//! - [`board`]: the state the views show, absorbed from each completed step
//!   of the live run and rendered as a map of entries;
//! - [`hub`]: numbered states, deltas between them and the bounded ring
//!   every client reads;
//! - [`session`]: one websocket client's protocol, over a generic
//!   stream and sink;
//! - [`server`]: the warp routes and the embedded page.
//!
//! The protocol is documented in `docs/websocket.md`.

pub mod board;
pub mod hub;
pub mod server;
pub mod session;

pub use board::{Board, WarehouseCommit};
pub use hub::Hub;
pub use server::{Options, Token, routes, start};
