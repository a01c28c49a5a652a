"""Live equals replay from any backlog (issue 13), with the default timing settings.

- A backlog whose event topics were produced before the reference topics (and
  the reverse): the warehouse equals `replay --input` over the same files,
  every table, windows included. Before the fix, event partitions raced an
  hour ahead before `fx_rates` was read, and orders priced after their
  minutes froze never reached them.
- The same backlog with two SIGKILLs at random moments after the first
  commit: equal to the uninterrupted result.
- FX rates published 25 minutes of event time after the orders they price
  (beyond the 10-minute horizon), while `run` is live: the minutes end
  correct, and a replay of the day from the lake agrees.
- `run` started while its broker is down, the broker up a few seconds later
  (loading its coordinator state), a group that has never committed: start-up
  calls are retried and every partition is read. A broker that never comes
  ends `run` after `kafka.startup_timeout_ms` with a message that says what
  to check.
"""

import calendar
import random
import signal
import subprocess
import time

import psycopg
import pytest

from kafka_util import TOPICS, Broker, metrics, produce_lines, run_env, sf, total, wait_for
from lake_util import EVENT_TOPICS, lake_env
from shopflow_cli import read_lines
from test_kafka_pipeline import free_port
from test_warehouse import assert_warehouse_equals, integrity

REFERENCE = ["fx_rates", "products", "users"]
# The data set, smaller: 1% re-sends, 5% late by at most 60 s, 0.2% malformed.
FAULTS = ["--duplicates", "0.01", "--late", "0.05", "--malformed", "0.002"]
DAY = "2026-11-24"


def generated(shopflow, env, out, seed, events):
    sf(shopflow, ["generate", "--seed", seed, "--events", events, *FAULTS, "--out-dir", out], env)
    return {t: read_lines(out / f"{t}.jsonl") for t in TOPICS}


def produce_in_order(brokers, prefix, lines, groups):
    """Produces each group of topics in turn (interleaved within a group)."""
    for group in groups:
        produce_lines(brokers, prefix, {t: lines[t] for t in group})


def warehouse_env(broker, postgres, s3, prefix, schema, **extra):
    """`run` with the warehouse and the lake, default timing settings."""
    env = lake_env(broker, prefix, s3, run_exit_when_idle_ms=3000, warehouse_url=postgres,
                   warehouse_schema=schema, **extra)
    env["SHOPFLOW_KAFKA_START"] = "committed"  # the default, as a user runs it
    return env


def frontier(postgres, schema):
    with psycopg.connect(postgres) as conn:
        row = conn.execute(f"SELECT (extract(epoch FROM max(frontier)) * 1000)::bigint "
                           f"FROM {schema}.pipeline_progress").fetchone()
    return row[0] or 0


def non_usd_orders(postgres, schema):
    with psycopg.connect(postgres) as conn:
        return conn.execute(f"SELECT count(*) FROM {schema}.fact_orders JOIN {schema}.dim_currency "
                            "USING (currency_key) WHERE currency_code <> 'USD'").fetchone()[0]


def replay_csv(shopflow, env, gen, out):
    sf(shopflow, ["replay", "--input", gen, "--output-csv", out], env)
    return out


@pytest.mark.parametrize("order", ["reference_last", "reference_first"])
def test_a_backlog_in_any_topic_order_equals_replay(broker, postgres, s3, shopflow, tmp_path,
                                                     order):
    n = {"reference_last": "1", "reference_first": "2"}[order]
    prefix, schema = f"b{n}.", f"b{n}"
    env = warehouse_env(broker, postgres, s3, prefix, schema)
    lines = generated(shopflow, env, tmp_path / "gen", 40 + int(n), 60000)
    sf(shopflow, ["topics", "create"], env)
    groups = [EVENT_TOPICS, REFERENCE] if order == "reference_last" else [REFERENCE, EVENT_TOPICS]
    produce_in_order(broker.brokers, prefix, lines, groups)
    sf(shopflow, ["migrate", "--database-url", postgres, "--schema", schema], env)
    sf(shopflow, ["run"], env)
    replay = replay_csv(shopflow, env, tmp_path / "gen", tmp_path / "replay")
    with psycopg.connect(postgres) as conn:
        assert_warehouse_equals(conn, schema, replay)
        integrity(conn, schema)


