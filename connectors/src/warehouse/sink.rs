//! The warehouse sink: every completed step of the dataflow in one transaction.
//!
//! A step's changes become operations by the freeze rule
//! ([`shopflow_dataflow::apply::ops`]), folded per row key across the step's
//! times. Rows are streamed with `COPY … (FORMAT csv)` into temporary staging
//! tables (the CSV form of `shopflow replay`, natural keys), then merged in
//! this order, in one transaction:
//!
//! 1. dimensions: `dim_currency`, `dim_time`, `dim_user` (first seen keeps the
//!    minimum, last seen the maximum, an inferred member never erases a known
//!    profile), `dim_product` (closed versions first, then the current one);
//! 2. inferred members for facts whose user or product is not known yet (a
//!    product version valid at the fact's time), and the minutes of `dim_time`;
//! 3. facts, with their surrogate keys resolved; a fact whose keys do not
//!    resolve is an error, never a silent drop;
//! 4. aggregates: changed rows upserted, rows retracted by a correction deleted;
//! 5. dead letters, and `pipeline_progress` (next offset per source partition,
//!    the completed frontier).
//!
//! Transient errors (lost connection, serialization failure, deadlock) are
//! retried with backoff on a new connection; others are permanent and stop
//! the pipeline with nothing committed past the last good step.

use super::{WarehouseSettings, connect, is_transient};
use crate::kafka::dead_letters::DeadLetter;
use crate::metrics::Metrics;
use postgres::{Client, Transaction};
use shopflow_dataflow::apply::{Op, merge, ops};
use shopflow_dataflow::{Change, Row, Settings, Table, Time, csv};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// The tables the warehouse keeps, in the order they are staged.
pub const TABLES: [Table; 11] = [
    Table::DimCurrency,
    Table::DimTime,
    Table::DimUser,
    Table::DimProduct,
    Table::FactClicks,
    Table::FactCart,
    Table::FactOrders,
    Table::FactOrderItems,
    Table::AggSalesMinute,
    Table::AggFunnel5min,
    Table::AggTopProductsHour,
];

/// One step to write.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Every time before this is complete (`Time::MAX` at the end of a run).
    pub upto: Time,
    /// The step's changes.
    pub changes: Vec<Change>,
    /// Dead letters recorded since the last step.
    pub dead_letters: Vec<DeadLetter>,
    /// Next offset of each (topic, partition) whose results are all in this step.
    pub positions: Vec<(String, i32, i64)>,
    /// With a lake: the start time (ms) of the run committing, recorded with
    /// the frontier in `pipeline_runs`.
    pub run: Option<i64>,
    /// The frontier to record when `upto` is `Time::MAX` (the run drained):
    /// its input time when it stopped. Without it the last frontier is kept.
    pub final_frontier: Option<Time>,
}

/// A failure that retrying will not fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permanent(pub String);

/// Rows written by one step, per table.
pub type Written = BTreeMap<&'static str, u64>;

/// The sink: one connection, its staging tables, the retry policy.
pub struct Sink {
    client: Client,
    settings: WarehouseSettings,
    dataflow: Settings,
    frontier: Option<Time>,
    /// Where failed attempts are counted (`shopflow_warehouse_commit_errors_total`).
    metrics: Option<Arc<Metrics>>,
}

fn staging_ddl() -> String {
    let mut sql = String::new();
    for table in TABLES {
        let cols: Vec<String> = csv::header(table)
            .iter()
            .map(|c| format!("\"{c}\" text"))
            .collect();
        for prefix in ["stage", "stage_del"] {
            sql += &format!(
                "CREATE TEMP TABLE IF NOT EXISTS {prefix}_{} ({}) ON COMMIT DELETE ROWS;\n",
                table.name(),
                cols.join(", ")
            );
        }
    }
    sql
}

impl Sink {
    /// Connects (the schema must be migrated: `shopflow migrate`).
    pub fn open(settings: &WarehouseSettings, dataflow: &Settings) -> Result<Sink, String> {
        let mut client = connect(settings)?;
        client.batch_execute(&staging_ddl()).map_err(|e| {
            format!(
                "cannot prepare the warehouse session: {e}; has `shopflow migrate` been run for schema {}?",
                settings.schema
            )
        })?;
        Ok(Sink {
            client,
            settings: settings.clone(),
            dataflow: dataflow.clone(),
            frontier: None,
            metrics: None,
        })
    }

