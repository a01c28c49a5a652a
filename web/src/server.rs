//! The warp routes: the embedded page, `/api/snapshot`, `/ws`, `/metrics`
//! and `/healthz`, built by [`routes`] so tests drive them without a network.

use crate::hub::Hub;
use crate::session::{self, FromClient, ToClient};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

/// Longest token accepted for comparison, in bytes.
pub const MAX_TOKEN: usize = 256;

/// Renders the Prometheus text for `/metrics`.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// A bearer token; its debug form never shows it.
#[derive(Clone)]
pub struct Token(pub Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// How the server behaves.
#[derive(Clone)]
pub struct Options {
    /// The bearer token `/api/*` and `/ws` require, if any.
    pub token: Option<Token>,
    /// Most websocket clients at once; more are refused with 503.
    pub max_clients: u64,
    /// Heartbeat interval on quiet websockets.
    pub heartbeat: Duration,
    /// The `/metrics` body.
    pub metrics: RenderMetrics,
}

#[derive(Debug)]
struct Unauthorized;
impl warp::reject::Reject for Unauthorized {}

#[derive(Debug)]
struct Full;
impl warp::reject::Reject for Full {}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Compares in time that depends only on the longer length, never on
/// where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Whether a request's credentials satisfy `token`: `Authorization: Bearer
/// TOKEN` (scheme in any case) or `?token=TOKEN`.
fn allowed(token: Option<&str>, header: Option<&str>, query: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let bearer = header
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let offered = bearer.or(query).filter(|t| t.len() <= MAX_TOKEN);
    offered.is_some_and(|t| same(t.as_bytes(), token.as_bytes()))
}

fn authorized(
    token: Option<Token>,
    hub: Arc<Hub>,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    let query = warp::query::<TokenQuery>()
        .or(warp::any().map(|| TokenQuery { token: None }))
        .unify();
    warp::header::optional::<String>("authorization")
        .and(query)
        .and_then(move |header: Option<String>, q: TokenQuery| {
            let expected = token.as_ref().map(|t| t.0.as_ref());
            let ok = allowed(expected, header.as_deref(), q.token.as_deref());
            if !ok {
                hub.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
            }
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(warp::reject::custom(Unauthorized))
                }
            }
        })
        .untuple_one()
}

fn asset(body: &'static str, content_type: &'static str) -> impl Reply {
    let reply = warp::reply::with_header(body, "content-type", content_type);
    let reply = warp::reply::with_header(reply, "x-content-type-options", "nosniff");
    let reply = warp::reply::with_header(reply, "cache-control", "no-cache");
    warp::reply::with_header(
        reply,
        "content-security-policy",
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    )
}

/// Every route of the dashboard server.
pub fn routes(
    hub: Arc<Hub>,
    options: Options,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let page = warp::path::end().map(|| asset(INDEX, "text/html; charset=utf-8"));
    let js = warp::path("app.js")
        .and(warp::path::end())
        .map(|| asset(APP_JS, "text/javascript; charset=utf-8"));
    let css = warp::path("style.css")
        .and(warp::path::end())
        .map(|| asset(STYLE, "text/css; charset=utf-8"));
    let health = warp::path("healthz").and(warp::path::end()).map(|| "ok\n");
    let render = options.metrics.clone();
    let metrics = warp::path("metrics").and(warp::path::end()).map(move || {
        warp::reply::with_header(render(), "content-type", "text/plain; version=0.0.4")
    });
    let auth = authorized(options.token.clone(), hub.clone());
    let snap_hub = hub.clone();
    let snapshot = warp::path!("api" / "snapshot")
        .and(auth.clone())
        .map(move || {
            let (_, text) = snap_hub.snapshot();
            let reply =
                warp::reply::with_header(text.to_string(), "content-type", "application/json");
            warp::reply::with_header(reply, "cache-control", "no-store")
        });
    let heartbeat = options.heartbeat;
    let (room_hub, max_clients) = (hub.clone(), options.max_clients);
    let room = warp::any()
        .and_then(move || {
            let full = room_hub.stats.clients.load(Ordering::Relaxed) >= max_clients;
            if full {
                room_hub.stats.full.fetch_add(1, Ordering::Relaxed);
            }
            async move {
                if full {
                    Err(warp::reject::custom(Full))
                } else {
                    Ok(())
                }
            }
        })
        .untuple_one();
    let ws = warp::path("ws")
        .and(warp::path::end())
        .and(auth)
        .and(room)
        .and(warp::ws())
        .map(move |ws: warp::ws::Ws| {
            let hub = hub.clone();
            ws.max_message_size(session::MAX_CLIENT_MESSAGE * 4)
                .max_frame_size(session::MAX_CLIENT_MESSAGE * 4)
                .on_upgrade(move |socket| serve_socket(hub, socket, heartbeat))
        });
    warp::get()
        .and(
            page.or(js)
                .or(css)
                .or(health)
                .or(metrics)
                .or(snapshot)
                .or(ws),
        )
        .recover(refused)
}

