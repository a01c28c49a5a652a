//! The dataflow graph: from deduplicated events to every output table.

use crate::dedup::dedup;
use crate::input::{Id, Inputs, Version};
use crate::lifetime::{extend, lifetime, release_late};
use crate::rows::*;
use crate::seen::first_last_seen;
use crate::{Settings, Time};
use differential_dataflow::input::Input;
use differential_dataflow::operators::count::CountTotal;
use differential_dataflow::operators::threshold::ThresholdTotal;
use differential_dataflow::{AsCollection, VecCollection};
use shopflow_model::{Currency, Event, FxRate, Money, Purchase, Rate, Timestamp};
use std::iter::once;
use std::sync::Arc;
use timely::dataflow::Scope;
use timely::dataflow::operators::core::Filter;

type Coll<'s, D> = VecCollection<'s, Time, D>;
/// Events after deduplication, shared rather than copied between operators.
type Ev = Arc<Event>;
/// An order with the FX rate valid on its date.
type Priced = (Arc<Purchase>, Rate);

const MINUTE: i64 = 60_000;
const FIVE: i64 = 300_000;
const HOUR: i64 = 3_600_000;

/// Builds the dataflow in `scope`; returns its inputs and every output row.
/// A `bounded` run (replay) feeds only [`crate::Tables`]: it gets no rolling
/// figures (dashboard only), and no retractions of rows that sinks never
/// delete (facts, dimensions, conflicts, counters: `apply.rs`), which
/// changes no table.
pub fn build<'s>(
    scope: Scope<'s, Time>,
    settings: &Settings,
    bounded: bool,
) -> (Inputs, Coll<'s, Row>) {
    let (events_in, raw) = scope.new_collection::<(Id, Version), isize>();
    let (fx_in, fx) = scope.new_collection::<FxRate, isize>();
    let (products_in, products) = scope.new_collection();
    let (users_in, users) = scope.new_collection();
    let inputs = Inputs {
        events: events_in,
        fx: fx_in,
        products: products_in,
        users: users_in,
    };

    // Deduplicate: keep the smallest version per id; count extra copies and
    // ids with conflicting versions.
    let resolved = dedup(raw);
    // The dedup state forgets ids soon after the allowed lateness; downstream
    // keeps each winner until its full lifetime (`Settings::expiry`).
    let s = settings.clone();
    let resolved = extend(resolved, "KeepWinners", move |(_, (e, forget, _, _))| {
        (*forget, s.expiry(e.ts().0))
    });
    let events = resolved.clone().map(|(_, (e, _, _, _))| e);
    let conflicting = resolved.clone().filter(|(_, (_, _, n, _))| *n > 1);
    let conflict_rows = conflicting.clone().map(|(id, (e, _, versions, _))| {
        Row::Conflict(Conflict {
            event_id: id.to_string(),
            versions,
            kept_ts: e.ts(),
        })
    });
    let conflicts = conflicting.map(|_| StatName::Conflicts);
    let duplicates =
        resolved.explode(|(_, (_, _, _, copies))| once((StatName::Duplicates, copies - 1)));
    let distinct = events.clone().map(|_| StatName::DistinctEvents);

    let s = settings.clone();
    let purchases = extend(
        events.clone().flat_map(|e| match &*e {
            Event::Purchase(p) => Some(Arc::new(p.clone())),
            _ => None,
        }),
        "WaitForRate",
        move |p: &Arc<Purchase>| (s.expiry(p.ts.0), s.order_expiry(p.ts.0)),
    );
    let (priced, waiting) = price_orders(purchases.clone(), fx.clone());
    let stats = conflicts
        .concat(duplicates)
        .concat(distinct)
        .concat(waiting.clone().map(|_| StatName::OrdersWaitingFx))
        .count_total()
        .map(|(name, value)| {
            Row::Stat(Stat {
                name,
                value: value as i64,
            })
        });

    // Each aggregate keeps its inputs only until its windows freeze; the
    // lifetime applies to the small key each one makes of an event, so the
    // event itself need not stay alive with its future retraction.
    let s = settings.clone();
    let minutes = lifetime(
        events.clone().map(|e| e.ts().floor_to(MINUTE)),
        "UntilFrozen",
        move |m: &Timestamp| (0, s.freeze(m.0 + MINUTE)),
    );
    let priced_minute = in_open_windows(&purchases, &waiting, &priced, MINUTE, settings);
    let priced_hour = in_open_windows(&purchases, &waiting, &priced, HOUR, settings);
    let rows = facts(events.clone(), priced.clone())
        .concat(sales_minute(priced_minute))
        .concat(funnel(events.clone(), settings))
        .concat(top_products(events.clone(), priced_hour, settings))
        .concat(dim_user(events.clone(), users))
        .concat(dim_product(products))
        .concat(dim_currency(fx))
        .concat(
            minutes
                .distinct_total()
                .map(|ts_minute| Row::DimTime(DimTime { ts_minute })),
        )
        .concat(stats)
        .concat(conflict_rows);
    if bounded {
        let kept = rows
            .inner
            .filter(|(row, _, diff)| *diff > 0 || row.window_end().is_some());
        return (inputs, kept.as_collection());
    }
    let s = settings.clone();
    let kept = rows
        .inner
        .filter(move |(row, time, diff)| *diff > 0 || !ages_out(row, *time, &s));
    (
        inputs,
        kept.as_collection()
            .concat(rolling(events, priced, settings)),
    )
}

