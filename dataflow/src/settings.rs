//! The dataflow's knobs, validated once.

/// One minute in ms.
pub const MINUTE_MS: i64 = 60_000;
/// One hour in ms: the longest window, and so the base of every record's lifetime.
pub const HOUR_MS: i64 = 3_600_000;

/// Timing settings of the dataflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Event time is rounded up to a multiple of this (ms); fewer distinct
    /// times means less work per event. Default 1000.
    pub tick_ms: i64,
    /// How far behind the newest event the watermark trails (ms). Default 5 s.
    pub out_of_orderness_ms: i64,
    /// How far behind the watermark an event may still be applied live (ms).
    /// Later ones are too late: reported, not applied. Default 5 min.
    pub allowed_lateness_ms: i64,
    /// How long after its window ends a row can still be corrected (ms); at
    /// least `allowed_lateness_ms`. Default 10 min.
    pub horizon_ms: i64,
    /// How much longer than any other record an order stays in the live
    /// state, so that one waiting for its FX rate can still be priced into
    /// its windows when the rate comes late (ms). Default 1 h.
    pub fx_wait_ms: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tick_ms: 1_000,
            out_of_orderness_ms: 5_000,
            allowed_lateness_ms: 5 * MINUTE_MS,
            horizon_ms: 10 * MINUTE_MS,
            fx_wait_ms: HOUR_MS,
        }
    }
}

impl Settings {
    /// Every problem with the settings, as messages that say what to change.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=MINUTE_MS).contains(&self.tick_ms) || MINUTE_MS % self.tick_ms != 0 {
            out.push(format!(
                "tick_ms must divide one minute (60000) evenly, got {}",
                self.tick_ms
            ));
        }
        if self.out_of_orderness_ms < 0 || self.allowed_lateness_ms < 0 || self.fx_wait_ms < 0 {
            out.push(
                "out_of_orderness_ms, allowed_lateness_ms and fx_wait_ms must not be negative"
                    .into(),
            );
        }
        if self.horizon_ms < self.allowed_lateness_ms {
            out.push(format!(
                "horizon_ms ({}) must be at least allowed_lateness_ms ({}), or late events would correct rows that already left the live state",
                self.horizon_ms, self.allowed_lateness_ms
            ));
        }
        out
    }

    /// The dataflow time of an event time: rounded up to the tick, never below 0.
    pub fn tick(&self, ts_ms: i64) -> crate::Time {
        (ts_ms.max(0) as u64).div_ceil(self.tick_ms as u64) * self.tick_ms as u64
    }

    /// The input time a watermark allows: the mark rounded down to the tick,
    /// never below 0.
    pub fn floor_tick(&self, mark_ms: i64) -> crate::Time {
        let mark = mark_ms.max(0);
        (mark - mark.rem_euclid(self.tick_ms)) as crate::Time
    }

    /// When a record with event time `ts_ms` leaves the live state: one hour
    /// (the longest window) plus the horizon later, rounded up to a minute so
    /// that retractions of one minute's records consolidate.
    pub fn expiry(&self, ts_ms: i64) -> crate::Time {
        ceil_minute(ts_ms + HOUR_MS + self.horizon_ms)
    }

    /// When an order with event time `ts_ms` leaves the pricing state:
    /// [`Settings::fx_wait_ms`] after [`Settings::expiry`]. Monotone in
    /// `ts_ms`, so no order of a window leaves before `order_expiry(window start)`.
    pub fn order_expiry(&self, ts_ms: i64) -> crate::Time {
        ceil_minute(ts_ms + HOUR_MS + self.horizon_ms + self.fx_wait_ms)
    }

    /// When the deduplication state forgets an event id first seen with event
    /// time `ts_ms`: no re-send of it can be admitted after the allowed
    /// lateness, so it need not be remembered longer (plus the horizon, for
    /// conflicting versions with a later time).
    pub fn dedup_expiry(&self, ts_ms: i64) -> crate::Time {
        ceil_minute(ts_ms + self.allowed_lateness_ms + self.horizon_ms)
    }

    /// When a window ending at `end_ms` freezes: the last time its row may change.
    pub fn freeze(&self, end_ms: i64) -> crate::Time {
        self.tick(end_ms + self.horizon_ms)
    }
}

fn ceil_minute(ms: i64) -> crate::Time {
    (ms.max(0) as u64).div_ceil(MINUTE_MS as u64) * MINUTE_MS as u64
}