def test_a_backlog_with_two_sigkills_equals_replay(broker, postgres, s3, shopflow, tmp_path):
    prefix, schema = "b3.", "b3"
    env = warehouse_env(broker, postgres, s3, prefix, schema, warehouse_commit_interval_ms=0,
                        kafka_batch=200, lake_flush_ms=300)
    lines = generated(shopflow, env, tmp_path / "gen", 43, 60000)
    sf(shopflow, ["topics", "create"], env)
    produce_in_order(broker.brokers, prefix, lines, [EVENT_TOPICS, REFERENCE])
    sf(shopflow, ["migrate", "--database-url", postgres, "--schema", schema], env)
    rng = random.Random(43)
    for kill in range(2):
        port = free_port()
        env["SHOPFLOW_METRICS_LISTEN"] = f"127.0.0.1:{port}"
        # A random moment: once this run has read 2,000 to 15,000 messages
        # (of about 56,000), and the pipeline has committed at least once.
        target = rng.randrange(2000, 15000)
        with open(tmp_path / f"run-{kill}.log", "wb") as err:
            proc = subprocess.Popen([shopflow, "run"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=err)
            wait_for(lambda: proc.poll() is not None or (
                frontier(postgres, schema) > 0
                and total(metrics(port), "shopflow_messages_total") >= target),
                "a commit and the messages read", timeout=120, every=0.02)
            assert proc.poll() is None, "the run finished before it was killed: use more data"
            proc.send_signal(signal.SIGKILL)
            proc.wait(60)
    env["SHOPFLOW_METRICS_LISTEN"] = ""
    final = sf(shopflow, ["run"], env)
    assert "state recovered from the lake" in final.stderr.decode()
    replay = replay_csv(shopflow, env, tmp_path / "gen", tmp_path / "replay")
    with psycopg.connect(postgres) as conn:
        assert_warehouse_equals(conn, schema, replay)
        integrity(conn, schema)


def test_rates_published_after_the_horizon_still_price_their_minutes(broker, postgres, s3,
                                                                     shopflow, tmp_path):
    prefix, schema = "b4.", "b4"
    env = warehouse_env(broker, postgres, s3, prefix, schema)
    env["SHOPFLOW_RUN_EXIT_WHEN_IDLE_MS"] = "0"  # runs until SIGTERM
    # 36,000 events at 20/s: 30 minutes of event time from 00:00.
    lines = generated(shopflow, env, tmp_path / "gen", 44, 36000)
    sf(shopflow, ["topics", "create"], env)
    sf(shopflow, ["migrate", "--database-url", postgres, "--schema", schema], env)
    produce_in_order(broker.brokers, prefix, lines, [["products", "users"], EVENT_TOPICS])
    start = calendar.timegm(time.strptime(DAY, "%Y-%m-%d")) * 1000
    with open(tmp_path / "run.log", "wb") as err:
        proc = subprocess.Popen([shopflow, "run"], env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            # The first minutes froze (end + 10 min) while their orders waited.
            wait_for(lambda: frontier(postgres, schema) >= start + 25 * 60_000,
                     "the frontier 25 minutes into the day", timeout=180)
            with psycopg.connect(postgres) as conn:
                priced = dict(conn.execute(
                    f"SELECT c.currency_code = 'USD', count(*) FROM {schema}.fact_orders "
                    f"JOIN {schema}.dim_currency c USING (currency_key) GROUP BY 1").fetchall())
            assert priced.get(True, 0) > 0 and priced.get(False, 0) == 0, priced
            produce_lines(broker.brokers, prefix, {"fx_rates": lines["fx_rates"]})
            wait_for(lambda: non_usd_orders(postgres, schema) > 0, "orders priced in EUR & co.",
                     timeout=120)
            proc.send_signal(signal.SIGTERM)  # drains: every window completes
            proc.wait(240)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, (tmp_path / "run.log").read_text(errors="replace")[-4000:]
    replay = replay_csv(shopflow, env, tmp_path / "gen", tmp_path / "replay")
    with psycopg.connect(postgres) as conn:
        assert_warehouse_equals(conn, schema, replay)
        integrity(conn, schema)
    # A replay of the day from the lake writes the same rows.
    sf(shopflow, ["replay", "--from", DAY, "--to", DAY, "--database-url", postgres,
                  "--schema", f"{schema}r"], env)
    with psycopg.connect(postgres) as conn:
        assert_warehouse_equals(conn, f"{schema}r", replay)


@pytest.fixture
def fresh_broker(tmp_path):
    """A broker of its own, on its own ports and state dir (stopped at the end)."""
    b = Broker()
    b.state = tmp_path / "fresh-kafka"
    b.state.mkdir()
    port, controller = free_port(), free_port()
    b.env.update(SHOPFLOW_STATE_DIR=str(b.state), KAFKA_PORT=str(port),
                 KAFKA_CONTROLLER_PORT=str(controller))
    b.brokers = f"127.0.0.1:{port}"
    try:
        yield b
    finally:
        b.down()


def test_every_partition_is_read_when_the_broker_is_not_ready(fresh_broker, shopflow, tmp_path):
    """`run` starts while its broker is down; the broker comes up a few seconds
    later and loads its group coordinator state while `run` fetches its start
    positions, with a group that has never committed."""
    prefix = "b5."
    env = run_env(fresh_broker, prefix, run_exit_when_idle_ms=3000, dataflow_workers=2,
                  run_output_csv=tmp_path / "live", kafka_start="committed",
                  kafka_startup_timeout_ms=120_000)
    lines = generated(shopflow, env, tmp_path / "gen", 45, 8000)
    fresh_broker.up()
    sf(shopflow, ["topics", "create"], env)
    produce_lines(fresh_broker.brokers, prefix, lines)
    fresh_broker.down()
    with open(tmp_path / "run.log", "wb") as err:
        proc = subprocess.Popen([shopflow, "run"], env=env, stdout=subprocess.DEVNULL,
                                stderr=err)
        try:
            wait_for(lambda: b"retrying" in (tmp_path / "run.log").read_bytes(),
                     "run to retry a start-up call", timeout=60)
            fresh_broker.up()
            proc.wait(300)
        finally:
            if proc.poll() is None:
                proc.kill()
    log = (tmp_path / "run.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-4000:]
    assert "gives_up_in_ms" in log, "a retry says when it gives up"
    replay = replay_csv(shopflow, env, tmp_path / "gen", tmp_path / "replay")
    for table in ["fact_clicks", "fact_cart", "fact_orders", "agg_sales_minute"]:
        live = (tmp_path / "live" / f"{table}.csv").read_bytes()
        assert live == (replay / f"{table}.csv").read_bytes(), f"{table} differs:\n{log[-3000:]}"


def test_run_gives_up_on_a_broker_that_never_comes_with_a_clear_message(shopflow, tmp_path):
    env = run_env(Broker(), "b6.", kafka_brokers=f"127.0.0.1:{free_port()}",
                  kafka_startup_timeout_ms=3000)
    proc = subprocess.run([shopflow, "run"], env=env, capture_output=True, timeout=120)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, err[-2000:]
    assert "kafka.startup_timeout_ms" in err and "is up and ready" in err, err[-2000:]
