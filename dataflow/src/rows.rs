//! The output tables of the dataflow, one row type each.
//!
//! Column names are the warehouse's, with natural keys in place of surrogate
//! keys. Every metric is defined in `docs/metrics.md`. A [`Row`] knows its
//! table, its key, its CSV form and, for windowed tables, when it stops
//! changing (the sinks' freeze rule, see [`crate::apply`]).

use serde::{Deserialize, Serialize};
use shopflow_model::{CartAdd, Click, Currency, Date, Money, Rate, Timestamp};

/// An order fact: one row per valid, deduplicated purchase with a known rate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FactOrder {
    /// The order id.
    pub event_id: String,
    /// The buyer.
    pub user_id: String,
    /// The session.
    pub session_id: String,
    /// Event time.
    pub ts: Timestamp,
    /// Currency of the order.
    pub currency: Currency,
    /// Amount charged, in `currency`.
    pub total_amount: Money,
    /// `round_half_even(total_amount / rate, 2)`.
    pub total_amount_usd: Money,
    /// Number of order lines.
    pub line_count: u32,
    /// Sum of line quantities.
    pub item_count: u32,
}

/// An order line fact.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FactOrderItem {
    /// The order id.
    pub event_id: String,
    /// 1-based position in the order.
    pub line_number: u32,
    /// The product.
    pub product_id: String,
    /// Units.
    pub quantity: u32,
    /// Price of one unit in the order's currency.
    pub unit_price: Money,
    /// `unit_price * quantity`, in the order's currency.
    pub line_amount: Money,
    /// `round_half_even(line_amount / rate, 2)`.
    pub line_amount_usd: Money,
    /// Event time of the order.
    pub ts: Timestamp,
}

/// A user dimension member (inferred when no profile has arrived yet).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DimUser {
    /// Natural key.
    pub user_id: String,
    /// Latest profile: (name, country, currency); `None` for an inferred member.
    pub profile: Option<(String, String, Currency)>,
    /// Earliest event time seen (over the live horizon; sinks keep the minimum).
    pub first_seen: Option<Timestamp>,
    /// Latest event time seen (sinks keep the maximum).
    pub last_seen: Option<Timestamp>,
}

/// A product dimension version (type-2 history on price and category).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DimProduct {
    /// Natural key.
    pub product_id: String,
    /// When this version took effect.
    pub valid_from: Timestamp,
    /// When the next version took effect; `None` for the current one.
    pub valid_to: Option<Timestamp>,
    /// Name (the latest seen within this version).
    pub name: String,
    /// Category.
    pub category: String,
    /// List price in USD.
    pub price: Money,
}

/// A currency with its latest rate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DimCurrency {
    /// ISO code.
    pub currency: Currency,
    /// Date of the latest rate (`None` for USD).
    pub rate_date: Option<Date>,
    /// Units per USD (1 for USD).
    pub rate: Rate,
}

/// A minute of the time dimension that has events.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DimTime {
    /// Start of the minute, UTC.
    pub ts_minute: Timestamp,
}

/// Sales in one UTC minute.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SalesMinute {
    /// Start of the minute.
    pub window_start: Timestamp,
    /// Orders.
    pub orders: i64,
    /// Sum of line quantities.
    pub items: i64,
    /// Sum of order amounts in USD.
    pub revenue_usd: Money,
    /// Distinct buyers.
    pub buyers: i64,
}

/// The funnel in one UTC 5-minute window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Funnel {
    /// Start of the window.
    pub window_start: Timestamp,
    /// Sessions with any event.
    pub sessions_active: i64,
    /// Sessions with a cart or purchase event.
    pub sessions_carted: i64,
    /// Sessions with a purchase.
    pub sessions_purchased: i64,
}

/// What a top-products ranking orders by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ranking {
    /// Line revenue in USD (value in cents).
    Revenue,
    /// Clicks (value is a count).
    Clicks,
}

/// One place of a top-10 ranking in one UTC hour.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopProduct {
    /// Start of the hour.
    pub window_start: Timestamp,
    /// Which ranking.
    pub ranking: Ranking,
    /// 1..=10.
    pub rank: u32,
    /// The product.
    pub product_id: String,
    /// Cents of USD for revenue, a count for clicks.
    pub value: i64,
}

