//! The board: what the live views show, kept up to date from completed steps.
//!
//! A [`Board`] absorbs each [`Progress`] of a live run (aggregates and
//! dimensions through the sinks' freeze rule, order facts into per-minute,
//! per-currency sums) and renders the state of that completed moment as the
//! entry map of `docs/websocket.md`. The console view of `demo` and `run`
//! reads the same board. Memory is bounded by the display window, not by
//! uptime: older window rows are pruned after every step.

use serde_json::{Value, json};
use shopflow_dataflow::rows::{Ranking, Row, StatName, Table};
use shopflow_dataflow::run::{IngestCounts, Progress};
use shopflow_dataflow::{Settings, Tables, Time};
use shopflow_model::{Currency, Money, Timestamp};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// Minutes shown by the revenue chart and the currency breakdown.
pub const WINDOW_MINUTES: i64 = 60;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
/// Window rows older than this behind the frontier are pruned.
const KEEP_MS: i64 = 2 * HOUR_MS;

/// The warehouse's latest commit, for the health panel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WarehouseCommit {
    /// Transactions committed since start.
    pub commits: u64,
    /// Wall-clock time of the latest commit (ms since the epoch).
    pub at_ms: i64,
    /// Event time up to which that commit made results durable.
    pub upto: Time,
}

/// Everything the live views show.
pub struct Board {
    settings: Settings,
    tables: Tables,
    upto: Time,
    ingest: IngestCounts,
    lines: u64,
    rejected: BTreeMap<String, u64>,
    rate: (u64, Instant, f64),
    title: &'static str,
    too_late: VecDeque<(String, Timestamp, i64)>,
    /// (minute start, currency) -> (orders, USD cents) from order facts.
    by_currency: BTreeMap<(i64, Currency), (i64, i64)>,
    warehouse: Option<WarehouseCommit>,
}

impl Board {
    /// An empty board; `title` names the command (`demo`, `run`).
    pub fn new(settings: Settings, title: &'static str) -> Self {
        Board {
            tables: Tables::new(settings.clone()),
            settings,
            upto: 0,
            ingest: IngestCounts::default(),
            lines: 0,
            rejected: BTreeMap::new(),
            rate: (0, Instant::now(), 0.0),
            title,
            too_late: VecDeque::new(),
            by_currency: BTreeMap::new(),
            warehouse: None,
        }
    }

    /// Counts a valid line handed to the dataflow.
    pub fn accepted(&mut self) {
        self.lines += 1;
    }

    /// Counts a rejected line.
    pub fn rejected(&mut self, reason: &'static str) {
        *self.rejected.entry(reason.to_owned()).or_default() += 1;
    }

    /// Sets the input counts from elsewhere (`run` counts in its metrics).
    pub fn set_input(&mut self, lines: u64, rejected: BTreeMap<String, u64>) {
        self.lines = lines;
        self.rejected = rejected;
    }

    /// Records a warehouse commit.
    pub fn committed(&mut self, commit: WarehouseCommit) {
        self.warehouse = Some(commit);
    }

    /// The first minute of the display window at frontier `upto`.
    fn window_start(upto: Time) -> i64 {
        let last = (upto as i64 - 1).max(0);
        last - last.rem_euclid(MINUTE_MS) - (WINDOW_MINUTES - 1) * MINUTE_MS
    }

