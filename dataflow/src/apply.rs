//! From a change stream to table contents: the sinks' freeze rule.
//!
//! Every record leaves the dataflow's live state some time after its event
//! time (delayed retraction), so a sink that mirrored the collections would end
//! up empty. Sinks instead apply changes per completed time, per row key:
//!
//! - a **window row** (`agg_*`) changes only before its freeze time,
//!   `window end + horizon` (rounded up to a tick): until then an insert,
//!   update or delete is a correction (a late or conflicting event); from then
//!   on every change is the window's records ageing out of the live state, and
//!   the row stays as it is;
//! - **facts and dimensions** are upserted and never deleted: a key whose row
//!   is only retracted has aged out. For `dim_user`, `first_seen` keeps the
//!   minimum and `last_seen` the maximum ever seen, and a missing profile does
//!   not erase a known one.
//!
//! [`Tables`] applies the rule in memory; the warehouse sink applies the same
//! rule in SQL.

use crate::csv;
use crate::rows::{Row, Table};
use crate::{Change, Settings, Time};
use std::collections::BTreeMap;

/// Table contents built from changes.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    settings: Settings,
    tables: BTreeMap<Table, BTreeMap<String, Row>>,
}

impl Tables {
    /// Empty tables.
    pub fn new(settings: Settings) -> Tables {
        Tables {
            settings,
            tables: BTreeMap::new(),
        }
    }

    /// Applies any changes, in time order, consolidating within each time.
    pub fn apply_all(&mut self, mut changes: Vec<Change>) {
        changes.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        let mut i = 0;
        while i < changes.len() {
            let time = changes[i].1;
            let mut j = i;
            let mut batch: Vec<(Row, isize)> = Vec::new();
            while j < changes.len() && changes[j].1 == time {
                let (row, _, diff) = &changes[j];
                match batch.last_mut() {
                    Some((last, d)) if last == row => *d += diff,
                    _ => batch.push((row.clone(), *diff)),
                }
                j += 1;
            }
            self.apply_time(time, batch);
            i = j;
        }
    }

    /// Applies the consolidated changes of one completed time.
    pub fn apply_time(&mut self, time: Time, batch: Vec<(Row, isize)>) {
        let mut by_key: BTreeMap<(Table, String), (Option<Row>, bool)> = BTreeMap::new();
        for (row, diff) in batch.into_iter().filter(|(_, d)| *d != 0) {
            let entry = by_key
                .entry((row.table(), row.key()))
                .or_insert((None, false));
            if diff > 0 {
                entry.0 = Some(row);
            } else {
                entry.1 = true;
            }
        }
        for ((table, key), (insert, retracted)) in by_key {
            let rows = self.tables.entry(table).or_default();
            let window_end = insert.as_ref().or(rows.get(&key)).and_then(Row::window_end);
            if let Some(end) = window_end
                && time >= self.settings.freeze(end)
            {
                continue; // frozen: the window's records are ageing out
            }
            match insert {
                Some(new) => {
                    let merged = match rows.get(&key) {
                        Some(old) => merge(old, new),
                        None => new,
                    };
                    rows.insert(key, merged);
                }
                None if retracted && window_end.is_some() => {
                    rows.remove(&key);
                }
                None => {}
            }
        }
    }

    /// The rows of a table, in key order.
    pub fn rows(&self, table: Table) -> impl Iterator<Item = &Row> {
        self.tables.get(&table).into_iter().flat_map(|t| t.values())
    }

    /// A table as CSV text with a header, rows in key order.
    pub fn to_csv(&self, table: Table) -> String {
        let mut out = String::new();
        csv::write_record(&mut out, csv::header(table));
        for row in self.rows(table) {
            csv::write_record(&mut out, &row.fields());
        }
        out
    }
}

/// The sink-side merge of a new version of a row with the stored one.
fn merge(old: &Row, new: Row) -> Row {
    match (old, new) {
        (Row::DimUser(o), Row::DimUser(mut n)) => {
            n.first_seen = min_some(o.first_seen, n.first_seen);
            n.last_seen = o.last_seen.max(n.last_seen);
            if n.profile.is_none() {
                n.profile.clone_from(&o.profile);
            }
            Row::DimUser(n)
        }
        (_, new) => new,
    }
}

fn min_some<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
