//! The demo's console view: what a shop manager would glance at.

use shopflow_dataflow::rows::{Funnel, Ranking, Rolling, SalesMinute, StatName};
use shopflow_dataflow::run::{IngestCounts, Progress};
use shopflow_dataflow::{Row, Settings, Table, Tables, Time};
use shopflow_model::{Money, Timestamp};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Everything the view shows, updated from the live run.
pub struct DemoState {
    tables: Tables,
    /// Every event time before this is complete.
    pub upto: Time,
    ingest: IngestCounts,
    /// Valid lines handed to the dataflow.
    pub lines: u64,
    rejected: BTreeMap<String, u64>,
    rate: (u64, std::time::Instant, f64),
    /// The command shown in the header (`demo`, `run`).
    pub title: &'static str,
    /// The most recent too-late events (id, event time, how far behind the frontier).
    too_late: std::collections::VecDeque<(String, Timestamp, i64)>,
}

impl DemoState {
    /// An empty state.
    pub fn new(settings: Settings) -> Self {
        DemoState {
            tables: Tables::new(settings),
            upto: 0,
            ingest: IngestCounts::default(),
            lines: 0,
            rejected: BTreeMap::new(),
            rate: (0, std::time::Instant::now(), 0.0),
            title: "demo",
            too_late: std::collections::VecDeque::new(),
        }
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

    /// Takes one completed step of the live run. Facts are not kept: the
    /// console shows aggregates, and facts would grow with uptime.
    pub fn absorb(&mut self, p: Progress) {
        let mut by_time: BTreeMap<Time, Vec<(Row, isize)>> = BTreeMap::new();
        for (row, t, d) in p.changes {
            if !matches!(
                row.table(),
                Table::FactClicks | Table::FactCart | Table::FactOrders | Table::FactOrderItems
            ) {
                by_time.entry(t).or_default().push((row, d));
            }
        }
        for (t, batch) in by_time {
            self.tables.apply_time(t, batch);
        }
        for e in &p.too_late {
            tracing::debug!(event_id = e.event_id(), ts = %e.ts(), "too late: not applied live; a replay of its day applies it");
            self.too_late
                .push_front((e.event_id().to_string(), e.ts(), p.upto as i64 - e.ts().0));
            self.too_late.truncate(3);
        }
        if p.upto < Time::MAX {
            // The last report (inputs closed) completes everything: keep the
            // view at the last real frontier.
            self.upto = p.upto;
        }
        self.ingest = p.ingest;
        let elapsed = self.rate.1.elapsed().as_secs_f64();
        if elapsed >= 2.0 {
            self.rate = (
                self.lines,
                std::time::Instant::now(),
                (self.lines - self.rate.0) as f64 / elapsed,
            );
        }
    }
}

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

/// The latest window of `table` that ended by `upto` (complete, so stable).
fn last_complete(tables: &Tables, table: Table, upto: Timestamp) -> Option<&Row> {
    tables
        .rows(table)
        .filter(|r| r.window_end().is_some_and(|end| end <= upto.0))
        .last()
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
pub fn render(s: &DemoState, now: Timestamp) -> String {
    let mut out = String::new();
    let upto = Timestamp(s.upto as i64);
    let lag = (now.0 - upto.0) as f64 / 1000.0;
    let _ = writeln!(
        out,
        "shopflow {}  event time complete to {}  (lag {lag:.1} s, {:.0} events/s)",
        s.title,
        upto.to_rfc3339_seconds(),
        s.rate.2
    );
    let minute = match last_complete(&s.tables, Table::AggSalesMinute, upto) {
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
    for r in s.tables.rows(Table::Rolling) {
        if let Row::Rolling(Rolling {
            minutes,
            orders,
            revenue_usd,
            sessions,
        }) = r
        {
            let _ = writeln!(
                out,
                "Last {minutes:>2} min:  revenue {}  orders {orders}  active sessions {sessions}",
                usd(*revenue_usd)
            );
        }
    }
    let funnel = match last_complete(&s.tables, Table::AggFunnel5min, upto) {
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
    let names: BTreeMap<&str, &str> = s
        .tables
        .rows(Table::DimProduct)
        .filter_map(|r| match r {
            Row::DimProduct(p) if p.valid_to.is_none() => {
                Some((p.product_id.as_str(), p.name.as_str()))
            }
            _ => None,
        })
        .collect();
    let hour = upto.floor_to(3_600_000);
    for (ranking, title) in [
        (Ranking::Revenue, "by revenue"),
        (Ranking::Clicks, "by views"),
    ] {
        let _ = write!(out, "\nTop products this hour {title}:");
        for r in s.tables.rows(Table::AggTopProductsHour) {
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
    let stat = |name: StatName| {
        s.tables
            .rows(Table::Stats)
            .find_map(|r| match r {
                Row::Stat(st) if st.name == name => Some(st.value),
                _ => None,
            })
            .unwrap_or(0)
    };
    let invalid: u64 = s.rejected.values().sum();
    let reasons: Vec<String> = s.rejected.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let _ = writeln!(
        out,
        "\nEvents: {} on time, {} late, {} too late (not applied)",
        s.ingest.on_time, s.ingest.late, s.ingest.too_late
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
    for (id, ts, behind) in &s.too_late {
        let at = ts.to_rfc3339_seconds();
        let behind = *behind as f64 / 1000.0;
        let _ = writeln!(
            out,
            "  too late: {id} at {at} ({behind:.0} s behind the frontier)"
        );
    }
    out
}