    /// Counts every failed transaction attempt in `metrics`, as it happens,
    /// so that an outage shows while the sink is still retrying.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Sink {
        self.metrics = Some(metrics);
        self
    }

    /// The next offset of every source partition recorded so far.
    pub fn positions(&mut self) -> Result<BTreeMap<(String, i32), i64>, String> {
        let rows = self
            .client
            .query(
                "SELECT source, partition, next_offset FROM pipeline_progress",
                &[],
            )
            .map_err(|e| format!("cannot read pipeline_progress: {e}"))?;
        Ok(rows
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect())
    }

    /// The frontier of the last commit: every result before it is in the
    /// warehouse. `None` before the first commit.
    pub fn frontier(&mut self) -> Result<Option<Time>, String> {
        let row = self
            .client
            .query_one(
                "SELECT (extract(epoch FROM max(frontier)) * 1000)::bigint FROM pipeline_progress",
                &[],
            )
            .map_err(|e| format!("cannot read pipeline_progress: {e}"))?;
        let ms: Option<i64> = row.get(0);
        Ok(ms.map(|t| t.max(0) as Time))
    }

    /// Per run, by its start time (ms): the frontier it committed, and
    /// whether it drained (committed everything it read).
    pub fn runs(&mut self) -> Result<BTreeMap<i64, (Time, bool)>, String> {
        let rows = self
            .client
            .query(
                "SELECT (extract(epoch FROM run_started_at) * 1000)::bigint, \
                        (extract(epoch FROM frontier) * 1000)::bigint, drained FROM pipeline_runs",
                &[],
            )
            .map_err(|e| format!("cannot read pipeline_runs: {e}; run `shopflow migrate`"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let frontier = r.get::<_, i64>(1).max(0) as Time;
                (r.get::<_, i64>(0), (frontier, r.get::<_, bool>(2)))
            })
            .collect())
    }

    /// Writes one step atomically, retrying transient failures.
    pub fn write(&mut self, batch: &Batch) -> Result<Written, Permanent> {
        let folded = fold(&self.dataflow, &batch.changes);
        let frontier = (batch.upto < Time::MAX)
            .then_some(batch.upto)
            .or(batch.final_frontier)
            .or(self.frontier);
        let written = self.transact(|tx| write_step(tx, &folded, batch, frontier))?;
        self.frontier = frontier;
        Ok(written)
    }

    /// Rewrites the facts and window rows of one day, `[start, end)` in ms,
    /// in one transaction: `rows` (the day's rows and the dimensions they
    /// need) are upserted, and the day's stored rows that are not among them
    /// are deleted. Running it again with the same rows changes nothing.
    /// Returns the rows upserted per table and, under `deleted_<table>`, the
    /// rows deleted.
    pub fn rewrite_day(
        &mut self,
        start: i64,
        end: i64,
        rows: &[Row],
    ) -> Result<Written, Permanent> {
        let folded: BTreeMap<(Table, String), Op> = rows
            .iter()
            .filter(|r| TABLES.contains(&r.table()))
            .map(|r| ((r.table(), r.key()), Op::Upsert(r.clone())))
            .collect();
        let (from, to) = (
            shopflow_model::Timestamp(start).to_string(),
            shopflow_model::Timestamp(end).to_string(),
        );
        self.transact(|tx| {
            let mut written = write_step(tx, &folded, &Batch::default(), None)?;
            for (table, time, matches) in STALE {
                let n = tx.execute(&stale_sql(table, time, matches), &[&from, &to])?;
                written.insert(deleted_name(table), n);
            }
            Ok(written)
        })
    }

    /// Runs `step` in a transaction, retrying transient failures on a new
    /// connection with backoff.
    fn transact(
        &mut self,
        step: impl Fn(&mut Transaction<'_>) -> Result<Written, Failure>,
    ) -> Result<Written, Permanent> {
        let mut wait = Duration::from_millis(self.settings.backoff_ms.max(1));
        let mut attempt = 0;
        loop {
            let result = (|| -> Result<Written, Failure> {
                let mut tx = self.client.transaction()?;
                let written = step(&mut tx)?;
                tx.commit()?;
                Ok(written)
            })();
            let (transient, why) = match result {
                Ok(written) => return Ok(written),
                Err(Failure::Io(e)) => (true, format!("the warehouse connection failed: {e}")),
                Err(Failure::Db(e)) => (
                    is_transient(&e),
                    format!(
                        "the warehouse refused a write: {e}{}",
                        e.as_db_error()
                            .map(|d| format!(" ({}: {})", d.code().code(), d.message()))
                            .unwrap_or_default()
                    ),
                ),
                Err(Failure::Unresolved(msg)) => (false, msg),
            };
            if let Some(m) = &self.metrics {
                m.add("shopflow_warehouse_commit_errors_total", &[], 1);
            }
            if !transient || attempt >= self.settings.retries {
                return Err(Permanent(why));
            }
            attempt += 1;
            tracing::warn!(%why, attempt, "warehouse write failed; retrying");
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(30));
            if let Ok(fresh) = Sink::open(&self.settings, &self.dataflow) {
                self.client = fresh.client;
            }
        }
    }
}

