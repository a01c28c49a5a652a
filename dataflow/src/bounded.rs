//! Bounded runs in event-time slices: memory bounded by the live horizon.
//!
//! Every worker offers its share of a bounded input slice by slice through a
//! [`Slices`] (records of one slice may come in any order, but none may be
//! earlier than the time the previous slice let the inputs advance to). After
//! each slice every worker moves its inputs to the slice's bound and steps
//! the dataflow until that time is complete; the changes of completed times
//! go to the calling thread, which hands them to `report` one time at a time,
//! consolidated, in time order. So rows that froze can be written out and
//! dropped while the run goes on, and the dataflow's own state releases what
//! aged out (the delayed retractions of `lifetime.rs`) as it would live.
//!
//! Each record still enters at its own tick (bounded mode: nothing is late),
//! so the results are those of feeding everything at once.

use crate::input::{Feeder, Input};
use crate::rows::Row;
use crate::{Change, Cluster, Settings, Time, graph};
use differential_dataflow::AsCollection;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use timely::dataflow::operators::core::Exchange;

/// One worker's share of a bounded input, offered slice by slice.
pub trait Slices {
    /// Offers the next slice to `feeder` and returns the time every worker's
    /// inputs may then advance to: no record of any worker's later slices is
    /// earlier. Every worker must return the same sequence of bounds.
    /// `None` once this worker's share is exhausted.
    fn next(&mut self, feeder: &mut Feeder) -> Option<Time>;
}

/// A whole share offered as one slice (tests, benchmarks, small inputs).
pub struct Whole<F>(Option<F>);

impl<F: FnOnce(&mut Feeder)> Whole<F> {
    /// The share `load` offers.
    pub fn new(load: F) -> Whole<F> {
        Whole(Some(load))
    }
}

impl<F: FnOnce(&mut Feeder)> Slices for Whole<F> {
    fn next(&mut self, feeder: &mut Feeder) -> Option<Time> {
        let load = self.0.take()?;
        load(feeder);
        // Nothing follows: the inputs close when this returns None.
        Some(feeder.time())
    }
}

/// The order in which to offer chunks of several streams, each in its own
/// order, given each chunk's earliest record time (`Time::MAX` for a chunk
/// with none): always next the stream whose remaining chunks hold the
/// earliest time. Returns (stream, chunk, bound): after that chunk every
/// input may advance to `bound`, the earliest time of every chunk not yet
/// offered (`Time::MAX` when none remains). Streams written in time order
/// with some late records advance steadily; one in no order at all is still
/// correct, only held back longer.
pub fn schedule(chunk_min_times: &[Vec<Time>]) -> Vec<(usize, usize, Time)> {
    // Earliest time of each stream's chunks from c on (`Time::MAX` past the end).
    let suffix: Vec<Vec<Time>> = chunk_min_times
        .iter()
        .map(|mins| {
            let mut s = vec![Time::MAX; mins.len() + 1];
            for c in (0..mins.len()).rev() {
                s[c] = s[c + 1].min(mins[c]);
            }
            s
        })
        .collect();
    let streams = chunk_min_times.len();
    let mut next = vec![0usize; streams];
    let total: usize = chunk_min_times.iter().map(Vec::len).sum();
    let mut steps = Vec::with_capacity(total);
    for _ in 0..total {
        let f = (0..streams)
            .filter(|&f| next[f] < chunk_min_times[f].len())
            .min_by_key(|&f| (suffix[f][next[f]], f))
            .expect("a chunk remains");
        next[f] += 1;
        let bound = (0..streams).map(|f| suffix[f][next[f]]).min();
        steps.push((f, next[f] - 1, bound.unwrap_or(Time::MAX)));
    }
    steps
}

/// Records already in memory (a day of the lake), offered in event-time
/// slices: `streams` are the records of each topic in their own order (file
/// order, so FX corrections and conflicting versions keep the order they
/// arrived in), cut into chunks and interleaved by [`schedule`]. Every
/// worker walks the same chunks and feeds its share ([`Input::is_for`]).
pub struct StreamSlices {
    streams: Arc<Vec<Vec<Input>>>,
    steps: Arc<Vec<(usize, usize, Time)>>,
    chunk: usize,
    step: usize,
    index: usize,
    peers: usize,
}

