"""The lake (issue 6) against a real moto S3, a real PostgreSQL and a real broker.

- An independent reader (pyarrow) opens the raw layer: Hive partitions,
  column types as documented in docs/lake.md, one row per message produced,
  and `_SUCCESS` on the hours the watermark has passed.
- `shopflow replay --from D --to D` gives the live run's rows for day D; run
  again on the live warehouse it changes nothing; run as a cluster of two
  processes it gives the same rows.
- The kill test: `shopflow run` SIGKILLed 5 times, each at a random moment
  after its first commit or its first raw-file flush (so every kill tests
  what it means to, on any machine), and restarted each time, ends with the
  warehouse of an uninterrupted run.
- An S3 endpoint that drops connections and stalls mid-write: retried with
  backoff, no partial and no duplicate object.
"""

import collections
import csv
import json
import random
import signal
import subprocess
import time

import psycopg
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from kafka_util import TOPICS, produce_lines, sf, wait_for
from lake_util import (EVENT_TOPICS, FlakyS3, filesystem, lake_env, last_commit, raw_dataset,
                       raw_files)
from shopflow_cli import read_lines
from test_cluster import hostfile, start, wait_all
from test_kafka_pipeline import FAULTS
from test_warehouse import EXPORTS, assert_warehouse_equals, db_rows, integrity

DAY = "2026-11-24"
# Tables with their surrogate keys, for "nothing changed" comparisons.
STAR = ["dim_user", "dim_product", "dim_currency", "dim_time", "fact_clicks", "fact_cart",
        "fact_orders", "fact_order_items", "agg_sales_minute", "agg_funnel_5min",
        "agg_top_products_hour"]


def snapshot(conn, schema):
    out = {}
    with conn.cursor() as cur:
        for table in STAR:
            cur.execute(f"SELECT * FROM {schema}.{table}")
            out[table] = sorted(map(repr, cur.fetchall()))
    return out


# The module's run spans 100 minutes of event time at 5 events/s. Sparse
# partitions read in big batches move the watermark in jumps, so it uses a
# generous allowed lateness (30 min, horizon 40 min) to keep every event
# admitted: then the live run and a replay must agree row for row. Replays
# use the same settings.
LATENESS = ["--allowed-lateness", "30m", "--horizon", "40m"]


@pytest.fixture(scope="module")
def lake_run(broker, postgres, s3, shopflow, tmp_path_factory):
    """One uninterrupted live run (100 minutes of event time) with the lake on S3."""
    work = tmp_path_factory.mktemp("lake")
    prefix, schema = "l1.", "l1"
    env = lake_env(broker, prefix, s3, run_exit_when_idle_ms=3000, warehouse_url=postgres,
                   warehouse_schema=schema, lake_flush_ms=1000,
                   dataflow_allowed_lateness_ms=1_800_000, dataflow_horizon_ms=2_400_000)
    sf(shopflow, ["topics", "create"], env)
    sf(shopflow, ["generate", "--seed", "31", "--events", "30000", "--rate", "5", *FAULTS,
                  "--out-dir", work / "gen", "--kafka", broker.brokers, "--topic-prefix", prefix],
       env)
    sf(shopflow, ["run"], env)
    return work, prefix, schema, env


