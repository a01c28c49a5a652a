//! UTC timestamps (milliseconds) and calendar dates, RFC 3339 in and out.
//!
//! Hand-written rather than pulled from a date crate: the grammar we accept is
//! small and exact (see `docs/event-contract.md`), parsing sits on the hot path
//! of every event, and the calendar arithmetic is a few lines of the proleptic
//! Gregorian calendar.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

/// Days since 1970-01-01 (a UTC calendar date).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Date(pub i32);

/// Why a timestamp or date text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeError {
    /// The text does not have the RFC 3339 shape.
    Syntax,
    /// The shape is right but a part is out of range (month 13, February 30…).
    Range,
    /// A date-time without `Z` or an offset.
    NoZone,
}

const MS_PER_DAY: i64 = 86_400_000;

impl Timestamp {
    /// Parses an RFC 3339 date-time with a zone, normalizing to UTC and
    /// truncating digits past the millisecond.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimeError> {
        let b = text.as_bytes();
        if b.len() < 19 {
            return Err(TimeError::Syntax);
        }
        let date = Date::parse_bytes(&b[..10])?;
        if !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
            return Err(TimeError::Syntax);
        }
        let (hh, mm, ss) = (two(&b[11..13])?, two(&b[14..16])?, two(&b[17..19])?);
        if hh > 23 || mm > 59 || ss > 59 {
            return Err(TimeError::Range);
        }
        let mut i = 19;
        let mut millis = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 3 {
                    millis = millis * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            let n = i - start;
            if n == 0 {
                return Err(TimeError::Syntax);
            }
            for _ in n..3 {
                millis *= 10;
            }
        }
        let offset_min = match &b[i..] {
            [] => return Err(TimeError::NoZone),
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let (oh, om) = (two(&[*h1, *h2])?, two(&[*m1, *m2])?);
                if oh > 23 || om > 59 {
                    return Err(TimeError::Range);
                }
                let m = i64::from(oh) * 60 + i64::from(om);
                if *sign == b'-' { -m } else { m }
            }
            _ => return Err(TimeError::Syntax),
        };
        let secs = i64::from(hh) * 3600 + i64::from(mm) * 60 + i64::from(ss) - offset_min * 60;
        Ok(Timestamp(
            i64::from(date.0) * MS_PER_DAY + secs * 1000 + millis,
        ))
    }

    /// The UTC date this instant falls on.
    pub fn date(self) -> Date {
        Date(self.0.div_euclid(MS_PER_DAY) as i32)
    }

    /// Milliseconds since the start of its UTC day.
    pub fn millis_of_day(self) -> i64 {
        self.0.rem_euclid(MS_PER_DAY)
    }

    /// Rounds down to a multiple of `period_ms` (a window start).
    pub fn floor_to(self, period_ms: i64) -> Timestamp {
        Timestamp(self.0 - self.0.rem_euclid(period_ms))
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SSZ`, dropping milliseconds (for window starts).
    pub fn to_rfc3339_seconds(self) -> String {
        let (y, m, d) = self.date().civil();
        let s = self.millis_of_day() / 1000;
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` into `out` without allocating.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let (y, m, d) = self.date().civil();
        let ms = self.millis_of_day();
        let s = ms / 1000;
        push_digits(out, y as i64, 4);
        out.push(b'-');
        push_digits(out, i64::from(m), 2);
        out.push(b'-');
        push_digits(out, i64::from(d), 2);
        out.push(b'T');
        push_digits(out, s / 3600, 2);
        out.push(b':');
        push_digits(out, s / 60 % 60, 2);
        out.push(b':');
        push_digits(out, s % 60, 2);
        out.push(b'.');
        push_digits(out, ms % 1000, 3);
        out.push(b'Z');
    }
}