/// Rolling dashboard figures over the last `minutes` of event time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rolling {
    /// Window length: 5 or 60.
    pub minutes: u32,
    /// Orders.
    pub orders: i64,
    /// Revenue in USD.
    pub revenue_usd: Money,
    /// Distinct active sessions.
    pub sessions: i64,
}

/// A pipeline counter computed in the dataflow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stat {
    /// Which counter.
    pub name: StatName,
    /// Its value.
    pub value: i64,
}

/// The dataflow's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StatName {
    /// Distinct event ids in the live state.
    DistinctEvents,
    /// Event ids seen with more than one payload.
    Conflicts,
    /// Extra copies received (exact re-sends and conflicting versions).
    Duplicates,
    /// Orders waiting for an FX rate.
    OrdersWaitingFx,
}

/// Any output row, tagged by table. Variant order is table order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Row {
    /// `fact_clicks`.
    FactClick(Click),
    /// `fact_cart`.
    FactCart(CartAdd),
    /// `fact_orders`.
    FactOrder(FactOrder),
    /// `fact_order_items`.
    FactOrderItem(FactOrderItem),
    /// `dim_user`.
    DimUser(DimUser),
    /// `dim_product`.
    DimProduct(DimProduct),
    /// `dim_currency`.
    DimCurrency(DimCurrency),
    /// `dim_time`.
    DimTime(DimTime),
    /// `agg_sales_minute`.
    SalesMinute(SalesMinute),
    /// `agg_funnel_5min`.
    Funnel(Funnel),
    /// `agg_top_products_hour`.
    TopProduct(TopProduct),
    /// Live rolling figures (dashboard only).
    Rolling(Rolling),
    /// Pipeline counters (dashboard and reports only).
    Stat(Stat),
    /// `dq_conflicts`: an event id received with different payloads.
    Conflict(Conflict),
}

/// An event id received with more than one distinct payload.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Conflict {
    /// The id.
    pub event_id: String,
    /// Distinct versions received.
    pub versions: u32,
    /// Event time of the version kept (the smallest `ts`, then raw bytes).
    pub kept_ts: Timestamp,
}

/// The output tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Table {
    /// `fact_clicks`.
    FactClicks,
    /// `fact_cart`.
    FactCart,
    /// `fact_orders`.
    FactOrders,
    /// `fact_order_items`.
    FactOrderItems,
    /// `dim_user`.
    DimUser,
    /// `dim_product`.
    DimProduct,
    /// `dim_currency`.
    DimCurrency,
    /// `dim_time`.
    DimTime,
    /// `agg_sales_minute`.
    AggSalesMinute,
    /// `agg_funnel_5min`.
    AggFunnel5min,
    /// `agg_top_products_hour`.
    AggTopProductsHour,
    /// Live rolling figures.
    Rolling,
    /// Pipeline counters.
    Stats,
    /// Conflicting versions of one event id (data quality).
    Conflicts,
}

impl Table {
    /// Tables written by bounded runs and the warehouse.
    pub const WAREHOUSE: [Table; 11] = [
        Table::FactClicks,
        Table::FactCart,
        Table::FactOrders,
        Table::FactOrderItems,
        Table::DimUser,
        Table::DimProduct,
        Table::DimCurrency,
        Table::DimTime,
        Table::AggSalesMinute,
        Table::AggFunnel5min,
        Table::AggTopProductsHour,
    ];

    /// The table's name.
    pub const fn name(self) -> &'static str {
        match self {
            Table::FactClicks => "fact_clicks",
            Table::FactCart => "fact_cart",
            Table::FactOrders => "fact_orders",
            Table::FactOrderItems => "fact_order_items",
            Table::DimUser => "dim_user",
            Table::DimProduct => "dim_product",
            Table::DimCurrency => "dim_currency",
            Table::DimTime => "dim_time",
            Table::AggSalesMinute => "agg_sales_minute",
            Table::AggFunnel5min => "agg_funnel_5min",
            Table::AggTopProductsHour => "agg_top_products_hour",
            Table::Rolling => "rolling",
            Table::Stats => "stats",
            Table::Conflicts => "dq_conflicts",
        }
    }
}