/// A day's stored rows that a rewrite did not stage are deleted: per table,
/// its time column (facts by event time, windows by start) and how a stored
/// row `f` matches a staged one `s`.
const STALE: &[(&str, &str, &str)] = &[
    ("fact_clicks", "ts", "s.event_id = f.event_id"),
    ("fact_cart", "ts", "s.event_id = f.event_id"),
    (
        "fact_order_items",
        "ts",
        "s.event_id = f.event_id AND s.line_number::integer = f.line_number",
    ),
    ("fact_orders", "ts", "s.event_id = f.event_id"),
    (
        "agg_sales_minute",
        "window_start",
        "s.window_start::timestamptz = f.window_start",
    ),
    (
        "agg_funnel_5min",
        "window_start",
        "s.window_start::timestamptz = f.window_start",
    ),
    (
        "agg_top_products_hour",
        "window_start",
        "s.window_start::timestamptz = f.window_start AND s.ranking = f.ranking AND s.rank::smallint = f.rank",
    ),
];

/// The key under which [`Sink::rewrite_day`] reports a table's deletes.
fn deleted_name(table: &str) -> &'static str {
    match table {
        "fact_clicks" => "deleted_fact_clicks",
        "fact_cart" => "deleted_fact_cart",
        "fact_order_items" => "deleted_fact_order_items",
        "fact_orders" => "deleted_fact_orders",
        "agg_sales_minute" => "deleted_agg_sales_minute",
        "agg_funnel_5min" => "deleted_agg_funnel_5min",
        _ => "deleted_agg_top_products_hour",
    }
}

/// The delete of [`STALE`] for one table (`$1`, `$2`: the day's bounds as text).
fn stale_sql(table: &str, time: &str, matches: &str) -> String {
    format!(
        "DELETE FROM {table} f WHERE f.{time} >= $1::text::timestamptz AND f.{time} < $2::text::timestamptz \
         AND NOT EXISTS (SELECT 1 FROM stage_{table} s WHERE {matches})"
    )
}

enum Failure {
    Db(postgres::Error),
    /// Streaming a COPY failed: the connection is in trouble.
    Io(std::io::Error),
    Unresolved(String),
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Failure {
        Failure::Db(e)
    }
}

/// The step's operations, one per (table, key), the last one winning (a
/// `dim_user` upsert merged into an earlier one).
fn fold(settings: &Settings, changes: &[Change]) -> BTreeMap<(Table, String), Op> {
    let mut by_time: BTreeMap<Time, Vec<(Row, isize)>> = BTreeMap::new();
    for (row, t, d) in changes {
        by_time.entry(*t).or_default().push((row.clone(), *d));
    }
    let mut out: BTreeMap<(Table, String), Op> = BTreeMap::new();
    for (time, batch) in by_time {
        for op in ops(settings, time, batch) {
            let row = match &op {
                Op::Upsert(r) | Op::Delete(r) => r,
            };
            let key = (row.table(), row.key());
            let op = match (out.remove(&key), op) {
                (Some(Op::Upsert(old)), Op::Upsert(new)) => Op::Upsert(merge(&old, new)),
                (_, op) => op,
            };
            out.insert(key, op);
        }
    }
    out
}