impl StreamSlices {
    /// The plan for `streams` in chunks of `chunk` records, shared by every worker.
    pub fn plan(
        streams: &[Vec<Input>],
        chunk: usize,
        settings: &Settings,
    ) -> Arc<Vec<(usize, usize, Time)>> {
        let chunk = chunk.max(1);
        let mins: Vec<Vec<Time>> = streams
            .iter()
            .map(|s| {
                s.chunks(chunk)
                    .map(|c| {
                        c.iter()
                            .map(|i| settings.tick(i.ts()))
                            .min()
                            .unwrap_or(Time::MAX)
                    })
                    .collect()
            })
            .collect();
        Arc::new(schedule(&mins))
    }

    /// Worker `index` of `peers`'s share of `streams`, planned by [`StreamSlices::plan`].
    pub fn new(
        streams: Arc<Vec<Vec<Input>>>,
        steps: Arc<Vec<(usize, usize, Time)>>,
        chunk: usize,
        index: usize,
        peers: usize,
    ) -> StreamSlices {
        StreamSlices {
            streams,
            steps,
            chunk: chunk.max(1),
            step: 0,
            index,
            peers,
        }
    }
}

impl Slices for StreamSlices {
    fn next(&mut self, feeder: &mut Feeder) -> Option<Time> {
        let &(stream, chunk, bound) = self.steps.get(self.step)?;
        self.step += 1;
        let records = &self.streams[stream];
        let end = ((chunk + 1) * self.chunk).min(records.len());
        for input in &records[chunk * self.chunk..end] {
            if input.is_for(self.index, self.peers) {
                input.clone().feed(feeder);
            }
        }
        Some(if bound == Time::MAX {
            feeder.time()
        } else {
            bound
        })
    }
}

/// A worker's output changes by time, until their time completes.
pub(crate) type Pending = BTreeMap<Time, Vec<Change>>;

/// Moves every change of `rows` into `sink` by time (taking the records
/// from timely's buffers, no copy); returns the probe that says which times
/// are complete. The probe follows the capturing operator, so a time is
/// complete only once its changes are in `sink`.
pub(crate) fn capture<'s>(
    rows: differential_dataflow::VecCollection<'s, Time, Row>,
    sink: Rc<RefCell<Pending>>,
) -> timely::dataflow::ProbeHandle<Time> {
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::channels::pact::Pipeline;
    use timely::dataflow::operators::generic::operator::Operator;
    use timely::dataflow::operators::probe::Probe;
    let done = rows
        .inner
        .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "Capture", move |_, _| {
            move |input, _output| {
                input.for_each(|_, data| {
                    let mut pending = sink.borrow_mut();
                    for change in data.drain(..) {
                        pending.entry(change.1).or_default().push(change);
                    }
                });
            }
        });
    done.probe().0
}

/// Removes and returns the changes at times before `upto` (later ones wait
/// without being walked).
pub(crate) fn take_before(pending: &Rc<RefCell<Pending>>, upto: Time) -> Vec<Change> {
    let mut pending = pending.borrow_mut();
    let later = pending.split_off(&upto);
    std::mem::replace(&mut *pending, later)
        .into_values()
        .flatten()
        .collect()
}

/// What a worker sends after each slice: its changes at times before `upto`.
struct Done {
    worker: usize,
    upto: Time,
    changes: Vec<Change>,
}

