//! The raw layer's records and their Parquet form.
//!
//! Every Kafka message is kept: its original bytes, its Kafka metadata, why
//! it was rejected (if it was), how the live run admitted it, and the parsed
//! fields as typed columns (timestamps in UTC milliseconds, money as
//! `decimal(18,2)`, rates as `decimal(18,6)`, order lines as a list of
//! structs). Columns are documented in `docs/lake.md`. The first nine
//! columns are the same for every topic; replays and recovery read only
//! those, and validate the payload again through the same code as Kafka.

use arrow_array::builder::{
    BinaryBuilder, Date32Builder, Decimal128Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, StructBuilder, TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use shopflow_model::validate::{Record, validate};
use shopflow_model::{Event, EventKind, Item};
use std::sync::Arc;

/// One Kafka message as the raw layer keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// Kafka timestamp (ms), if the message had one.
    pub kafka_ts: Option<i64>,
    /// Kafka key.
    pub key: Option<Vec<u8>>,
    /// The message bytes as received.
    pub payload: Vec<u8>,
    /// How the live run admitted it: `on_time`, `late`, `too_late`, or
    /// `applied` (reference data); `None` if it was rejected.
    pub admission: Option<&'static str>,
    /// The dataflow time (ms) it entered at; `None` if it was not applied.
    pub entered: Option<i64>,
}

/// What replays and recovery read back: the common columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRow {
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// The message bytes.
    pub payload: Vec<u8>,
    /// The reason code it was rejected with, if it was.
    pub error: Option<String>,
    /// How the live run admitted it.
    pub admission: Option<String>,
    /// The dataflow time (ms) it entered at, if it was applied.
    pub entered: Option<i64>,
    /// When the run that wrote this copy started (ms): of two copies of one
    /// message, the later run's tells what the warehouse reflects.
    pub run: i64,
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn item_fields() -> Fields {
    Fields::from(vec![
        Field::new("product_id", DataType::Utf8, false),
        Field::new("quantity", DataType::Int64, false),
        Field::new("unit_price", DataType::Decimal128(18, 2), false),
    ])
}

/// The element of the `items` list: one order line.
fn items_field() -> arrow_schema::FieldRef {
    Arc::new(Field::new("item", DataType::Struct(item_fields()), true))
}

/// The type of a parsed column.
#[derive(Clone, Copy)]
enum ColType {
    Str,
    Int,
    Money,
    Rate,
    Ts,
    Day,
    Items,
}

impl ColType {
    fn data_type(self) -> DataType {
        match self {
            ColType::Str => DataType::Utf8,
            ColType::Int => DataType::Int64,
            ColType::Money => DataType::Decimal128(18, 2),
            ColType::Rate => DataType::Decimal128(18, 6),
            ColType::Ts => ts_type(),
            ColType::Day => DataType::Date32,
            ColType::Items => DataType::List(items_field()),
        }
    }
}

/// The parsed columns of a topic, after the common ones.
fn parsed_columns(kind: EventKind) -> Vec<(&'static str, ColType)> {
    use ColType::*;
    let ids = [("event_id", Str), ("user_id", Str), ("session_id", Str)];
    let rest: &[(&str, ColType)] = match kind {
        EventKind::Click => &[
            ("product_id", Str),
            ("page", Str),
            ("referrer", Str),
            ("ts", Ts),
        ],
        EventKind::Cart => &[("product_id", Str), ("quantity", Int), ("ts", Ts)],
        EventKind::Purchase => &[
            ("currency", Str),
            ("total_amount", Money),
            ("items", Items),
            ("ts", Ts),
        ],
        EventKind::Fx => return vec![("date", Day), ("currency", Str), ("rate", Rate)],
        EventKind::Product => &[
            ("product_id", Str),
            ("name", Str),
            ("category", Str),
            ("price", Money),
            ("updated_at", Ts),
        ],
        EventKind::User => &[
            ("user_id", Str),
            ("name", Str),
            ("country", Str),
            ("currency", Str),
            ("updated_at", Ts),
        ],
    };
    let events = matches!(
        kind,
        EventKind::Click | EventKind::Cart | EventKind::Purchase
    );
    let mut out: Vec<(&str, ColType)> = if events { ids.to_vec() } else { Vec::new() };
    out.extend_from_slice(rest);
    out
}

/// The Arrow schema of a topic's raw files.
pub fn schema(kind: EventKind) -> Arc<Schema> {
    let mut fields = vec![
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("kafka_ts", ts_type(), true),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("admission", DataType::Utf8, true),
        Field::new("entered_at", ts_type(), true),
        Field::new("run_started_at", ts_type(), false),
    ];
    for (name, t) in parsed_columns(kind) {
        fields.push(Field::new(name, t.data_type(), true));
    }
    Arc::new(Schema::new(fields))
}