fn copy_rows<'a>(
    tx: &mut Transaction<'_>,
    target: &str,
    rows: impl Iterator<Item = &'a Row>,
) -> Result<u64, Failure> {
    let mut text = String::new();
    let mut n = 0;
    for row in rows {
        csv::write_record(&mut text, &row.fields());
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    let mut writer = tx.copy_in(&format!("COPY {target} FROM STDIN (FORMAT csv)"))?;
    writer.write_all(text.as_bytes()).map_err(Failure::Io)?;
    writer.finish()?;
    Ok(n)
}

fn write_step(
    tx: &mut Transaction<'_>,
    folded: &BTreeMap<(Table, String), Op>,
    batch: &Batch,
    frontier: Option<Time>,
) -> Result<Written, Failure> {
    let mut staged: BTreeMap<&'static str, u64> = BTreeMap::new();
    for table in TABLES {
        let upserts = folded.iter().filter_map(|((t, _), op)| match op {
            Op::Upsert(r) if *t == table => Some(r),
            _ => None,
        });
        let n = copy_rows(tx, &format!("stage_{}", table.name()), upserts)?;
        if n >= 1_000 {
            // Temp tables have no statistics: without them big steps get
            // nested-loop plans.
            tx.batch_execute(&format!("ANALYZE stage_{}", table.name()))?;
        }
        staged.insert(table.name(), n);
        let deletes = folded.iter().filter_map(|((t, _), op)| match op {
            Op::Delete(r) if *t == table => Some(r),
            _ => None,
        });
        copy_rows(tx, &format!("stage_del_{}", table.name()), deletes)?;
    }
    tx.batch_execute(MERGE_DIMENSIONS)?;
    let mut written = Written::new();
    for (table, sql) in FACTS {
        let n = tx.execute(*sql, &[])?;
        let want = staged.get(table).copied().unwrap_or(0);
        if n != want {
            return Err(Failure::Unresolved(format!(
                "{table}: {want} rows to write but {n} resolved their dimension keys; this is a bug, please report it with the pipeline's logs"
            )));
        }
        written.insert(table, n);
    }
    tx.batch_execute(MERGE_AGGREGATES)?;
    for table in ["dim_currency", "dim_time", "dim_user", "dim_product"] {
        written.insert(table, staged.get(table).copied().unwrap_or(0));
    }
    for d in &batch.dead_letters {
        tx.execute(
            "INSERT INTO dq_dead_letters (source_topic, source_partition, source_offset, reason, field, message, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[&d.topic, &d.partition, &d.offset, &d.reason, &d.field, &d.message, &d.payload],
        )?;
    }
    written.insert("dq_dead_letters", batch.dead_letters.len() as u64);
    let frontier_text = frontier.map(|t| shopflow_model::Timestamp(t as i64).to_string());
    if let (Some(run), Some(f)) = (batch.run, &frontier_text) {
        tx.execute(
            "INSERT INTO pipeline_runs AS r (run_started_at, frontier, drained) \
             VALUES ($1::text::timestamptz, $2::text::timestamptz, $3) \
             ON CONFLICT (run_started_at) DO UPDATE SET \
               frontier = GREATEST(r.frontier, EXCLUDED.frontier), \
               drained = r.drained OR EXCLUDED.drained, updated_at = now()",
            &[
                &shopflow_model::Timestamp(run).to_string(),
                f,
                &(batch.upto == Time::MAX),
            ],
        )?;
    }
    for (source, partition, next) in &batch.positions {
        tx.execute(
            "INSERT INTO pipeline_progress AS p (source, partition, next_offset, frontier) \
             VALUES ($1, $2, $3, $4::text::timestamptz) \
             ON CONFLICT (source, partition) DO UPDATE SET \
               next_offset = GREATEST(p.next_offset, EXCLUDED.next_offset), \
               frontier = GREATEST(p.frontier, EXCLUDED.frontier), updated_at = now()",
            &[source, partition, next, &frontier_text],
        )?;
    }
    Ok(written)
}

const MERGE_DIMENSIONS: &str = r#"
INSERT INTO dim_currency AS d (currency_code, name, latest_rate_date, latest_rate)
SELECT currency_code, name, latest_rate_date::date, latest_rate::numeric FROM stage_dim_currency
ON CONFLICT (currency_code) DO UPDATE SET name = EXCLUDED.name,
  latest_rate_date = EXCLUDED.latest_rate_date, latest_rate = EXCLUDED.latest_rate;

INSERT INTO dim_time (ts_minute, date, hour, minute, weekday, is_weekend, month, quarter, year)
SELECT ts_minute::timestamptz, date::date, hour::smallint, minute::smallint, weekday::smallint,
       is_weekend::boolean, month::smallint, quarter::smallint, year::smallint
FROM stage_dim_time
ON CONFLICT (ts_minute) DO NOTHING;

INSERT INTO dim_user AS d (user_id, is_inferred, name, country, currency, first_seen, last_seen)
SELECT user_id, is_inferred::boolean, name, country, currency,
       first_seen::timestamptz, last_seen::timestamptz
FROM stage_dim_user
ON CONFLICT (user_id) DO UPDATE SET
  is_inferred = d.is_inferred AND EXCLUDED.is_inferred,
  name = CASE WHEN EXCLUDED.is_inferred THEN d.name ELSE EXCLUDED.name END,
  country = CASE WHEN EXCLUDED.is_inferred THEN d.country ELSE EXCLUDED.country END,
  currency = CASE WHEN EXCLUDED.is_inferred THEN d.currency ELSE EXCLUDED.currency END,
  first_seen = LEAST(d.first_seen, EXCLUDED.first_seen),
  last_seen = GREATEST(d.last_seen, EXCLUDED.last_seen);

-- Type-2 products: close versions first, so that at most one is ever current.
UPDATE dim_product d SET valid_to = s.valid_to::timestamptz, is_current = false,
  name = s.name, category = s.category, price = s.price::numeric
FROM stage_dim_product s
WHERE s.is_current = 'false' AND NOT d.is_inferred
  AND d.product_id = s.product_id AND d.valid_from = s.valid_from::timestamptz;

INSERT INTO dim_product (product_id, is_inferred, name, category, price, valid_from, valid_to, is_current)
SELECT product_id, false, name, category, price::numeric, valid_from::timestamptz, valid_to::timestamptz, false
FROM stage_dim_product WHERE is_current = 'false'
ON CONFLICT (product_id, valid_from) DO NOTHING;

-- An inferred member ends where the first real version begins.
UPDATE dim_product i SET valid_to = m.first, is_current = false
FROM (SELECT product_id, min(vf) AS first
      FROM (SELECT product_id, valid_from::timestamptz AS vf FROM stage_dim_product
            UNION ALL SELECT product_id, valid_from FROM dim_product WHERE NOT is_inferred) x
      GROUP BY product_id) m
WHERE i.is_inferred AND i.product_id = m.product_id AND i.valid_to IS DISTINCT FROM m.first;

-- A stored current version older than a staged current one is closed by it.
UPDATE dim_product d SET valid_to = s.valid_from::timestamptz, is_current = false
FROM stage_dim_product s
WHERE s.is_current = 'true' AND d.is_current AND NOT d.is_inferred
  AND d.product_id = s.product_id AND d.valid_from < s.valid_from::timestamptz;

-- A staged "current" version older than a stored one (history re-read after
-- a restart) never reopens: it is stored closed by the next stored version.
INSERT INTO dim_product (product_id, is_inferred, name, category, price, valid_from, valid_to, is_current)
SELECT s.product_id, false, s.name, s.category, s.price::numeric, s.valid_from::timestamptz,
       (SELECT min(n.valid_from) FROM dim_product n WHERE n.product_id = s.product_id
          AND NOT n.is_inferred AND n.valid_from > s.valid_from::timestamptz), false
FROM stage_dim_product s
WHERE s.is_current = 'true' AND EXISTS (SELECT 1 FROM dim_product n WHERE n.product_id = s.product_id
  AND NOT n.is_inferred AND n.valid_from > s.valid_from::timestamptz)
ON CONFLICT (product_id, valid_from) DO NOTHING;

INSERT INTO dim_product AS d (product_id, is_inferred, name, category, price, valid_from, valid_to, is_current)
SELECT s.product_id, false, s.name, s.category, s.price::numeric, s.valid_from::timestamptz, NULL, true
FROM stage_dim_product s WHERE s.is_current = 'true'
  AND NOT EXISTS (SELECT 1 FROM dim_product n WHERE n.product_id = s.product_id
    AND NOT n.is_inferred AND n.valid_from > s.valid_from::timestamptz)
ON CONFLICT (product_id, valid_from) DO UPDATE SET valid_to = NULL, is_current = true,
  name = EXCLUDED.name, category = EXCLUDED.category, price = EXCLUDED.price;

-- Inferred members for facts that arrive before their user or product.
INSERT INTO dim_user (user_id, is_inferred)
SELECT user_id, true FROM (SELECT user_id FROM stage_fact_clicks
  UNION SELECT user_id FROM stage_fact_cart UNION SELECT user_id FROM stage_fact_orders) u
ON CONFLICT (user_id) DO NOTHING;

INSERT INTO dim_product (product_id, is_inferred, valid_from, valid_to, is_current)
SELECT f.product_id, true, '-infinity', min(p.valid_from), min(p.valid_from) IS NULL
FROM (SELECT product_id, ts::timestamptz AS ts FROM stage_fact_clicks
      UNION ALL SELECT product_id, ts::timestamptz FROM stage_fact_cart
      UNION ALL SELECT product_id, ts::timestamptz FROM stage_fact_order_items) f
LEFT JOIN dim_product p ON p.product_id = f.product_id
WHERE NOT EXISTS (SELECT 1 FROM dim_product c WHERE c.product_id = f.product_id
                  AND c.valid_from <= f.ts AND (c.valid_to IS NULL OR f.ts < c.valid_to))
GROUP BY f.product_id
ON CONFLICT (product_id, valid_from) DO NOTHING;

INSERT INTO dim_time (ts_minute, date, hour, minute, weekday, is_weekend, month, quarter, year)
SELECT m, m::date, extract(hour FROM m), extract(minute FROM m), extract(isodow FROM m),
       extract(isodow FROM m) >= 6, extract(month FROM m), extract(quarter FROM m), extract(year FROM m)
FROM (SELECT DISTINCT date_trunc('minute', ts::timestamptz) AS m
      FROM (SELECT ts FROM stage_fact_clicks UNION ALL SELECT ts FROM stage_fact_cart
            UNION ALL SELECT ts FROM stage_fact_orders) f) t
ON CONFLICT (ts_minute) DO NOTHING;
"#;

const FACTS: &[(&str, &str)] = &[
    (
        "fact_clicks",
        r#"INSERT INTO fact_clicks (event_id, user_key, session_id, product_key, time_key, ts, page, referrer)
SELECT s.event_id, u.user_key, s.session_id, p.product_key, t.time_key, s.ts::timestamptz,
       coalesce(s.page, ''), coalesce(s.referrer, '')
FROM stage_fact_clicks s
JOIN dim_user u ON u.user_id = s.user_id
JOIN dim_product p ON p.product_id = s.product_id AND p.valid_from <= s.ts::timestamptz
  AND (p.valid_to IS NULL OR s.ts::timestamptz < p.valid_to)
JOIN dim_time t ON t.ts_minute = date_trunc('minute', s.ts::timestamptz)
ON CONFLICT (event_id) DO UPDATE SET user_key = EXCLUDED.user_key, session_id = EXCLUDED.session_id,
  product_key = EXCLUDED.product_key, time_key = EXCLUDED.time_key, ts = EXCLUDED.ts,
  page = EXCLUDED.page, referrer = EXCLUDED.referrer"#,
    ),
    (
        "fact_cart",
        r#"INSERT INTO fact_cart (event_id, user_key, session_id, product_key, time_key, quantity, ts)
SELECT s.event_id, u.user_key, s.session_id, p.product_key, t.time_key, s.quantity::integer, s.ts::timestamptz
FROM stage_fact_cart s
JOIN dim_user u ON u.user_id = s.user_id
JOIN dim_product p ON p.product_id = s.product_id AND p.valid_from <= s.ts::timestamptz
  AND (p.valid_to IS NULL OR s.ts::timestamptz < p.valid_to)
JOIN dim_time t ON t.ts_minute = date_trunc('minute', s.ts::timestamptz)
ON CONFLICT (event_id) DO UPDATE SET user_key = EXCLUDED.user_key, session_id = EXCLUDED.session_id,
  product_key = EXCLUDED.product_key, time_key = EXCLUDED.time_key, quantity = EXCLUDED.quantity,
  ts = EXCLUDED.ts"#,
    ),
    (
        "fact_orders",
        r#"INSERT INTO fact_orders (event_id, user_key, session_id, time_key, currency_key, ts,
  total_amount, total_amount_usd, line_count, item_count)
SELECT s.event_id, u.user_key, s.session_id, t.time_key, c.currency_key, s.ts::timestamptz,
       s.total_amount::numeric, s.total_amount_usd::numeric, s.line_count::integer, s.item_count::integer
FROM stage_fact_orders s
JOIN dim_user u ON u.user_id = s.user_id
JOIN dim_currency c ON c.currency_code = s.currency
JOIN dim_time t ON t.ts_minute = date_trunc('minute', s.ts::timestamptz)
ON CONFLICT (event_id) DO UPDATE SET user_key = EXCLUDED.user_key, session_id = EXCLUDED.session_id,
  time_key = EXCLUDED.time_key, currency_key = EXCLUDED.currency_key, ts = EXCLUDED.ts,
  total_amount = EXCLUDED.total_amount, total_amount_usd = EXCLUDED.total_amount_usd,
  line_count = EXCLUDED.line_count, item_count = EXCLUDED.item_count"#,
    ),
    (
        "fact_order_items",
        r#"INSERT INTO fact_order_items (event_id, line_number, product_key, quantity, unit_price,
  line_amount, line_amount_usd, ts)
SELECT s.event_id, s.line_number::integer, p.product_key, s.quantity::integer, s.unit_price::numeric,
       s.line_amount::numeric, s.line_amount_usd::numeric, s.ts::timestamptz
FROM stage_fact_order_items s
JOIN dim_product p ON p.product_id = s.product_id AND p.valid_from <= s.ts::timestamptz
  AND (p.valid_to IS NULL OR s.ts::timestamptz < p.valid_to)
ON CONFLICT (event_id, line_number) DO UPDATE SET product_key = EXCLUDED.product_key,
  quantity = EXCLUDED.quantity, unit_price = EXCLUDED.unit_price, line_amount = EXCLUDED.line_amount,
  line_amount_usd = EXCLUDED.line_amount_usd, ts = EXCLUDED.ts"#,
    ),
];

