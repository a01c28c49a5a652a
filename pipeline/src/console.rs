//! The console view of `demo` and `run`: what a shop manager would glance
//! at, rendered as text from the same board the web dashboard shows.

use shopflow_dataflow::rows::{Funnel, Ranking, Rolling, SalesMinute, StatName};
use shopflow_dataflow::{Row, Table};
use shopflow_model::{Money, Timestamp};
use shopflow_web::Board;
use std::fmt::Write as _;

fn usd(m: Money) -> String {
    let text = m.to_string();
    let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("${grouped}.{frac}")
}

fn pct(part: i64, whole: i64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// Prints a rendered view to stdout, clearing the screen first on a terminal.
pub fn show(view: &str) -> std::io::Result<()> {
    use std::io::{IsTerminal, Write};
    let mut out = std::io::stdout().lock();
    if out.is_terminal() {
        write!(out, "\x1b[2J\x1b[H")?;
    }
    writeln!(out, "{view}")?;
    out.flush()
}

/// Renders the view at wall-clock time `now`.
pub fn render(s: &Board, now: Timestamp) -> String {
    let mut out = String::new();
    let upto = Timestamp(s.upto() as i64);
    let lag = (now.0 - upto.0) as f64 / 1000.0;
    let _ = writeln!(
        out,
        "shopflow {}  event time complete to {}  (lag {lag:.1} s, {:.0} events/s)",
        s.title(),
        upto.to_rfc3339_seconds(),
        s.events_per_s()
    );
    let minute = match s.last_complete(Table::AggSalesMinute) {
        Some(Row::SalesMinute(m)) => Some(m),
        _ => None,
    };
    if let Some(SalesMinute {
        window_start,
        orders,
        revenue_usd,
        ..
    }) = minute
    {
        let aov = if *orders > 0 {
            revenue_usd.div_count(*orders as u64)
        } else {
            Money::ZERO
        };
        let _ = writeln!(
            out,
            "\nLast minute ({}):  revenue {}  orders {orders}  AOV {}",
            &window_start.to_rfc3339_seconds()[11..16],
            usd(*revenue_usd),
            usd(aov)
        );
    }
    for Rolling {
        minutes,
        orders,
        revenue_usd,
        sessions,
    } in s.rolling()
    {
        let _ = writeln!(
            out,
            "Last {minutes:>2} min:  revenue {}  orders {orders}  active sessions {sessions}",
            usd(*revenue_usd)
        );
    }
    let funnel = match s.last_complete(Table::AggFunnel5min) {
        Some(Row::Funnel(f)) => Some(f),
        _ => None,
    };
    if let Some(Funnel {
        window_start,
        sessions_active: a,
        sessions_carted: c,
        sessions_purchased: p,
    }) = funnel
    {
        let _ = writeln!(
            out,
            "\nFunnel {}-{}:  {a} active  ->  {c} carted ({})  ->  {p} purchased ({})",
            &window_start.to_rfc3339_seconds()[11..16],
            &Timestamp(window_start.0 + 300_000).to_rfc3339_seconds()[11..16],
            pct(*c, *a),
            pct(*p, *a)
        );
    }
    let names = s.product_names();
    let hour = upto.floor_to(3_600_000);
    for (ranking, title) in [
        (Ranking::Revenue, "by revenue"),
        (Ranking::Clicks, "by views"),
    ] {
        let _ = write!(out, "\nTop products this hour {title}:");
        for r in s.tables().rows(Table::AggTopProductsHour) {
            if let Row::TopProduct(t) = r
                && t.window_start == hour
                && t.ranking == ranking
                && t.rank <= 5
            {
                let value = match ranking {
                    Ranking::Revenue => usd(Money::from_units(t.value)),
                    Ranking::Clicks => t.value.to_string(),
                };
                let _ = write!(
                    out,
                    "\n  {}. {} {} ({value})",
                    t.rank,
                    t.product_id,
                    names.get(t.product_id.as_str()).unwrap_or(&"?")
                );
            }
        }
        out.push('\n');
    }
    let stat = |name: StatName| s.stat(name);
    let invalid: u64 = s.rejections().values().sum();
    let reasons: Vec<String> = s
        .rejections()
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "\nEvents: {} on time, {} late, {} too late (not applied)",
        s.ingest().on_time,
        s.ingest().late,
        s.ingest().too_late
    );
    let _ = writeln!(
        out,
        "Live state: {} distinct events, {} duplicates dropped, {} conflicting ids, {} orders waiting for an FX rate",
        stat(StatName::DistinctEvents),
        stat(StatName::Duplicates),
        stat(StatName::Conflicts),
        stat(StatName::OrdersWaitingFx)
    );
    let _ = writeln!(
        out,
        "Invalid: {invalid} ({})",
        if reasons.is_empty() {
            "none".into()
        } else {
            reasons.join(", ")
        }
    );
    for (id, ts, behind) in s.too_late() {
        let at = ts.to_rfc3339_seconds();
        let behind = *behind as f64 / 1000.0;
        let _ = writeln!(
            out,
            "  too late: {id} at {at} ({behind:.0} s behind the frontier)"
        );
    }
    out
}
