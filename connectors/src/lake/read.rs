//! Reading the raw layer back, for replays and crash recovery: list the
//! files of a range, read them (several at once), and put each partition's
//! messages in offset order without the extra copies that overlapping files
//! can hold (a run restarted after a crash writes again what it re-reads).

use super::paths::{DAY_MS, HOUR_MS, RawFile, parse_raw_file, raw_day_prefix};
use super::raw::{RawRow, decode};
use super::{Lake, LakeError};
use shopflow_model::{EventKind, Timestamp};

/// The raw files of `kind`'s topic with hours in `[from, to)` (ms), or all of
/// them; sorted by key.
pub fn list(
    lake: &Lake,
    kind: EventKind,
    hours: Option<(i64, i64)>,
) -> Result<Vec<RawFile>, LakeError> {
    let topic = kind.topic();
    let keys = match hours {
        None => lake.list(&format!("raw/{topic}/"))?,
        Some((from, to)) => {
            let mut keys = Vec::new();
            let mut day = from - from.rem_euclid(DAY_MS);
            while day < to {
                keys.extend(lake.list(&raw_day_prefix(topic, Timestamp(day).date()))?);
                day += DAY_MS;
            }
            keys
        }
    };
    Ok(keys
        .into_iter()
        .filter_map(|(key, _)| parse_raw_file(&key))
        .filter(|f| f.topic == topic)
        .filter(|f| hours.is_none_or(|(from, to)| f.hour_ms + HOUR_MS > from && f.hour_ms < to))
        .collect())
}

/// Reads `files` of one topic; `progress(rows)` is called after each file.
pub fn read(
    lake: &Lake,
    files: &[RawFile],
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<RawRow>, LakeError> {
    let mut out = Vec::new();
    for chunk in files.chunks(16) {
        let keys: Vec<String> = chunk.iter().map(|f| f.key.clone()).collect();
        for (file, bytes) in chunk.iter().zip(lake.get_many(&keys)?) {
            let rows = decode(bytes).map_err(|why| LakeError::Corrupt {
                key: file.key.clone(),
                why,
            })?;
            progress(rows.len());
            out.extend(rows);
        }
    }
    Ok(out)
}

/// Sorts rows by (partition, offset) and drops repeated offsets, keeping the
/// copy of the latest run (what the warehouse reflects); returns how many
/// copies were dropped.
pub fn dedup(rows: &mut Vec<RawRow>) -> usize {
    rows.sort_by_key(|r| (r.partition, r.offset, std::cmp::Reverse(r.run)));
    let before = rows.len();
    rows.dedup_by_key(|r| (r.partition, r.offset));
    before - rows.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::LakeSettings;
    use crate::lake::paths::raw_file;
    use crate::lake::raw::{RawRecord, encode};

    fn record(offset: i64) -> RawRecord {
        RawRecord {
            partition: 0,
            offset,
            kafka_ts: None,
            key: None,
            payload: format!("{{\"n\":{offset}}}").into_bytes(),
            admission: None,
            entered: None,
        }
    }

    #[test]
    fn overlapping_files_read_back_once_in_offset_order() {
        let dir = std::env::temp_dir().join(format!("shopflow-lake-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lake = Lake::open(
            &LakeSettings {
                url: dir.display().to_string(),
                ..LakeSettings::default()
            },
            None,
        )
        .unwrap();
        let hour = 1_764_500_400_000 - 1_764_500_400_000 % HOUR_MS;
        let a: Vec<RawRecord> = (0..10).map(record).collect();
        let b: Vec<RawRecord> = (5..15).map(record).collect();
        for recs in [&a, &b] {
            let key = raw_file(
                "clicks",
                hour,
                0,
                recs[0].offset,
                recs[recs.len() - 1].offset,
            );
            let bytes = bytes::Bytes::from(encode(EventKind::Click, recs, 5).unwrap());
            assert_eq!(
                lake.put(&key, bytes.clone()).unwrap(),
                super::super::store::Put::Created
            );
            assert_eq!(
                lake.put(&key, bytes).unwrap(),
                super::super::store::Put::Existed,
                "a retried write is a no-op"
            );
        }
        let files = list(&lake, EventKind::Click, Some((hour, hour + HOUR_MS))).unwrap();
        assert_eq!(files.len(), 2);
        assert!(
            list(
                &lake,
                EventKind::Click,
                Some((hour + HOUR_MS, hour + 2 * HOUR_MS))
            )
            .unwrap()
            .is_empty()
        );
        let mut rows = read(&lake, &files, &mut |_| {}).unwrap();
        assert_eq!(dedup(&mut rows), 5);
        assert_eq!(
            rows.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (0..15).collect::<Vec<_>>()
        );
        let other = bytes::Bytes::from(encode(EventKind::Click, &a[..3], 5).unwrap());
        let key = raw_file("clicks", hour, 0, 0, 9);
        assert!(
            matches!(lake.put(&key, other), Err(LakeError::Conflict(_))),
            "never overwritten"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
