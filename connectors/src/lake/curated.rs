//! The curated layer: for each complete day, the validated, deduplicated,
//! USD-enriched facts, and a snapshot of every dimension as of that day's
//! replay, as typed Parquet:
//!
//! `curated/<table>/dt=YYYY-MM-DD/part-0.parquet`, and, once all of a day's
//! objects are written, `curated/_days/dt=YYYY-MM-DD/_SUCCESS`.
//!
//! The rows are those `shopflow replay` computes for the day (the live run's
//! rows plus the day's too-late events), so the curated layer equals the
//! warehouse after a replay of the day. A day is written again whole (an
//! atomic overwrite of each object) when it is replayed again; the same rows
//! give the same bytes.

use super::{Lake, LakeError};
use arrow_array::ArrayRef;
use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use shopflow_dataflow::{Row, Table, csv};
use shopflow_model::{Date, Timestamp};
use std::sync::Arc;

/// The tables of the curated layer: facts, then dimension snapshots (every
/// warehouse table but the windowed aggregates).
pub fn tables() -> impl Iterator<Item = Table> {
    Table::WAREHOUSE
        .into_iter()
        .filter(|t| !t.name().starts_with("agg_"))
}

/// The object of a table's day.
pub fn key(table: Table, day: Date) -> String {
    format!("curated/{}/dt={day}/part-0.parquet", table.name())
}

/// The type of a column, from its name (the warehouse's column names).
fn column_type(name: &str) -> DataType {
    match name {
        "ts" | "first_seen" | "last_seen" | "valid_from" | "valid_to" | "ts_minute" => {
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        }
        "total_amount" | "total_amount_usd" | "unit_price" | "line_amount" | "line_amount_usd"
        | "price" => DataType::Decimal128(18, 2),
        "latest_rate" => DataType::Decimal128(18, 6),
        "date" | "latest_rate_date" => DataType::Date32,
        "is_inferred" | "is_current" | "is_weekend" => DataType::Boolean,
        "quantity" | "line_number" | "line_count" | "item_count" | "hour" | "minute"
        | "weekday" | "month" | "quarter" | "year" => DataType::Int64,
        _ => DataType::Utf8,
    }
}

/// A decimal text (`-12.5`) as an integer of `scale` digits after the point.
fn decimal(text: &str, scale: u32) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if frac.len() > scale as usize {
        return None;
    }
    let padded = format!("{whole}{frac:0<width$}", width = scale as usize);
    let v: i128 = padded.parse().ok()?;
    Some(if neg { -v } else { v })
}

fn column(t: &DataType, values: &[&str]) -> Result<ArrayRef, String> {
    let bad = |v: &str| format!("cannot convert {v:?} to {t}");
    Ok(match t {
        DataType::Timestamp(..) => {
            let mut b = TimestampMillisecondBuilder::new().with_timezone("UTC");
            for v in values {
                if v.is_empty() {
                    b.append_null();
                } else {
                    b.append_value(Timestamp::parse_rfc3339(v).map_err(|_| bad(v))?.0);
                }
            }
            Arc::new(b.finish())
        }
        DataType::Decimal128(_, scale) => {
            let mut b = Decimal128Builder::new().with_data_type(t.clone());
            for v in values {
                match (v.is_empty(), decimal(v, *scale as u32)) {
                    (true, _) => b.append_null(),
                    (false, Some(d)) => b.append_value(d),
                    (false, None) => return Err(bad(v)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Date32 => {
            let mut b = Date32Builder::new();
            for v in values {
                if v.is_empty() {
                    b.append_null();
                } else {
                    b.append_value(Date::parse(v).map_err(|_| bad(v))?.0);
                }
            }
            Arc::new(b.finish())
        }
        DataType::Boolean => {
            let mut b = BooleanBuilder::new();
            for v in values {
                match *v {
                    "" => b.append_null(),
                    "true" => b.append_value(true),
                    "false" => b.append_value(false),
                    _ => return Err(bad(v)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Int64 => {
            let mut b = Int64Builder::new();
            for v in values {
                if v.is_empty() {
                    b.append_null();
                } else {
                    b.append_value(v.parse().map_err(|_| bad(v))?);
                }
            }
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::new();
            for v in values {
                b.append_value(v);
            }
            Arc::new(b.finish())
        }
    })
}

/// Encodes a table's rows (in the order given) as zstd Parquet.
pub fn encode(table: Table, rows: &[&Row]) -> Result<Vec<u8>, String> {
    let names = csv::header(table);
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, column_type(n), true))
            .collect::<Vec<_>>(),
    ));
    let fields: Vec<Vec<String>> = rows.iter().map(|r| r.fields()).collect();
    let mut columns = Vec::with_capacity(names.len());
    for (i, f) in schema.fields().iter().enumerate() {
        let values: Vec<&str> = fields.iter().map(|r| r[i].as_str()).collect();
        columns.push(
            column(f.data_type(), &values)
                .map_err(|e| format!("{}.{}: {e}", table.name(), f.name()))?,
        );
    }
    super::raw::to_parquet(schema, columns)
}

/// Writes the curated objects of `day` from its replayed rows (facts of the
/// day and every dimension member); returns the objects written.
pub fn write_day(lake: &Lake, day: Date, rows: &[Row]) -> Result<usize, LakeError> {
    let (start, end) = (day.start().0, day.succ().start().0);
    let mut written = 0;
    for table in tables() {
        let mut mine: Vec<&Row> = rows
            .iter()
            .filter(|r| r.table() == table)
            .filter(|r| r.event_time().is_none_or(|t| (start..end).contains(&t)))
            .collect();
        mine.sort_by_key(|r| r.key());
        let k = key(table, day);
        let bytes = encode(table, &mine).map_err(|why| LakeError::Corrupt {
            key: k.clone(),
            why: format!("cannot encode: {why}"),
        })?;
        lake.overwrite(&k, bytes.into())?;
        written += 1;
    }
    lake.overwrite(&marker(day), bytes::Bytes::new())?;
    Ok(written)
}

/// Written last when a day's curated objects are all written.
pub fn marker(day: Date) -> String {
    format!("curated/_days/dt={day}/_SUCCESS")
}

/// Whether a day's curated layer is complete.
pub fn is_written(lake: &Lake, day: Date) -> Result<bool, LakeError> {
    lake.exists(&marker(day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal("12.5", 2), Some(1250));
        assert_eq!(decimal("-0.01", 2), Some(-1));
        assert_eq!(decimal("1.532900", 6), Some(1_532_900));
        assert_eq!(decimal("7", 2), Some(700));
        assert_eq!(decimal("1.234", 2), None, "never rounded silently");
    }
}