/// A typed value of a parsed column.
enum Val<'a> {
    Str(&'a str),
    Int(i64),
    Dec(i64),
    Ts(i64),
    Day(i32),
    Items(&'a [Item]),
}

fn values(record: &Record) -> Vec<Val<'_>> {
    match record {
        Record::Event(Event::Click(e)) => vec![
            Val::Str(&e.event_id),
            Val::Str(&e.user_id),
            Val::Str(&e.session_id),
            Val::Str(&e.product_id),
            Val::Str(&e.page),
            Val::Str(&e.referrer),
            Val::Ts(e.ts.0),
        ],
        Record::Event(Event::Cart(e)) => vec![
            Val::Str(&e.event_id),
            Val::Str(&e.user_id),
            Val::Str(&e.session_id),
            Val::Str(&e.product_id),
            Val::Int(i64::from(e.quantity)),
            Val::Ts(e.ts.0),
        ],
        Record::Event(Event::Purchase(e)) => vec![
            Val::Str(&e.event_id),
            Val::Str(&e.user_id),
            Val::Str(&e.session_id),
            Val::Str(e.currency.code()),
            Val::Dec(e.total_amount.units()),
            Val::Items(&e.items),
            Val::Ts(e.ts.0),
        ],
        Record::Fx(f) => vec![
            Val::Day(f.date.0),
            Val::Str(f.currency.code()),
            Val::Dec(f.rate.units()),
        ],
        Record::Product(p) => vec![
            Val::Str(&p.product_id),
            Val::Str(&p.name),
            Val::Str(&p.category),
            Val::Dec(p.price.units()),
            Val::Ts(p.updated_at.0),
        ],
        Record::User(u) => vec![
            Val::Str(&u.user_id),
            Val::Str(&u.name),
            Val::Str(&u.country),
            Val::Str(u.currency.code()),
            Val::Ts(u.updated_at.0),
        ],
    }
}

/// A column being built.
enum Col {
    Str(StringBuilder),
    Int(Int64Builder),
    Dec(Decimal128Builder),
    Ts(TimestampMillisecondBuilder),
    Day(Date32Builder),
    Items(ListBuilder<StructBuilder>),
}

impl Col {
    fn new(t: ColType) -> Col {
        match t {
            ColType::Str => Col::Str(StringBuilder::new()),
            ColType::Int => Col::Int(Int64Builder::new()),
            ColType::Money | ColType::Rate => {
                Col::Dec(Decimal128Builder::new().with_data_type(t.data_type()))
            }
            ColType::Ts => Col::Ts(TimestampMillisecondBuilder::new().with_timezone("UTC")),
            ColType::Day => Col::Day(Date32Builder::new()),
            ColType::Items => {
                let inner = StructBuilder::from_fields(item_fields(), 0);
                Col::Items(ListBuilder::new(inner).with_field(items_field()))
            }
        }
    }