async fn refused(r: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (status, message) = if r.find::<Unauthorized>().is_some() {
        (
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send it as 'Authorization: Bearer TOKEN' or '?token=TOKEN' (the page takes it from its address: http://HOST/#token=TOKEN)",
        )
    } else if r.find::<Full>().is_some() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many dashboard clients: try again later, or ask the operator to raise the limit",
        )
    } else if r.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "no such page: try / for the dashboard",
        )
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served: the dashboard is read-only",
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            "bad request: expected a websocket upgrade on /ws or a plain GET",
        )
    };
    let body = warp::reply::json(&serde_json::json!({ "error": message }));
    Ok(warp::reply::with_status(body, status).into_response())
}

async fn serve_socket(hub: Arc<Hub>, socket: warp::ws::WebSocket, heartbeat: Duration) {
    let (tx, rx) = socket.split();
    let incoming = rx.map(|frame| match frame {
        Ok(m) if m.is_text() => FromClient::Text(m.to_str().unwrap_or_default().to_owned()),
        Ok(m) if m.is_binary() => FromClient::Binary,
        Ok(m) if m.is_close() => FromClient::Close,
        Ok(_) => FromClient::Control,
        Err(_) => FromClient::Close,
    });
    let outgoing = tx.with(|m: ToClient| async move {
        Ok::<_, warp::Error>(match m {
            ToClient::Text(t) => warp::ws::Message::text(t.to_string()),
            ToClient::Close(code, reason) => warp::ws::Message::close_with(code, reason),
        })
    });
    session::run(hub, incoming, Box::pin(outgoing), heartbeat).await;
}

/// Binds `listen` and serves the dashboard on `rt` until the hub closes;
/// returns the bound address.
pub fn start(
    rt: &tokio::runtime::Runtime,
    listen: SocketAddr,
    hub: Arc<Hub>,
    options: Options,
) -> std::io::Result<SocketAddr> {
    let listener = rt.block_on(tokio::net::TcpListener::bind(listen))?;
    let bound = listener.local_addr()?;
    let mut closed = hub.closed();
    let server = warp::serve(routes(hub, options))
        .incoming(listener)
        .graceful(async move {
            let _ = closed.wait_for(|c| *c).await;
        });
    rt.spawn(server.run());
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn tokens_are_checked_from_the_header_or_the_query() {
        assert!(allowed(None, None, None));
        assert!(allowed(Some("s3cret"), Some("Bearer s3cret"), None));
        assert!(allowed(Some("s3cret"), None, Some("s3cret")));
        assert!(!allowed(Some("s3cret"), None, None));
        assert!(!allowed(Some("s3cret"), Some("Bearer s3cre"), None));
        assert!(!allowed(Some("s3cret"), Some("s3cret"), None));
        assert!(allowed(Some("s3cret"), Some("bearer s3cret"), None));
        assert!(!allowed(Some("s3cret"), Some("Basic s3cret"), None));
        assert!(!allowed(Some("s3cret"), None, Some("s3cret!")));
        let long = "x".repeat(300);
        assert!(!allowed(Some(&long), None, Some(&long)));
    }
}
