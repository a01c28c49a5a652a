//! One client's websocket session, written over a generic `Stream` of frames
//! from the client and a `Sink` of frames to it, so that tests drive it
//! without a socket.
//!
//! The session subscribes to the hub's ring, sends the snapshot, then every
//! delta after it in order. A client that fell behind the ring gets a fresh
//! snapshot instead of the deltas it missed. A heartbeat goes out when
//! nothing else did for a while. The only message a client may send is
//! `{"type": "resync"}`, answered at most once a second; anything else
//! closes the session with code 1008. A client that does not take a frame
//! within [`SEND_TIMEOUT`] is dropped, and when the hub closes every session
//! ends with code 1001.

use crate::hub::{Hub, heartbeat_text};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// Largest message a client may send, in bytes.
pub const MAX_CLIENT_MESSAGE: usize = 256;

/// Websocket close code for a message the protocol does not allow.
pub const POLICY_VIOLATION: u16 = 1008;

/// Websocket close code for a server going away.
pub const GOING_AWAY: u16 = 1001;

/// How long a client may take to accept one frame before it is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The least time between two snapshots a client asks for.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(1);

/// A frame from the client, as the session sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromClient {
    /// A text message.
    Text(String),
    /// A binary message (not allowed).
    Binary,
    /// A ping or pong (the websocket layer answers pings).
    Control,
    /// The client closed, or its connection failed.
    Close,
}

/// A frame to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToClient {
    /// A protocol message (JSON text).
    Text(Arc<str>),
    /// Close with a code and a reason.
    Close(u16, String),
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Why a client message is refused, or `None` for a valid resync request.
fn refusal(text: &str) -> Option<String> {
    if text.len() > MAX_CLIENT_MESSAGE {
        return Some(format!(
            "message of {} bytes; the limit is {MAX_CLIENT_MESSAGE}",
            text.len()
        ));
    }
    let message = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text);
    match message {
        Ok(m) if m.len() == 1 && m.get("type").is_some_and(|t| t == "resync") => None,
        _ => Some(r#"the only message a client may send is {"type":"resync"}"#.into()),
    }
}

/// Resolves when the hub closes (or is gone).
async fn until_closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|closed| *closed).await;
}

/// Runs one session until the client leaves, the hub closes, or a send fails.
pub async fn run<In, Out>(hub: Arc<Hub>, mut incoming: In, mut outgoing: Out, heartbeat: Duration)
where
    In: Stream<Item = FromClient> + Unpin,
    Out: Sink<ToClient> + Unpin,
{
    hub.stats.clients.fetch_add(1, Ordering::Relaxed);
    hub.stats.connections.fetch_add(1, Ordering::Relaxed);
    let mut ring = hub.subscribe();
    let mut closing = hub.closed();
    let mut held = 0;
    let mut send_snapshot = true;
    let mut resync_asked = false;
    let mut last_sent = Instant::now();
    let mut last_snapshot = Instant::now();
    loop {
        let text: Arc<str> = if std::mem::take(&mut send_snapshot) {
            let (seq, text) = hub.snapshot();
            held = seq;
            last_snapshot = Instant::now();
            text
        } else {
            tokio::select! {
                () = until_closed(&mut closing) => {
                    let bye = ToClient::Close(GOING_AWAY, "the server is shutting down".into());
                    let _ = tokio::time::timeout(SEND_TIMEOUT, outgoing.send(bye)).await;
                    break;
                }
                frame = incoming.next() => match frame {
                    None | Some(FromClient::Close) => break,
                    Some(FromClient::Control) => continue,
                    Some(FromClient::Text(t)) if refusal(&t).is_none() => {
                        resync_asked = true;
                        continue;
                    }
                    Some(other) => {
                        let reason = match other {
                            FromClient::Text(t) => refusal(&t).unwrap_or_default(),
                            _ => "binary messages are not part of the protocol".into(),
                        };
                        hub.stats.refused_messages.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%reason, "closing a dashboard client");
                        let bye = ToClient::Close(POLICY_VIOLATION, reason);
                        let _ = tokio::time::timeout(SEND_TIMEOUT, outgoing.send(bye)).await;
                        break;
                    }
                },
                () = tokio::time::sleep_until(last_snapshot + RESYNC_INTERVAL), if resync_asked => {
                    resync_asked = false;
                    send_snapshot = true;
                    continue;
                }
                published = ring.recv() => match published {
                    Ok(p) if p.seq <= held => continue,
                    Ok(p) if p.seq == held + 1 => {
                        held = p.seq;
                        p.text.clone()
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        hub.stats.skips.fetch_add(1, Ordering::Relaxed);
                        send_snapshot = true;
                        continue;
                    }
                    Err(RecvError::Closed) => break,
                },
                () = tokio::time::sleep_until(last_sent + heartbeat) => {
                    heartbeat_text(held, wall_ms()).into()
                }
            }
        };
        hub.stats.sent(text.len());
        let sent = tokio::time::timeout(SEND_TIMEOUT, outgoing.send(ToClient::Text(text))).await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break, // gone
            Err(_) => {
                hub.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("dropping a dashboard client that does not read");
                break;
            }
        }
        last_sent = Instant::now();
    }
    hub.stats.clients.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn only_a_small_resync_request_is_accepted() {
        assert!(refusal(r#"{"type":"resync"}"#).is_none());
        assert!(refusal(r#"{"type":"resync","x":1}"#).is_some());
        assert!(refusal(r#"{"type":"other"}"#).is_some());
        assert!(refusal("not json").is_some());
        let big = format!(r#"{{"type":"resync"{}}}"#, " ".repeat(300));
        assert!(refusal(&big).unwrap().contains("limit is 256"));
    }
}
