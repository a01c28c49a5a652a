//! Operational counters, gauges and histograms, rendered in the Prometheus
//! text format.
//!
//! Every metric is declared once in [`DEFINITIONS`] with its help text (the
//! table in `docs/metrics.md` adds labels and units); updating an undeclared
//! name panics in debug builds, so the list cannot drift from the code. Units follow
//! Prometheus's conventions (seconds, bytes, base units in the name), which
//! `promtool check metrics` enforces on `/metrics`.

mod histogram;
mod process;

use histogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// How a metric is kept and rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Set to the current value.
    Gauge,
    /// A gauge in seconds, set in milliseconds (rendered with three decimals).
    Seconds,
    /// Durations observed one at a time, counted in fixed buckets (seconds).
    Histogram,
    /// A gauge read from the build or the process at each scrape.
    Scraped,
}

/// Every metric: name, kind, help.
pub const DEFINITIONS: &[(&str, Kind, &str)] = &[
    (
        "shopflow_lake_records_total",
        Kind::Counter,
        "Messages written to the raw layer of the lake, by topic.",
    ),
    (
        "shopflow_lake_objects_total",
        Kind::Counter,
        "Objects created in the lake, by operation.",
    ),
    (
        "shopflow_lake_bytes_total",
        Kind::Counter,
        "Bytes of the objects created in the lake.",
    ),
    (
        "shopflow_lake_retries_total",
        Kind::Counter,
        "Lake storage calls retried after a failure, by operation.",
    ),
    (
        "shopflow_lake_errors_total",
        Kind::Counter,
        "Lake storage calls that failed after every retry, by operation.",
    ),
    (
        "shopflow_lake_flush_errors_total",
        Kind::Counter,
        "Raw flushes that failed; the partition stops reading and retries every second.",
    ),
    (
        "shopflow_lake_conflicts_total",
        Kind::Counter,
        "Raw files found already written by an earlier run with other bytes (kept as they are).",
    ),
    (
        "shopflow_recovered_total",
        Kind::Counter,
        "Messages fed again from the lake at start-up to rebuild the dataflow state.",
    ),
    (
        "shopflow_messages_total",
        Kind::Counter,
        "Kafka messages consumed, by topic.",
    ),
    (
        "shopflow_events_total",
        Kind::Counter,
        "Events offered to the dataflow, by admission (on_time, late, too_late).",
    ),
    (
        "shopflow_invalid_total",
        Kind::Counter,
        "Messages that failed validation, by topic and reason code; each one is in dead_letters.",
    ),
    (
        "shopflow_dead_letters_total",
        Kind::Counter,
        "Records delivered to the dead_letters topic.",
    ),
    (
        "shopflow_dead_letter_errors_total",
        Kind::Counter,
        "Dead letters that could not be queued (the message is read again and retried) or that the broker refused for good (no offset passes them).",
    ),
    (
        "shopflow_kafka_errors_total",
        Kind::Counter,
        "Kafka client errors seen while consuming (the client reconnects by itself).",
    ),
    (
        "shopflow_partition_pauses_total",
        Kind::Counter,
        "Times a worker paused its partitions because the dataflow fell behind.",
    ),
    (
        "shopflow_offset_commits_total",
        Kind::Counter,
        "Offset commits to the consumer group after results became durable.",
    ),
    (
        "shopflow_offset_commit_errors_total",
        Kind::Counter,
        "Failed offset commits (retried at the next durable time).",
    ),
    (
        "shopflow_warehouse_commits_total",
        Kind::Counter,
        "Warehouse transactions committed (each holds one or more completed steps).",
    ),
    (
        "shopflow_warehouse_rows_total",
        Kind::Counter,
        "Rows written to the warehouse, by table (staged rows; an upsert counts once per commit).",
    ),
    (
        "shopflow_warehouse_commit_errors_total",
        Kind::Counter,
        "Warehouse transactions that failed: every failed attempt (a transient failure is retried with backoff, a permanent one stops the pipeline).",
    ),
    (
        "shopflow_warehouse_commit_seconds",
        Kind::Histogram,
        "Time to make one completed step durable in the warehouse: the transaction with its retries.",
    ),
    (
        "shopflow_warehouse_delay_seconds",
        Kind::Histogram,
        "The pipeline's own delay to the warehouse: from the moment the watermark allowed a step to complete to the commit that holds it.",
    ),
    (
        "shopflow_dashboard_delay_seconds",
        Kind::Histogram,
        "The pipeline's own delay to the dashboard: from the moment the watermark allowed a step to complete to its state being published to the websocket clients.",
    ),
    (
        "shopflow_lake_flush_seconds",
        Kind::Histogram,
        "Time to write one partition's buffered messages to the raw layer of the lake (flushes that succeeded).",
    ),
    (
        "shopflow_lake_curated_until_seconds",
        Kind::Seconds,
        "End of the latest UTC day whose curated layer, _SUCCESS marker included, this process wrote or found written (seconds since the epoch).",
    ),
    (
        "shopflow_kafka_consumer_lag",
        Kind::Gauge,
        "Messages of a partition after the consumer group's committed offset (not yet read, or read but not yet durable), by topic and partition; from the Kafka client's statistics every 5 s.",
    ),
    (
        "shopflow_frontier_seconds",
        Kind::Seconds,
        "Event time (seconds since the epoch) before which every result is complete.",
    ),
    (
        "shopflow_frontier_lag_seconds",
        Kind::Seconds,
        "Wall-clock time minus the completed frontier (seconds).",
    ),
    (
        "shopflow_live_duplicates",
        Kind::Gauge,
        "Extra copies of events received, over the live state (about the last 70 minutes of event time).",
    ),
    (
        "shopflow_live_conflicts",
        Kind::Gauge,
        "Event ids received with more than one distinct payload, over the live state.",
    ),
    (
        "shopflow_fx_polls_total",
        Kind::Counter,
        "FX API polls, by outcome (ok, http_error, timeout, bad_response, publish_error).",
    ),
    (
        "shopflow_fx_rates_ignored_total",
        Kind::Counter,
        "FX rates in an API answer that are not fx records shopflow accepts, by reason code (unsupported currencies are unknown_currency).",
    ),
    (
        "shopflow_fx_rates_published_total",
        Kind::Counter,
        "FX rates published to fx_rates (new or changed ones only).",
    ),
    (
        "shopflow_dashboard_clients",
        Kind::Gauge,
        "Dashboard websocket clients connected now.",
    ),
    (
        "shopflow_dashboard_connections_total",
        Kind::Counter,
        "Dashboard websocket connections accepted.",
    ),
    (
        "shopflow_dashboard_states_total",
        Kind::Counter,
        "Dashboard states published (one per completed timestamp, plus a health refresh each quiet second).",
    ),
    (
        "shopflow_dashboard_messages_total",
        Kind::Counter,
        "Messages sent to dashboard clients (snapshots, deltas, heartbeats).",
    ),
    (
        "shopflow_dashboard_bytes_total",
        Kind::Counter,
        "Bytes of the messages sent to dashboard clients.",
    ),
    (
        "shopflow_dashboard_skips_total",
        Kind::Counter,
        "Fresh snapshots sent to dashboard clients that fell behind the ring of deltas.",
    ),
    (
        "shopflow_dashboard_refused_total",
        Kind::Counter,
        "Dashboard requests refused, by why: token (missing or wrong), full (client limit reached: 503) or message (outside the protocol; the websocket is closed).",
    ),
    (
        "shopflow_dashboard_dropped_total",
        Kind::Counter,
        "Dashboard clients dropped for not accepting a frame within 30 s.",
    ),
    (
        "shopflow_build_info",
        Kind::Scraped,
        "The running build: its version label; the value is always 1.",
    ),
    (
        "shopflow_memory_limit_bytes",
        Kind::Scraped,
        "Memory limit of the process's cgroup (absent when there is none).",
    ),
    (
        "process_resident_memory_bytes",
        Kind::Scraped,
        "Resident memory of the process (Linux VmRSS).",
    ),
    (
        "process_start_time_seconds",
        Kind::Scraped,
        "Start time of the process (seconds since the epoch).",
    ),
];