/// Whether a retraction of `row` at `time` is the fact leaving the live
/// state at the end of its lifetime (`Settings::expiry`, or
/// `Settings::order_expiry` for orders): no sink applies it (facts are never
/// deleted, and the dashboard reads an order only while its minute is open),
/// so it is not sent. Until it is due it would sit with every other
/// future-dated change of the last hour and more in the runner's buffer.
/// Retractions before then (a conflicting version replacing the winner, an
/// order re-priced) are kept.
fn ages_out(row: &Row, time: Time, s: &Settings) -> bool {
    match row {
        Row::FactClick(c) => time >= s.expiry(c.ts.0),
        Row::FactCart(c) => time >= s.expiry(c.ts.0),
        Row::FactOrder(o) => time >= s.order_expiry(o.ts.0),
        Row::FactOrderItem(i) => time >= s.order_expiry(i.ts.0),
        _ => false,
    }
}

/// Orders with the FX rate valid on their date, and the orders still waiting for one.
fn price_orders<'s>(
    purchases: Coll<'s, Arc<Purchase>>,
    fx: Coll<'s, FxRate>,
) -> (Coll<'s, Priced>, Coll<'s, Arc<Purchase>>) {
    let keyed = purchases.map(|p| ((p.currency, p.ts.date()), p));
    let foreign = keyed.clone().filter(|((c, _), _)| *c != Currency::Usd);
    let needed = foreign.clone().map(|(k, _)| k).distinct_total();
    let effective = needed
        .join(fx.map(|f| (f.currency, (f.date, f.rate))))
        .filter(|(_, (date, (fx_date, _)))| fx_date <= date)
        .map(|(c, (date, (fx_date, rate)))| ((c, date), (fx_date, rate)))
        .reduce_named("LatestRate", |_k, rates, out: &mut Vec<(Rate, isize)>| {
            out.push(((rates.last().expect("non-empty").0).1, 1));
        });
    let usd = keyed
        .filter(|((c, _), _)| *c == Currency::Usd)
        .map(|(_, p)| (p, Rate::from_units(1_000_000)));
    let waiting = foreign
        .clone()
        .antijoin(effective.clone().map(|(k, _)| k))
        .map(|(_, p)| p);
    let priced = foreign
        .join(effective)
        .map(|(_, (p, rate))| (p, rate))
        .concat(usd);
    (priced, waiting)
}

