//! How rows look as CSV: headers, keys and fields.
//!
//! Times are RFC 3339 UTC (`2026-11-24T10:05:00Z`, with milliseconds only when
//! they are not zero), money has exactly two decimals, counts are integers.

use crate::rows::{Ranking, Row, Table};
use shopflow_model::{Money, Timestamp};

/// The CSV header of a table.
pub fn header(table: Table) -> &'static [&'static str] {
    match table {
        Table::FactClicks => &[
            "event_id",
            "user_id",
            "session_id",
            "product_id",
            "ts",
            "page",
            "referrer",
        ],
        Table::FactCart => &[
            "event_id",
            "user_id",
            "session_id",
            "product_id",
            "quantity",
            "ts",
        ],
        Table::FactOrders => &[
            "event_id",
            "user_id",
            "session_id",
            "ts",
            "currency",
            "total_amount",
            "total_amount_usd",
            "line_count",
            "item_count",
        ],
        Table::FactOrderItems => &[
            "event_id",
            "line_number",
            "product_id",
            "quantity",
            "unit_price",
            "line_amount",
            "line_amount_usd",
            "ts",
        ],
        Table::DimUser => &[
            "user_id",
            "is_inferred",
            "name",
            "country",
            "currency",
            "first_seen",
            "last_seen",
        ],
        Table::DimProduct => &[
            "product_id",
            "valid_from",
            "valid_to",
            "is_current",
            "name",
            "category",
            "price",
        ],
        Table::DimCurrency => &["currency_code", "name", "latest_rate_date", "latest_rate"],
        Table::DimTime => &[
            "ts_minute",
            "date",
            "hour",
            "minute",
            "weekday",
            "is_weekend",
            "month",
            "quarter",
            "year",
        ],
        Table::AggSalesMinute => &[
            "window_start",
            "orders",
            "items",
            "revenue_usd",
            "aov_usd",
            "buyers",
        ],
        Table::AggFunnel5min => &[
            "window_start",
            "sessions_active",
            "sessions_carted",
            "sessions_purchased",
        ],
        Table::AggTopProductsHour => &["window_start", "ranking", "rank", "product_id", "value"],
        Table::Rolling => &["minutes", "orders", "revenue_usd", "sessions"],
        Table::Stats => &["name", "value"],
        Table::Conflicts => &["event_id", "versions", "kept_ts"],
    }
}

/// RFC 3339 UTC; milliseconds only when not zero.
pub fn ts(t: Timestamp) -> String {
    if t.0.rem_euclid(1000) == 0 {
        t.to_rfc3339_seconds()
    } else {
        t.to_string()
    }
}

fn opt_ts(t: Option<Timestamp>) -> String {
    t.map(ts).unwrap_or_default()
}

impl Row {
    /// The table this row belongs to.
    pub fn table(&self) -> Table {
        match self {
            Row::FactClick(_) => Table::FactClicks,
            Row::FactCart(_) => Table::FactCart,
            Row::FactOrder(_) => Table::FactOrders,
            Row::FactOrderItem(_) => Table::FactOrderItems,
            Row::DimUser(_) => Table::DimUser,
            Row::DimProduct(_) => Table::DimProduct,
            Row::DimCurrency(_) => Table::DimCurrency,
            Row::DimTime(_) => Table::DimTime,
            Row::SalesMinute(_) => Table::AggSalesMinute,
            Row::Funnel(_) => Table::AggFunnel5min,
            Row::TopProduct(_) => Table::AggTopProductsHour,
            Row::Rolling(_) => Table::Rolling,
            Row::Stat(_) => Table::Stats,
            Row::Conflict(_) => Table::Conflicts,
        }
    }

    /// The row's natural key within its table, as text that sorts in key order.
    pub fn key(&self) -> String {
        match self {
            Row::FactClick(r) => r.event_id.clone(),
            Row::FactCart(r) => r.event_id.clone(),
            Row::FactOrder(r) => r.event_id.clone(),
            Row::FactOrderItem(r) => format!("{}\u{0}{:05}", r.event_id, r.line_number),
            Row::DimUser(r) => r.user_id.clone(),
            Row::DimProduct(r) => format!("{}\u{0}{}", r.product_id, r.valid_from),
            Row::DimCurrency(r) => r.currency.code().to_string(),
            Row::DimTime(r) => r.ts_minute.to_string(),
            Row::SalesMinute(r) => r.window_start.to_string(),
            Row::Funnel(r) => r.window_start.to_string(),
            Row::TopProduct(r) => {
                format!("{}\u{0}{:?}\u{0}{:02}", r.window_start, r.ranking, r.rank)
            }
            Row::Rolling(r) => format!("{:03}", r.minutes),
            Row::Stat(r) => format!("{:?}", r.name),
            Row::Conflict(r) => r.event_id.clone(),
        }
    }

    /// For windowed rows, the end of the window (event time, ms).
    pub fn window_end(&self) -> Option<i64> {
        match self {
            Row::SalesMinute(r) => Some(r.window_start.0 + 60_000),
            Row::Funnel(r) => Some(r.window_start.0 + 300_000),
            Row::TopProduct(r) => Some(r.window_start.0 + 3_600_000),
            _ => None,
        }
    }

