//! Operational counters and gauges, rendered in the Prometheus text format.
//!
//! Every metric is declared once in [`DEFINITIONS`] with its help text (the
//! same text is in `docs/operations.md`); updating an undeclared name panics
//! in debug builds, so the list cannot drift from the code.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Counter or gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Set to the current value.
    Gauge,
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
        "shopflow_frontier_ms",
        Kind::Gauge,
        "Event time (ms since the epoch) before which every result is complete.",
    ),
    (
        "shopflow_frontier_lag_ms",
        Kind::Gauge,
        "Wall-clock time minus the completed frontier (ms).",
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
];

type Key = (&'static str, Vec<(String, String)>);

/// A set of metrics shared by every thread of a run.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<Key, u64>>,
}

fn kind_of(name: &str) -> Kind {
    DEFINITIONS
        .iter()
        .find(|d| d.0 == name)
        .map(|d| d.1)
        .unwrap_or_else(|| panic!("metric {name} is not declared in DEFINITIONS"))
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
        let mut out = String::new();
        for (name, kind, help) in DEFINITIONS {
            let kind_name = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind_name}");
            let mut any = false;
            for ((n, labels), v) in values.iter().filter(|(k, _)| k.0 == *name) {
                any = true;
                let _ = writeln!(out, "{n}{} {v}", render_labels(labels));
            }
            if !any && kind_of(name) == Kind::Counter && !has_labels(name) {
                let _ = writeln!(out, "{name} 0");
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

fn render_labels(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
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
    format!("{{{}}}", inner.join(","))
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
        assert!(text.contains("# TYPE shopflow_frontier_ms gauge\n"));
        assert!(text.contains("shopflow_dead_letters_total 0\n"));
        assert_eq!(m.total("shopflow_invalid_total"), 3);
    }
}