def test_an_independent_reader_opens_the_raw_layer(lake_run, s3):
    work, prefix, _, _ = lake_run
    for topic in TOPICS:
        dataset = raw_dataset(s3, prefix, topic)
        table = dataset.to_table()
        produced = len(read_lines(work / "gen" / f"{topic}.jsonl"))
        assert table.num_rows == produced, f"{topic}: {table.num_rows} rows, {produced} produced"
        keys = list(zip(table["partition"].to_pylist(), table["offset"].to_pylist()))
        assert len(set(keys)) == len(keys), f"{topic}: a message is stored twice"
        schema = dataset.schema
        assert {"dt", "hr"} <= set(schema.names), f"{topic}: Hive partitions not recognized"
        assert schema.field("kafka_ts").type == pa.timestamp("ms", tz="UTC")
        assert schema.field("payload").type == pa.binary()
        first = next(p for p, _ in raw_files(s3, prefix, topic) if p.endswith(".parquet"))
        meta = pq.read_metadata(filesystem(s3).open_input_file(first))
        assert meta.row_group(0).column(0).compression == "ZSTD"
        valid = table.filter(table["error"].is_null())
        assert valid.num_rows > 0.95 * produced
        if topic in EVENT_TOPICS:
            assert schema.field("ts").type == pa.timestamp("ms", tz="UTC")
            assert set(valid["admission"].to_pylist()) <= {"on_time", "late"}
            # Dated by event time: every valid row sits in the hour of its ts.
            for ts, dt, hr in zip(valid["ts"].to_pylist()[:500], valid["dt"].to_pylist()[:500],
                                  valid["hr"].to_pylist()[:500]):
                assert (str(dt), int(hr)) == (ts.strftime("%Y-%m-%d"), ts.hour)
    purchases = raw_dataset(s3, prefix, "purchases").schema
    assert purchases.field("total_amount").type == pa.decimal128(18, 2)
    assert purchases.field("items").type.value_type.field("unit_price").type == pa.decimal128(18, 2)
    assert raw_dataset(s3, prefix, "fx_rates").schema.field("rate").type == pa.decimal128(18, 6)
    fs, (_, bucket) = filesystem(s3), s3
    for topic in EVENT_TOPICS:
        base = f"{bucket}/{prefix.rstrip('.')}/raw/{topic}/dt={DAY}"
        # 100 minutes from 00:00: hour 00 is past its end + 30 min lateness; 01 is not.
        assert fs.get_file_info(f"{base}/hr=00/_SUCCESS").type == pafs.FileType.File, topic
        assert fs.get_file_info(f"{base}/hr=01/_SUCCESS").type == pafs.FileType.NotFound, topic


def test_replay_of_a_day_equals_the_live_run(lake_run, postgres, s3, shopflow):
    work, prefix, schema, env = lake_run
    out = work / "replayed"
    proc = sf(shopflow, ["replay", "--from", DAY, "--to", DAY, "--database-url", postgres,
                         "--schema", "l1r", "--output-csv", out, *LATENESS], env)
    summary = proc.stdout.decode()
    assert "replay summary" in summary and "rejected by reason" in summary, summary
    with psycopg.connect(postgres) as conn:
        for table in EXPORTS:
            assert db_rows(conn, "l1r", table) == db_rows(conn, schema, table), table
        assert_warehouse_equals(conn, schema, out)
        integrity(conn, "l1r")
        orders = conn.execute("SELECT count(*), sum(total_amount_usd) FROM l1r.fact_orders").fetchone()
    # The replay wrote the day's curated layer: typed, and equal to the warehouse.
    curated = curated_table(s3, prefix, "fact_orders")
    assert curated.schema.field("total_amount_usd").type == pa.decimal128(18, 2)
    assert curated.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert curated.num_rows == orders[0]
    assert sum(curated["total_amount_usd"].to_pylist()) == orders[1]
    assert set(curated["dt"].to_pylist()) == {DAY}
    for table in ("dim_user", "dim_product", "dim_currency", "dim_time", "fact_clicks"):
        assert curated_table(s3, prefix, table).num_rows > 0, table


def test_a_replay_rerun_is_a_noop(lake_run, postgres, shopflow):
    _, _, schema, env = lake_run
    with psycopg.connect(postgres) as conn:
        live = snapshot(conn, schema)
    args = ["replay", "--from", DAY, "--to", DAY, "--database-url", postgres, "--schema", schema,
            *LATENESS]
    for attempt in range(2):
        sf(shopflow, args, env)
        with psycopg.connect(postgres) as conn:
            after = snapshot(conn, schema)
        for table in STAR:
            assert after[table] == live[table], f"replay {attempt + 1} changed {table}"


def curated_table(s3, prefix, table):
    _, bucket = s3
    dataset = ds.dataset(f"{bucket}/{prefix.rstrip('.')}/curated/{table}", filesystem=filesystem(s3),
                         format="parquet", partitioning=ds.partitioning(
                             pa.schema([("dt", pa.string())]), flavor="hive"))
    return dataset.to_table()