type Key = (&'static str, Vec<(String, String)>);

/// A set of metrics shared by every thread of a run.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<Key, u64>>,
    histograms: Mutex<BTreeMap<Key, Histogram>>,
}

fn key(name: &'static str, labels: &[(&str, &str)]) -> Key {
    debug_assert!(
        DEFINITIONS.iter().any(|d| d.0 == name),
        "undeclared metric {name}"
    );
    (
        name,
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

impl Metrics {
    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&str, &str)], by: u64) {
        *self
            .values
            .lock()
            .expect("metrics")
            .entry(key(name, labels))
            .or_default() += by;
    }

    /// Sets an unlabelled counter that is counted elsewhere to its current total.
    pub fn set_counter(&self, name: &'static str, total: u64) {
        self.set(name, &[], total);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&str, &str)], value: u64) {
        self.values
            .lock()
            .expect("metrics")
            .insert(key(name, labels), value);
    }

    /// Counts one duration in a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&str, &str)], took: Duration) {
        self.histograms
            .lock()
            .expect("metrics")
            .entry(key(name, labels))
            .or_default()
            .observe(took);
    }

    /// The current value (0 if never set).
    pub fn get(&self, name: &'static str, labels: &[(&str, &str)]) -> u64 {
        let values = self.values.lock().expect("metrics");
        values.get(&key(name, labels)).copied().unwrap_or(0)
    }

    /// The sum over every label set of a metric.
    pub fn total(&self, name: &str) -> u64 {
        let values = self.values.lock().expect("metrics");
        values
            .iter()
            .filter(|(k, _)| k.0 == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// A metric summed by the values of one of its labels.
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, u64> {
        let values = self.values.lock().expect("metrics");
        let mut out = BTreeMap::new();
        for ((n, labels), v) in values.iter() {
            if *n != name {
                continue;
            }
            if let Some((_, l)) = labels.iter().find(|(k, _)| k == label) {
                *out.entry(l.clone()).or_default() += v;
            }
        }
        out
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let values = self.values.lock().expect("metrics");
        let histograms = self.histograms.lock().expect("metrics");
        let mut out = String::new();
        for (name, kind, help) in DEFINITIONS {
            let type_name = match kind {
                Kind::Counter => "counter",
                Kind::Histogram => "histogram",
                Kind::Gauge | Kind::Seconds | Kind::Scraped => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {type_name}");
            match kind {
                Kind::Scraped => process::render(name, &mut out),
                Kind::Histogram => {
                    let mut any = false;
                    for ((_, labels), h) in histograms.iter().filter(|(k, _)| k.0 == *name) {
                        any = true;
                        h.render(&mut out, name, &label_list(labels));
                    }
                    if !any && !has_labels(name) {
                        Histogram::default().render(&mut out, name, "");
                    }
                }
                Kind::Counter | Kind::Gauge | Kind::Seconds => {
                    let mut any = false;
                    for ((n, labels), v) in values.iter().filter(|(k, _)| k.0 == *name) {
                        any = true;
                        let labels = render_labels(labels);
                        let _ = match kind {
                            Kind::Seconds => {
                                writeln!(out, "{n}{labels} {}.{:03}", v / 1000, v % 1000)
                            }
                            _ => writeln!(out, "{n}{labels} {v}"),
                        };
                    }
                    if !any && *kind == Kind::Counter && !has_labels(name) {
                        let _ = writeln!(out, "{name} 0");
                    }
                }
            }
        }
        out
    }
}

fn has_labels(name: &str) -> bool {
    DEFINITIONS
        .iter()
        .any(|d| d.0 == name && d.2.contains(", by "))
}

/// `{k="v",...}`, or nothing without labels.
fn render_labels(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    format!("{{{}}}", label_list(labels))
}

/// `k="v",...` with the values escaped.
fn label_list(labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    inner.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels_and_escapes() {
        let m = Metrics::default();
        m.add(
            "shopflow_invalid_total",
            &[("topic", "clicks"), ("reason", "invalid_json")],
            2,
        );
        m.add(
            "shopflow_invalid_total",
            &[("topic", "clicks"), ("reason", "invalid_json")],
            1,
        );
        m.add("shopflow_messages_total", &[("topic", "a\"b")], 1);
        let text = m.render();
        assert!(
            text.contains("shopflow_invalid_total{topic=\"clicks\",reason=\"invalid_json\"} 3\n")
        );
        assert!(text.contains("shopflow_messages_total{topic=\"a\\\"b\"} 1\n"));
        assert!(text.contains("# TYPE shopflow_frontier_seconds gauge\n"));
        assert!(text.contains("shopflow_dead_letters_total 0\n"));
        assert_eq!(m.total("shopflow_invalid_total"), 3);
    }

    #[test]
    fn renders_seconds_and_histograms() {
        let m = Metrics::default();
        m.set("shopflow_frontier_lag_seconds", &[], 1_234);
        m.observe(
            "shopflow_warehouse_commit_seconds",
            &[],
            Duration::from_millis(20),
        );
        let text = m.render();
        assert!(
            text.contains("shopflow_frontier_lag_seconds 1.234\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE shopflow_warehouse_commit_seconds histogram\n"));
        assert!(text.contains("shopflow_warehouse_commit_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("shopflow_warehouse_commit_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(text.contains("shopflow_warehouse_commit_seconds_count 1\n"));
        // Unlabelled histograms and counters are there before anything happens.
        assert!(text.contains("shopflow_lake_flush_seconds_count 0\n"));
        assert!(text.contains("shopflow_warehouse_commit_errors_total 0\n"));
        assert!(text.contains("shopflow_build_info{version=\""));
    }
}
