//! What the processes of a `run` cluster hand each other for the sinks.
//!
//! Process 0 writes the warehouse; the sources of every process record
//! where their partitions stand ([`Positions`]), flush raw files to the lake
//! ([`Completion`]) and store dead letters. [`SinkRelay`] is the dataflow's
//! [`Relay`] for that: each other process sends its new positions and dead
//! letters to process 0 (after its dead letters are stored in Kafka, as the
//! sink requires before recording offsets), and every process sends how far
//! its workers have flushed to every other one, so that `_SUCCESS` markers
//! and commits wait for the whole cluster.

use crate::kafka::dead_letters::{DeadLetter, DeadLetters};
use crate::kafka::source::{Positions, drain_positions, push_positions};
use crate::lake::writer::Completion;
use serde::{Deserialize, Serialize};
use shopflow_dataflow::Time;
use shopflow_dataflow::live::Relay;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// One process's message.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Message {
    positions: Vec<(String, i32, Time, i64)>,
    dead_letters: Vec<DeadLetter>,
    flushed: Vec<(usize, u64, u64)>,
}

/// The relay of one process.
pub struct SinkRelay {
    /// Whether this is process 0 (the one with the warehouse sink).
    leader: bool,
    /// This process's workers, by global index.
    workers: Range<usize>,
    positions: Option<Positions>,
    completion: Arc<Completion>,
    dead: Arc<DeadLetters>,
    last_flushed: Vec<(usize, u64, u64)>,
}

impl SinkRelay {
    /// The relay of the process whose workers are `workers` (global
    /// indexes); `leader` for process 0.
    pub fn new(
        leader: bool,
        workers: Range<usize>,
        positions: Option<Positions>,
        completion: Arc<Completion>,
        dead: Arc<DeadLetters>,
    ) -> SinkRelay {
        SinkRelay {
            leader,
            workers,
            positions,
            completion,
            dead,
            last_flushed: Vec::new(),
        }
    }
}

impl Relay for SinkRelay {
    fn collect(&mut self) -> Option<Vec<u8>> {
        let mut message = Message {
            flushed: self.completion.snapshot(self.workers.clone()),
            ..Message::default()
        };
        let positions_waiting = self.positions.as_ref().is_some_and(|p| {
            p.lock()
                .expect("positions")
                .values()
                .any(|queue| !queue.is_empty())
        });
        if !self.leader && positions_waiting {
            // Dead letters must be in Kafka before process 0 records the
            // offsets past them; if they cannot be yet, the positions wait.
            // (Without new positions there is nothing to protect: the
            // flush, a call into the producer, waits for the next ones.)
            if let Err(e) = self.dead.flush(Duration::from_secs(5)) {
                tracing::warn!(error = %e, "dead letters not yet stored; positions are handed on later");
                return None;
            }
            message.dead_letters = self.dead.drain();
            if let Some(p) = &self.positions {
                message.positions = drain_positions(p);
            }
        }
        if message.positions.is_empty()
            && message.dead_letters.is_empty()
            && message.flushed == self.last_flushed
        {
            return None;
        }
        self.last_flushed = message.flushed.clone();
        Some(serde_json::to_vec(&message).expect("plain data serializes"))
    }

    fn absorb(&mut self, process: usize, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let message: Message = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => panic!(
                "a malformed relay message from process {process}: {e}; the processes run different shopflow versions?"
            ),
        };
        self.completion.merge(&message.flushed);
        if self.leader {
            if let Some(p) = &self.positions {
                push_positions(p, message.positions);
            }
            self.dead.keep_all(message.dead_letters);
        }
    }
}
