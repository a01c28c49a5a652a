//! Deduplication by event id, as one frontier-driven operator.
//!
//! It replaces a differential `reduce` over every version of every id, which
//! arranged its input and its output, called its closure per id per time,
//! and held each version's future-dated retraction in its batcher (walked
//! again at every frontier advance: `shared/notes/dataflow-performance.md`
//! measured the operator form 2x faster in bounded runs and about 40x when
//! stepping every tick).
//!
//! Input: `(id, version)` updates, insertions only; the feeder gives all
//! versions of one id the same `expires` time. Output: per id, the same
//! collection the `reduce` gave: `(id, (winner, expires, distinct versions,
//! copies))`, where the winner is the smallest version (time, then raw
//! bytes). Once the input frontier has passed a time, the updates of that
//! time are applied id by id and a changed resolution is emitted as a
//! retraction and an insertion at that time; at `expires` the resolution is
//! retracted and the id forgotten. Every output is a function of the
//! versions present at its time, so it does not depend on arrival order or
//! worker count.

use crate::Time;
use crate::input::{Id, Version};
use crate::lifetime::hold_for;
use differential_dataflow::{AsCollection, VecCollection};
use shopflow_model::Event;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::operator::Operator;

/// The winning version of an id: (event, when the id is forgotten, distinct
/// versions seen, copies received).
pub type Resolved = (Arc<Event>, Time, u32, isize);

/// The versions of one id present now, sorted, with their copy counts.
type Versions = Vec<(Version, isize)>;

fn resolve(versions: &Versions) -> Option<Resolved> {
    let (winner, _) = versions.first()?;
    let copies = versions.iter().map(|(_, n)| n).sum();
    Some((
        winner.event.clone(),
        winner.expires,
        versions.len() as u32,
        copies,
    ))
}

/// FNV-1a of the id: which worker holds it (fixed, so runs are reproducible).
pub(crate) fn hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Resolves every id of `versions` to its winner (see the module docs).
pub fn dedup<'s>(
    versions: VecCollection<'s, Time, (Id, Version)>,
) -> VecCollection<'s, Time, (Id, Resolved)> {
    let pact = Exchange::new(|u: &((Id, Version), Time, isize)| hash(&(u.0).0));
    versions
        .inner
        .unary_frontier(pact, "Dedup", |capability, _info| {
            let mut cap = CapabilitySet::from_elem(capability);
            let mut pending: BTreeMap<Time, Vec<(Id, Version, isize)>> = BTreeMap::new();
            let mut state: HashMap<Id, Versions> = HashMap::new();
            let mut expiring: BTreeMap<Time, Vec<Id>> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each_stamp(|_, data| {
                    for batch in data {
                        for ((id, v), t, r) in batch.drain(..) {
                            pending.entry(t).or_default().push((id, v, r));
                        }
                    }
                });
                // Times before the frontier are complete: apply them in order.
                // The changes of all of them go out in one message, each with
                // its own time (one message per time would leave a mostly
                // empty buffer per time in the queues downstream).
                let done = |t: &Time| !frontier.less_equal(t);
                let mut out: Vec<((Id, Resolved), Time, isize)> = Vec::new();
                let mut first: Option<Time> = None;
                loop {
                    let next_input = pending.keys().next().copied().filter(done);
                    let next_expiry = expiring.keys().next().copied().filter(done);
                    let t = match (next_input, next_expiry) {
                        (None, None) => break,
                        (a, b) => a.into_iter().chain(b).min().expect("one"),
                    };
                    first.get_or_insert(t);
                    for id in expiring.remove(&t).unwrap_or_default() {
                        if let Some(gone) = state.remove(&id).as_ref().and_then(resolve) {
                            out.push(((id, gone), t, -1));
                        }
                    }
                    let mut updates = pending.remove(&t).unwrap_or_default();
                    // Grouped by id; versions find their place by binary search.
                    updates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    let mut i = 0;
                    while i < updates.len() {
                        let id = updates[i].0.clone();
                        let versions = state.entry(id.clone()).or_default();
                        let before = resolve(versions);
                        if before.is_none() {
                            expiring
                                .entry(updates[i].1.expires)
                                .or_default()
                                .push(id.clone());
                        }
                        while i < updates.len() && updates[i].0 == id {
                            let (_, v, r) = &updates[i];
                            match versions.binary_search_by(|(x, _)| x.cmp(v)) {
                                Ok(at) => versions[at].1 += r,
                                Err(at) => versions.insert(at, (v.clone(), *r)),
                            }
                            i += 1;
                        }
                        versions.retain(|(_, n)| *n != 0);
                        let after = resolve(versions);
                        if before != after {
                            if let Some(old) = before {
                                out.push(((id.clone(), old), t, -1));
                            }
                            if let Some(new) = after {
                                out.push(((id, new), t, 1));
                            }
                        }
                    }
                }
                if let Some(t) = first.filter(|_| !out.is_empty()) {
                    output.session(&cap.delayed(&t)).give_container(&mut out);
                }
                // Hold capabilities only for what can still be emitted: the
                // input frontier and the pending expiries.
                let earliest = expiring.keys().chain(pending.keys()).min().copied();
                hold_for(&mut cap, &frontier.frontier(), earliest);
            }
        })
        .as_collection()
}
