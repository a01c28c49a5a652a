//! Object names of the lake. Hive-style partitions (`dt=`, `hr=`) so that
//! Spark, DuckDB, Trino or Athena read them as columns.
//!
//! - raw: `raw/<topic>/dt=YYYY-MM-DD/hr=HH/part-<partition>-<first>-<last>.parquet`,
//!   dated by event time, named by source position (so a retried write of the
//!   same records has the same name);
//! - an hour is complete when `raw/<topic>/dt=…/hr=…/_SUCCESS` exists.

use shopflow_model::{Date, Timestamp};

/// One hour in ms.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in ms.
pub const DAY_MS: i64 = 86_400_000;

/// The start (ms) of the hour holding `ts_ms`.
pub fn hour_of(ts_ms: i64) -> i64 {
    ts_ms - ts_ms.rem_euclid(HOUR_MS)
}

/// `raw/<topic>/dt=YYYY-MM-DD/hr=HH/` of the hour starting at `hour_ms`.
pub fn raw_hour_prefix(topic: &str, hour_ms: i64) -> String {
    let date = Timestamp(hour_ms).date();
    let hr = hour_ms.rem_euclid(DAY_MS) / HOUR_MS;
    format!("raw/{topic}/dt={date}/hr={hr:02}/")
}

/// `raw/<topic>/dt=YYYY-MM-DD/` of a day.
pub fn raw_day_prefix(topic: &str, date: Date) -> String {
    format!("raw/{topic}/dt={date}/")
}

/// The name of a raw file.
pub fn raw_file(topic: &str, hour_ms: i64, partition: i32, first: i64, last: i64) -> String {
    format!(
        "{}part-{partition}-{first}-{last}.parquet",
        raw_hour_prefix(topic, hour_ms)
    )
}

/// The name of a raw file for offsets that an earlier run already wrote
/// under [`raw_file`]'s name with other content (it stopped before
/// committing them): this run's copy, named by its start time (ms).
pub fn raw_file_of_run(
    topic: &str,
    hour_ms: i64,
    partition: i32,
    first: i64,
    last: i64,
    run: i64,
) -> String {
    format!(
        "{}part-{partition}-{first}-{last}-r{run}.parquet",
        raw_hour_prefix(topic, hour_ms)
    )
}

/// The completion marker of an hour.
pub fn success_marker(topic: &str, hour_ms: i64) -> String {
    format!("{}_SUCCESS", raw_hour_prefix(topic, hour_ms))
}

/// A raw file name taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFile {
    /// The whole key.
    pub key: String,
    /// Its topic.
    pub topic: String,
    /// Start of its hour (ms).
    pub hour_ms: i64,
    /// Kafka partition.
    pub partition: i32,
    /// First offset in the file.
    pub first: i64,
    /// Last offset in the file.
    pub last: i64,
}

/// Parses a raw file key; `None` for anything else (markers, foreign files).
pub fn parse_raw_file(key: &str) -> Option<RawFile> {
    let rest = key.strip_prefix("raw/")?;
    let mut parts = rest.split('/');
    let topic = parts.next()?;
    let date = Date::parse(parts.next()?.strip_prefix("dt=")?).ok()?;
    let hr: i64 = parts.next()?.strip_prefix("hr=")?.parse().ok()?;
    let name = parts.next()?;
    if parts.next().is_some() || !(0..24).contains(&hr) {
        return None;
    }
    let nums = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let mut n = nums.split('-');
    let partition = n.next()?.parse().ok()?;
    let first = n.next()?.parse().ok()?;
    let last = n.next()?.parse().ok()?;
    match n.next() {
        None => {}
        Some(run) if run.strip_prefix('r')?.parse::<i64>().is_ok() && n.next().is_none() => {}
        Some(_) => return None,
    }
    Some(RawFile {
        key: key.to_owned(),
        topic: topic.to_owned(),
        hour_ms: date.start().0 + hr * HOUR_MS,
        partition,
        first,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_names_round_trip() {
        let ts = Timestamp::parse_rfc3339("2026-11-30T13:45:12Z").unwrap().0;
        let key = raw_file("clicks", hour_of(ts), 3, 100, 250);
        assert_eq!(key, "raw/clicks/dt=2026-11-30/hr=13/part-3-100-250.parquet");
        let f = parse_raw_file(&key).unwrap();
        assert_eq!(
            (f.hour_ms, f.partition, f.first, f.last),
            (hour_of(ts), 3, 100, 250)
        );
        assert_eq!(
            success_marker("clicks", hour_of(ts)),
            "raw/clicks/dt=2026-11-30/hr=13/_SUCCESS"
        );
        assert!(parse_raw_file("raw/clicks/dt=2026-11-30/hr=13/_SUCCESS").is_none());
        let again = raw_file_of_run("clicks", hour_of(ts), 3, 100, 250, 1_764_000_000_000);
        assert_eq!(
            again,
            "raw/clicks/dt=2026-11-30/hr=13/part-3-100-250-r1764000000000.parquet"
        );
        assert_eq!(parse_raw_file(&again).unwrap().last, 250);
        assert!(parse_raw_file("raw/clicks/dt=2026-11-30/hr=24/part-1-2-3.parquet").is_none());
    }
}
