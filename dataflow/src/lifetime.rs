//! Temporal operators: keep each record only while its event time says so.
//!
//! Both operators only move update times forward, which is always legal: the
//! input's capabilities still cover the output, so no capability juggling is
//! needed. They are named so logs and timely's logging show where time goes.

use crate::Time;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::operator::Operator;

/// Rewrites every update `(d, t, r)` into zero or more updates at times no
/// earlier than `t`, in a named operator.
fn retime<'s, D, F, I>(
    coll: VecCollection<'s, Time, D>,
    name: &str,
    logic: F,
) -> VecCollection<'s, Time, D>
where
    D: Clone + 'static,
    F: Fn(D, Time, isize) -> I + 'static,
    I: IntoIterator<Item = (D, Time, isize)>,
{
    coll.inner
        .unary(Pipeline, name, move |_, _| {
            move |input, output| {
                input.for_each_stamp(|time, data| {
                    let caps: CapabilitySet<Time> = time
                        .stamp()
                        .iter()
                        .map(|t| time.delayed(t, output.output_index()))
                        .collect();
                    let mut session = output.session(&caps);
                    for batch in data {
                        let mut out: Vec<(D, Time, isize)> = Vec::with_capacity(batch.len());
                        for (d, t, r) in batch.drain(..) {
                            out.extend(logic(d, t, r));
                        }
                        session.give_container(&mut out);
                    }
                });
            }
        })
        .as_collection()
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
    retime(coll, name, move |d, t, r| {
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
    retime(coll, name, move |d, t, r| {
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
    retime(coll, name, move |d, t, r| {
        Some((d, if r < 0 { t + delay } else { t }, r))
    })
}
