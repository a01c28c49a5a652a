//! The board: what the live views show, kept up to date from completed steps.
//!
//! A [`Board`] absorbs each [`Progress`] of a live run and renders the state
//! of that completed moment as the entry map of `docs/websocket.md`:
//!
//! - window aggregates (sales per minute, funnel, top products) through the
//!   sinks' freeze rule, pruned two hours behind the frontier;
//! - order facts only as per-minute, per-currency sums, which freeze with
//!   their minute, so they always add up to the minute rows;
//! - rolling figures and counters as they are now: a retraction without a
//!   new value means zero (they are not rows that age out);
//! - product names, one per product.
//!
//! Nothing else is kept, so memory is bounded by the display window and the
//! catalogue, not by uptime. The console view of `demo` and `run` reads the
//! same board.

use serde_json::{Value, json};
use shopflow_dataflow::rows::{Ranking, Row, StatName, Table};
use shopflow_dataflow::run::{IngestCounts, Progress};
use shopflow_dataflow::{Settings, Tables, Time};
use shopflow_model::{Currency, Money, Timestamp};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
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
    /// Rolling figures and counters by key, as they are now.
    current: BTreeMap<String, Row>,
    /// Product id -> (valid_from of the newest version, its name).
    names: BTreeMap<Arc<str>, (Timestamp, String)>,
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
            current: BTreeMap::new(),
            names: BTreeMap::new(),
            warehouse: None,
        }
    }

    /// Sets the input counts: valid lines accepted, and rejections by reason.
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
        let mut changes = p.changes;
        // Per time, retractions before insertions.
        changes.sort_by_key(|c| (c.1, c.2));
        // Minutes whose row is set at a time: after its freeze, only an order
        // priced late into a minute held open for it (apply.rs).
        let corrected: BTreeSet<(Time, i64)> = changes
            .iter()
            .filter_map(|(row, t, d)| match row {
                Row::SalesMinute(m) if *d > 0 => Some((*t, m.window_start.0)),
                _ => None,
            })
            .collect();
        let mut windows: BTreeMap<Time, Vec<(Row, isize)>> = BTreeMap::new();
        for (row, t, d) in changes {
            match row {
                Row::FactOrder(o) => {
                    let minute = o.ts.floor_to(MINUTE_MS).0;
                    // The currency sums change with their minute's row, so
                    // they always add up to it (apply.rs).
                    let open = t < self.settings.freeze(minute + MINUTE_MS)
                        || corrected.contains(&(t, minute));
                    if minute >= lo && open {
                        let sums = self.by_currency.entry((minute, o.currency)).or_default();
                        sums.0 += d as i64;
                        sums.1 += d as i64 * o.total_amount_usd.units();
                    }
                }
                Row::Rolling(_) | Row::Stat(_) => {
                    let key = row.key();
                    if d > 0 {
                        self.current.insert(key, row);
                    } else if self.current.get(&key) == Some(&row) {
                        self.current.remove(&key);
                    }
                }
                Row::DimProduct(v) if d > 0 => {
                    let newest = self.names.get(v.product_id.as_str());
                    if newest.is_none_or(|(from, _)| *from <= v.valid_from) {
                        self.names
                            .insert(v.product_id.as_str().into(), (v.valid_from, v.name));
                    }
                }
                Row::SalesMinute(_) | Row::Funnel(_) | Row::TopProduct(_) => {
                    windows.entry(t).or_default().push((row, d));
                }
                _ => {} // not shown: not kept
            }
        }
        for (t, batch) in windows {
            self.tables.apply_time(t, batch);
        }
        self.by_currency
            .retain(|(minute, _), sums| *minute >= lo && *sums != (0, 0));
        let keep_from = self.upto as i64 - KEEP_MS;
        self.tables
            .retain(|row| row.window_end().is_none_or(|end| end >= keep_from));
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
    }

    /// Updates the events-per-second figure (call before rendering).
    pub fn note_rate(&mut self) {
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
        self.current
            .values()
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

    /// The name of each product's newest version.
    pub fn product_names(&self) -> BTreeMap<&str, &str> {
        self.names
            .iter()
            .map(|(id, (_, name))| (id.as_ref(), name.as_str()))
            .collect()
    }

    /// The rolling figures, 5 and 60 minutes (absent: zero).
    pub fn rolling(&self) -> impl Iterator<Item = &shopflow_dataflow::rows::Rolling> {
        self.current.values().filter_map(|r| match r {
            Row::Rolling(r) => Some(r),
            _ => None,
        })
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
        for minutes in [5, 60] {
            let r = self.rolling().find(|r| r.minutes == minutes);
            let (orders, revenue, sessions) = r.map_or((0, Money::ZERO, 0), |r| {
                (r.orders, r.revenue_usd, r.sessions)
            });
            out.insert(
                format!("rolling/{minutes}"),
                json!({"minutes": minutes, "orders": orders,
                       "revenue_usd": revenue.to_string(), "sessions": sessions}),
            );
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
    use shopflow_dataflow::rows::{DimUser, Rolling, Stat};

    fn step(upto: Time, changes: Vec<(Row, isize)>) -> Progress {
        Progress {
            upto,
            relayed: Time::MAX,
            allowed_at: None,
            changes: changes.into_iter().map(|(r, d)| (r, upto - 1, d)).collect(),
            ingest: IngestCounts::default(),
            too_late: Vec::new(),
        }
    }

    /// Regression: rolling figures and counters stuck at their last non-zero
    /// value once they dropped to zero (zero is "no row" in the dataflow).
    #[test]
    fn rolling_figures_and_counters_drop_to_zero() {
        let mut board = Board::new(Settings::default(), "test");
        let rolling = Row::Rolling(Rolling {
            minutes: 5,
            orders: 3,
            revenue_usd: Money::from_units(12_345),
            sessions: 7,
        });
        let waiting = Row::Stat(Stat {
            name: StatName::OrdersWaitingFx,
            value: 1,
        });
        board.absorb(step(
            60_000,
            vec![(rolling.clone(), 1), (waiting.clone(), 1)],
        ));
        let e = board.entries(0);
        assert_eq!(e["rolling/5"]["revenue_usd"], "123.45");
        assert_eq!(e["health"]["waiting_fx"], 1);
        board.absorb(step(120_000, vec![(rolling, -1), (waiting, -1)]));
        let e = board.entries(0);
        assert_eq!(
            e["rolling/5"],
            json!({"minutes": 5, "orders": 0, "revenue_usd": "0.00", "sessions": 0})
        );
        assert_eq!(e["health"]["waiting_fx"], 0);
    }

    /// Regression: dimension rows the board never shows were kept forever.
    #[test]
    fn rows_the_board_does_not_show_are_not_kept() {
        let mut board = Board::new(Settings::default(), "test");
        let users = (0..1_000)
            .map(|i| {
                let user = DimUser {
                    user_id: format!("u{i}"),
                    profile: None,
                    first_seen: None,
                    last_seen: None,
                };
                (Row::DimUser(user), 1)
            })
            .collect();
        board.absorb(step(60_000, users));
        assert_eq!(board.tables().rows(Table::DimUser).count(), 0);
    }

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
