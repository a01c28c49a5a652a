//! What the workers of a live run tell each other besides the data.
//!
//! Within one process the workers share a [`Shared`]: every source's mark,
//! how many sources ended, the ingest counts and too-late events for worker
//! 0's report, and worker 0's decisions (stop, durable time, finished).
//! Across the processes of a cluster the same facts travel as [`Control`]
//! messages on a small timely dataflow of their own, to local worker 0 of
//! each other process (or of process 0), which applies them to its
//! process's `Shared`. The same channel carries each process's [`Relay`]:
//! the state that process 0's sink needs from the others (their Kafka
//! positions, lake progress and dead letters), collected after the time up
//! to which it is complete.

use crate::Time;
use crate::live::{IngestCounts, Mark};
use serde::{Deserialize, Serialize};
use shopflow_model::Event;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Exchange, Input, Inspect};
use timely::worker::Worker;

/// State the processes of a cluster hand each other for the sinks (see
/// `connectors::kafka::relay`), as opaque bytes.
pub trait Relay: Send {
    /// On local worker 0 of every process: what to hand the other processes
    /// now, if anything. Everything this process fed before the call is
    /// covered by what it returns now or returned before.
    fn collect(&mut self) -> Option<Vec<u8>>;
    /// On local worker 0 of every process: a message from `process`.
    fn absorb(&mut self, process: usize, message: Vec<u8>);
}

/// One message between the processes of a live run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Control {
    /// A worker's source mark (to every other process).
    Mark(usize, Mark),
    /// A worker's source ended (to every other process).
    SourceEnded,
    /// Events counted by a worker of another process (to process 0).
    Counts(IngestCounts),
    /// Events refused as too late by a worker of another process (to process 0).
    TooLate(Vec<Event>),
    /// A process was asked to stop (to process 0, which stops everyone).
    Stop,
    /// Worker 0: the run ends (to every other process).
    End,
    /// Worker 0: results before this time are durable.
    Durable(Time),
    /// Worker 0: the last changes are reported and durable up to this time.
    Finished(Time),
    /// A process's relay, with the least input time of its workers when it
    /// was collected (to every other process).
    Relay(usize, Time, Vec<u8>),
}

/// State shared by the workers of one process in a live run.
pub(crate) struct Shared {
    /// Every worker's mark, by global index.
    pub marks: Mutex<Vec<Mark>>,
    pub durable: AtomicU64,
    pub ended: AtomicBool,
    pub stop_requested: AtomicBool,
    pub sources_ended: AtomicUsize,
    pub finished: AtomicBool,
    pub counts: Mutex<IngestCounts>,
    pub too_late: Mutex<Vec<Event>>,
    /// A worker panicked: the others stop instead of waiting for it forever.
    pub failed: AtomicBool,
    /// This process's workers' input times, by local index.
    pub input_times: Mutex<Vec<Time>>,
    /// Per process, the input time its last relay covers (this process: MAX).
    pub relayed: Mutex<Vec<Time>>,
    /// This process's relay, used by its local worker 0.
    pub relay: Mutex<Option<Box<dyn Relay>>>,
}

impl Shared {
    pub fn new(peers: usize, workers: usize, processes: usize, process: usize) -> Shared {
        let mut relayed = vec![0; processes];
        relayed[process] = Time::MAX;
        Shared {
            marks: Mutex::new(vec![Mark::Hold; peers]),
            durable: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            stop_requested: AtomicBool::new(false),
            sources_ended: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
            counts: Mutex::default(),
            too_late: Mutex::default(),
            failed: AtomicBool::new(false),
            input_times: Mutex::new(vec![0; workers]),
            relayed: Mutex::new(relayed),
            relay: Mutex::new(None),
        }
    }

    /// The input time up to which every other process's relay is in (MAX
    /// for a single process): results before it may be committed.
    pub fn relayed(&self) -> Time {
        *self
            .relayed
            .lock()
            .expect("relayed")
            .iter()
            .min()
            .expect("one process")
    }

    fn apply(&self, message: Control) {
        match message {
            Control::Mark(worker, mark) => self.marks.lock().expect("marks")[worker] = mark,
            Control::SourceEnded => {
                self.sources_ended.fetch_add(1, Ordering::SeqCst);
            }
            Control::Counts(c) => {
                let mut total = self.counts.lock().expect("counts");
                total.on_time += c.on_time;
                total.late += c.late;
                total.too_late += c.too_late;
            }
            Control::TooLate(mut events) => {
                self.too_late.lock().expect("too late").append(&mut events)
            }
            Control::Stop => self.stop_requested.store(true, Ordering::SeqCst),
            Control::End => self.ended.store(true, Ordering::SeqCst),
            Control::Durable(t) => {
                self.durable.fetch_max(t, Ordering::SeqCst);
            }
            Control::Finished(t) => {
                self.durable.fetch_max(t, Ordering::SeqCst);
                self.finished.store(true, Ordering::SeqCst);
            }
            Control::Relay(process, covered, bytes) => {
                if let Some(relay) = self.relay.lock().expect("relay").as_mut() {
                    relay.absorb(process, bytes);
                }
                let mut relayed = self.relayed.lock().expect("relayed");
                relayed[process] = relayed[process].max(covered);
            }
        }
    }
}

