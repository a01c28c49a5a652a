//! `shopflow fx-server`: daily FX rates over HTTP, shaped like the public
//! Frankfurter API (<https://frankfurter.dev>, base USD), so the pipeline's
//! poller can later point at the real provider unchanged.
//!
//! Endpoints (all JSON; `?base=USD` is the only base served, `?symbols=EUR,GBP`
//! filters currencies):
//! - `GET /latest`: the rates of the latest date on or before today;
//! - `GET /YYYY-MM-DD`: the rates of that date, or of the closest earlier one;
//! - `GET /YYYY-MM-DD..YYYY-MM-DD` (end optional): a time series;
//! - `GET /currencies`: code → name.
//!
//! The rates are those the generator uses for the same seed and first date,
//! or the lines of a generated `fx_rates.jsonl`.

use crate::rng::Rng;
use crate::world::{FxWalk, fx_currency};
use shopflow_model::{Currency, Date, Rate, validate::validate_fx};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

/// Rates by date, then by currency.
#[derive(Clone, Debug, Default)]
pub struct FxTable {
    days: BTreeMap<Date, BTreeMap<Currency, Rate>>,
}

impl FxTable {
    /// The generator's rates for `seed`, from `first` through `last`.
    pub fn from_seed(seed: u64, first: Date, last: Date) -> FxTable {
        let mut walk = FxWalk::new(Rng::new(seed, 2), first);
        let mut table = FxTable::default();
        let mut date = first;
        while date <= last {
            let day = walk
                .day(date)
                .into_iter()
                .enumerate()
                .map(|(i, r)| (fx_currency(i), r));
            table.days.insert(date, day.collect());
            date = date.succ();
        }
        table
    }

    /// Rates from `fx_rates.jsonl` text; invalid lines are reported with
    /// their line number.
    pub fn from_jsonl(text: &str) -> Result<FxTable, String> {
        let mut table = FxTable::default();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let fx = validate_fx(line.as_bytes()).map_err(|e| format!("line {}: {e}", n + 1))?;
            table
                .days
                .entry(fx.date)
                .or_default()
                .insert(fx.currency, fx.rate);
        }
        Ok(table)
    }

    /// The latest date on or before `date` that has rates.
    pub fn on_or_before(&self, date: Date) -> Option<Date> {
        self.days.range(..=date).next_back().map(|(d, _)| *d)
    }

    /// Number of dates covered.
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// True when no date is covered.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }
}

/// The routes, as a filter; `today` gives the date `/latest` means.
pub fn routes(
    table: Arc<FxTable>,
    today: fn() -> Date,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::get()
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::query::<HashMap<String, String>>())
        .map(move |what: String, query: HashMap<String, String>| {
            answer(&table, today(), &what, &query)
        })
}

