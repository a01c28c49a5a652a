//! The hub: numbered states, the deltas between them, and one bounded ring
//! of deltas shared by every client.
//!
//! The live run publishes one entry map per completed timestamp. The hub
//! numbers it, computes the delta from the previous state once, and puts the
//! serialized delta in a `tokio::sync::broadcast` ring of fixed capacity. A
//! client subscribes *before* it reads the snapshot, so no delta after the
//! snapshot can be missed; one that falls behind the ring is told so by the
//! channel (`Lagged`) and is sent a fresh snapshot (see [`crate::session`]).
//! Memory is the ring plus one state, whatever the number or speed of clients.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// Deltas kept for clients that are behind; further behind, they resync.
pub const RING: usize = 256;

/// A state's entries, by name (`docs/websocket.md`).
pub type Entries = BTreeMap<String, Value>;

/// A published delta, serialized once for every client.
#[derive(Debug)]
pub struct Published {
    /// The number of the state this delta leads to.
    pub seq: u64,
    /// The delta message (JSON text).
    pub text: Arc<str>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Websocket clients connected now.
    pub clients: AtomicU64,
    /// Websocket connections accepted since start.
    pub connections: AtomicU64,
    /// Messages sent to clients (snapshots, deltas, heartbeats).
    pub messages: AtomicU64,
    /// Bytes of those messages.
    pub bytes: AtomicU64,
    /// Fresh snapshots sent to clients that fell behind the ring.
    pub skips: AtomicU64,
    /// Clients dropped for not accepting a frame within the send timeout.
    pub dropped: AtomicU64,
    /// Websocket upgrades refused because the client limit was reached.
    pub full: AtomicU64,
    /// Connections closed for a message the protocol does not allow.
    pub refused_messages: AtomicU64,
    /// Requests refused for a missing or wrong token.
    pub unauthorized: AtomicU64,
    /// States published.
    pub published: AtomicU64,
}

impl Stats {
    /// Counts one message of `len` bytes sent.
    pub fn sent(&self, len: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
    }
}

struct Current {
    seq: u64,
    at: i64,
    entries: Arc<Entries>,
    /// The snapshot message of this state, made once on first request.
    snapshot: Option<Arc<str>>,
}

/// Numbered states and the ring of deltas.
pub struct Hub {
    current: Mutex<Current>,
    ring: broadcast::Sender<Arc<Published>>,
    closed: watch::Sender<bool>,
    /// Counters for `/metrics`.
    pub stats: Stats,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    r#type: &'static str,
    seq: u64,
    at: i64,
    entries: &'a Entries,
}

#[derive(Serialize)]
struct Delta<'a> {
    r#type: &'static str,
    seq: u64,
    at: i64,
    set: BTreeMap<&'a str, &'a Value>,
    del: Vec<&'a str>,
}

#[derive(Serialize)]
struct Heartbeat {
    r#type: &'static str,
    seq: u64,
    at: i64,
}

impl Hub {
    /// A hub holding state 0 (no entries) with a ring of `ring` deltas.
    pub fn new(ring: usize) -> Hub {
        Hub {
            current: Mutex::new(Current {
                seq: 0,
                at: 0,
                entries: Arc::new(Entries::new()),
                snapshot: None,
            }),
            ring: broadcast::channel(ring.max(1)).0,
            closed: watch::channel(false).0,
            stats: Stats::default(),
        }
    }

    /// Publishes the next state, made at wall-clock `at_ms`; returns its number.
    pub fn publish(&self, entries: Entries, at_ms: i64) -> u64 {
        let mut current = self.current.lock().expect("hub state");
        let seq = current.seq + 1;
        let text: Arc<str> = delta_text(seq, at_ms, &current.entries, &entries).into();
        *current = Current {
            seq,
            at: at_ms,
            entries: Arc::new(entries),
            snapshot: None,
        };
        // Sent under the lock, so the ring's order is the numbering's order.
        // An error only means that no client is connected.
        let _ = self.ring.send(Arc::new(Published { seq, text }));
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        seq
    }

    /// A receiver of every delta published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.ring.subscribe()
    }

    /// The current state's number and its snapshot message (serialized
    /// once per state, however many clients ask).
    pub fn snapshot(&self) -> (u64, Arc<str>) {
        let (seq, at, entries) = {
            let c = self.current.lock().expect("hub state");
            if let Some(text) = &c.snapshot {
                return (c.seq, text.clone());
            }
            (c.seq, c.at, c.entries.clone())
        };
        let msg = Snapshot {
            r#type: "snapshot",
            seq,
            at,
            entries: &entries,
        };
        let text: Arc<str> = serde_json::to_string(&msg)
            .expect("JSON values serialize")
            .into();
        let mut c = self.current.lock().expect("hub state");
        if c.seq == seq {
            c.snapshot = Some(text.clone());
        }
        (seq, text)
    }

    /// Tells every session to close (the server is shutting down).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Becomes true when the hub closes.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// The number of the latest state.
    pub fn seq(&self) -> u64 {
        self.current.lock().expect("hub state").seq
    }
}

/// The delta message that turns state `seq - 1` (`old`) into state `seq` (`new`).
pub fn delta_text(seq: u64, at_ms: i64, old: &Entries, new: &Entries) -> String {
    let set = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let del = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(String::as_str)
        .collect();
    let msg = Delta {
        r#type: "delta",
        seq,
        at: at_ms,
        set,
        del,
    };
    serde_json::to_string(&msg).expect("JSON values serialize")
}

/// A heartbeat message for a client holding state `seq`.
pub fn heartbeat_text(seq: u64, at_ms: i64) -> String {
    let msg = Heartbeat {
        r#type: "heartbeat",
        seq,
        at: at_ms,
    };
    serde_json::to_string(&msg).expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entries(pairs: &[(&str, Value)]) -> Entries {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn a_delta_sets_changed_and_new_entries_and_deletes_missing_ones() {
        let old = entries(&[("a", json!(1)), ("b", json!(2)), ("c", json!(3))]);
        let new = entries(&[("a", json!(1)), ("b", json!(20)), ("d", json!(4))]);
        let text = delta_text(7, 99, &old, &new);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({"type": "delta", "seq": 7, "at": 99, "set": {"b": 20, "d": 4}, "del": ["c"]})
        );
    }

    #[test]
    fn states_are_numbered_without_gaps_and_the_snapshot_is_the_latest() {
        let hub = Hub::new(4);
        let mut rx = hub.subscribe();
        assert_eq!(hub.publish(entries(&[("a", json!(1))]), 10), 1);
        assert_eq!(hub.publish(entries(&[("a", json!(2))]), 11), 2);
        assert_eq!(rx.try_recv().unwrap().seq, 1);
        assert_eq!(rx.try_recv().unwrap().seq, 2);
        let (seq, text) = hub.snapshot();
        assert_eq!(seq, 2);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({"type": "snapshot", "seq": 2, "at": 11, "entries": {"a": 2}})
        );
        assert!(Arc::ptr_eq(&text, &hub.snapshot().1), "made once per state");
    }
}
