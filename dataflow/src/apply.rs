//! From a change stream to table contents: the sinks' freeze rule.
//!
//! Every record leaves the dataflow's live state some time after its event
//! time (delayed retraction), so a sink that mirrored the collections would end
//! up empty. Sinks instead apply changes per completed time, per row key:
//!
//! - a **window row** (`agg_*`) is corrected freely before its freeze time,
//!   `window end + horizon` (rounded up to a tick): an insert, update or
//!   delete (a late or conflicting event). From then on a row that only
//!   disappears is its window's records ageing out of the live state, and the
//!   row stays as it is; an insert or update is an order priced late into a
//!   window that the dataflow held open while the order waited for its FX
//!   rate (`graph.rs`, `in_open_windows`), and is applied. A window the
//!   dataflow does not hold gets no change at all after its freeze time;
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
        for op in ops(&self.settings, time, batch) {
            match op {
                Op::Upsert(new) => {
                    let rows = self.tables.entry(new.table()).or_default();
                    let key = new.key();
                    let merged = match rows.get(&key) {
                        Some(old) => merge(old, new),
                        None => new,
                    };
                    rows.insert(key, merged);
                }
                Op::Delete(old) => {
                    if let Some(rows) = self.tables.get_mut(&old.table()) {
                        rows.remove(&old.key());
                    }
                }
            }
        }
    }

    /// Keeps only the rows for which `keep` is true (a live view prunes
    /// what it no longer shows, so its memory does not grow with uptime).
    pub fn retain(&mut self, mut keep: impl FnMut(&Row) -> bool) {
        for rows in self.tables.values_mut() {
            rows.retain(|_, row| keep(row));
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

/// What a sink does with one row key at one completed time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Insert the row, or merge it into the stored one with the same key
    /// (facts and window rows: replace; `dim_user`: see [`Tables`]).
    Upsert(Row),
    /// Remove the stored window row with this row's key: a correction
    /// retracted its window before it froze.
    Delete(Row),
}

/// The freeze rule: the operations the consolidated changes of one completed
/// time call for, in (table, key) order. A window row that only disappears at
/// or after its freeze time is ageing out and stays; a retraction of a fact or
/// dimension is dropped (they are never deleted).
pub fn ops(settings: &Settings, time: Time, batch: Vec<(Row, isize)>) -> Vec<Op> {
    let mut by_key: BTreeMap<(Table, String), (Option<Row>, Option<Row>)> = BTreeMap::new();
    for (row, diff) in batch.into_iter().filter(|(_, d)| *d != 0) {
        let entry = by_key
            .entry((row.table(), row.key()))
            .or_insert((None, None));
        if diff > 0 {
            entry.0 = Some(row);
        } else {
            entry.1 = Some(row);
        }
    }
    let mut out = Vec::new();
    for (_, (insert, retracted)) in by_key {
        let window_end = insert
            .as_ref()
            .or(retracted.as_ref())
            .and_then(Row::window_end);
        let frozen = window_end.is_some_and(|end| time >= settings.freeze(end));
        if frozen && insert.is_none() {
            continue; // the window's records ageing out: the row stays
        }
        match (insert, retracted) {
            (Some(new), _) => out.push(Op::Upsert(new)),
            (None, Some(old)) if window_end.is_some() => out.push(Op::Delete(old)),
            _ => {}
        }
    }
    out
}

/// The sink-side merge of a new version of a row with the stored one.
pub fn merge(old: &Row, new: Row) -> Row {
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