    /// Takes one completed step of the live run.
    pub fn absorb(&mut self, p: Progress) {
        if p.upto < Time::MAX {
            // The last report (inputs closed) completes everything: keep the
            // view at the last real frontier.
            self.upto = p.upto;
        }
        let lo = Self::window_start(self.upto);
        let mut by_time: BTreeMap<Time, Vec<(Row, isize)>> = BTreeMap::new();
        for (row, t, d) in p.changes {
            match row {
                Row::FactOrder(o) => {
                    let minute = o.ts.floor_to(MINUTE_MS).0;
                    // A fact is never deleted: from its expiry on, a
                    // retraction is the fact ageing out (apply.rs).
                    if minute >= lo && t < self.settings.expiry(o.ts.0) {
                        let sums = self.by_currency.entry((minute, o.currency)).or_default();
                        sums.0 += d as i64;
                        sums.1 += d as i64 * o.total_amount_usd.units();
                    }
                }
                Row::FactClick(_) | Row::FactCart(_) | Row::FactOrderItem(_) => {}
                row => by_time.entry(t).or_default().push((row, d)),
            }
        }
        for (t, batch) in by_time {
            self.tables.apply_time(t, batch);
        }
        self.by_currency
            .retain(|(minute, _), sums| *minute >= lo && *sums != (0, 0));
        let keep_from = self.upto as i64 - KEEP_MS;
        self.tables.retain(|row| match row {
            Row::DimTime(d) => d.ts_minute.0 >= keep_from,
            row => row.window_end().is_none_or(|end| end >= keep_from),
        });
        for e in &p.too_late {
            tracing::debug!(event_id = e.event_id(), ts = %e.ts(), "too late: not applied live; a replay of its day applies it");
            self.too_late.push_front((
                e.event_id().to_string(),
                e.ts(),
                self.upto as i64 - e.ts().0,
            ));
            self.too_late.truncate(3);
        }
        self.ingest = p.ingest;
        let elapsed = self.rate.1.elapsed().as_secs_f64();
        if elapsed >= 2.0 {
            let per_s = self.lines.saturating_sub(self.rate.0) as f64 / elapsed;
            self.rate = (self.lines, Instant::now(), per_s);
        }
    }