    fn push(&mut self, v: Option<&Val<'_>>) {
        match (self, v) {
            (Col::Str(b), Some(Val::Str(s))) => b.append_value(s),
            (Col::Int(b), Some(Val::Int(i))) => b.append_value(*i),
            (Col::Dec(b), Some(Val::Dec(d))) => b.append_value(i128::from(*d)),
            (Col::Ts(b), Some(Val::Ts(t))) => b.append_value(*t),
            (Col::Day(b), Some(Val::Day(d))) => b.append_value(*d),
            (Col::Items(b), Some(Val::Items(items))) => {
                let s = b.values();
                for item in *items {
                    s.field_builder::<StringBuilder>(0)
                        .expect("product_id")
                        .append_value(&item.product_id);
                    s.field_builder::<Int64Builder>(1)
                        .expect("quantity")
                        .append_value(i64::from(item.quantity));
                    s.field_builder::<Decimal128Builder>(2)
                        .expect("unit_price")
                        .append_value(i128::from(item.unit_price.units()));
                    s.append(true);
                }
                b.append(true);
            }
            (Col::Str(b), _) => b.append_null(),
            (Col::Int(b), _) => b.append_null(),
            (Col::Dec(b), _) => b.append_null(),
            (Col::Ts(b), _) => b.append_null(),
            (Col::Day(b), _) => b.append_null(),
            (Col::Items(b), _) => b.append(false),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Col::Str(mut b) => Arc::new(b.finish()),
            Col::Int(mut b) => Arc::new(b.finish()),
            Col::Dec(mut b) => Arc::new(b.finish()),
            Col::Ts(mut b) => Arc::new(b.finish()),
            Col::Day(mut b) => Arc::new(b.finish()),
            Col::Items(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Row groups of up to this many rows: large enough for scans, and a file
/// is capped by `lake.flush_bytes` anyway.
const ROW_GROUP_ROWS: usize = 1 << 20;

/// Encodes records of one topic, written by the run started at `run` (ms),
/// as a zstd-compressed Parquet file. The same records always give the same
/// bytes.
pub fn encode(kind: EventKind, records: &[RawRecord], run: i64) -> Result<Vec<u8>, String> {
    let schema = schema(kind);
    let mut partition = Int32Builder::with_capacity(records.len());
    let mut offset = Int64Builder::with_capacity(records.len());
    let mut kafka_ts =
        TimestampMillisecondBuilder::with_capacity(records.len()).with_timezone("UTC");
    let mut key = BinaryBuilder::new();
    let mut payload = BinaryBuilder::new();
    let mut error = StringBuilder::new();
    let mut admission = StringBuilder::new();
    let mut entered =
        TimestampMillisecondBuilder::with_capacity(records.len()).with_timezone("UTC");
    let mut runs = TimestampMillisecondBuilder::with_capacity(records.len()).with_timezone("UTC");
    let mut parsed: Vec<Col> = parsed_columns(kind)
        .into_iter()
        .map(|(_, t)| Col::new(t))
        .collect();
    for r in records {
        partition.append_value(r.partition);
        offset.append_value(r.offset);
        kafka_ts.append_option(r.kafka_ts);
        key.append_option(r.key.as_deref());
        payload.append_value(&r.payload);
        admission.append_option(r.admission);
        entered.append_option(r.entered);
        runs.append_value(run);
        match validate(kind, &r.payload) {
            Ok(record) => {
                error.append_null();
                let vals = values(&record);
                for (col, v) in parsed.iter_mut().zip(vals.iter()) {
                    col.push(Some(v));
                }
            }
            Err(e) => {
                error.append_value(e.reason.code());
                for col in &mut parsed {
                    col.push(None);
                }
            }
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(kafka_ts.finish()),
        Arc::new(key.finish()),
        Arc::new(payload.finish()),
        Arc::new(error.finish()),
        Arc::new(admission.finish()),
        Arc::new(entered.finish()),
        Arc::new(runs.finish()),
    ];
    columns.extend(parsed.into_iter().map(Col::finish));
    to_parquet(schema, columns)
}

/// One record batch of `columns` as a zstd Parquet file, in row groups of
/// up to [`ROW_GROUP_ROWS`]. The same columns always give the same bytes.
pub(crate) fn to_parquet(schema: Arc<Schema>, columns: Vec<ArrayRef>) -> Result<Vec<u8>, String> {
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by("shopflow".into())
        .build();
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, schema, Some(props)).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes the common columns of a raw file.
pub fn decode(bytes: bytes::Bytes) -> Result<Vec<RawRow>, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [0, 1, 4, 5, 6, 7, 8]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| format!("column {name} is missing"))
        };
        let (p, o, pl, er, ad) = (
            col("partition")?,
            col("offset")?,
            col("payload")?,
            col("error")?,
            col("admission")?,
        );
        let (p, o) = (p.as_primitive::<Int32Type>(), o.as_primitive::<Int64Type>());
        let en = col("entered_at")?;
        let en = en.as_primitive::<TimestampMillisecondType>();
        let ru = col("run_started_at")?;
        let ru = ru.as_primitive::<TimestampMillisecondType>();
        let (pl, er, ad) = (
            pl.as_binary::<i32>(),
            er.as_string::<i32>(),
            ad.as_string::<i32>(),
        );
        for i in 0..batch.num_rows() {
            out.push(RawRow {
                partition: p.value(i),
                offset: o.value(i),
                payload: pl.value(i).to_vec(),
                error: er.is_valid(i).then(|| er.value(i).to_owned()),
                admission: ad.is_valid(i).then(|| ad.value(i).to_owned()),
                entered: en.is_valid(i).then(|| en.value(i)),
                run: ru.value(i),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: i64, payload: &str, admission: Option<&'static str>) -> RawRecord {
        RawRecord {
            partition: 2,
            offset,
            kafka_ts: Some(1_700_000_000_000),
            key: Some(b"s1".to_vec()),
            payload: payload.as_bytes().to_vec(),
            admission,
            entered: admission.map(|_| 1_700_000_000_000),
        }
    }

    #[test]
    fn purchases_round_trip_and_encode_deterministically() {
        let good = r#"{"event_id":"o1","user_id":"u1","session_id":"s1","items":[{"product_id":"p1","quantity":2,"unit_price":10.50}],"total_amount":21.00,"currency":"EUR","ts":"2026-11-30T10:00:00Z"}"#;
        let records = vec![rec(7, good, Some("on_time")), rec(8, "{not json", None)];
        let a = encode(EventKind::Purchase, &records, 5).unwrap();
        let b = encode(EventKind::Purchase, &records, 5).unwrap();
        assert_eq!(a, b, "the same records must give the same bytes");
        let rows = decode(bytes::Bytes::from(a)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].partition, rows[0].offset), (2, 7));
        assert_eq!(rows[0].payload, good.as_bytes());
        assert_eq!(
            (rows[0].error.as_deref(), rows[0].admission.as_deref()),
            (None, Some("on_time"))
        );
        assert!(
            rows[1].error.is_some(),
            "a rejected message keeps its reason"
        );
        assert_eq!(rows[1].admission, None);
    }

    #[test]
    fn every_topic_encodes() {
        for kind in EventKind::ALL {
            let bytes = encode(kind, &[rec(0, "{}", None)], 5).unwrap();
            assert_eq!(decode(bytes.into()).unwrap().len(), 1, "{kind}");
        }
    }
}
