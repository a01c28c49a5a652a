//! Temporal operators: keep each record only while its event time says so.
//!
//! They only move update times forward; `lifetime` and `release_late` hold
//! each update until the input frontier reaches its time (see `retime`).
//! They are named so logs and timely's logging show where time goes.

use crate::Time;
use differential_dataflow::{AsCollection, VecCollection};
use std::collections::BTreeMap;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::operator::Operator;

/// Rewrites every update `(d, t, r)` into zero or more updates at times no
/// earlier than `t`, in a named operator. With `hold`, an update is sent once
/// the input frontier has reached its time and kept here until then: a
/// future-dated retraction sent at once waits in the next operator's
/// batcher, which walks everything it holds at every frontier advance (in a
/// live run, every tick, for up to two hours of records). A capability for
/// the earliest held time keeps the output correct. Without `hold` every
/// update goes on at once (for records the next operators drop or keep small).
fn retime<'s, D, F, I>(
    coll: VecCollection<'s, Time, D>,
    name: &str,
    hold: bool,
    logic: F,
) -> VecCollection<'s, Time, D>
where
    D: Clone + 'static,
    F: Fn(D, Time, isize) -> I + 'static,
    I: IntoIterator<Item = (D, Time, isize)>,
{
    coll.inner
        .unary_frontier(Pipeline, name, move |capability, _| {
            let mut cap = CapabilitySet::from_elem(capability);
            let mut held: BTreeMap<Time, Vec<(D, isize)>> = BTreeMap::new();
            move |(input, frontier), output| {
                let reached = |t: &Time| !hold || frontier.frontier().iter().all(|f| f >= t);
                input.for_each_stamp(|_, data| {
                    for batch in data {
                        for (d, t, r) in batch.drain(..) {
                            for (d, t, r) in logic(d, t, r) {
                                held.entry(t).or_default().push((d, r));
                            }
                        }
                    }
                });
                let mut out: Vec<(D, Time, isize)> = Vec::new();
                let mut first: Option<Time> = None;
                while let Some(entry) = held.first_entry() {
                    let t = *entry.key();
                    if !reached(&t) {
                        break;
                    }
                    first.get_or_insert(t);
                    out.extend(entry.remove().into_iter().map(|(d, r)| (d, t, r)));
                }
                if let Some(t) = first {
                    output.session(&cap.delayed(&t)).give_container(&mut out);
                }
                hold_for(&mut cap, &frontier.frontier(), held.keys().next().copied());
            }
        })
        .as_collection()
}

/// Downgrades the capabilities of a frontier-driven operator to what it can
/// still emit: the input `frontier` and its `earliest` held time.
pub(crate) fn hold_for(cap: &mut CapabilitySet<Time>, frontier: &[Time], earliest: Option<Time>) {
    match frontier.iter().copied().chain(earliest).min() {
        Some(least) => cap.downgrade([least]),
        None => cap.downgrade(std::iter::empty::<Time>()),
    }
}

/// Restricts each record to the dataflow times `[from, until)` computed from
/// the record: an update at time `t` takes effect at `max(t, from)` and is
/// retracted at `max(t, until)`.
pub fn lifetime<'s, D, F>(
    coll: VecCollection<'s, Time, D>,
    name: &str,
    window: F,
) -> VecCollection<'s, Time, D>
where
    D: Clone + 'static,
    F: Fn(&D) -> (Time, Time) + 'static,
{
    retime(coll, name, true, move |d, t, r| {
        let (from, until) = window(&d);
        let (start, end) = (t.max(from), t.max(until));
        let keep = (start < end).then(|| [(d.clone(), start, r), (d, end, -r)]);
        keep.into_iter().flatten()
    })
}

/// Moves the retraction a record gets when it leaves an upstream state at
/// `forget` to `keep` (later): for each record `f` gives `(forget, keep)`.
/// Other updates (a conflict resolved by a late version, say) pass unchanged.
pub fn extend<'s, D, F>(
    coll: VecCollection<'s, Time, D>,
    name: &str,
    f: F,
) -> VecCollection<'s, Time, D>
where
    D: Clone + 'static,
    F: Fn(&D) -> (Time, Time) + 'static,
{
    retime(coll, name, false, move |d, t, r| {
        let (forget, keep) = f(&d);
        let t = if r < 0 && t == forget { t.max(keep) } else { t };
        Some((d, t, r))
    })
}

/// Moves every retraction `delay` later: a record leaves the collection one
/// step after it left upstream (a held window stays held for the step in
/// which its last waiting order is priced, so that step's correction still
/// reaches the window).
pub fn release_late<'s, D>(
    coll: VecCollection<'s, Time, D>,
    name: &str,
    delay: Time,
) -> VecCollection<'s, Time, D>
where
    D: Clone + 'static,
{
    retime(coll, name, true, move |d, t, r| {
        Some((d, if r < 0 { t + delay } else { t }, r))
    })
}
