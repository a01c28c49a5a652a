//! Running the dataflow live from sources: one [`Source`] per worker.
//!
//! Every worker pulls from its own source (Kafka partitions, a channel, …)
//! into its own [`Feeder`]. Sources report a [`Mark`]; the input time of every
//! worker follows the combined watermark: the smallest mark of all sources,
//! ignoring idle sources that never had data. No worker moves before every
//! source has either delivered something or found itself empty. All changes go to worker 0, which hands every
//! completed time to the `report` callback; its return value says up to which
//! time the results are durable, and every source hears of it through
//! [`Source::durable`] (Kafka commits offsets there).

use crate::bounded::{Pending, capture, take_before};
use crate::input::Input;
use crate::input::{Admission, Feeder};
use crate::{Change, Settings, Time, graph};
use differential_dataflow::AsCollection;
use shopflow_model::Event;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use timely::dataflow::operators::core::Exchange;

/// How far a source vouches for event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Not started: holds every worker back (a partition with data not yet read).
    Hold,
    /// Active: nothing older than this event time (ms) is expected any more,
    /// beyond the allowed lateness.
    Active(i64),
    /// Idle (caught up and quiet). Its mark, if it ever had data, should
    /// advance with the wall clock while it is quiet (see the Kafka source).
    Idle(Option<i64>),
}

/// What a worker offers its source on each poll.
pub struct Offer<'a> {
    feeder: &'a mut Feeder,
    /// The newest record time offered in this poll (the in-flight bound).
    batch_max: i64,
    counts: &'a mut IngestCounts,
    too_late: &'a mut Vec<Event>,
}

impl Offer<'_> {
    /// Offers one validated record; returns what happened to it (`None` for
    /// reference data, which is always applied).
    pub fn input(&mut self, input: Input) -> Option<Admission> {
        self.batch_max = self.batch_max.max(input.ts());
        match input.feed(self.feeder)? {
            Ok(admission) => {
                match admission {
                    Admission::OnTime => self.counts.on_time += 1,
                    Admission::Late => self.counts.late += 1,
                    Admission::TooLate => self.counts.too_late += 1,
                }
                Some(admission)
            }
            Err(event) => {
                self.counts.too_late += 1;
                self.too_late.push(*event);
                Some(Admission::TooLate)
            }
        }
    }

    /// The worker's input time: a record offered now enters at this time or later.
    pub fn time(&self) -> Time {
        self.feeder.time()
    }

    /// Offers a record recovered from durable history (crash recovery): fed
    /// like any other, but not counted as ingested, since the run before
    /// the restart counted it already.
    pub fn recover(&mut self, input: Input) {
        let _ = input.feed(self.feeder);
    }

    /// Moves this worker's input time forward to `time` (after recovery: to
    /// the frontier the sinks have already committed, so that everything read
    /// from now on enters at or after it).
    pub fn advance_to(&mut self, time: Time) {
        self.feeder.advance_to(time);
    }
}

/// One worker's input.
pub trait Source {
    /// Offers what is available now (a bounded batch). `in_flight` is the
    /// number of records this worker offered whose times are not complete
    /// yet, for backpressure. Returns false once the source has ended; it is
    /// not polled again.
    fn poll(&mut self, offer: &mut Offer<'_>, in_flight: u64) -> bool;
    /// The source's current mark.
    fn mark(&self) -> Mark;
    /// Every result of times before `upto` is durable.
    fn durable(&mut self, upto: Time);
    /// The run is stopping: the source will not be polled again. Write out
    /// anything buffered (the lake) so that its positions can be made durable.
    fn close(&mut self) {}
}

/// A source that has ended before it began (for workers that own no partition).
pub struct NoSource;

impl Source for NoSource {
    fn poll(&mut self, _: &mut Offer<'_>, _: u64) -> bool {
        false
    }
    fn mark(&self) -> Mark {
        Mark::Idle(None)
    }
    fn durable(&mut self, _: Time) {}
}

/// Combines the marks of every worker into the watermark, if it can move:
/// the smallest mark, ignoring sources that are idle without one.
pub fn combine(marks: &[Mark]) -> Option<i64> {
    if marks.contains(&Mark::Hold) {
        return None;
    }
    marks
        .iter()
        .filter_map(|m| match m {
            Mark::Active(t) | Mark::Idle(Some(t)) => Some(*t),
            _ => None,
        })
        .min()
}

/// State shared by the workers of one live run.
struct Shared {
    marks: Mutex<Vec<Mark>>,
    durable: AtomicU64,
    ended: AtomicBool,
    sources_ended: AtomicUsize,
    finished: AtomicBool,
    counts: Mutex<IngestCounts>,
    too_late: Mutex<Vec<Event>>,
    /// A worker panicked: the others stop instead of waiting for it forever.
    failed: AtomicBool,
}

/// Marks the run as failed if the worker holding it unwinds (a panic in a
/// source or in `report`), so that the other workers stop.
struct FailOnPanic(Arc<Shared>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::SeqCst);
        }
    }
}

