//! When each user was first and last seen, with one state entry per user.
//!
//! A `reduce` over every `(user, ts)` in the live state held every event's
//! time for its whole lifetime and recomputed each user's minimum and
//! maximum at every change. The sinks keep the smallest `first_seen` and the
//! largest `last_seen` they are ever given (`apply.rs`), so the dataflow
//! only needs to say when either moves outward: this operator keeps, per
//! user, the earliest and latest time ever inserted, and once a time is
//! complete emits the users whose range it widened (retracting their
//! previous range). Retractions in its input (records ageing out, a
//! conflicting version replaced) are ignored, as the sinks would ignore the
//! narrower range they imply. Every output depends only on the insertions
//! present at each time, so it does not depend on arrival order or worker
//! count.

use crate::Time;
use crate::dedup::hash;
use crate::input::Id;
use crate::lifetime::hold_for;
use differential_dataflow::{AsCollection, VecCollection};
use shopflow_model::Timestamp;
use std::collections::{BTreeMap, HashMap};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::operator::Operator;

/// A user's first and last event time.
pub type Range = (Timestamp, Timestamp);

/// Input updates by time, until their time is complete.
type Pending = BTreeMap<Time, Vec<((Id, Timestamp), isize)>>;

/// Per user, the widest range of event times ever inserted (see the module docs).
pub fn first_last_seen<'s>(
    seen: VecCollection<'s, Time, (Id, Timestamp)>,
) -> VecCollection<'s, Time, (Id, Range)> {
    let pact = Exchange::new(|u: &((Id, Timestamp), Time, isize)| hash(&(u.0).0));
    seen.inner
        .unary_frontier(pact, "FirstLastSeen", |capability, _info| {
            let mut cap = CapabilitySet::from_elem(capability);
            let mut pending: Pending = BTreeMap::new();
            let mut ranges: HashMap<Id, Range> = HashMap::new();
            move |(input, frontier), output| {
                input.for_each_stamp(|_, data| {
                    for batch in data {
                        for (d, t, r) in batch.drain(..) {
                            pending.entry(t).or_default().push((d, r));
                        }
                    }
                });
                let mut out: Vec<((Id, Range), Time, isize)> = Vec::new();
                let mut first: Option<Time> = None;
                while let Some(entry) = pending.first_entry() {
                    let t = *entry.key();
                    if frontier.less_equal(&t) {
                        break;
                    }
                    first.get_or_insert(t);
                    let mut updates = entry.remove();
                    updates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    let mut i = 0;
                    while i < updates.len() {
                        // Consolidate one (user, ts); only a net insertion counts.
                        let mut j = i;
                        let mut net = 0;
                        while j < updates.len() && updates[j].0 == updates[i].0 {
                            net += updates[j].1;
                            j += 1;
                        }
                        if net > 0 {
                            let (id, ts) = &updates[i].0;
                            match ranges.get_mut(id) {
                                Some(range) if range.0 <= *ts && *ts <= range.1 => {}
                                Some(range) => {
                                    out.push(((id.clone(), *range), t, -1));
                                    *range = (range.0.min(*ts), range.1.max(*ts));
                                    out.push(((id.clone(), *range), t, 1));
                                }
                                None => {
                                    ranges.insert(id.clone(), (*ts, *ts));
                                    out.push(((id.clone(), (*ts, *ts)), t, 1));
                                }
                            }
                        }
                        i = j;
                    }
                }
                if let Some(t) = first.filter(|_| !out.is_empty()) {
                    // Within one time a user may widen twice: consolidate.
                    differential_dataflow::consolidation::consolidate_updates(&mut out);
                    output.session(&cap.delayed(&t)).give_container(&mut out);
                }
                hold_for(
                    &mut cap,
                    &frontier.frontier(),
                    pending.keys().next().copied(),
                );
            }
        })
        .as_collection()
}
