//! Running the dataflow from a channel, and the runners' public names.
//!
//! [`run_live`] lets worker 0 ingest validated records from a channel (the
//! demo's generator, tests), advance the watermark, and hand every completed
//! time's changes to a callback, through [`crate::live`]'s sources. The
//! other names re-exported here live where they belong: records and their
//! routing in [`crate::input`], bounded runs in [`crate::bounded`], live
//! progress in [`crate::live`]; none of those modules depends on this one.

pub use crate::bounded::run_bounded;
pub use crate::input::{Input, feed_share, route};
pub use crate::live::{IngestCounts, Progress};

use crate::live::{Mark, NoSource, Offer, Source, run_sources};
use crate::{Settings, Time};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs the dataflow live: worker 0 ingests from `rx` until it disconnects or
/// `stop()` is true, with its watermark trailing the newest event by the
/// out-of-orderness; `report` receives every completed step on worker 0, the
/// last one after the inputs close.
pub fn run_live<S, R>(
    settings: Settings,
    workers: usize,
    rx: Receiver<Input>,
    stop: S,
    mut report: R,
) -> Result<(), String>
where
    S: Fn() -> bool + Send + Sync + 'static,
    R: FnMut(Progress) + Send + 'static,
{
    let rx = Arc::new(Mutex::new(Some(rx)));
    let ooo = settings.out_of_orderness_ms;
    run_sources(
        settings,
        workers,
        move |index, _| {
            let rx = if index == 0 {
                rx.lock().expect("lock").take()
            } else {
                None
            };
            match rx {
                Some(rx) => Box::new(ChannelSource {
                    rx,
                    max_ts: None,
                    ooo,
                }) as Box<dyn Source>,
                None => Box::new(NoSource),
            }
        },
        stop,
        move |p| {
            let upto = p.upto;
            report(p);
            upto
        },
    )
}

/// Worker 0's source in [`run_live`]: a channel, its mark the newest event
/// time minus the out-of-orderness.
struct ChannelSource {
    rx: Receiver<Input>,
    max_ts: Option<i64>,
    ooo: i64,
}

impl Source for ChannelSource {
    fn poll(&mut self, offer: &mut Offer<'_>, _in_flight: u64) -> bool {
        let deadline = Instant::now() + Duration::from_millis(20);
        while Instant::now() < deadline {
            match self.rx.try_recv() {
                Ok(input) => {
                    if let Input::Event(e, _) = &input {
                        self.max_ts = self.max_ts.max(Some(e.ts().0));
                    }
                    offer.input(input);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn mark(&self) -> Mark {
        match self.max_ts {
            Some(t) => Mark::Active(t - self.ooo),
            None => Mark::Hold,
        }
    }

    fn durable(&mut self, _upto: Time) {}
}