/// Runs the dataflow over bounded input on `shape`: a number of worker
/// threads, or this process's part of a [`Cluster`]. `slices` is called on
/// every worker with its (index, peers) in the whole cluster and returns
/// that worker's share; `report` receives every completed time's
/// consolidated changes, in time order, on the calling thread, while the
/// workers go on. In a cluster of several processes only process 0's
/// `report` receives changes (all of them).
pub fn run_sliced<M, S, R>(
    settings: Settings,
    shape: impl Into<Cluster>,
    slices: M,
    mut report: R,
) -> Result<(), String>
where
    M: Fn(usize, usize) -> S + Send + Sync + 'static,
    S: Slices,
    R: FnMut(Time, Vec<(Row, isize)>),
{
    let problems = settings.problems();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let cluster: Cluster = shape.into();
    let workers = cluster.workers;
    let distributed = cluster.processes() > 1;
    let (tx, rx) = mpsc::channel::<Done>();
    let tx = std::sync::Mutex::new(tx);
    let guards = cluster.execute(move |worker| {
        let tx = tx.lock().expect("no worker panicked").clone();
        // Changes seen by this worker, by time, until their time completes.
        let local: Rc<RefCell<Pending>> = Rc::default();
        let sink = local.clone();
        let (inputs, probe) = worker.dataflow::<Time, _, _>(|scope| {
            let (inputs, rows) = graph::build(scope, &settings, true);
            // Across processes every change goes to worker 0, so that
            // process 0's `report` sees them all.
            let rows = if distributed {
                rows.inner.exchange(|_| 0).as_collection()
            } else {
                rows
            };
            (inputs, capture(rows, sink))
        });
        let index = worker.index() % workers;
        let send = |upto: Time| {
            let changes = take_before(&local, upto);
            // The receiver only stops listening if the caller failed.
            let _ = tx.send(Done {
                worker: index,
                upto,
                changes,
            });
        };
        let mut feeder = Feeder::new(inputs, settings.clone(), true);
        let mut share = slices(worker.index(), worker.peers());
        while let Some(bound) = share.next(&mut feeder) {
            feeder.advance_to(bound);
            feeder.flush();
            while probe.less_than(&bound) {
                worker.step_or_park(None);
            }
            send(bound);
        }
        drop(feeder);
        while !probe.done() {
            worker.step_or_park(None);
        }
        send(Time::MAX);
    })?;
    // Completed times, merged over workers: a time is complete once every
    // worker has reported a bound beyond it.
    let mut upto = vec![0 as Time; workers];
    let mut pending: BTreeMap<Time, Vec<(Row, isize)>> = BTreeMap::new();
    let mut emitted: Time = 0;
    for done in rx.iter() {
        for (row, time, diff) in done.changes {
            pending.entry(time).or_default().push((row, diff));
        }
        upto[done.worker] = upto[done.worker].max(done.upto);
        let complete = *upto.iter().min().expect("one worker");
        if complete > emitted {
            emitted = complete;
            let later = pending.split_off(&complete);
            for (time, batch) in std::mem::replace(&mut pending, later) {
                report(time, consolidate(batch));
            }
        }
    }
    guards
        .join()
        .into_iter()
        .collect::<Result<Vec<()>, String>>()?;
    for (time, batch) in pending {
        report(time, consolidate(batch));
    }
    Ok(())
}

/// Sums the differences of equal rows and drops those that cancel.
fn consolidate(mut batch: Vec<(Row, isize)>) -> Vec<(Row, isize)> {
    batch.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Row, isize)> = Vec::with_capacity(batch.len());
    for (row, diff) in batch {
        match out.last_mut() {
            Some((last, d)) if *last == row => *d += diff,
            _ => out.push((row, diff)),
        }
    }
    out.retain(|(_, d)| *d != 0);
    out
}

/// Runs the dataflow over bounded input on `workers` threads. `load` is
/// called on every worker with (index, peers, feeder) and must offer that
/// worker's share, all at once. Returns every output change, consolidated per
/// time. Large inputs should use [`run_sliced`] instead, which streams.
pub fn run_bounded<L>(settings: Settings, workers: usize, load: L) -> Result<Vec<Change>, String>
where
    L: Fn(usize, usize, &mut Feeder) + Send + Sync + 'static,
{
    let load = Arc::new(load);
    let mut changes = Vec::new();
    run_sliced(
        settings,
        workers,
        move |index, peers| {
            let load = load.clone();
            Whole::new(move |feeder: &mut Feeder| load(index, peers, feeder))
        },
        |time, batch| changes.extend(batch.into_iter().map(|(row, diff)| (row, time, diff))),
    )?;
    Ok(changes)
}