def test_run_writes_the_curated_layer_of_a_complete_day(broker, s3, shopflow, tmp_path):
    prefix = "l4."
    env = lake_env(broker, prefix, s3, run_exit_when_idle_ms=2500, lake_flush_ms=500)
    sf(shopflow, ["topics", "create"], env)
    # 28 hours of event time: 2026-11-24 is complete (its end + 5 min passed).
    sf(shopflow, ["generate", "--seed", "34", "--events", "12000", "--rate", "0.12",
                  "--out-dir", tmp_path / "gen", "--kafka", broker.brokers,
                  "--topic-prefix", prefix], env)
    proc = sf(shopflow, ["run"], env)
    assert "curated layer written" in proc.stderr.decode()
    sf(shopflow, ["replay", "--input", tmp_path / "gen", "--output-csv", tmp_path / "all"], env)
    for table in ("fact_orders", "fact_clicks"):
        with open(tmp_path / "all" / f"{table}.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["ts"].startswith(DAY)]
        curated = curated_table(s3, prefix, table)
        assert set(curated["dt"].to_pylist()) == {DAY}, "only the complete day is curated"
        assert sorted(curated["event_id"].to_pylist()) == sorted(r["event_id"] for r in rows), table


def test_sigkill_at_random_moments_ends_as_an_uninterrupted_run(broker, postgres, s3, shopflow,
                                                                 tmp_path):
    prefix, schema = "l2.", "l2"
    env = lake_env(broker, prefix, s3, run_exit_when_idle_ms=2500, warehouse_url=postgres,
                   warehouse_schema=schema, warehouse_commit_interval_ms=0, kafka_batch=200,
                   lake_flush_ms=300)
    sf(shopflow, ["topics", "create"], env)
    sf(shopflow, ["generate", "--seed", "32", "--events", "60000", *FAULTS, "--out-dir",
                  tmp_path / "gen", "--kafka", broker.brokers, "--topic-prefix", prefix], env)
    rng = random.Random(32)
    kills, recovered = 0, 0
    for _ in range(12):
        log = tmp_path / f"run-{kills}.log"
        committed = last_commit(postgres, schema)
        flushed = len(all_raw_files(s3, prefix))
        with open(log, "wb") as err:
            proc = subprocess.Popen([shopflow, "run"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=err)
            # Each kill lands after the phase it tests, however fast or slow
            # the machine: alternately after this run's first commit, and
            # after its first raw-file flush; then at a random moment.
            if kills % 2 == 0:
                phase = lambda: last_commit(postgres, schema) not in (None, committed)
            else:
                phase = lambda: len(all_raw_files(s3, prefix)) > flushed
            try:
                wait_for(lambda: phase() or proc.poll() is not None,
                         f"a commit or a flush of run {kills + 1}", timeout=180, every=0.05)
            except AssertionError:
                proc.kill()
                raise
            time.sleep(rng.uniform(0.0, 1.5))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait(60)
        kills += 1
        recovered += "state recovered from the lake" in log.read_text(errors="replace")
        if kills >= 5:
            break
    assert kills >= 5, f"only {kills} kills before the run finished: use more data"
    assert recovered >= 3, "restarts must rebuild their state from the lake"
    # Every run after the first started from committed state.
    assert recovered == kills - 1, f"{recovered} of {kills - 1} restarts recovered from the lake"
    final = sf(shopflow, ["run"], env)
    assert "state recovered from the lake" in final.stderr.decode()
    sf(shopflow, ["replay", "--input", tmp_path / "gen", "--output-csv", tmp_path / "replay"], env)
    with psycopg.connect(postgres) as conn:
        # Every table, windows included: equal to the uninterrupted result
        # (test_warehouse.py shows an uninterrupted run equals replay).
        assert_warehouse_equals(conn, schema, tmp_path / "replay")
        integrity(conn, schema)


def all_raw_files(s3, prefix):
    return [f for topic in TOPICS for f in raw_files(s3, prefix, topic)]


def event_time(line):
    """The `ts` of a line as text ("" when it has none: malformed lines go first)."""
    try:
        ts = json.loads(line).get("ts")
    except (ValueError, AttributeError):
        return ""
    return ts if isinstance(ts, str) else ""


def test_a_restart_after_a_clean_stop_rebuilds_the_windows(broker, postgres, s3, shopflow,
                                                            tmp_path):
    """The case test_warehouse.py leaves out without a lake: window rows that
    straddle a restart are complete, because the state is rebuilt."""
    prefix, schema = "l5.", "l5"
    env = lake_env(broker, prefix, s3, run_exit_when_idle_ms=2500, warehouse_url=postgres,
                   warehouse_schema=schema, lake_flush_ms=500)
    sf(shopflow, ["generate", "--seed", "35", "--events", "12000", *FAULTS, "--out-dir",
                  tmp_path / "gen"], env)
    sf(shopflow, ["topics", "create"], env)
    lines = {t: read_lines(tmp_path / "gen" / f"{t}.jsonl") for t in TOPICS}
    # Split by event time, not by line: a topic cut at its own middle line
    # would send the second run events from before the first run's end,
    # which a live run rightly refuses as too late.
    cut = sorted(event_time(line) for line in lines["clicks"])[len(lines["clicks"]) // 2]
    first = {t: [x for x in ls if t not in EVENT_TOPICS or event_time(x) < cut]
             for t, ls in lines.items()}
    second = {t: [x for x in ls if event_time(x) >= cut] for t, ls in lines.items()
              if t in EVENT_TOPICS}
    produce_lines(broker.brokers, prefix, first)
    sf(shopflow, ["run"], env)
    produce_lines(broker.brokers, prefix, second)
    again = sf(shopflow, ["run"], env)
    assert "state recovered from the lake" in again.stderr.decode()
    sf(shopflow, ["replay", "--input", tmp_path / "gen", "--output-csv", tmp_path / "replay"], env)
    with psycopg.connect(postgres) as conn:
        assert_warehouse_equals(conn, schema, tmp_path / "replay")


def test_a_failing_s3_endpoint_is_retried_without_partial_or_duplicate_objects(
        broker, s3, shopflow, tmp_path):
    prefix = "l3."
    port = int(s3[0].rsplit(":", 1)[1])
    with FlakyS3(port, stall=2.5) as proxy:
        env = lake_env(broker, prefix, s3, endpoint=proxy.endpoint, run_exit_when_idle_ms=2500,
                       lake_flush_ms=500, lake_timeout_ms=1000, lake_backoff_ms=50,
                       lake_retries=8)
        sf(shopflow, ["topics", "create"], env)
        sf(shopflow, ["generate", "--seed", "33", "--events", "6000", *FAULTS, "--out-dir",
                      tmp_path / "gen", "--kafka", broker.brokers, "--topic-prefix", prefix], env)
        proc = sf(shopflow, ["run"], env)
        faults = proxy.faults
    assert all(faults.get(m, 0) >= 1 for m in ("drop_before", "drop_after", "stall")), faults
    assert "retrying" in proc.stderr.decode()
    for topic in TOPICS:
        files = [p for p, _ in raw_files(s3, prefix, topic) if p.endswith(".parquet")]
        seen = collections.Counter()
        for path in files:
            table = pq.read_table(filesystem(s3).open_input_file(path))  # a partial file fails here
            seen.update(zip(table["partition"].to_pylist(), table["offset"].to_pylist()))
        produced = len(read_lines(tmp_path / "gen" / f"{topic}.jsonl"))
        assert len(seen) == produced, f"{topic}: {len(seen)} messages stored, {produced} produced"
        assert max(seen.values()) == 1, f"{topic}: a message is stored in two objects"


def test_a_replay_of_a_day_as_two_processes_equals_the_live_run(lake_run, postgres, shopflow,
                                                               tmp_path):
    """`replay --from/--to` as a cluster (issue 16): process 0 rewrites the day."""
    _, _, schema, env = lake_run
    hosts = hostfile(tmp_path / "hosts", 2)
    logs = [tmp_path / f"p{i}.log" for i in range(2)]
    procs = [start(shopflow, ["replay", "--from", DAY, "--to", DAY, "--database-url", postgres,
                              "--schema", "l1c", "--no-curated", "--workers", 1, "--processes", 2,
                              "--process", i, "--hostfile", hosts, *LATENESS], env, logs[i])
             for i in (1, 0)]
    wait_all(procs, logs[::-1])
    with psycopg.connect(postgres) as conn:
        for table in EXPORTS:
            assert db_rows(conn, "l1c", table) == db_rows(conn, schema, table), table
        integrity(conn, "l1c")
    assert "cluster connected" in logs[1].read_text()