const MERGE_AGGREGATES: &str = r#"
INSERT INTO agg_sales_minute (window_start, orders, items, revenue_usd, aov_usd, buyers)
SELECT window_start::timestamptz, orders::bigint, items::bigint, revenue_usd::numeric,
       aov_usd::numeric, buyers::bigint
FROM stage_agg_sales_minute
ON CONFLICT (window_start) DO UPDATE SET orders = EXCLUDED.orders, items = EXCLUDED.items,
  revenue_usd = EXCLUDED.revenue_usd, aov_usd = EXCLUDED.aov_usd, buyers = EXCLUDED.buyers;
DELETE FROM agg_sales_minute a USING stage_del_agg_sales_minute d
WHERE a.window_start = d.window_start::timestamptz;

INSERT INTO agg_funnel_5min (window_start, sessions_active, sessions_carted, sessions_purchased)
SELECT window_start::timestamptz, sessions_active::bigint, sessions_carted::bigint,
       sessions_purchased::bigint
FROM stage_agg_funnel_5min
ON CONFLICT (window_start) DO UPDATE SET sessions_active = EXCLUDED.sessions_active,
  sessions_carted = EXCLUDED.sessions_carted, sessions_purchased = EXCLUDED.sessions_purchased;
DELETE FROM agg_funnel_5min a USING stage_del_agg_funnel_5min d
WHERE a.window_start = d.window_start::timestamptz;

INSERT INTO agg_top_products_hour (window_start, ranking, rank, product_id, value)
SELECT window_start::timestamptz, ranking, rank::smallint, product_id, value::numeric
FROM stage_agg_top_products_hour
ON CONFLICT (window_start, ranking, rank) DO UPDATE SET product_id = EXCLUDED.product_id,
  value = EXCLUDED.value;
DELETE FROM agg_top_products_hour a USING stage_del_agg_top_products_hour d
WHERE a.window_start = d.window_start::timestamptz AND a.ranking = d.ranking
  AND a.rank = d.rank::smallint;
"#;
