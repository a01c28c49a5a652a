//! The temporal filter: keep each record only while its event time says so.

use crate::Time;
use differential_dataflow::VecCollection;
use timely::dataflow::operators::core::Map;

/// Restricts each record to the dataflow times `[from, until)` computed from
/// the record: an update at time `t` takes effect at `max(t, from)` and is
/// retracted at `max(t, until)`. Moving times forward is always legal, so no
/// capability juggling is needed.
pub fn lifetime<'s, D, F>(
    coll: VecCollection<'s, Time, D>,
    name: &str,
    window: F,
) -> VecCollection<'s, Time, D>
where
    D: Clone + 'static,
    F: Fn(&D) -> (Time, Time) + 'static,
{
    use differential_dataflow::AsCollection;
    let _ = name; // timely's flat_map takes no name; kept for call-site clarity
    coll.inner
        .flat_map::<Vec<(D, Time, isize)>, _, _>(move |(d, t, r)| {
            let (from, until) = window(&d);
            let start = t.max(from);
            let end = t.max(until);
            let keep = (start < end).then(|| [(d.clone(), start, r), (d, end, -r)]);
            keep.into_iter().flatten()
        })
        .as_collection()
}

/// Moves the retraction a record gets when it leaves an upstream state at
/// `forget` to `keep` (later): for each record `f` gives `(forget, keep)`.
/// Other updates (a conflict resolved by a late version, say) pass unchanged.
pub fn extend<'s, D, F>(coll: VecCollection<'s, Time, D>, keep: F) -> VecCollection<'s, Time, D>
where
    D: Clone + 'static,
    F: Fn(&D) -> (Time, Time) + 'static,
{
    use differential_dataflow::AsCollection;
    coll.inner
        .flat_map::<Vec<(D, Time, isize)>, _, _>(move |(d, t, r)| {
            let (forget, until) = keep(&d);
            let t = if r < 0 && t == forget {
                t.max(until)
            } else {
                t
            };
            Some((d, t, r))
        })
        .as_collection()
}
