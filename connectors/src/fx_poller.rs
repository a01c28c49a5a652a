//! The FX poller: reads a rates API on an interval and publishes new or
//! changed rates to `fx_rates`.
//!
//! The API is the Frankfurter format (`GET {url}/latest?base=USD`, see
//! `docs/fx-api.md`): `shopflow fx-server` in tests and demos, a real
//! provider in production. Each poll is tried up to `1 + retries` times with
//! a per-request timeout and exponential backoff. Every rate is turned into
//! an fx record and checked by the same validator as any other input, with
//! its number text kept exactly. Failures (HTTP errors, time-outs, garbage)
//! are logged and counted in `shopflow_fx_polls_total{outcome}`; they never
//! stop the pipeline. Currencies shopflow does not support are ignored and
//! counted in `shopflow_fx_rates_ignored_total`.

use crate::metrics::Metrics;
use serde::Deserialize;
use serde_json::value::RawValue;
use shopflow_model::EventKind;
use shopflow_model::validate::validate;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Poller knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FxSettings {
    /// Base URL of the rates API (`http://127.0.0.1:8081`); empty disables the poller.
    pub url: String,
    /// Time between polls (ms).
    pub interval_ms: u64,
    /// Time-out of one request, connection included (ms).
    pub timeout_ms: u64,
    /// Extra attempts after a failed one.
    pub retries: u32,
    /// Wait before the first retry (ms); doubled for each further one, at most 60 s.
    pub backoff_ms: u64,
}

impl Default for FxSettings {
    fn default() -> Self {
        FxSettings {
            url: String::new(),
            interval_ms: 60_000,
            timeout_ms: 5_000,
            retries: 3,
            backoff_ms: 500,
        }
    }
}

/// Where the poller publishes fx records.
pub trait Publish {
    /// Publishes one fx record under `key` (`CUR/YYYY-MM-DD`).
    fn publish(&mut self, key: &str, record: &[u8]) -> Result<(), String>;
}

/// Why one attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer in time.
    Timeout,
    /// Connection refused or an HTTP error status.
    Http(String),
    /// An answer that is not the expected JSON.
    BadResponse(String),
    /// The rates could not be published.
    Publish(String),
}

impl Failure {
    /// The `outcome` label in the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Http(_) => "http_error",
            Failure::BadResponse(_) => "bad_response",
            Failure::Publish(_) => "publish_error",
        }
    }
}

#[derive(Deserialize)]
struct Latest<'a> {
    base: String,
    date: String,
    #[serde(borrow)]
    rates: BTreeMap<String, &'a RawValue>,
}

/// Polls the API and publishes changes.
pub struct FxPoller<P> {
    settings: FxSettings,
    agent: ureq::Agent,
    publisher: P,
    metrics: Arc<Metrics>,
    published: HashMap<String, String>,
}

impl<P: Publish> FxPoller<P> {
    /// A poller; nothing is fetched until [`FxPoller::poll`] or [`FxPoller::run`].
    pub fn new(settings: FxSettings, publisher: P, metrics: Arc<Metrics>) -> FxPoller<P> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(settings.timeout_ms)))
            .http_status_as_error(false)
            .build()
            .into();
        FxPoller {
            settings,
            agent,
            publisher,
            metrics,
            published: HashMap::new(),
        }
    }

    /// The publisher (tests look inside).
    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// One attempt: fetch, check, publish what changed. Returns how many
    /// rates were published.
    pub fn attempt(&mut self) -> Result<usize, Failure> {
        let url = format!(
            "{}/latest?base=USD",
            self.settings.url.trim_end_matches('/')
        );
        let mut response = self.agent.get(&url).call().map_err(|e| match e {
            ureq::Error::Timeout(_) => Failure::Timeout,
            e => Failure::Http(format!("{url}: {e}")),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| match e {
                ureq::Error::Timeout(_) => Failure::Timeout,
                e => Failure::BadResponse(format!("{url}: unreadable body: {e}")),
            })?;
        if status != 200 {
            let head: String = body.chars().take(200).collect();
            return Err(Failure::Http(format!("{url}: HTTP {status}: {head}")));
        }
        let latest: Latest<'_> = serde_json::from_str(&body).map_err(|e| {
            Failure::BadResponse(format!(
                "{url}: not a rates document ({e}); expected {{\"base\":\"USD\",\"date\":…,\"rates\":{{…}}}}"
            ))
        })?;
        if latest.base != "USD" {
            return Err(Failure::BadResponse(format!(
                "{url}: base is {}, expected USD",
                latest.base
            )));
        }
        let mut published = 0;
        for (currency, rate) in &latest.rates {
            let record = format!(
                r#"{{"date":{},"base":"USD","currency":{},"rate":{}}}"#,
                serde_json::Value::from(latest.date.as_str()),
                serde_json::Value::from(currency.as_str()),
                rate.get()
            );
            if let Err(e) = validate(EventKind::Fx, record.as_bytes()) {
                let reason = e.reason.code();
                self.metrics
                    .add("shopflow_fx_rates_ignored_total", &[("reason", reason)], 1);
                tracing::debug!(currency, reason, message = %e.message, "FX rate ignored");
                continue;
            }
            let key = format!("{currency}/{}", latest.date);
            if self.published.get(&key).is_some_and(|r| r == rate.get()) {
                continue;
            }
            self.publisher
                .publish(&key, record.as_bytes())
                .map_err(Failure::Publish)?;
            self.published.insert(key, rate.get().to_owned());
            // Counted one by one, so rates published before a failure count.
            self.metrics
                .add("shopflow_fx_rates_published_total", &[], 1);
            published += 1;
        }
        Ok(published)
    }

    /// One poll with retries and backoff; `stop` cuts waiting short. Every
    /// attempt's outcome is counted.
    pub fn poll(&mut self, stop: &dyn Fn() -> bool) -> Result<usize, Failure> {
        let mut wait = Duration::from_millis(self.settings.backoff_ms);
        let mut attempt = 0;
        loop {
            match self.attempt() {
                Ok(n) => {
                    self.metrics
                        .add("shopflow_fx_polls_total", &[("outcome", "ok")], 1);
                    return Ok(n);
                }
                Err(failure) => {
                    self.metrics.add(
                        "shopflow_fx_polls_total",
                        &[("outcome", failure.label())],
                        1,
                    );
                    tracing::warn!(?failure, attempt, "FX poll failed");
                    if attempt >= self.settings.retries || !sleep_unless(wait, stop) {
                        return Err(failure);
                    }
                    attempt += 1;
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    /// Polls every interval until `stop()`; a failed poll is logged and the
    /// next one happens on schedule.
    pub fn run(mut self, stop: &dyn Fn() -> bool) {
        while !stop() {
            let began = Instant::now();
            if let Err(failure) = self.poll(stop) {
                tracing::error!(?failure, url = %self.settings.url, "FX rates not updated this interval; check the rates API");
            }
            let interval = Duration::from_millis(self.settings.interval_ms);
            if !sleep_unless(interval.saturating_sub(began.elapsed()), stop) {
                break;
            }
        }
    }
}

/// Sleeps for `total` in short steps; false if `stop()` became true.
fn sleep_unless(total: Duration, stop: &dyn Fn() -> bool) -> bool {
    let end = Instant::now() + total;
    while Instant::now() < end {
        if stop() {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    !stop()
}
