//! The routes, driven through warp's test client (no network): the page and
//! its assets, health and metrics, the token on `/api/*` and `/ws`, and a
//! websocket that receives the snapshot and then a delta.

use serde_json::{Value, json};
use shopflow_web::hub::Entries;
use shopflow_web::{Hub, Options, Token, routes};
use std::sync::Arc;
use std::time::Duration;

fn setup() -> Arc<Hub> {
    let hub = Arc::new(Hub::new(16));
    let mut e = Entries::new();
    e.insert("meta".into(), json!({"title": "test", "upto": 60_000}));
    hub.publish(e, 1);
    hub
}

fn options(token: Option<&str>) -> Options {
    Options {
        token: token.map(|t| Token(t.into())),
        max_clients: 2,
        heartbeat: Duration::from_secs(3600),
        metrics: Arc::new(|| "shopflow_test 1\n".to_owned()),
    }
}

/// Whether a websocket handshake on `path` is refused.
async fn refused<F>(api: &F, path: &str) -> bool
where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply + Send,
{
    warp::test::ws()
        .path(path)
        .handshake(api.clone())
        .await
        .is_err()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_safe_headers() {
    let api = routes(setup(), options(None));
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let res = warp::test::request().path(path).reply(&api).await;
        assert_eq!(res.status(), 200, "{path}");
        let ct = res.headers()["content-type"].to_str().unwrap();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert!(res.headers().contains_key("content-security-policy"));
    }
    let page = warp::test::request().path("/").reply(&api).await;
    let html = String::from_utf8_lossy(page.body());
    assert!(html.contains("app.js") && html.contains("style.css"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must work offline"
    );
    let res = warp::test::request().path("/healthz").reply(&api).await;
    assert_eq!(
        (res.status().as_u16(), res.body().as_ref()),
        (200, &b"ok\n"[..])
    );
    let res = warp::test::request().path("/metrics").reply(&api).await;
    assert_eq!(res.body().as_ref(), b"shopflow_test 1\n");
    let res = warp::test::request().path("/nope").reply(&api).await;
    assert_eq!(res.status(), 404);
    let res = warp::test::request()
        .method("POST")
        .path("/api/snapshot")
        .reply(&api)
        .await;
    assert!(res.status().is_client_error());
}

#[tokio::test]
async fn the_snapshot_and_the_websocket_need_the_token_when_one_is_set() {
    let hub = setup();
    let api = routes(hub.clone(), options(Some("s3cret")));
    let res = warp::test::request()
        .path("/api/snapshot")
        .reply(&api)
        .await;
    assert_eq!(res.status(), 401);
    let body: Value = serde_json::from_slice(res.body()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("Bearer"));
    let res = warp::test::request()
        .path("/api/snapshot")
        .header("authorization", "Bearer wrong")
        .reply(&api)
        .await;
    assert_eq!(res.status(), 401);
    for req in [
        warp::test::request()
            .path("/api/snapshot")
            .header("authorization", "Bearer s3cret"),
        warp::test::request().path("/api/snapshot?token=s3cret"),
    ] {
        let res = req.reply(&api).await;
        assert_eq!(res.status(), 200);
        let v: Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(v["type"], "snapshot");
        assert_eq!(v["entries"]["meta"]["title"], "test");
    }
    assert!(refused(&api, "/ws").await);
    assert!(
        warp::test::ws()
            .path("/ws?token=nope")
            .handshake(api.clone())
            .await
            .is_err()
    );
    let mut ws = warp::test::ws()
        .path("/ws?token=s3cret")
        .handshake(api)
        .await
        .expect("handshake with the token");
    let first: Value = serde_json::from_str(ws.recv().await.unwrap().to_str().unwrap()).unwrap();
    assert_eq!(
        (first["type"].as_str(), first["seq"].as_u64()),
        (Some("snapshot"), Some(1))
    );
    let mut e = Entries::new();
    e.insert("meta".into(), json!({"title": "test", "upto": 120_000}));
    hub.publish(e, 2);
    let next: Value = serde_json::from_str(ws.recv().await.unwrap().to_str().unwrap()).unwrap();
    assert_eq!(
        next,
        json!({"type": "delta", "seq": 2, "at": 2, "set": {"meta": {"title": "test", "upto": 120_000}}, "del": []})
    );
    ws.send_text(r#"{"type":"hello"}"#).await;
    // The session closes: a close frame, or the end of the stream.
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.recv())
        .await
        .expect("the server closes after a message outside the protocol");
    assert!(closed.is_err() || closed.unwrap().is_close());
    assert_eq!(
        hub.stats
            .refused_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert!(
        hub.stats
            .unauthorized
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 4
    );
}

#[tokio::test]
async fn clients_beyond_the_limit_are_refused_and_a_closing_hub_says_goodbye() {
    let hub = setup();
    let api = routes(hub.clone(), options(None));
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut ws = warp::test::ws()
            .path("/ws")
            .handshake(api.clone())
            .await
            .unwrap();
        ws.recv().await.unwrap(); // the snapshot: the session runs
        open.push(ws);
    }
    assert!(refused(&api, "/ws").await);
    assert_eq!(hub.stats.full.load(std::sync::atomic::Ordering::Relaxed), 1);
    hub.close();
    for ws in &mut open {
        let bye = tokio::time::timeout(Duration::from_secs(5), ws.recv())
            .await
            .expect("a closing hub ends every session");
        assert!(bye.is_err() || bye.unwrap().is_close());
    }
}