/// The priced orders of every window of `period` that is still open: before
/// it freezes (window end + horizon), and beyond that for as long as an order
/// in it waits for its rate, released one step after the last of them is
/// priced (or leaves the state unpriced). So an order priced after its
/// window's nominal freeze still reaches the window, with every other order
/// of it; then the whole window leaves at once, which sinks read as ageing
/// out (`apply.rs`). A hold ends by `order_expiry(window start)`, before any
/// order of the window leaves the pricing state.
fn in_open_windows<'s>(
    purchases: &Coll<'s, Arc<Purchase>>,
    waiting: &Coll<'s, Arc<Purchase>>,
    priced: &Coll<'s, Priced>,
    period: i64,
    settings: &Settings,
) -> Coll<'s, Priced> {
    let s = settings.clone();
    let nominal = lifetime(
        purchases.clone().map(move |p| p.ts.floor_to(period).0),
        "UntilFrozen",
        move |w| (0, s.freeze(*w + period)),
    );
    let s = settings.clone();
    let held = waiting
        .clone()
        .map(move |p| p.ts.floor_to(period).0)
        .distinct_total();
    let held = release_late(held, "ReleaseAfterPricing", settings.tick_ms as Time);
    let held = lifetime(held, "HoldAtMost", move |w| (0, s.order_expiry(*w)));
    let open = nominal.concat(held).distinct_total();
    priced
        .clone()
        .map(move |x| (x.0.ts.floor_to(period).0, x))
        .semijoin(open)
        .map(|(_, x)| x)
}

fn line_amount(unit_price: Money, quantity: u32) -> Money {
    Money::from_units(unit_price.units() * i64::from(quantity))
}

fn facts<'s>(events: Coll<'s, Ev>, priced: Coll<'s, Priced>) -> Coll<'s, Row> {
    let clicks_carts = events.flat_map(|e| match &*e {
        Event::Click(c) => Some(Row::FactClick(c.clone())),
        Event::Cart(c) => Some(Row::FactCart(c.clone())),
        Event::Purchase(_) => None,
    });
    let orders = priced.clone().map(|(p, rate)| {
        Row::FactOrder(FactOrder {
            total_amount_usd: p.total_amount.to_usd(rate),
            line_count: p.items.len() as u32,
            item_count: p.items.iter().map(|i| i.quantity).sum(),
            event_id: p.event_id.clone(),
            user_id: p.user_id.clone(),
            session_id: p.session_id.clone(),
            ts: p.ts,
            currency: p.currency,
            total_amount: p.total_amount,
        })
    });
    let items = priced.flat_map(|(p, rate)| {
        (0..p.items.len()).map(move |i| {
            let item = &p.items[i];
            let amount = line_amount(item.unit_price, item.quantity);
            Row::FactOrderItem(FactOrderItem {
                event_id: p.event_id.clone(),
                line_number: i as u32 + 1,
                product_id: item.product_id.clone(),
                quantity: item.quantity,
                unit_price: item.unit_price,
                line_amount: amount,
                line_amount_usd: amount.to_usd(rate),
                ts: p.ts,
            })
        })
    });
    clicks_carts.concat(orders).concat(items)
}

fn sales_minute<'s>(priced: Coll<'s, Priced>) -> Coll<'s, Row> {
    let sums = priced.clone().explode(|(p, rate)| {
        let items: u32 = p.items.iter().map(|i| i.quantity).sum();
        let usd = p.total_amount.to_usd(rate).units() as isize;
        once((p.ts.floor_to(MINUTE), (1isize, items as isize, usd, 0isize)))
    });
    let buyers = priced
        .map(|(p, _)| (p.ts.floor_to(MINUTE), Id::from(p.user_id.as_str())))
        .distinct_total()
        .explode(|(m, _)| once((m, (0isize, 0isize, 0isize, 1isize))));
    sums.concat(buyers)
        .count_total()
        .map(|(window_start, (orders, items, usd, buyers))| {
            Row::SalesMinute(SalesMinute {
                window_start,
                orders: orders as i64,
                items: items as i64,
                revenue_usd: Money::from_units(usd as i64),
                buyers: buyers as i64,
            })
        })
}

