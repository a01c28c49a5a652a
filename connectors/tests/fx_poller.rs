//! Integration tests for the FX poller (`shopflow_connectors::fx_poller`).
//!
//! The poller talks real HTTP to a tiny misbehaving server started on a free
//! loopback port by each test: the server follows a script of behaviours, one
//! per accepted connection (answer with rates, an error status, garbage, hang,
//! or close without answering), so every failure path of a poll — retries,
//! backoff, time-outs, bad answers, publish failures — is checked against the
//! values it leaves in the publisher and in the metrics.

use shopflow_connectors::fx_poller::{Failure, FxPoller, FxSettings, Publish};
use shopflow_connectors::metrics::Metrics;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const POLLS: &str = "shopflow_fx_polls_total";
const IGNORED: &str = "shopflow_fx_rates_ignored_total";
const PUBLISHED: &str = "shopflow_fx_rates_published_total";

/// A Frankfurter answer with two supported currencies and one unknown one.
const RATES: &str = r#"{"amount":1.0,"base":"USD","date":"2026-11-24","rates":{"EUR":0.912345,"JPY":150.5,"XYZ":1.0}}"#;

/// What the server does with one connection.
#[derive(Clone, Debug)]
enum Behaviour {
    /// 200 with this JSON body.
    Ok(&'static str),
    /// This status with this body.
    Status(u16, &'static str),
    /// 200 with a body that is not JSON.
    Garbage(&'static [u8]),
    /// Reads the request and never answers (holds the socket 3 s, then closes).
    Hang,
    /// Reads the request and closes without answering.
    Close,
}

/// A running scripted server.
struct Server {
    /// Base URL (`http://127.0.0.1:PORT`).
    url: String,
    /// Requests whose head was read, whatever the answer.
    served: Arc<AtomicUsize>,
}

impl Server {
    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// Starts a server that follows `script`, one behaviour per connection,
/// repeating the last one when the script runs out. It lives until the test
/// process exits.
fn serve(script: Vec<Behaviour>) -> Server {
    assert!(!script.is_empty(), "a script needs at least one behaviour");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let behaviour = script[i.min(script.len() - 1)].clone();
            let counter = Arc::clone(&counter);
            // One thread per connection so a hanging one does not hold up the next.
            thread::spawn(move || answer(stream, behaviour, &counter));
        }
    });
    Server { url, served }
}

/// Reads the request head, counts it, then behaves as told.
fn answer(mut stream: TcpStream, behaviour: Behaviour, served: &AtomicUsize) {
    if !read_head(&mut stream) {
        return;
    }
    served.fetch_add(1, Ordering::SeqCst);
    match behaviour {
        Behaviour::Ok(body) => respond(&mut stream, 200, "application/json", body.as_bytes()),
        Behaviour::Status(code, body) => {
            respond(&mut stream, code, "application/json", body.as_bytes())
        }
        Behaviour::Garbage(bytes) => respond(&mut stream, 200, "application/json", bytes),
        Behaviour::Hang => thread::sleep(Duration::from_secs(3)),
        Behaviour::Close => {}
    }
}

/// Reads until the blank line ending the head; false if the client went away first.
fn read_head(stream: &mut TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

fn respond(stream: &mut TcpStream, code: u16, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {code} Scripted\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// A publisher that keeps every (key, record text) it is given.
#[derive(Debug, Default)]
struct Recorded(Vec<(String, String)>);

impl Publish for Recorded {
    fn publish(&mut self, key: &str, record: &[u8]) -> Result<(), String> {
        let text = String::from_utf8(record.to_vec()).expect("records are UTF-8");
        self.0.push((key.to_owned(), text));
        Ok(())
    }
}

/// A publisher whose broker is always down.
struct Failing;

impl Publish for Failing {
    fn publish(&mut self, _key: &str, _record: &[u8]) -> Result<(), String> {
        Err("broker unavailable".to_owned())
    }
}

fn settings(url: &str) -> FxSettings {
    FxSettings {
        url: url.to_owned(),
        interval_ms: 50,
        timeout_ms: 300,
        retries: 2,
        backoff_ms: 10,
    }
}

fn poller<P: Publish>(url: &str, publisher: P) -> (FxPoller<P>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    (
        FxPoller::new(settings(url), publisher, Arc::clone(&metrics)),
        metrics,
    )
}

fn never() -> bool {
    false
}

fn outcome(metrics: &Metrics, label: &str) -> u64 {
    metrics.get(POLLS, &[("outcome", label)])
}

fn pair(key: &str, record: &str) -> (String, String) {
    (key.to_owned(), record.to_owned())
}

#[test]
fn valid_answer_publishes_supported_rates_once_and_then_only_changes() {
    let changed = r#"{"amount":1.0,"base":"USD","date":"2026-11-24","rates":{"EUR":0.92,"JPY":150.5,"XYZ":1.0}}"#;
    let server = serve(vec![
        Behaviour::Ok(RATES),
        Behaviour::Ok(RATES),
        Behaviour::Ok(changed),
    ]);
    let (mut fx, metrics) = poller(&server.url, Recorded::default());

    assert_eq!(fx.poll(&never), Ok(2));
    let eur = r#"{"date":"2026-11-24","base":"USD","currency":"EUR","rate":0.912345}"#;
    let jpy = r#"{"date":"2026-11-24","base":"USD","currency":"JPY","rate":150.5}"#;
    assert_eq!(
        fx.publisher().0,
        vec![pair("EUR/2026-11-24", eur), pair("JPY/2026-11-24", jpy)]
    );
    assert_eq!(metrics.get(IGNORED, &[("reason", "unknown_currency")]), 1);
    assert_eq!(metrics.total(IGNORED), 1);
    assert_eq!(outcome(&metrics, "ok"), 1);
    assert_eq!(metrics.total(POLLS), 1);
    assert_eq!(metrics.get(PUBLISHED, &[]), 2);

    assert_eq!(
        fx.poll(&never),
        Ok(0),
        "an unchanged answer publishes nothing"
    );
    assert_eq!(fx.publisher().0.len(), 2);

    assert_eq!(
        fx.poll(&never),
        Ok(1),
        "only the changed EUR rate is published"
    );
    let eur_changed = r#"{"date":"2026-11-24","base":"USD","currency":"EUR","rate":0.92}"#;
    assert_eq!(fx.publisher().0[2], pair("EUR/2026-11-24", eur_changed));
    assert_eq!(fx.publisher().0.len(), 3);
    assert_eq!(outcome(&metrics, "ok"), 3);
    assert_eq!(metrics.get(PUBLISHED, &[]), 3);
    assert_eq!(server.served(), 3);
}

#[test]
fn server_errors_are_retried_until_an_answer() {
    let error = r#"{"message":"internal error"}"#;
    let server = serve(vec![
        Behaviour::Status(500, error),
        Behaviour::Status(500, error),
        Behaviour::Ok(RATES),
    ]);
    let (mut fx, metrics) = poller(&server.url, Recorded::default());

    assert_eq!(fx.poll(&never), Ok(2));
    assert_eq!(server.served(), 3);
    assert_eq!(outcome(&metrics, "http_error"), 2);
    assert_eq!(outcome(&metrics, "ok"), 1);
    assert_eq!(metrics.total(POLLS), 3);
    assert_eq!(fx.publisher().0.len(), 2);
}

#[test]
fn error_status_message_names_the_url_status_and_body() {
    let server = serve(vec![Behaviour::Status(
        422,
        r#"{"message":"base must be USD"}"#,
    )]);
    let (mut fx, _metrics) = poller(&server.url, Recorded::default());

    let Err(Failure::Http(message)) = fx.attempt() else {
        panic!("a 422 answer is an HTTP failure");
    };
    assert!(
        message.contains(&format!("{}/latest?base=USD", server.url)),
        "{message}"
    );
    assert!(message.contains("HTTP 422"), "{message}");
    assert!(message.contains("base must be USD"), "{message}");
}

#[test]
fn hanging_server_times_out_on_every_attempt_without_hanging_the_poll() {
    let server = serve(vec![Behaviour::Hang]);
    let (mut fx, metrics) = poller(&server.url, Recorded::default());

    let began = Instant::now();
    assert_eq!(fx.poll(&never), Err(Failure::Timeout));
    let took = began.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "3 attempts of 300 ms took {took:?}"
    );
    assert_eq!(outcome(&metrics, "timeout"), 3);
    assert_eq!(metrics.total(POLLS), 3);
    assert_eq!(server.served(), 3);
    assert!(fx.publisher().0.is_empty());
}

#[test]
fn garbage_body_is_a_bad_response() {
    let server = serve(vec![Behaviour::Garbage(b"<html>rates moved</html>")]);
    let (mut fx, metrics) = poller(&server.url, Recorded::default());

    let failure = fx.poll(&never).expect_err("garbage is not rates");
    let Failure::BadResponse(message) = failure else {
        panic!("expected a bad response, got {failure:?}");
    };
    assert!(message.contains("not a rates document"), "{message}");
    assert_eq!(outcome(&metrics, "bad_response"), 3);
    assert_eq!(metrics.total(POLLS), 3);
    assert_eq!(metrics.total(PUBLISHED), 0);
    assert!(fx.publisher().0.is_empty());
}

#[test]
fn rates_against_another_base_are_a_bad_response() {
    let server = serve(vec![Behaviour::Ok(
        r#"{"base":"EUR","date":"x","rates":{}}"#,
    )]);
    let (mut fx, metrics) = poller(&server.url, Recorded::default());

    let failure = fx.poll(&never).expect_err("a EUR base is not accepted");
    let Failure::BadResponse(message) = failure else {
        panic!("expected a bad response, got {failure:?}");
    };
    assert!(message.contains("base is EUR, expected USD"), "{message}");
    assert_eq!(outcome(&metrics, "bad_response"), 3);
    assert_eq!(metrics.total(POLLS), 3);
    assert!(fx.publisher().0.is_empty());
}

#[test]
fn refused_connection_is_an_http_failure_naming_the_url() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.local_addr().expect("local address").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let (mut fx, metrics) = poller(&url, Recorded::default());

    let failure = fx.poll(&never).expect_err("nobody listens");
    let Failure::Http(message) = failure else {
        panic!("expected an HTTP failure, got {failure:?}");
    };
    assert!(
        message.contains(&format!("{url}/latest?base=USD")),
        "{message}"
    );
    assert_eq!(outcome(&metrics, "http_error"), 3);
    assert_eq!(metrics.total(POLLS), 3);
}

#[test]
fn connection_closed_without_answer_is_an_http_failure() {
    let server = serve(vec![Behaviour::Close]);
    let (mut fx, metrics) = poller(&server.url, Recorded::default());

    let failure = fx.poll(&never).expect_err("no answer");
    assert!(matches!(failure, Failure::Http(_)), "got {failure:?}");
    assert_eq!(outcome(&metrics, "http_error"), 3);
    assert_eq!(server.served(), 3);
}

#[test]
fn run_polls_on_schedule_and_stops_promptly() {
    let server = serve(vec![Behaviour::Ok(RATES)]);
    let (fx, metrics) = poller(&server.url, Recorded::default());
    let stop = Arc::new(AtomicBool::new(false));
    let setter = Arc::clone(&stop);
    let served = Arc::clone(&server.served);
    // Stop once two polls were answered (a condition, with a deadline).
    let stopper = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while served.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            thread::yield_now();
        }
        setter.store(true, Ordering::SeqCst);
    });

    let began = Instant::now();
    fx.run(&|| stop.load(Ordering::SeqCst));
    let took = began.elapsed();
    stopper.join().expect("stopper thread");

    assert!(took < Duration::from_secs(2), "run took {took:?} to stop");
    assert!(
        took >= Duration::from_millis(50),
        "two polls 50 ms apart cannot take {took:?}"
    );
    let ok = outcome(&metrics, "ok");
    assert!(ok >= 2, "polled {ok} times before the stop");
    assert_eq!(metrics.total(POLLS), ok, "every poll succeeded");
    assert_eq!(server.served() as u64, ok);
    assert_eq!(
        metrics.get(PUBLISHED, &[]),
        2,
        "later polls found nothing new"
    );
}

#[test]
fn failing_publisher_is_a_publish_failure() {
    let server = serve(vec![Behaviour::Ok(RATES)]);
    let (mut fx, metrics) = poller(&server.url, Failing);

    let failure = fx.poll(&never).expect_err("the publisher fails");
    assert_eq!(failure, Failure::Publish("broker unavailable".to_owned()));
    assert_eq!(outcome(&metrics, "publish_error"), 3);
    assert_eq!(metrics.total(POLLS), 3);
    assert_eq!(metrics.total(PUBLISHED), 0);
    assert_eq!(server.served(), 3);
}
