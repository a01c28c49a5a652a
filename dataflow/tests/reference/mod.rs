//! A plain, sequential recomputation of every warehouse table from the same
//! inputs, straight from the definitions in `docs/metrics.md`. The oracle
//! tests compare the dataflow against it.

#![allow(dead_code)]

use shopflow_dataflow::rows::*;
use shopflow_dataflow::run::Input;
use shopflow_model::{Currency, Date, Event, Money, Purchase, Rate, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Every warehouse table, as rows in key order.
pub fn recompute(inputs: &[Input]) -> BTreeMap<&'static str, Vec<Row>> {
    // Deduplicate: the smallest (ts, raw bytes) per id.
    let mut versions: BTreeMap<String, (i64, Vec<u8>, Event)> = BTreeMap::new();
    let mut payloads: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    let mut fx: BTreeMap<(Currency, Date), Rate> = BTreeMap::new();
    let mut products: BTreeMap<String, Vec<shopflow_model::Product>> = BTreeMap::new();
    let mut users: BTreeMap<String, Vec<shopflow_model::User>> = BTreeMap::new();
    for input in inputs {
        match input {
            Input::Event(e, raw) => {
                payloads
                    .entry(e.event_id().to_string())
                    .or_default()
                    .insert(raw.clone());
                let candidate = (e.ts().0, raw.clone(), e.clone());
                let slot = versions
                    .entry(e.event_id().to_string())
                    .or_insert_with(|| candidate.clone());
                if (candidate.0, &candidate.1) < (slot.0, &slot.1) {
                    *slot = candidate;
                }
            }
            Input::Fx(f) => {
                fx.insert((f.currency, f.date), f.rate); // the last offered wins
            }
            Input::Product(p) => products
                .entry(p.product_id.clone())
                .or_default()
                .push(p.clone()),
            Input::User(u) => users.entry(u.user_id.clone()).or_default().push(u.clone()),
        }
    }
    let mut conflicts = Vec::new();
    for (id, raws) in payloads.iter().filter(|(_, r)| r.len() > 1) {
        conflicts.push(Row::Conflict(Conflict {
            event_id: id.clone(),
            versions: raws.len() as u32,
            kept_ts: Timestamp(versions[id].0),
        }));
    }
    let events: Vec<Event> = versions.into_values().map(|v| v.2).collect();
    let rate_for = |p: &Purchase| -> Option<Rate> {
        if p.currency == Currency::Usd {
            return Some(Rate::from_units(1_000_000));
        }
        let date = p.ts.date();
        fx.range((p.currency, Date(i32::MIN))..=(p.currency, date))
            .next_back()
            .map(|(_, r)| *r)
    };
    let mut out: BTreeMap<&'static str, Vec<Row>> = BTreeMap::new();
    out.insert("dq_conflicts", conflicts);
    let mut push = |table: &'static str, row: Row| out.entry(table).or_default().push(row);

    let mut sales: BTreeMap<Timestamp, (i64, i64, i64, BTreeSet<String>)> = BTreeMap::new();
    let mut funnel: BTreeMap<Timestamp, [BTreeSet<String>; 3]> = BTreeMap::new();
    let mut clicks_by: BTreeMap<(Timestamp, String), i64> = BTreeMap::new();
    let mut revenue_by: BTreeMap<(Timestamp, String), i64> = BTreeMap::new();
    let mut seen: BTreeMap<String, (Timestamp, Timestamp)> = BTreeMap::new();
    let mut minutes: BTreeSet<Timestamp> = BTreeSet::new();
    for e in &events {
        let ts = e.ts();
        minutes.insert(ts.floor_to(60_000));
        let s = seen.entry(e.user_id().to_string()).or_insert((ts, ts));
        *s = (s.0.min(ts), s.1.max(ts));
        let level = match e {
            Event::Click(c) => {
                push("fact_clicks", Row::FactClick(c.clone()));
                *clicks_by
                    .entry((ts.floor_to(3_600_000), c.product_id.clone()))
                    .or_default() += 1;
                0
            }
            Event::Cart(c) => {
                push("fact_cart", Row::FactCart(c.clone()));
                1
            }
            Event::Purchase(p) => {
                if let Some(rate) = rate_for(p) {
                    let usd = p.total_amount.to_usd(rate);
                    let items: u32 = p.items.iter().map(|i| i.quantity).sum();
                    push(
                        "fact_orders",
                        Row::FactOrder(FactOrder {
                            event_id: p.event_id.clone(),
                            user_id: p.user_id.clone(),
                            session_id: p.session_id.clone(),
                            ts,
                            currency: p.currency,
                            total_amount: p.total_amount,
                            total_amount_usd: usd,
                            line_count: p.items.len() as u32,
                            item_count: items,
                        }),
                    );
                    for (i, item) in p.items.iter().enumerate() {
                        let amount =
                            Money::from_units(item.unit_price.units() * i64::from(item.quantity));
                        push(
                            "fact_order_items",
                            Row::FactOrderItem(FactOrderItem {
                                event_id: p.event_id.clone(),
                                line_number: i as u32 + 1,
                                product_id: item.product_id.clone(),
                                quantity: item.quantity,
                                unit_price: item.unit_price,
                                line_amount: amount,
                                line_amount_usd: amount.to_usd(rate),
                                ts,
                            }),
                        );
                        *revenue_by
                            .entry((ts.floor_to(3_600_000), item.product_id.clone()))
                            .or_default() += amount.to_usd(rate).units();
                    }
                    let m = sales.entry(ts.floor_to(60_000)).or_default();
                    m.0 += 1;
                    m.1 += i64::from(items);
                    m.2 += usd.units();
                    m.3.insert(p.user_id.clone());
                }
                2
            }
        };
        let w = funnel.entry(ts.floor_to(300_000)).or_default();
        for (stage, set) in w.iter_mut().enumerate() {
            if level >= stage {
                set.insert(e.session_id().to_string());
            }
        }
    }
    for (window_start, (orders, items, usd, buyers)) in sales {
        push(
            "agg_sales_minute",
            Row::SalesMinute(SalesMinute {
                window_start,
                orders,
                items,
                revenue_usd: Money::from_units(usd),
                buyers: buyers.len() as i64,
            }),
        );
    }
    for (window_start, sets) in funnel {
        push(
            "agg_funnel_5min",
            Row::Funnel(Funnel {
                window_start,
                sessions_active: sets[0].len() as i64,
                sessions_carted: sets[1].len() as i64,
                sessions_purchased: sets[2].len() as i64,
            }),
        );
    }
    for (ranking, by) in [
        (Ranking::Revenue, &revenue_by),
        (Ranking::Clicks, &clicks_by),
    ] {
        let mut per_hour: BTreeMap<Timestamp, Vec<(i64, String)>> = BTreeMap::new();
        for ((hour, product), value) in by.iter().filter(|(_, v)| **v != 0) {
            per_hour
                .entry(*hour)
                .or_default()
                .push((*value, product.clone()));
        }
        for (window_start, mut ranked) in per_hour {
            ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            for (i, (value, product_id)) in ranked.into_iter().take(10).enumerate() {
                push(
                    "agg_top_products_hour",
                    Row::TopProduct(TopProduct {
                        window_start,
                        ranking,
                        rank: i as u32 + 1,
                        product_id,
                        value,
                    }),
                );
            }
        }
    }
    let mut user_ids: BTreeSet<String> = users.keys().cloned().collect();
    user_ids.extend(seen.keys().cloned());
    for user_id in user_ids {
        let profile = users.get(&user_id).and_then(|v| {
            v.iter().max_by(|a, b| {
                (a.updated_at, &a.name, &a.country, a.currency).cmp(&(
                    b.updated_at,
                    &b.name,
                    &b.country,
                    b.currency,
                ))
            })
        });
        let seen = seen.get(&user_id);
        push(
            "dim_user",
            Row::DimUser(DimUser {
                profile: profile.map(|p| (p.name.clone(), p.country.clone(), p.currency)),
                first_seen: seen.map(|s| s.0),
                last_seen: seen.map(|s| s.1),
                user_id,
            }),
        );
    }
    for (product_id, mut versions) in products {
        versions.sort_by(|a, b| {
            (a.updated_at, &a.category, a.price, &a.name).cmp(&(
                b.updated_at,
                &b.category,
                b.price,
                &b.name,
            ))
        });
        versions.dedup();
        let mut rows: Vec<DimProduct> = Vec::new();
        for v in versions {
            match rows.last_mut() {
                Some(r) if r.category == v.category && r.price == v.price => r.name = v.name,
                _ => {
                    if let Some(r) = rows.last_mut() {
                        r.valid_to = Some(v.updated_at);
                    }
                    rows.push(DimProduct {
                        product_id: product_id.clone(),
                        valid_from: v.updated_at,
                        valid_to: None,
                        name: v.name,
                        category: v.category,
                        price: v.price,
                    });
                }
            }
        }
        rows.into_iter()
            .for_each(|r| push("dim_product", Row::DimProduct(r)));
    }
    let mut latest: HashMap<Currency, (Date, Rate)> = HashMap::new();
    for ((c, d), r) in &fx {
        latest.insert(*c, (*d, *r));
    }
    if !fx.is_empty() {
        push(
            "dim_currency",
            Row::DimCurrency(DimCurrency {
                currency: Currency::Usd,
                rate_date: None,
                rate: Rate::from_units(1_000_000),
            }),
        );
    }
    for (currency, (date, rate)) in latest {
        push(
            "dim_currency",
            Row::DimCurrency(DimCurrency {
                currency,
                rate_date: Some(date),
                rate,
            }),
        );
    }
    for ts_minute in minutes {
        push("dim_time", Row::DimTime(DimTime { ts_minute }));
    }
    for rows in out.values_mut() {
        rows.sort_by_key(|r| r.key());
    }
    out
}