/// One `threshold_total` over (window, session) with the stages in the
/// difference (events, cart or later, purchases), mapped to 0/1 per stage,
/// then summed per window: one arrangement per (window, session) instead of
/// one per stage.
fn funnel<'s>(events: Coll<'s, Ev>, settings: &Settings) -> Coll<'s, Row> {
    let s = settings.clone();
    let stages = events.map(|e| {
        let stage: u8 = match &*e {
            Event::Click(_) => 0,
            Event::Cart(_) => 1,
            Event::Purchase(_) => 2,
        };
        ((e.ts().floor_to(FIVE), Id::from(e.session_id())), stage)
    });
    lifetime(stages, "UntilFrozen", move |((w, _), _)| {
        (0, s.freeze(w.0 + FIVE))
    })
    .explode(|(key, stage)| {
        once((
            key,
            (1isize, isize::from(stage >= 1), isize::from(stage >= 2)),
        ))
    })
    .threshold_total(|_, &(any, carted, purchased)| {
        (
            isize::from(any > 0),
            isize::from(carted > 0),
            isize::from(purchased > 0),
        )
    })
    .map(|(w, _)| w)
    .count_total()
    .map(|(w, (a, c, p))| {
        Row::Funnel(Funnel {
            window_start: w,
            sessions_active: a as i64,
            sessions_carted: c as i64,
            sessions_purchased: p as i64,
        })
    })
}

fn top_products<'s>(
    events: Coll<'s, Ev>,
    priced: Coll<'s, Priced>,
    settings: &Settings,
) -> Coll<'s, Row> {
    let s = settings.clone();
    let clicks = events.flat_map(|e| match &*e {
        Event::Click(c) => Some((
            (c.ts.floor_to(HOUR), Ranking::Clicks),
            Id::from(c.product_id.as_str()),
        )),
        _ => None,
    });
    let clicks = lifetime(clicks, "UntilFrozen", move |((h, _), _)| {
        (0, s.freeze(h.0 + HOUR))
    })
    .count_total();
    let revenue = priced
        .explode(|(p, rate)| {
            let hour = p.ts.floor_to(HOUR);
            (0..p.items.len()).map(move |n| {
                let i = &p.items[n];
                let usd = line_amount(i.unit_price, i.quantity).to_usd(rate).units() as isize;
                (
                    ((hour, Ranking::Revenue), Id::from(i.product_id.as_str())),
                    usd,
                )
            })
        })
        .count_total();
    clicks
        .concat(revenue)
        .map(|((key, product), value)| (key, (std::cmp::Reverse(value as i64), product)))
        .reduce_named(
            "Top10",
            |_key, ranked, out: &mut Vec<((u32, Id, i64), isize)>| {
                for (rank, ((value, product), _)) in ranked.iter().take(10).enumerate() {
                    out.push(((rank as u32 + 1, product.clone(), value.0), 1));
                }
            },
        )
        .map(|((window_start, ranking), (rank, product_id, value))| {
            Row::TopProduct(TopProduct {
                window_start,
                ranking,
                rank,
                product_id: product_id.to_string(),
                value,
            })
        })
}

/// A user's profile or activity, combined per user into a `dim_user` row.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
enum UserSide {
    Profile(Timestamp, String, String, Currency),
    Activity(Timestamp, Timestamp),
}

fn dim_user<'s>(events: Coll<'s, Ev>, users: Coll<'s, shopflow_model::User>) -> Coll<'s, Row> {
    let profiles = users
        .map(|u| {
            (
                Id::from(u.user_id.as_str()),
                UserSide::Profile(u.updated_at, u.name, u.country, u.currency),
            )
        })
        .reduce_named(
            "LatestProfile",
            |_u, versions, out: &mut Vec<(UserSide, isize)>| {
                out.push((versions.last().expect("non-empty").0.clone(), 1));
            },
        );
    let activity = first_last_seen(events.map(|e| (Id::from(e.user_id()), e.ts())))
        .map(|(u, (first, last))| (u, UserSide::Activity(first, last)));
    profiles
        .concat(activity)
        .reduce_named("DimUser", |user, sides, out: &mut Vec<(Row, isize)>| {
            let mut row = DimUser {
                user_id: user.to_string(),
                profile: None,
                first_seen: None,
                last_seen: None,
            };
            for (side, _) in sides {
                match side {
                    UserSide::Profile(_, name, country, currency) => {
                        row.profile = Some((name.clone(), country.clone(), *currency))
                    }
                    UserSide::Activity(first, last) => {
                        (row.first_seen, row.last_seen) = (Some(*first), Some(*last))
                    }
                }
            }
            out.push((Row::DimUser(row), 1));
        })
        .map(|(_, row)| row)
}

