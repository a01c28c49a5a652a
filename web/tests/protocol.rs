//! The websocket protocol without a socket: a real live dataflow run feeds a
//! board and a hub, and sessions are driven over in-memory channels.
//!
//! Checked: a client gets a snapshot, then every delta in order, and the
//! state it rebuilds equals the published one at every number; every
//! published state is consistent (nested funnel; each minute's revenue and
//! order count equal the sums of the order facts of that minute; the
//! currency breakdown adds up to the minutes); a slow client is skipped
//! ahead to a fresh snapshot; a reconnect or a resync request starts from
//! the latest state; a message outside the protocol closes with 1008.

use futures_util::{Sink, Stream};
use serde_json::Value;
use shopflow_dataflow::Settings;
use shopflow_dataflow::rows::Row;
use shopflow_dataflow::run::{Input, run_live};
use shopflow_generator::sim::World;
use shopflow_generator::{Config, Generator};
use shopflow_model::{EventKind, Timestamp};
use shopflow_web::hub::Entries;
use shopflow_web::session::{self, FromClient, ToClient};
use shopflow_web::{Board, Hub};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const HEARTBEAT: Duration = Duration::from_secs(3600);

/// A client over channels: frames in, frames out.
struct Client {
    to_server: mpsc::UnboundedSender<FromClient>,
    from_server: mpsc::Receiver<ToClient>,
    task: tokio::task::JoinHandle<()>,
}

fn incoming(rx: mpsc::UnboundedReceiver<FromClient>) -> impl Stream<Item = FromClient> + Unpin {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|f| (f, rx))
    }))
}

fn outgoing(tx: mpsc::Sender<ToClient>) -> impl Sink<ToClient> + Unpin {
    Box::pin(futures_util::sink::unfold(
        tx,
        |tx, m: ToClient| async move { tx.send(m).await.map(|()| tx) },
    ))
}

/// Connects a client whose outgoing queue holds `room` frames before the
/// session has to wait for it.
fn connect(hub: &Arc<Hub>, room: usize, heartbeat: Duration) -> Client {
    let (to_server, rx) = mpsc::unbounded_channel();
    let (tx, from_server) = mpsc::channel(room);
    let task = tokio::spawn(session::run(
        hub.clone(),
        incoming(rx),
        outgoing(tx),
        heartbeat,
    ));
    Client {
        to_server,
        from_server,
        task,
    }
}

/// The state a client rebuilds from messages, following the client rule.
#[derive(Default)]
struct Replica {
    seq: Option<u64>,
    entries: Entries,
}

impl Replica {
    /// Applies one message; returns its type.
    fn apply(&mut self, text: &str) -> String {
        let msg: Value = serde_json::from_str(text).expect("server messages are JSON");
        let kind = msg["type"].as_str().expect("typed").to_owned();
        let seq = msg["seq"].as_u64().expect("numbered");
        match kind.as_str() {
            "snapshot" => {
                if let Some(held) = self.seq {
                    assert!(seq >= held, "a snapshot went back from {held} to {seq}");
                }
                self.entries = serde_json::from_value(msg["entries"].clone()).unwrap();
                self.seq = Some(seq);
            }
            "delta" => {
                let held = self.seq.expect("a delta before any snapshot");
                assert_eq!(seq, held + 1, "deltas out of order");
                for (k, v) in msg["set"].as_object().unwrap() {
                    self.entries.insert(k.clone(), v.clone());
                }
                for k in msg["del"].as_array().unwrap() {
                    self.entries.remove(k.as_str().unwrap());
                }
                self.seq = Some(seq);
            }
            "heartbeat" => assert_eq!(Some(seq), self.seq, "a heartbeat names the held state"),
            other => panic!("unknown message type {other}"),
        }
        kind
    }
}