    /// The command shown in the header.
    pub fn title(&self) -> &'static str {
        self.title
    }

    /// Every event time before this is complete.
    pub fn upto(&self) -> Time {
        self.upto
    }

    /// The tables built so far (aggregates and dimensions).
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Events by admission.
    pub fn ingest(&self) -> IngestCounts {
        self.ingest
    }

    /// Valid lines handed to the dataflow.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Rejected lines by reason code.
    pub fn rejections(&self) -> &BTreeMap<String, u64> {
        &self.rejected
    }

    /// Valid lines per second over the last few seconds.
    pub fn events_per_s(&self) -> f64 {
        self.rate.2
    }

    /// The most recent too-late events (id, event time, ms behind the frontier).
    pub fn too_late(&self) -> impl Iterator<Item = &(String, Timestamp, i64)> {
        self.too_late.iter()
    }

    /// A dataflow counter.
    pub fn stat(&self, name: StatName) -> i64 {
        self.tables
            .rows(Table::Stats)
            .find_map(|r| match r {
                Row::Stat(st) if st.name == name => Some(st.value),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// The latest window of `table` that ended by the frontier (complete, so stable).
    pub fn last_complete(&self, table: Table) -> Option<&Row> {
        let upto = self.upto as i64;
        self.tables
            .rows(table)
            .filter(|r| r.window_end().is_some_and(|end| end <= upto))
            .last()
    }

    /// The names of current product versions.
    pub fn product_names(&self) -> BTreeMap<&str, &str> {
        self.tables
            .rows(Table::DimProduct)
            .filter_map(|r| match r {
                Row::DimProduct(p) if p.valid_to.is_none() => {
                    Some((p.product_id.as_str(), p.name.as_str()))
                }
                _ => None,
            })
            .collect()
    }

    /// The state as the entry map of `docs/websocket.md`, at wall-clock `now_ms`.
    pub fn entries(&self, now_ms: i64) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let upto = self.upto as i64;
        let lo = Self::window_start(self.upto);
        out.insert(
            "meta".into(),
            json!({"title": self.title, "upto": upto, "window_minutes": WINDOW_MINUTES}),
        );
        for row in self.tables.rows(Table::AggSalesMinute) {
            if let Row::SalesMinute(m) = row
                && m.window_start.0 >= lo
            {
                let aov = if m.orders > 0 {
                    m.revenue_usd.div_count(m.orders as u64)
                } else {
                    Money::ZERO
                };
                out.insert(
                    format!("minute/{}", m.window_start.0),
                    json!({
                        "start": m.window_start.0, "orders": m.orders, "items": m.items,
                        "revenue_usd": m.revenue_usd.to_string(), "buyers": m.buyers,
                        "aov_usd": aov.to_string(), "complete": m.window_start.0 + MINUTE_MS <= upto,
                    }),
                );
            }
        }
        let mut currencies: BTreeMap<Currency, (i64, i64)> = BTreeMap::new();
        for ((_, currency), (orders, cents)) in &self.by_currency {
            let sums = currencies.entry(*currency).or_default();
            sums.0 += orders;
            sums.1 += cents;
        }
        for (currency, (orders, cents)) in currencies {
            out.insert(
                format!("currency/{}", currency.code()),
                json!({"currency": currency.code(), "orders": orders,
                       "revenue_usd": Money::from_units(cents).to_string()}),
            );
        }
        for row in self.tables.rows(Table::Rolling) {
            if let Row::Rolling(r) = row {
                out.insert(
                    format!("rolling/{}", r.minutes),
                    json!({"minutes": r.minutes, "orders": r.orders,
                           "revenue_usd": r.revenue_usd.to_string(), "sessions": r.sessions}),
                );
            }
        }
        if let Some(Row::Funnel(f)) = self.last_complete(Table::AggFunnel5min) {
            out.insert(
                "funnel".into(),
                json!({"window_start": f.window_start.0, "window_end": f.window_start.0 + 5 * MINUTE_MS,
                       "active": f.sessions_active, "carted": f.sessions_carted,
                       "purchased": f.sessions_purchased}),
            );
        }
        self.top_products(&mut out);
        out.insert("health".into(), self.health(now_ms));
        out
    }

    fn top_products(&self, out: &mut BTreeMap<String, Value>) {
        let names = self.product_names();
        let hour = (self.upto as i64 - 1).max(0).div_euclid(HOUR_MS) * HOUR_MS;
        for (ranking, key) in [
            (Ranking::Revenue, "top/revenue"),
            (Ranking::Clicks, "top/views"),
        ] {
            let items: Vec<Value> = self
                .tables
                .rows(Table::AggTopProductsHour)
                .filter_map(|r| match r {
                    Row::TopProduct(t) if t.window_start.0 == hour && t.ranking == ranking => {
                        Some(t)
                    }
                    _ => None,
                })
                .map(|t| {
                    let value = match ranking {
                        Ranking::Revenue => json!(Money::from_units(t.value).to_string()),
                        Ranking::Clicks => json!(t.value),
                    };
                    json!({"rank": t.rank, "product_id": t.product_id,
                           "name": names.get(t.product_id.as_str()).copied().unwrap_or(""),
                           "value": value})
                })
                .collect();
            if !items.is_empty() {
                out.insert(key.into(), json!({"hour_start": hour, "items": items}));
            }
        }
    }

    fn health(&self, now_ms: i64) -> Value {
        let warehouse = self.warehouse.map(
            |w| json!({"commits": w.commits, "last_commit_at": w.at_ms, "upto": w.upto as i64}),
        );
        json!({
            "lag_ms": if self.upto == 0 { 0 } else { now_ms - self.upto as i64 },
            "events_per_s": (self.rate.2 * 10.0).round() / 10.0,
            "lines": self.lines,
            "on_time": self.ingest.on_time,
            "late": self.ingest.late,
            "too_late": self.ingest.too_late,
            "duplicates": self.stat(StatName::Duplicates),
            "conflicts": self.stat(StatName::Conflicts),
            "distinct_events": self.stat(StatName::DistinctEvents),
            "waiting_fx": self.stat(StatName::OrdersWaitingFx),
            "invalid": self.rejected.values().sum::<u64>(),
            "invalid_by_reason": self.rejected,
            "warehouse": warehouse,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_sixty_minutes_ending_with_the_frontier_minute() {
        // upto exactly on a minute boundary: that minute has not started.
        assert_eq!(Board::window_start(120 * MINUTE_MS as Time), 60 * MINUTE_MS);
        assert_eq!(
            Board::window_start((120 * MINUTE_MS + 1) as Time),
            61 * MINUTE_MS
        );
    }
}