fn dim_product<'s>(products: Coll<'s, shopflow_model::Product>) -> Coll<'s, Row> {
    products
        .map(|p| (p.product_id, (p.updated_at, p.category, p.price, p.name)))
        .reduce_named(
            "ProductHistory",
            |_id, versions, out: &mut Vec<(DimProduct, isize)>| {
                // A new version starts where price or category change; the name is
                // the latest seen within the version.
                let mut rows: Vec<DimProduct> = Vec::new();
                for ((at, category, price, name), _) in versions {
                    match rows.last_mut() {
                        Some(r) if r.category == *category && r.price == *price => {
                            r.name = name.clone()
                        }
                        _ => {
                            if let Some(r) = rows.last_mut() {
                                r.valid_to = Some(*at);
                            }
                            rows.push(DimProduct {
                                product_id: String::new(),
                                valid_from: *at,
                                valid_to: None,
                                name: name.clone(),
                                category: category.clone(),
                                price: *price,
                            });
                        }
                    }
                }
                out.extend(rows.into_iter().map(|r| (r, 1)));
            },
        )
        .map(|(product_id, r)| Row::DimProduct(DimProduct { product_id, ..r }))
}

fn dim_currency<'s>(fx: Coll<'s, FxRate>) -> Coll<'s, Row> {
    let usd = fx.clone().map(|_| ()).distinct_total().map(|()| {
        Row::DimCurrency(DimCurrency {
            currency: Currency::Usd,
            rate_date: None,
            rate: Rate::from_units(1_000_000),
        })
    });
    fx.map(|f| (f.currency, (f.date, f.rate)))
        .reduce_named(
            "LatestRatePerCurrency",
            |_c, rates, out: &mut Vec<((shopflow_model::Date, Rate), isize)>| {
                out.push((*rates.last().expect("non-empty").0, 1));
            },
        )
        .map(|(currency, (date, rate))| {
            Row::DimCurrency(DimCurrency {
                currency,
                rate_date: Some(date),
                rate,
            })
        })
        .concat(usd)
}

/// Revenue, orders and active sessions over the last 5 and 60 minutes of event time.
fn rolling<'s>(
    events: Coll<'s, Ev>,
    priced: Coll<'s, Priced>,
    settings: &Settings,
) -> Coll<'s, Row> {
    let mut out: Option<Coll<'s, Row>> = None;
    for minutes in [5u32, 60] {
        let width = i64::from(minutes) * MINUTE;
        let s = settings.clone();
        let orders = lifetime(priced.clone(), "RollingOrders", move |(p, _)| {
            (s.tick(p.ts.0), s.tick(p.ts.0 + width))
        })
        .explode(move |(p, rate)| {
            once((
                minutes,
                (1isize, p.total_amount.to_usd(rate).units() as isize, 0isize),
            ))
        });
        let s = settings.clone();
        let seen = events.clone().map(|e| (e.ts(), Id::from(e.session_id())));
        let sessions = lifetime(seen, "RollingSessions", move |(ts, _)| {
            (s.tick(ts.0), s.tick(ts.0 + width))
        })
        .map(|(_, id)| id)
        .distinct_total()
        .explode(move |_| once((minutes, (0isize, 0isize, 1isize))));
        let rows =
            orders
                .concat(sessions)
                .count_total()
                .map(|(minutes, (orders, usd, sessions))| {
                    Row::Rolling(Rolling {
                        minutes,
                        orders: orders as i64,
                        revenue_usd: Money::from_units(usd as i64),
                        sessions: sessions as i64,
                    })
                });
        out = Some(match out {
            Some(prev) => prev.concat(rows),
            None => rows,
        });
    }
    out.expect("two windows")
}