    /// The event time a fact or window row belongs to (a fact's `ts`, a
    /// window's start): what dates it for a replay of a day. `None` for
    /// dimensions and dashboard-only rows.
    pub fn event_time(&self) -> Option<i64> {
        match self {
            Row::FactClick(r) => Some(r.ts.0),
            Row::FactCart(r) => Some(r.ts.0),
            Row::FactOrder(r) => Some(r.ts.0),
            Row::FactOrderItem(r) => Some(r.ts.0),
            Row::SalesMinute(r) => Some(r.window_start.0),
            Row::Funnel(r) => Some(r.window_start.0),
            Row::TopProduct(r) => Some(r.window_start.0),
            _ => None,
        }
    }

    /// The row's CSV fields, in header order.
    pub fn fields(&self) -> Vec<String> {
        let s = |x: &dyn ToString| x.to_string();
        match self {
            Row::FactClick(r) => vec![
                r.event_id.clone(),
                r.user_id.clone(),
                r.session_id.clone(),
                r.product_id.clone(),
                ts(r.ts),
                r.page.clone(),
                r.referrer.clone(),
            ],
            Row::FactCart(r) => vec![
                r.event_id.clone(),
                r.user_id.clone(),
                r.session_id.clone(),
                r.product_id.clone(),
                s(&r.quantity),
                ts(r.ts),
            ],
            Row::FactOrder(r) => vec![
                r.event_id.clone(),
                r.user_id.clone(),
                r.session_id.clone(),
                ts(r.ts),
                s(&r.currency),
                s(&r.total_amount),
                s(&r.total_amount_usd),
                s(&r.line_count),
                s(&r.item_count),
            ],
            Row::FactOrderItem(r) => vec![
                r.event_id.clone(),
                s(&r.line_number),
                r.product_id.clone(),
                s(&r.quantity),
                s(&r.unit_price),
                s(&r.line_amount),
                s(&r.line_amount_usd),
                ts(r.ts),
            ],
            Row::DimUser(r) => {
                let (name, country, currency) = match &r.profile {
                    Some((n, c, cur)) => (n.clone(), c.clone(), cur.to_string()),
                    None => Default::default(),
                };
                vec![
                    r.user_id.clone(),
                    s(&r.profile.is_none()),
                    name,
                    country,
                    currency,
                    opt_ts(r.first_seen),
                    opt_ts(r.last_seen),
                ]
            }
            Row::DimProduct(r) => vec![
                r.product_id.clone(),
                ts(r.valid_from),
                opt_ts(r.valid_to),
                s(&r.valid_to.is_none()),
                r.name.clone(),
                r.category.clone(),
                s(&r.price),
            ],
            Row::DimCurrency(r) => vec![
                s(&r.currency),
                r.currency.name().to_string(),
                r.rate_date.map(|d| d.to_string()).unwrap_or_default(),
                s(&r.rate),
            ],
            Row::DimTime(r) => {
                let t = r.ts_minute;
                let date = t.date();
                let (year, month, _) = date.civil();
                let minute_of_day = t.millis_of_day() / 60_000;
                let weekday = date.iso_weekday();
                vec![
                    ts(t),
                    date.to_string(),
                    s(&(minute_of_day / 60)),
                    s(&(minute_of_day % 60)),
                    s(&weekday),
                    s(&(weekday >= 6)),
                    s(&month),
                    s(&((month - 1) / 3 + 1)),
                    s(&year),
                ]
            }
            Row::SalesMinute(r) => {
                let aov = if r.orders > 0 {
                    r.revenue_usd.div_count(r.orders as u64)
                } else {
                    Money::ZERO
                };
                vec![
                    ts(r.window_start),
                    s(&r.orders),
                    s(&r.items),
                    s(&r.revenue_usd),
                    s(&aov),
                    s(&r.buyers),
                ]
            }
            Row::Funnel(r) => vec![
                ts(r.window_start),
                s(&r.sessions_active),
                s(&r.sessions_carted),
                s(&r.sessions_purchased),
            ],
            Row::TopProduct(r) => {
                let (ranking, value) = match r.ranking {
                    Ranking::Revenue => ("revenue", Money::from_units(r.value).to_string()),
                    Ranking::Clicks => ("clicks", r.value.to_string()),
                };
                vec![
                    ts(r.window_start),
                    ranking.into(),
                    s(&r.rank),
                    r.product_id.clone(),
                    value,
                ]
            }
            Row::Rolling(r) => vec![
                s(&r.minutes),
                s(&r.orders),
                s(&r.revenue_usd),
                s(&r.sessions),
            ],
            Row::Stat(r) => vec![format!("{:?}", r.name), s(&r.value)],
            Row::Conflict(r) => vec![r.event_id.clone(), s(&r.versions), ts(r.kept_ts)],
        }
    }
}

/// Writes one CSV record (RFC 4180 quoting) and a newline.
pub fn write_record(out: &mut String, fields: &[impl AsRef<str>]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let f = f.as_ref();
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push('\n');
}
