"""The lake-versus-warehouse count check.

For each event topic and each replayed day: the valid messages of the day in
the raw layer (`error` null; a message stored twice, after a restart, counted
once by its (partition, offset)), less the duplicates among them (more than
one message with the same event_id: re-sends the pipeline drops), must equal
the facts of the day in the warehouse. Only the small columns are read from
S3 (Parquet column projection); the payloads are never downloaded.
"""

import logging

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from airflow.sdk.exceptions import AirflowFailException

from shopflow_lib.settings import EVENT_TOPICS, FACT_OF_TOPIC, LAKE_CONN, Lake, connection

log = logging.getLogger(__name__)


def s3_filesystem():
    """A pyarrow S3 filesystem with the lake Connection's credentials and endpoint."""
    conn = connection(LAKE_CONN)
    extra = conn.extra_dejson
    options = {"region": extra.get("region_name", "us-east-1")}
    if conn.login:
        options.update(access_key=conn.login, secret_key=conn.password or "",
                       session_token=extra.get("aws_session_token"))
    endpoint = extra.get("endpoint_url")
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme)
    return pafs.S3FileSystem(**options)


def lake_day(fs, lake, topic, day):
    """(valid messages, duplicates, event ids) of one topic's day in the raw layer."""
    base = f"{lake.bucket}/{lake.day_prefix(topic, day)}".rstrip("/")
    if fs.get_file_info(base).type == pafs.FileType.NotFound:
        return 0, 0, 0
    # Hive partitions of the path (hr) are not needed; `_SUCCESS` is skipped by its `_` prefix.
    table = ds.dataset(base, filesystem=fs, format="parquet").to_table(
        columns=["partition", "offset", "event_id"], filter=pc.field("error").is_null())
    unique = table.group_by(["partition", "offset", "event_id"]).aggregate([])
    messages = unique.num_rows
    ids = pc.count_distinct(unique["event_id"]).as_py()
    return messages, messages - ids, ids


def warehouse_day(cur, schema, table, day):
    cur.execute(
        f"SELECT count(*) FROM {schema}.{table} "
        "WHERE ts >= (%s::timestamp AT TIME ZONE 'UTC') "
        "AND ts < ((%s::timestamp + interval '1 day') AT TIME ZONE 'UTC')", (day, day))
    return cur.fetchone()[0]


def check(days, schema, warehouse_conn):
    """Runs the check over `days`; returns every comparison, raises on any mismatch."""
    lake, fs = Lake.from_variable(), s3_filesystem()
    results, bad = [], []
    with warehouse_conn.cursor() as cur:
        for day in days:
            for topic in EVENT_TOPICS:
                messages, dups, expected = lake_day(fs, lake, topic, day)
                facts = warehouse_day(cur, schema, FACT_OF_TOPIC[topic], day)
                row = {"day": day, "topic": topic, "valid_messages": messages,
                       "duplicates": dups, "expected_facts": expected, "facts": facts}
                log.info("%s", row)
                results.append(row)
                if facts != expected:
                    bad.append(row)
    if bad:
        lines = "\n".join(
            f"  {r['day']} {r['topic']}: lake {r['valid_messages']} valid - {r['duplicates']} "
            f"duplicates = {r['expected_facts']}, warehouse {FACT_OF_TOPIC[r['topic']]} has "
            f"{r['facts']}" for r in bad)
        raise AirflowFailException(
            "the warehouse's facts do not match the lake:\n" + lines + "\nFewer facts: rows were "
            "lost after the replay, or orders lack an FX rate (fact_orders holds priced orders "
            "only). More facts: rows were written for the day from outside the lake. Replay the "
            "day again (clear the replay task); if it persists, see docs/airflow.md, "
            "check_lake_counts")
    return results
