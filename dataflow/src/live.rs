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
use crate::cluster::Cluster;
pub use crate::control::Relay;
use crate::control::{Channel, Shared};
use crate::input::Input;
use crate::input::{Admission, Feeder};
use crate::{Change, Settings, Time, graph};
use differential_dataflow::AsCollection;
use shopflow_model::Event;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use timely::dataflow::operators::core::Exchange;

/// How far a source vouches for event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    run_cluster(settings, workers, make_source, stop, report, None)
}

/// [`run_sources`] on this process's part of a [`Cluster`]: sources are made
/// with global worker indexes, `report` runs on worker 0 of process 0 only,
/// and `relay` (this process's) carries what the sinks there need from the
/// other processes ([`Relay`]); a stop requested in any process stops all.
pub fn run_cluster<M, S, R>(
    settings: Settings,
    shape: impl Into<Cluster>,
    make_source: M,
    stop: S,
    report: R,
    relay: Option<Box<dyn Relay>>,
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
    let cluster: Cluster = shape.into();
    let workers = cluster.workers;
    let shared = Arc::new(Shared::new(
        cluster.peers(),
        workers,
        cluster.processes(),
        cluster.process,
    ));
    *shared.relay.lock().expect("relay") = relay;
    let report = Arc::new(Mutex::new(report));
    let shared_after = shared.clone();
    let guards = cluster.execute(move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let local_index = index % workers;
        let _fail_on_panic = FailOnPanic(shared.clone());
        let mut channel = Channel::new(worker, workers);
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
        let mut source = make_source(index, peers);
        let mut counts = IngestCounts::default();
        let mut too_late = Vec::new();
        let mut in_flight: std::collections::VecDeque<(Time, u64)> = Default::default();
        let mut reported: Time = 0;
        let mut durable_seen: Time = 0;
        let mut open = true;
        let mut stop_sent = false;
        // Worker 0: when its input time reached each new value, for the
        // pipeline's delay (`Progress::allowed_at`).
        let mut advances: std::collections::VecDeque<(Time, std::time::Instant)> =
            Default::default();
        let mut last_log = std::time::Instant::now();
        let frontier = |probe: &timely::dataflow::ProbeHandle<Time>| {
            probe
                .with_frontier(|f| f.iter().min().copied())
                .unwrap_or(Time::MAX)
        };
        loop {
            channel.receive(&shared);
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
                    channel.source_ended();
                }
            }
            let fed = counts.on_time + counts.late - before;
            {
                let mark = if open {
                    source.mark()
                } else {
                    Mark::Idle(None)
                };
                channel.mark(index, mark);
                let mut marks = shared.marks.lock().expect("marks");
                marks[index] = mark;
                if index == 0 && last_log.elapsed() >= Duration::from_secs(5) {
                    tracing::debug!(marks = ?*marks, input_time = feeder.time(), "watermarks");
                    last_log = std::time::Instant::now();
                }
                if let Some(mark) = combine(&marks) {
                    drop(marks);
                    feeder.advance_to(settings.floor_tick(mark));
                    if index == 0 && advances.back().is_none_or(|(t, _)| *t < feeder.time()) {
                        advances.push_back((feeder.time(), std::time::Instant::now()));
                    }
                }
            }
            feeder.flush();
            shared.input_times.lock().expect("input times")[local_index] = feeder.time();
            channel.relay(&shared);
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
            if !channel.ingest(counts, &mut too_late) {
                let mut total = shared.counts.lock().expect("counts");
                total.on_time += counts.on_time;
                total.late += counts.late;
                total.too_late += counts.too_late;
            }
            counts = IngestCounts::default();
            if !too_late.is_empty() {
                shared
                    .too_late
                    .lock()
                    .expect("too late")
                    .append(&mut too_late);
            }
            channel.flush();
            worker.step_or_park(Some(Duration::from_millis(if fed > 0 { 0 } else { 5 })));
            let upto = frontier(&probe);
            if index == 0 && upto > reported {
                let progress = take_progress(&local, upto, &shared, &mut advances);
                let durable = (report.lock().expect("report"))(progress);
                shared.durable.fetch_max(durable, Ordering::SeqCst);
                channel.durable(durable);
                reported = upto;
            }
            let durable = shared.durable.load(Ordering::SeqCst);
            if durable > durable_seen {
                source.durable(durable);
                durable_seen = durable;
            }
            if !stop_sent && stop() {
                stop_sent = true;
                shared.stop_requested.store(true, Ordering::SeqCst);
                channel.stop();
            }
            if index == 0 && !shared.ended.load(Ordering::SeqCst) {
                let all_ended = shared.sources_ended.load(Ordering::SeqCst) == peers;
                if shared.stop_requested.load(Ordering::SeqCst) || all_ended {
                    shared.ended.store(true, Ordering::SeqCst);
                    channel.end();
                }
            }
            channel.flush();
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
        // Everything this worker fed is in the relay collected from now on.
        shared.input_times.lock().expect("input times")[local_index] = Time::MAX;
        while !probe.done() || (index == 0 && shared.relayed() < Time::MAX) {
            if shared.failed.load(Ordering::SeqCst) {
                return abandon(worker);
            }
            channel.receive(&shared);
            channel.relay(&shared);
            channel.flush();
            worker.step_or_park(Some(Duration::from_millis(5)));
        }
        if index == 0 {
            let progress = take_progress(&local, Time::MAX, &shared, &mut advances);
            let durable = (report.lock().expect("report"))(progress);
            shared.durable.store(durable, Ordering::SeqCst);
            shared.finished.store(true, Ordering::SeqCst);
            channel.finished(durable);
            channel.flush();
        } else {
            // Worker 0 reports the last changes: wait for their durability.
            while !shared.finished.load(Ordering::SeqCst) {
                if shared.failed.load(Ordering::SeqCst) {
                    return abandon(worker);
                }
                channel.receive(&shared);
                channel.relay(&shared);
                channel.flush();
                worker.step_or_park(Some(Duration::from_millis(5)));
            }
        }
        channel.close();
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

fn take_progress(
    local: &Rc<RefCell<Pending>>,
    upto: Time,
    shared: &Shared,
    advances: &mut std::collections::VecDeque<(Time, std::time::Instant)>,
) -> Progress {
    let mut done = take_before(local, upto);
    differential_dataflow::consolidation::consolidate_updates(&mut done);
    // The first moment the input time reached `upto`: the first record at
    // or past it (later steps have later `upto`s, so earlier records go).
    while advances.front().is_some_and(|(t, _)| *t < upto) {
        advances.pop_front();
    }
    let allowed_at = advances.front().map(|(_, at)| *at);
    Progress {
        upto,
        allowed_at,
        relayed: shared.relayed(),
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// When the watermark first allowed `upto` to complete: the moment
    /// worker 0's input time reached it (`None` at the end of a run). The
    /// pipeline's own delay is measured from here.
    pub allowed_at: Option<std::time::Instant>,
    /// In a cluster, every other process's sink state ([`Relay`]) covers the
    /// records fed before this time: results may be committed only before
    /// it. `Time::MAX` in a single process.
    pub relayed: Time,
    /// The changes at completed times not reported before, consolidated.
    pub changes: Vec<Change>,
    /// Totals so far.
    pub ingest: IngestCounts,
    /// Events refused as too late since the last report.
    pub too_late: Vec<Event>,
}
