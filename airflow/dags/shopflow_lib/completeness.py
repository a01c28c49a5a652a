"""When is a day of the raw layer complete? The rule the sensors apply.

The live `shopflow run` writes `raw/<topic>/dt=D/hr=HH/_SUCCESS` once its
watermark has passed the hour's end plus the allowed lateness, but only for
hours that have files (connectors/src/lake/writer.rs): an hour in which a
topic received nothing never gets a marker. A quiet shop has such hours
(a few purchases an hour), so waiting for the marker of every hour, or of
hour 23, could wait forever. A topic's days A..B are complete when:

1. every hour of those days that has Parquet files has its `_SUCCESS`, and
2. the watermark has passed B's end plus the lateness, which one of these
   shows: B's hour-23 marker, any marker of day B+1 (markers follow the
   watermark, and an hour of B+1 is marked only after B's end + lateness),
   or the curated layer's `curated/_days/dt=B/_SUCCESS` (written by `run`
   once its watermark is past B's end + lateness).

Only the day's prefixes are listed, never the topic's whole history.
"""

from datetime import date, timedelta


def hours(keys):
    """({hours with data}, {hours with a marker}) from the keys of one day's prefix."""
    data, marked = set(), set()
    for key in keys:
        part, _, name = key.rpartition("/")
        hour = part.rpartition("/hr=")[2]
        if name == "_SUCCESS":
            marked.add(hour)
        elif name.endswith(".parquet"):
            data.add(hour)
    return data, marked


def status(list_keys, exists, lake, topic, days):
    """Whether `topic` is complete for `days`, and why not.

    `list_keys(prefix)` lists keys under a prefix; `exists(key)` checks one key.
    """
    pending = {}
    for day in days:
        data, marked = hours(list_keys(lake.day_prefix(topic, day)))
        missing = sorted(data - marked)
        if missing:
            pending[day] = missing
        last_marked = marked
    last = days[-1]
    following = (date.fromisoformat(last) + timedelta(days=1)).isoformat()
    if "23" in last_marked:
        closed = f"hour 23 of {last} is marked"
    elif hours(list_keys(lake.day_prefix(topic, following)))[1]:
        closed = f"an hour of {following} is marked"
    elif exists(lake.key(f"curated/_days/dt={last}/_SUCCESS")):
        closed = f"the curated layer of {last} is complete"
    else:
        closed = None
    return {"topic": topic, "complete": not pending and closed is not None,
            "hours_without_marker": pending, "day_closed_because": closed}