fn answer(
    table: &FxTable,
    today: Date,
    what: &str,
    query: &HashMap<String, String>,
) -> warp::reply::Response {
    if let Some(base) = query.get("base").filter(|b| b.as_str() != "USD") {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("base {base} is not served; use base=USD"),
        );
    }
    let symbols: Option<Vec<&str>> = query.get("symbols").map(|s| s.split(',').collect());
    let wanted = |c: &Currency| symbols.as_ref().is_none_or(|s| s.contains(&c.code()));
    let rates_json = |date: Date| {
        let mut out = String::from("{");
        for (c, r) in table.days[&date].iter().filter(|(c, _)| wanted(c)) {
            if out.len() > 1 {
                out.push(',');
            }
            let _ = write!(out, "\"{c}\":{r}");
        }
        out + "}"
    };
    if what == "currencies" {
        let body: Vec<String> = Currency::ALL
            .iter()
            .map(|c| format!("\"{c}\":\"{}\"", c.name()))
            .collect();
        return json(format!("{{{}}}", body.join(",")));
    }
    let single = |date: Date| match table.on_or_before(date) {
        Some(d) => json(format!(
            "{{\"amount\":1.0,\"base\":\"USD\",\"date\":\"{d}\",\"rates\":{}}}",
            rates_json(d)
        )),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no rates on or before {date}"),
        ),
    };
    if what == "latest" {
        return single(today);
    }
    if let Some((from, to)) = what.split_once("..") {
        let (Ok(from), Ok(to)) = (
            Date::parse(from),
            if to.is_empty() {
                Ok(today)
            } else {
                Date::parse(to)
            },
        ) else {
            return error(StatusCode::BAD_REQUEST, "a range is YYYY-MM-DD..YYYY-MM-DD");
        };
        let start = table.on_or_before(from).unwrap_or(from);
        let days: Vec<String> = table
            .days
            .range(start..=to)
            .map(|(d, _)| format!("\"{d}\":{}", rates_json(*d)))
            .collect();
        return json(format!(
            "{{\"amount\":1.0,\"base\":\"USD\",\"start_date\":\"{start}\",\"end_date\":\"{to}\",\"rates\":{{{}}}}}",
            days.join(",")
        ));
    }
    match Date::parse(what) {
        Ok(date) => single(date),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            "not found; try /latest, /YYYY-MM-DD, /YYYY-MM-DD..YYYY-MM-DD or /currencies",
        ),
    }
}

fn json(body: String) -> warp::reply::Response {
    warp::reply::with_header(body, "content-type", "application/json").into_response()
}

fn error(status: StatusCode, message: &str) -> warp::reply::Response {
    let body = serde_json::json!({ "message": message }).to_string();
    warp::reply::with_status(json(body), status).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::parse("2026-11-26").unwrap()
    }

    async fn get(path: &str) -> (u16, serde_json::Value) {
        let table = Arc::new(FxTable::from_seed(
            7,
            Date::parse("2026-11-20").unwrap(),
            Date::parse("2026-11-30").unwrap(),
        ));
        let res = warp::test::request()
            .path(path)
            .reply(&routes(table, today))
            .await;
        (
            res.status().as_u16(),
            serde_json::from_slice(res.body()).unwrap(),
        )
    }

    #[tokio::test]
    async fn latest_is_today_in_frankfurter_shape() {
        let (status, body) = get("/latest?symbols=EUR,JPY").await;
        assert_eq!(status, 200);
        assert_eq!(body["base"], "USD");
        assert_eq!(body["date"], "2026-11-26");
        let rates = body["rates"].as_object().unwrap();
        assert_eq!(rates.keys().collect::<Vec<_>>(), ["EUR", "JPY"]);
    }

    #[tokio::test]
    async fn dates_fall_back_and_ranges_list_days() {
        assert_eq!(get("/2026-11-19").await.0, 404);
        assert_eq!(get("/2027-01-05").await.1["date"], "2026-11-30");
        let (_, body) = get("/2026-11-21..2026-11-23").await;
        assert_eq!(body["rates"].as_object().unwrap().len(), 3);
        assert_eq!(get("/latest?base=EUR").await.0, 422);
        assert_eq!(get("/nonsense").await.0, 404);
        assert_eq!(get("/currencies").await.1["EUR"], "Euro");
    }

    #[test]
    fn table_from_jsonl_matches_seed() {
        let first = Date::parse("2026-11-24").unwrap();
        let seeded = FxTable::from_seed(3, first, first);
        let eur = seeded.days[&first][&Currency::Eur];
        let line = format!(
            "{{\"date\":\"2026-11-24\",\"base\":\"USD\",\"currency\":\"EUR\",\"rate\":{eur}}}"
        );
        let parsed = FxTable::from_jsonl(&line).unwrap();
        assert_eq!(parsed.days[&first][&Currency::Eur], eur);
        assert!(
            FxTable::from_jsonl("{}")
                .unwrap_err()
                .starts_with("line 1:")
        );
    }
}