async fn next_text(c: &mut Client) -> String {
    match tokio::time::timeout(Duration::from_secs(10), c.from_server.recv()).await {
        Ok(Some(ToClient::Text(t))) => t.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

fn money_cents(v: &Value) -> i64 {
    let s = v.as_str().expect("money is a string");
    let (int, frac) = s.split_once('.').expect("two decimals");
    assert_eq!(frac.len(), 2, "money has two decimals: {s}");
    int.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
}

/// Checks one published state against the order facts seen so far.
fn check_consistent(entries: &Entries, facts: &BTreeMap<String, (i64, i64)>) {
    if let Some(f) = entries.get("funnel") {
        let (a, c, p) = (
            f["active"].as_i64(),
            f["carted"].as_i64(),
            f["purchased"].as_i64(),
        );
        assert!(a >= c && c >= p, "funnel not nested: {f}");
    }
    let mut by_minute: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (minute, cents) in facts.values() {
        let m = by_minute.entry(*minute).or_default();
        m.0 += 1;
        m.1 += cents;
    }
    let (mut minute_orders, mut minute_cents) = (0, 0);
    for (key, m) in entries.range("minute/".to_owned().."minute0".to_owned()) {
        let start = m["start"].as_i64().unwrap();
        assert_eq!(key, &format!("minute/{start}"));
        let want = by_minute.get(&start).copied().unwrap_or_default();
        let got = (
            m["orders"].as_i64().unwrap(),
            money_cents(&m["revenue_usd"]),
        );
        assert_eq!(
            got, want,
            "minute {start}: (orders, cents) vs its order facts"
        );
        minute_orders += got.0;
        minute_cents += got.1;
    }
    let (mut cur_orders, mut cur_cents) = (0, 0);
    for (_, c) in entries.range("currency/".to_owned().."currency0".to_owned()) {
        cur_orders += c["orders"].as_i64().unwrap();
        cur_cents += money_cents(&c["revenue_usd"]);
    }
    assert_eq!(
        (cur_orders, cur_cents),
        (minute_orders, minute_cents),
        "currencies vs minutes"
    );
}

/// Runs a generated stream (duplicates, late, too-late and malformed
/// events) through the live dataflow, publishing a state per completed step
/// and checking each one; returns every published state by number.
fn live_run(hub: Arc<Hub>) -> Vec<Entries> {
    let settings = Settings::default();
    let board = Arc::new(Mutex::new(Board::new(settings.clone(), "test")));
    let published = Arc::new(Mutex::new(vec![Entries::new()]));
    // A small queue and a paced feed, so the frontier moves in many steps.
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    let cfg = Config {
        seed: 7,
        events: Some(12_000),
        world: World {
            rate: 12.0,
            users: 500,
            ..World::default()
        },
        duplicates: 0.02,
        late: 0.05,
        malformed: 0.01,
        max_delay_ms: 400_000,
        ..Config::default()
    };
    let feeder = std::thread::spawn(move || {
        struct Feed(std::sync::mpsc::SyncSender<Input>);
        impl shopflow_generator::Sink for Feed {
            fn emit(&mut self, kind: EventKind, _: Timestamp, line: &[u8]) -> std::io::Result<()> {
                if let Ok(input) = Input::from_line(kind, line) {
                    self.0.send(input).expect("dataflow running");
                    std::thread::sleep(Duration::from_micros(100));
                }
                Ok(())
            }
        }
        Generator::new(cfg).run(&mut Feed(tx)).unwrap();
    });
    let (b, p, h) = (board.clone(), published.clone(), hub.clone());
    let oracle = settings.clone();
    // Order facts by id: (minute start, USD cents), following +/- changes
    // for the minutes the board still shows (facts outlive them).
    let mut facts: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    run_live(
        settings,
        2,
        rx,
        || false,
        move |progress| {
            let mut changes: Vec<_> = progress.changes.iter().collect();
            changes.sort_by_key(|(_, t, d)| (*t, *d));
            // Minutes held open past their freeze and set again at a time.
            let corrected: std::collections::BTreeSet<(u64, i64)> = changes
                .iter()
                .filter_map(|(row, t, d)| match row {
                    Row::SalesMinute(m) if *d > 0 => Some((*t, m.window_start.0)),
                    _ => None,
                })
                .collect();
            for (row, time, diff) in changes {
                // The dashboard's definition (docs/metrics.md): a minute's
                // orders as they were when the minute froze, or when an order
                // waiting for its rate was priced into the minute later;
                // other later changes (ageing out) do not count.
                if let Row::FactOrder(o) = row
                    && (*time < oracle.freeze(o.ts.floor_to(60_000).0 + 60_000)
                        || corrected.contains(&(*time, o.ts.floor_to(60_000).0)))
                {
                    let value = (o.ts.floor_to(60_000).0, o.total_amount_usd.units());
                    if *diff > 0 {
                        facts.insert(o.event_id.clone(), value);
                    } else if facts.get(&o.event_id) == Some(&value) {
                        facts.remove(&o.event_id);
                    }
                }
            }
            let mut board = b.lock().unwrap();
            board.absorb(progress);
            let entries = board.entries(0);
            let shown_from = entries
                .keys()
                .filter_map(|k| k.strip_prefix("minute/"))
                .filter_map(|s| s.parse::<i64>().ok())
                .min();
            let window = window_start(board.upto());
            let in_window: BTreeMap<String, (i64, i64)> = facts
                .iter()
                .filter(|(_, (m, _))| *m >= window)
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            assert!(shown_from.is_none_or(|s| s >= window));
            check_consistent(&entries, &in_window);
            h.publish(entries.clone(), 0);
            p.lock().unwrap().push(entries);
        },
    )
    .expect("live run");
    feeder.join().unwrap();
    Arc::try_unwrap(published).unwrap().into_inner().unwrap()
}

fn window_start(upto: u64) -> i64 {
    let last = (upto as i64 - 1).max(0);
    last - last.rem_euclid(60_000) - 59 * 60_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_a_snapshot_then_every_delta_and_every_state_is_consistent() {
    let hub = Arc::new(Hub::new(shopflow_web::hub::RING));
    let mut client = connect(&hub, 16, HEARTBEAT);
    let mut replica = Replica::default();
    assert_eq!(replica.apply(&next_text(&mut client).await), "snapshot");
    assert_eq!(replica.seq, Some(0));
    // The client reads while the run publishes, with the real ring size.
    let held = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader_held = held.clone();
    let reader = tokio::spawn(async move {
        let mut states = Vec::new();
        while let Some(ToClient::Text(t)) = client.from_server.recv().await {
            let kind = replica.apply(&t);
            let seq = replica.seq.unwrap();
            reader_held.store(seq, std::sync::atomic::Ordering::SeqCst);
            states.push((kind, seq, replica.entries.clone()));
        }
        states
    });
    let run_hub = hub.clone();
    // A failed check panics inside a dataflow worker; the run then ends
    // with an error (the bound is a safety net).
    let run = tokio::task::spawn_blocking(move || live_run(run_hub));
    let published = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the live run did not finish: see the panic above")
        .unwrap();
    let last = published.len() as u64 - 1;
    assert!(
        last > 50,
        "too few completed steps to test anything: {last}"
    );
    let final_state = &published[last as usize];
    assert!(final_state.contains_key("funnel"), "no funnel in the run");
    assert!(final_state.keys().any(|k| k.starts_with("currency/")));
    let h = &final_state["health"];
    assert!(h["late"].as_u64().unwrap() > 0 && h["too_late"].as_u64().unwrap() > 0);
    // Live-state counters fall back as the state ages out; they were up.
    let duplicates = |e: &Entries| e.get("health").and_then(|h| h["duplicates"].as_i64());
    assert!(
        published
            .iter()
            .any(|e| duplicates(e).is_some_and(|d| d > 0))
    );
    let caught_up = async {
        while held.load(std::sync::atomic::Ordering::SeqCst) != last {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), caught_up)
        .await
        .expect("the client reaches the last state");
    hub.close(); // ends the session, and with it the reader
    let states = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        states.last().map(|s| s.1),
        Some(last),
        "the client reached the last state"
    );
    for (kind, seq, entries) in &states {
        assert_eq!(
            entries, &published[*seq as usize],
            "state {seq} rebuilt differently"
        );
        assert!(
            kind == "delta" || kind == "heartbeat",
            "unexpected {kind} at {seq}"
        );
    }
    assert_eq!(
        hub.stats.skips.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        hub.stats.clients.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

fn state(n: u64) -> Entries {
    let mut e = Entries::new();
    e.insert("meta".into(), serde_json::json!({"n": n}));
    e.insert(format!("minute/{}", n % 5), serde_json::json!({"n": n}));
    e
}

#[tokio::test]
async fn a_slow_client_is_skipped_ahead_to_a_fresh_snapshot() {
    let hub = Arc::new(Hub::new(4));
    // The session can hand over one frame; the client does not read yet.
    let mut slow = connect(&hub, 1, HEARTBEAT);
    let mut replica = Replica::default();
    replica.apply(&next_text(&mut slow).await);
    for n in 1..=40 {
        hub.publish(state(n), n as i64);
        tokio::task::yield_now().await;
    }
    let mut kinds = Vec::new();
    while replica.seq != Some(40) {
        kinds.push(replica.apply(&next_text(&mut slow).await));
    }
    assert_eq!(replica.entries, state(40));
    assert!(
        kinds.iter().skip(1).any(|k| k == "snapshot"),
        "no fresh snapshot after falling behind: {kinds:?}"
    );
    assert!(
        kinds.len() < 40,
        "the slow client got every delta: {kinds:?}"
    );
    assert!(hub.stats.skips.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    // Caught up, it follows deltas again.
    hub.publish(state(41), 41);
    assert_eq!(replica.apply(&next_text(&mut slow).await), "delta");
    assert_eq!(replica.entries, state(41));
}

/// A client that has received its first snapshot.
async fn synced(hub: &Arc<Hub>, heartbeat: Duration) -> (Client, Replica) {
    let mut client = connect(hub, 16, heartbeat);
    let mut replica = Replica::default();
    assert_eq!(replica.apply(&next_text(&mut client).await), "snapshot");
    (client, replica)
}

#[tokio::test]
async fn reconnects_and_resync_requests_start_from_the_latest_state() {
    let hub = Arc::new(Hub::new(16));
    hub.publish(state(1), 1);
    let (first, replica) = synced(&hub, HEARTBEAT).await;
    assert_eq!(replica.seq, Some(1));
    drop(first.to_server); // the connection drops
    first.task.await.unwrap();
    hub.publish(state(2), 2);
    hub.publish(state(3), 3);
    let mut second = connect(&hub, 16, HEARTBEAT);
    let mut replica = Replica::default();
    assert_eq!(replica.apply(&next_text(&mut second).await), "snapshot");
    assert_eq!((replica.seq, &replica.entries), (Some(3), &state(3)));
    second
        .to_server
        .send(FromClient::Text(r#"{"type":"resync"}"#.into()))
        .unwrap();
    assert_eq!(replica.apply(&next_text(&mut second).await), "snapshot");
    assert_eq!(replica.seq, Some(3));
    hub.publish(state(4), 4);
    assert_eq!(replica.apply(&next_text(&mut second).await), "delta");
    assert_eq!(replica.entries, state(4));
}

#[tokio::test]
async fn heartbeats_name_the_held_state_and_bad_messages_close_with_1008() {
    let hub = Arc::new(Hub::new(16));
    hub.publish(state(1), 1);
    let (mut c, mut replica) = synced(&hub, Duration::from_millis(50)).await;
    assert_eq!(replica.apply(&next_text(&mut c).await), "heartbeat");
    for bad in [
        FromClient::Text(r#"{"type":"subscribe","topic":"x"}"#.into()),
        FromClient::Binary,
    ] {
        let mut c = connect(&hub, 16, HEARTBEAT);
        next_text(&mut c).await;
        c.to_server.send(bad).unwrap();
        match c.from_server.recv().await {
            Some(ToClient::Close(code, reason)) => {
                assert_eq!(code, 1008);
                assert!(!reason.is_empty());
            }
            other => panic!("expected a close, got {other:?}"),
        }
        c.task.await.unwrap();
    }
    assert_eq!(
        hub.stats
            .refused_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}