/// Runs the dataflow live on `workers` threads, worker `i` pulling from
/// `make_source(i, workers)`. Stops when every source has ended or `stop()`
/// is true, then closes the inputs and drains, reporting the last changes.
/// `report` runs on worker 0 for every completed step and returns the time up
/// to which results are durable. If any worker panics (in its source or in
/// `report`), the others stop and the run returns an error.
pub fn run_sources<M, S, R>(
    settings: Settings,
    workers: usize,
    make_source: M,
    stop: S,
    report: R,
) -> Result<(), String>
where
    M: Fn(usize, usize) -> Box<dyn Source> + Send + Sync + 'static,
    S: Fn() -> bool + Send + Sync + 'static,
    R: FnMut(Progress) -> Time + Send + 'static,
{
    let problems = settings.problems();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let workers = workers.max(1);
    let shared = Arc::new(Shared {
        marks: Mutex::new(vec![Mark::Hold; workers]),
        durable: AtomicU64::new(0),
        ended: AtomicBool::new(false),
        sources_ended: AtomicUsize::new(0),
        finished: AtomicBool::new(false),
        counts: Mutex::default(),
        too_late: Mutex::default(),
        failed: AtomicBool::new(false),
    });
    let report = Arc::new(Mutex::new(report));
    let shared_after = shared.clone();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let _fail_on_panic = FailOnPanic(shared.clone());
        // Changes by time until their time completes (future-dated ones wait
        // here without being walked at every step).
        let local: Rc<RefCell<Pending>> = Rc::default();
        let sink = local.clone();
        let (inputs, probe) = worker.dataflow::<Time, _, _>(|scope| {
            let (inputs, rows) = graph::build(scope, &settings, false);
            let to_zero = rows.inner.exchange(|_| 0).as_collection();
            (inputs, capture(to_zero, sink))
        });
        let mut feeder = Feeder::new(inputs, settings.clone(), false);
        let mut source = make_source(index, worker.peers());
        let mut counts = IngestCounts::default();
        let mut too_late = Vec::new();
        let mut in_flight: std::collections::VecDeque<(Time, u64)> = Default::default();
        let mut reported: Time = 0;
        let mut durable_seen: Time = 0;
        let mut open = true;
        let mut last_log = std::time::Instant::now();
        let frontier = |probe: &timely::dataflow::ProbeHandle<Time>| {
            probe
                .with_frontier(|f| f.iter().min().copied())
                .unwrap_or(Time::MAX)
        };
        loop {
            let upto = frontier(&probe);
            while in_flight.front().is_some_and(|(t, _)| *t < upto) {
                in_flight.pop_front();
            }
            let pending: u64 = in_flight.iter().map(|(_, n)| n).sum();
            let before = counts.on_time + counts.late;
            let mut batch_max = i64::MIN;
            if open {
                let mut offer = Offer {
                    feeder: &mut feeder,
                    batch_max: i64::MIN,
                    counts: &mut counts,
                    too_late: &mut too_late,
                };
                open = source.poll(&mut offer, pending);
                batch_max = offer.batch_max;
                if !open {
                    shared.sources_ended.fetch_add(1, Ordering::SeqCst);
                }
            }
            let fed = counts.on_time + counts.late - before;
            {
                let mut marks = shared.marks.lock().expect("marks");
                marks[index] = if open {
                    source.mark()
                } else {
                    Mark::Idle(None)
                };
                if index == 0 && last_log.elapsed() >= Duration::from_secs(5) {
                    tracing::debug!(marks = ?*marks, input_time = feeder.time(), "watermarks");
                    last_log = std::time::Instant::now();
                }
                if let Some(mark) = combine(&marks) {
                    drop(marks);
                    feeder.advance_to(settings.floor_tick(mark));
                }
            }
            feeder.flush();
            if fed > 0 {
                // This poll's newest record, not the all-time newest: one
                // far-future event must not keep every later record "in flight".
                let bound = if batch_max == i64::MIN {
                    feeder.time()
                } else {
                    feeder.time().max(settings.tick(batch_max))
                };
                match in_flight.back_mut() {
                    Some((t, n)) if *t == bound => *n += fed,
                    _ => in_flight.push_back((bound, fed)),
                }
            }
            {
                let mut total = shared.counts.lock().expect("counts");
                total.on_time += counts.on_time;
                total.late += counts.late;
                total.too_late += counts.too_late;
                counts = IngestCounts::default();
            }
            if !too_late.is_empty() {
                shared
                    .too_late
                    .lock()
                    .expect("too late")
                    .append(&mut too_late);
            }
            worker.step_or_park(Some(Duration::from_millis(if fed > 0 { 0 } else { 5 })));
            let upto = frontier(&probe);
            if index == 0 && upto > reported {
                let progress = take_progress(&local, upto, &shared);
                let durable = (report.lock().expect("report"))(progress);
                shared.durable.fetch_max(durable, Ordering::SeqCst);
                reported = upto;
            }
            let durable = shared.durable.load(Ordering::SeqCst);
            if durable > durable_seen {
                source.durable(durable);
                durable_seen = durable;
            }
            if index == 0 && !shared.ended.load(Ordering::SeqCst) {
                let all_ended = shared.sources_ended.load(Ordering::SeqCst) == workers;
                if stop() || all_ended {
                    shared.ended.store(true, Ordering::SeqCst);
                }
            }
            if shared.ended.load(Ordering::SeqCst) {
                break;
            }
            if shared.failed.load(Ordering::SeqCst) {
                return abandon(worker); // another worker panicked: its results never complete
            }
        }
        if open {
            source.close();
        }
        drop(feeder);
        while !probe.done() {
            if shared.failed.load(Ordering::SeqCst) {
                return abandon(worker);
            }
            worker.step_or_park(Some(Duration::from_millis(5)));
        }
        if index == 0 {
            let progress = take_progress(&local, Time::MAX, &shared);
            let durable = (report.lock().expect("report"))(progress);
            shared.durable.store(durable, Ordering::SeqCst);
            shared.finished.store(true, Ordering::SeqCst);
        } else {
            // Worker 0 reports the last changes: wait for their durability.
            while !shared.finished.load(Ordering::SeqCst) {
                if shared.failed.load(Ordering::SeqCst) {
                    return abandon(worker);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        source.durable(shared.durable.load(Ordering::SeqCst));
    })?;
    for result in guards.join() {
        result.map_err(|e| format!("a dataflow worker panicked: {e}"))?;
    }
    if shared_after.failed.load(Ordering::SeqCst) {
        return Err("a dataflow worker panicked (see the log above); the others stopped".into());
    }
    Ok(())
}

/// Drops the worker's dataflows: timely would otherwise keep stepping them
/// after the worker returns, waiting for a worker that is gone.
fn abandon(worker: &mut timely::worker::Worker) {
    for id in worker.installed_dataflows() {
        worker.drop_dataflow(id);
    }
}

fn take_progress(local: &Rc<RefCell<Pending>>, upto: Time, shared: &Shared) -> Progress {
    let mut done = take_before(local, upto);
    differential_dataflow::consolidation::consolidate_updates(&mut done);
    Progress {
        upto,
        changes: done,
        ingest: *shared.counts.lock().expect("counts"),
        too_late: std::mem::take(&mut *shared.too_late.lock().expect("too late")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_idle_sources_do_not_hold_the_watermark() {
        assert_eq!(combine(&[Mark::Active(5), Mark::Idle(Some(9))]), Some(5));
        assert_eq!(combine(&[Mark::Idle(Some(3)), Mark::Active(9)]), Some(3));
        assert_eq!(combine(&[Mark::Active(4), Mark::Idle(None)]), Some(4));
        assert_eq!(combine(&[Mark::Idle(None), Mark::Idle(None)]), None);
        assert_eq!(combine(&[Mark::Active(5), Mark::Hold]), None);
        assert_eq!(combine(&[Mark::Active(5), Mark::Active(2)]), Some(2));
    }
}

/// Counts of what a live run did with offered events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestCounts {
    /// Applied at their own time.
    pub on_time: u64,
    /// Applied late, correcting windows.
    pub late: u64,
    /// Beyond the allowed lateness: not applied.
    pub too_late: u64,
}

/// One completed step of a live run.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Every time before this is complete.
    pub upto: Time,
    /// The changes at completed times not reported before, consolidated.
    pub changes: Vec<Change>,
    /// Totals so far.
    pub ingest: IngestCounts,
    /// Events refused as too late since the last report.
    pub too_late: Vec<Event>,
}