/// The control channel's input: (destination worker, message).
type ControlInput = InputHandle<u64, CapacityContainerBuilder<Vec<(u64, Control)>>>;

/// One worker's end of the control channel.
pub(crate) struct Channel {
    input: Option<ControlInput>,
    inbox: Rc<RefCell<Vec<Control>>>,
    /// Local worker 0 of each process, by process.
    leaders: Vec<u64>,
    process: usize,
    local: usize,
    last_mark: Option<Mark>,
    last_durable: Time,
    last_relay: Time,
    /// Something was sent since the last flush.
    unsent: bool,
}

impl Channel {
    /// Builds the channel's dataflow in `worker`: `workers` per process.
    pub fn new(worker: &mut Worker, workers: usize) -> Channel {
        let inbox: Rc<RefCell<Vec<Control>>> = Rc::default();
        let sink = inbox.clone();
        let input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, stream) = scope.new_input::<Vec<(u64, Control)>>();
            stream
                .exchange(|(to, _)| *to)
                .inspect(move |(_, m)| sink.borrow_mut().push(m.clone()));
            input
        });
        let processes = worker.peers() / workers;
        Channel {
            input: Some(input),
            inbox,
            leaders: (0..processes).map(|p| (p * workers) as u64).collect(),
            process: worker.index() / workers,
            local: worker.index() % workers,
            last_mark: None,
            last_durable: 0,
            last_relay: 0,
            unsent: false,
        }
    }

    /// Whether there are other processes to talk to.
    pub fn distributed(&self) -> bool {
        self.leaders.len() > 1
    }

    fn send_others(&mut self, message: Control) {
        if let Some(input) = &mut self.input {
            for (p, &leader) in self.leaders.iter().enumerate() {
                if p != self.process {
                    input.send((leader, message.clone()));
                    self.unsent = true;
                }
            }
        }
    }

    fn send_zero(&mut self, message: Control) {
        if self.process != 0
            && let Some(input) = &mut self.input
        {
            input.send((0, message));
            self.unsent = true;
        }
    }

    /// Applies what other processes sent to this process's `shared`.
    pub fn receive(&mut self, shared: &Shared) {
        for m in self.inbox.borrow_mut().drain(..) {
            shared.apply(m);
        }
    }

    /// Tells the other processes this worker's mark, if it changed.
    pub fn mark(&mut self, worker: usize, mark: Mark) {
        if self.distributed() && self.last_mark != Some(mark) {
            self.last_mark = Some(mark);
            self.send_others(Control::Mark(worker, mark));
        }
    }

    /// This worker's source ended.
    pub fn source_ended(&mut self) {
        self.send_others(Control::SourceEnded);
    }

    /// Counts and too-late events of a worker outside process 0 go to it.
    /// Returns whether they were sent (else they stay with this process).
    pub fn ingest(&mut self, counts: IngestCounts, too_late: &mut Vec<Event>) -> bool {
        if self.process == 0 {
            return false;
        }
        if counts != IngestCounts::default() {
            self.send_zero(Control::Counts(counts));
        }
        if !too_late.is_empty() {
            self.send_zero(Control::TooLate(std::mem::take(too_late)));
        }
        true
    }

    /// A stop was requested in this process.
    pub fn stop(&mut self) {
        self.send_zero(Control::Stop);
    }

    /// Worker 0: the run ends.
    pub fn end(&mut self) {
        self.send_others(Control::End);
    }

    /// Worker 0: results before `upto` are durable.
    pub fn durable(&mut self, upto: Time) {
        if self.distributed() && upto > self.last_durable {
            self.last_durable = upto;
            self.send_others(Control::Durable(upto));
        }
    }

    /// Worker 0: the last report is done.
    pub fn finished(&mut self, durable: Time) {
        self.send_others(Control::Finished(durable));
    }

    /// Local worker 0 of a process in a cluster: hands the other processes
    /// this process's relay, covering every record its workers fed before now.
    pub fn relay(&mut self, shared: &Shared) {
        if !self.distributed() || self.local != 0 {
            return;
        }
        // The input times first: whatever is fed after this enters at or
        // after them, so the relay collected next covers everything before.
        let covered = *shared
            .input_times
            .lock()
            .expect("input times")
            .iter()
            .min()
            .expect("one worker");
        let collected = shared
            .relay
            .lock()
            .expect("relay")
            .as_mut()
            .and_then(|r| r.collect());
        if collected.is_some() || covered > self.last_relay {
            self.last_relay = covered;
            let bytes = collected.unwrap_or_default();
            self.send_others(Control::Relay(self.process, covered, bytes));
        }
    }

    /// Sends what is buffered. Moving the channel's own epoch is what
    /// makes timely push a partly filled exchange buffer to the network.
    pub fn flush(&mut self) {
        if self.unsent
            && let Some(input) = &mut self.input
        {
            let next = *input.time() + 1;
            input.advance_to(next);
            self.unsent = false;
        }
    }

    /// Closes this worker's side, so the channel's dataflow can finish.
    pub fn close(&mut self) {
        self.input = None;
    }
}