impl fmt::Display for Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::with_capacity(24);
        self.write_rfc3339(&mut buf);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl Date {
    /// Parses `YYYY-MM-DD`, checking that the day exists.
    pub fn parse(text: &str) -> Result<Date, TimeError> {
        if text.len() != 10 {
            return Err(TimeError::Syntax);
        }
        Date::parse_bytes(text.as_bytes())
    }

    fn parse_bytes(b: &[u8]) -> Result<Date, TimeError> {
        if b[4] != b'-' || b[7] != b'-' {
            return Err(TimeError::Syntax);
        }
        let year = i32::from(two(&b[0..2])?) * 100 + i32::from(two(&b[2..4])?);
        let (month, day) = (two(&b[5..7])?, two(&b[8..10])?);
        Date::from_civil(year, month, day).ok_or(TimeError::Range)
    }

    /// The date of a proleptic Gregorian (year, month, day), if it exists.
    pub fn from_civil(year: i32, month: u8, day: u8) -> Option<Date> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        // Days from civil (Hinnant's algorithm): eras of 400 years from March 1st.
        let y = i64::from(year) - i64::from(month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(Date((era * 146_097 + doe - 719_468) as i32))
    }

    /// (year, month, day) of this date.
    pub fn civil(self) -> (i32, u8, u8) {
        let z = i64::from(self.0) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
        (y, m, d)
    }

    /// Midnight UTC at the start of this date.
    pub fn start(self) -> Timestamp {
        Timestamp(i64::from(self.0) * MS_PER_DAY)
    }

    /// Day of the week, 1 = Monday … 7 = Sunday (ISO 8601).
    pub fn iso_weekday(self) -> u8 {
        // 1970-01-01 was a Thursday (4).
        ((i64::from(self.0) + 3).rem_euclid(7) + 1) as u8
    }

    /// The next calendar day.
    pub fn succ(self) -> Date {
        Date(self.0 + 1)
    }
}

impl fmt::Display for Date {
    /// `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.civil();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn two(b: &[u8]) -> Result<u8, TimeError> {
    match b {
        [a @ b'0'..=b'9', c @ b'0'..=b'9'] => Ok((a - b'0') * 10 + (c - b'0')),
        _ => Err(TimeError::Syntax),
    }
}

/// Appends the decimal digits of `|value|`, zero-padded to at least `width`.
pub fn push_digits(out: &mut Vec<u8>, value: i64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut v = value.unsigned_abs();
    let mut i = buf.len();
    while v > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Result<Timestamp, TimeError> {
        Timestamp::parse_rfc3339(text)
    }

    #[test]
    fn parses_and_normalizes_to_utc() {
        let z = ts("2026-11-24T10:00:00.123Z").unwrap();
        assert_eq!(z.to_string(), "2026-11-24T10:00:00.123Z");
        assert_eq!(ts("2026-11-24T15:30:00.123+05:30").unwrap(), z);
        assert_eq!(ts("2026-11-24t10:00:00.123456789z").unwrap(), z);
        assert_eq!(ts("2026-11-24T09:00:00.1234-01:00").unwrap(), z);
        assert_eq!(ts("1970-01-01T00:00:00Z").unwrap(), Timestamp(0));
        assert_eq!(ts("1969-12-31T23:59:59.999Z").unwrap(), Timestamp(-1));
    }

    #[test]
    fn refuses_bad_shapes_and_ranges() {
        assert_eq!(ts("2026-11-24T10:00:00"), Err(TimeError::NoZone));
        assert_eq!(ts("2026-13-01T00:00:00Z"), Err(TimeError::Range));
        assert_eq!(ts("2026-02-29T00:00:00Z"), Err(TimeError::Range));
        assert_eq!(ts("2026-11-24T24:00:00Z"), Err(TimeError::Range));
        assert_eq!(ts("2026-11-24T23:59:60Z"), Err(TimeError::Range));
        assert_eq!(ts("2026-11-24T10:00:00+24:00"), Err(TimeError::Range));
        assert_eq!(ts("2026-11-24 10:00:00Z"), Err(TimeError::Syntax));
        assert_eq!(ts("2026-11-24"), Err(TimeError::Syntax));
        assert_eq!(ts("2026-11-24T10:00:00.Z"), Err(TimeError::Syntax));
        assert!(ts("2024-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn civil_round_trips_across_eras() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = Date(days).civil();
            assert_eq!(Date::from_civil(y, m, d), Some(Date(days)));
        }
        assert_eq!(Date::parse("2026-11-24").unwrap().iso_weekday(), 2);
        assert_eq!(Date::parse("2026-02-30"), Err(TimeError::Range));
    }

    #[test]
    fn window_helpers() {
        let t = ts("2026-11-24T10:05:42.500Z").unwrap();
        assert_eq!(
            t.floor_to(60_000).to_rfc3339_seconds(),
            "2026-11-24T10:05:00Z"
        );
        assert_eq!(t.date().to_string(), "2026-11-24");
    }
}
