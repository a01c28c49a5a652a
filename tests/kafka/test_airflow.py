"""The Airflow DAGs (issue 17) on a real Airflow 3, against the suite's moto S3
and PostgreSQL, with a lake written by a live `shopflow run`.

- `airflow dags test shopflow_daily DAY`: the sensors find the day's markers,
  the replay rewrites the day (deleted from the warehouse first), every check
  passes, and every table equals the live run's.
- A replay that leaves a broken day (fact rows deleted, a key broken): the
  run fails at exactly the checks that cover it, and the alerts reach a local
  webhook and a local SMTP server with the DAG, the task, the day and the log URL.
- A day without `_SUCCESS` keeps the sensors rescheduling until the markers appear.
- A manual run with from_date/to_date replays the range in one replay.
- `airflow backfill create` under a running Airflow (standalone): one run per
  day, each replayed once; a second backfill changes no warehouse row.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import urllib.request

import psycopg
import pyarrow.fs as pafs
import pytest

from airflow_util import Airflow, SmtpSink, WebhookReceiver, airflow_bin, wait_until
from kafka_util import S3_BUCKET, sf
from lake_util import filesystem, lake_env
from test_kafka_pipeline import FAULTS
from test_lake import STAR, snapshot
from test_warehouse import EXPORTS, db_rows

PREFIX, LIVE = "af.", "af"
DAYS = ["2026-11-24", "2026-11-25", "2026-11-26"]
INCOMPLETE = "2026-11-27"  # the run ends at 08:00 of this day; its watermark before 03:30
# The live run's dataflow settings, which every replay must repeat (test_lake.py explains why).
LATENESS_MS, HORIZON_MS = 1_800_000, 2_400_000
REPLAY_ARGS = "--allowed-lateness 30m --horizon 40m"
CHECKS = ["checks.check_lake_counts", "checks.sales_match_orders", "checks.funnel_nested",
          "checks.pipeline_fresh"]
FACTS = {"fact_clicks": "ts", "fact_cart": "ts", "fact_orders": "ts", "fact_order_items": "ts",
         "agg_sales_minute": "window_start", "agg_funnel_5min": "window_start",
         "agg_top_products_hour": "window_start"}


@pytest.fixture(scope="module")
def lake(broker, postgres, s3, shopflow, tmp_path_factory):
    """One live run over 80 hours of event time: three complete days in the lake
    and the start of a fourth; warehouse schema `af`. Purchases are sparse (about one
    an hour), so some hours of the complete days have no purchase file and no marker."""
    work = tmp_path_factory.mktemp("airflow-lake")
    env = lake_env(broker, PREFIX, s3, run_exit_when_idle_ms=3000, warehouse_url=postgres,
                   warehouse_schema=LIVE, lake_flush_ms=1000, kafka_batch=200,
                   dataflow_allowed_lateness_ms=LATENESS_MS, dataflow_horizon_ms=HORIZON_MS)
    sf(shopflow, ["topics", "create"], env)
    sf(shopflow, ["generate", "--seed", "17", "--duration", "80h", "--rate", "0.05", *FAULTS,
                  "--out-dir", work / "gen", "--kafka", broker.brokers, "--topic-prefix", PREFIX],
       env)
    sf(shopflow, ["run"], env)
    fs, (_, bucket) = filesystem(s3), s3
    for day in DAYS:
        done = f"{bucket}/{LIVE}/curated/_days/dt={day}/_SUCCESS"
        assert fs.get_file_info(done).type == pafs.FileType.File, (done, markers(fs, "clicks"))
    for topic in ("clicks", "carts"):
        marker = f"{bucket}/{LIVE}/raw/{topic}/dt={INCOMPLETE}/hr=05/_SUCCESS"
        assert fs.get_file_info(marker).type == pafs.FileType.NotFound, marker
    return work


def markers(fs, topic):
    """The last few `_SUCCESS` markers of a topic (for failure messages)."""
    sel = pafs.FileSelector(f"{S3_BUCKET}/{LIVE}/raw/{topic}", recursive=True)
    return sorted(i.path.split("/raw/")[1] for i in fs.get_file_info(sel)
                  if i.path.endswith("_SUCCESS"))[-4:]


@pytest.fixture(scope="module")
def airflow(lake, postgres, s3, shopflow):
    af = Airflow(postgres, s3, f"s3://{s3[1]}/{LIVE}", shopflow)
    af.setup(postgres)
    try:
        yield af
    finally:
        af.teardown(postgres)


def dags_test(af, day, env, conf=None, timeout=600):
    """`airflow dags test shopflow_daily DAY`; returns (process, run_id)."""
    args = ["dags", "test", "shopflow_daily", day]
    if conf:
        args += ["--conf", json.dumps(conf)]
    proc = af.cli(*args, env=env, timeout=timeout, check=False)
    return proc, latest_run(af, day)


def latest_run(af, day):
    runs = [r for r in af.runs() if r[1].date().isoformat() == day]
    assert runs, f"no run of shopflow_daily for {day}"
    return runs[-1][0]


def day_rows(conn, schema, table, first, last):
    """A fact or window table's rows (natural keys) in [first, last + 1 day)."""
    col = FACTS[table]
    with conn.cursor() as cur:
        cur.execute(f"SET search_path TO {schema}; SET TIME ZONE 'UTC'")
        cur.execute(f"SELECT * FROM ({EXPORTS[table]}) x WHERE x.{col} >= %s::timestamptz "
                    f"AND x.{col} < %s::timestamptz + interval '1 day'",
                    (f"{first}T00:00:00Z", f"{last}T00:00:00Z"))
        return sorted(map(repr, cur.fetchall()))


def assert_all_succeeded(af, run_id, proc):
    states = af.task_states(run_id)
    failed = {t: s for t, s in states.items() if s != "success"}
    assert proc.returncode == 0 and not failed and len(states) == 21, (
        f"exit {proc.returncode}, not succeeded: {failed}\n{proc.stdout[-4000:]}\n"
        f"{proc.stderr[-6000:]}")


def test_dags_test_replays_a_day_the_live_run_wrote_and_every_check_passes(airflow, postgres):
    day = DAYS[1]
    with psycopg.connect(postgres) as conn:
        live = {t: db_rows(conn, LIVE, t) for t in EXPORTS}
        # Lose the day: the DAG must bring back exactly what the live run wrote.
        for table in ["fact_order_items", "fact_orders", "fact_cart", "fact_clicks"] + [
                t for t in FACTS if t.startswith("agg_")]:
            col = FACTS[table]
            conn.execute(f"DELETE FROM {LIVE}.{table} WHERE {col} >= %s::timestamptz "
                         f"AND {col} < %s::timestamptz + interval '1 day'",
                         (f"{day}T00:00:00Z", f"{day}T00:00:00Z"))
    env = airflow.with_env(shopflow_warehouse_schema=LIVE, shopflow_replay_args=REPLAY_ARGS,
                           shopflow_freshness_minutes=120)
    proc, run_id = dags_test(airflow, day, env)
    assert_all_succeeded(airflow, run_id, proc)
    written = airflow.xcom(run_id, "replay_days")
    assert written["fact_clicks"]["upserted"] > 1000, written
    assert written["fact_orders"]["upserted"] > 0, written
    counts = airflow.xcom(run_id, "checks.check_lake_counts")
    assert {r["topic"] for r in counts} == {"clicks", "carts", "purchases"}
    assert all(r["day"] == day and r["facts"] == r["expected_facts"] > 0 for r in counts), counts
    assert sum(r["duplicates"] for r in counts) > 0, "the generated day has re-sent events"
    with psycopg.connect(postgres) as conn:
        for table in EXPORTS:
            assert db_rows(conn, LIVE, table) == live[table], f"{table} differs from the live run"


def corrupting_replay(tmp_path, shopflow, postgres, schema):
    """A stand-in for the shopflow binary: the real replay, then a broken day
    (three clicks deleted, a cart pointing at a user that does not exist)."""
    script = tmp_path / "shopflow-corrupting"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import subprocess, sys
        import psycopg
        rc = subprocess.call([{shopflow!r}, *sys.argv[1:]])
        if rc == 0:
            with psycopg.connect({postgres!r}) as conn:
                conn.execute("SET search_path TO {schema}")
                conn.execute("DELETE FROM fact_clicks WHERE event_id IN "
                             "(SELECT event_id FROM fact_clicks ORDER BY event_id LIMIT 3)")
                conn.execute("ALTER TABLE fact_cart DROP CONSTRAINT IF EXISTS fact_cart_user_key_fkey")
                conn.execute("UPDATE fact_cart SET user_key = -1 WHERE event_id = "
                             "(SELECT min(event_id) FROM fact_cart)")
        sys.exit(rc)
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_a_broken_day_fails_at_its_checks_and_alerts_by_webhook_and_email(
        airflow, postgres, shopflow, tmp_path):
    day, schema = DAYS[0], "af_broken"
    hook, smtp = WebhookReceiver(), SmtpSink()
    try:
        env = airflow.with_env(
            shopflow_warehouse_schema=schema, shopflow_replay_args=REPLAY_ARGS,
            shopflow_freshness_minutes=0, shopflow_alert_emails="oncall@example.com",
            shopflow_bin=corrupting_replay(tmp_path, shopflow, postgres, schema),
            AIRFLOW_CONN_SHOPFLOW_ALERT_WEBHOOK=json.dumps({"conn_type": "http", "host": hook.url}),
            AIRFLOW_CONN_SMTP_DEFAULT=json.dumps({
                "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                "extra": {"disable_ssl": True, "disable_tls": True,
                          "from_email": "airflow@example.com"}}))
        proc, run_id = dags_test(airflow, day, env)
        assert proc.returncode != 0, "a broken day must fail the run"
        states = airflow.task_states(run_id)
        failed = sorted(t for t, s in states.items() if s == "failed")
        assert failed == ["checks.check_lake_counts", "checks.foreign_keys_fact_cart"], states
        assert all(s == "success" for t, s in states.items() if t not in failed), states
        posts = wait_until(lambda: hook.posts if len(hook.posts) >= 2 else None,
                           "two webhook alerts", timeout=60)
        mails = wait_until(lambda: smtp.received() if len(smtp.received()) >= 2 else None,
                           "two alert e-mails", timeout=60)
    finally:
        hook.close()
        smtp.close()
    assert sorted(p["task_id"] for p in posts) == failed
    for post in posts:
        assert post["dag_id"] == "shopflow_daily" and post["days"] == day and post["ds"] == day
        assert post["run_type"] == "manual" and post["try_number"] == 1
        assert post["log_url"].startswith(f"http://127.0.0.1:{airflow.api_port}/dags/shopflow_daily/runs/")
        assert post["task_id"] in post["log_url"] and post["what_to_do"].startswith("**Meaning**")
    lake_alert = next(p for p in posts if p["task_id"] == "checks.check_lake_counts")
    assert f"{day} clicks" in lake_alert["error"] and "warehouse fact_clicks has" in lake_alert["error"]
    for task in failed:
        rcpts, mail = next((r, m) for r, m in mails if task in m["Subject"])
        assert rcpts == ["oncall@example.com"]
        assert mail["Subject"] == f"[shopflow] shopflow_daily.{task} failed for {day}"
        body = next(p for p in mail.walk() if p.get_content_type() == "text/html").get_content()
        assert f"task {task} of DAG shopflow_daily failed for {day}" in body
        assert f"log: http://127.0.0.1:{airflow.api_port}/dags/shopflow_daily/runs/" in body


def test_the_sensors_wait_for_the_markers_of_a_day(airflow, postgres, s3):
    schema = "af_sensor"
    env = airflow.with_env(shopflow_warehouse_schema=schema, shopflow_replay_args=REPLAY_ARGS,
                           shopflow_freshness_minutes=0)
    proc = subprocess.Popen([airflow_bin(), "dags", "test", "shopflow_daily", INCOMPLETE],
                            env=env, cwd=airflow.home, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        def poked_twice():
            rows = airflow.meta(
                "SELECT t.task_id, count(*) FROM task_reschedule r JOIN task_instance t "
                "ON t.id = r.ti_id JOIN dag_run d ON d.dag_id = t.dag_id AND d.run_id = t.run_id "
                "WHERE t.dag_id = 'shopflow_daily' AND d.logical_date::date = %s GROUP BY 1",
                INCOMPLETE)
            return dict(rows) if len(rows) == 3 and min(n for _, n in rows) >= 2 else None

        rescheduled = wait_until(poked_twice, "every sensor rescheduled twice", timeout=180)
        assert set(rescheduled) == {"wait_for_clicks", "wait_for_carts", "wait_for_purchases"}
        run_id = latest_run(airflow, INCOMPLETE)
        assert airflow.task_states(run_id).get("replay_days") in (None, "none", "scheduled"), \
            "the replay must not start before the markers"
        # What the live run would write once its watermark passed the day's end.
        fs, (_, bucket) = filesystem(s3), s3
        for topic in ("clicks", "carts", "purchases"):
            for hour in range(24):
                with fs.open_output_stream(
                        f"{bucket}/{LIVE}/raw/{topic}/dt={INCOMPLETE}/hr={hour:02}/_SUCCESS"):
                    pass
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-6000:]
    states = airflow.task_states(run_id)
    assert all(states[f"wait_for_{t}"] == "success" for t in ("clicks", "carts", "purchases"))
    assert states["replay_days"] == "success"


def test_a_manual_range_run_replays_the_days_in_one_replay(airflow, postgres):
    schema = "af_range"
    env = airflow.with_env(shopflow_warehouse_schema=schema, shopflow_replay_args=REPLAY_ARGS,
                           shopflow_freshness_minutes=0)
    proc, run_id = dags_test(airflow, DAYS[-1], env,
                             conf={"from_date": DAYS[0], "to_date": DAYS[-1]})
    assert_all_succeeded(airflow, run_id, proc)
    plan = airflow.xcom(run_id, "plan")
    assert plan == {"from_date": DAYS[0], "to_date": DAYS[-1], "days": DAYS}
    sensed = airflow.xcom(run_id, "wait_for_purchases")
    assert sensed["complete"] and sensed["hours_without_marker"] == {}, sensed
    counts = airflow.xcom(run_id, "checks.check_lake_counts")
    assert sorted({r["day"] for r in counts}) == DAYS
    with psycopg.connect(postgres) as conn:
        for table in FACTS:
            assert day_rows(conn, schema, table, DAYS[0], DAYS[-1]) == \
                day_rows(conn, LIVE, table, DAYS[0], DAYS[-1]), table


@pytest.fixture
def standalone(lake, postgres, s3, shopflow):
    """`airflow standalone` (scheduler, API server, DAG processor, triggerer) on free ports,
    with a metadata database of its own: no run of the other tests in the way."""
    af = Airflow(postgres, s3, f"s3://{s3[1]}/{LIVE}", shopflow, name="standalone")
    af.setup(postgres)
    # Poke slowly: the scheduled run of the latest interval (created when the DAG is
    # unpaused) waits for a day that never completes; the backfilled days are complete.
    env = af.with_env(shopflow_warehouse_schema="af_backfill", shopflow_replay_args=REPLAY_ARGS,
                      shopflow_freshness_minutes=0, SHOPFLOW_SENSOR_POKE_SECONDS="60")
    log = open(af.home / "standalone.log", "wb")
    proc = subprocess.Popen([airflow_bin(), "standalone"], env=env, cwd=af.home,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def healthy():
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{af.api_port}/api/v2/monitor/health", timeout=2) as r:
                body = json.loads(r.read())
        except OSError:
            text = (af.home / "standalone.log").read_text(errors="replace")
            assert proc.poll() is None and "Exception in thread" not in text, text[-4000:]
            return None
        return body.get("scheduler", {}).get("status") == "healthy"

    try:
        try:
            wait_until(healthy, "airflow standalone to be healthy", timeout=180)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{(af.home / 'standalone.log').read_text()[-6000:]}")
        wait_until(lambda: af.meta("SELECT 1 FROM dag WHERE dag_id = 'shopflow_daily'"),
                   "the DAG processor to register shopflow_daily", timeout=120)
        # The scheduler runs no run, backfills included, of a paused DAG (new DAGs start paused).
        af.cli("dags", "unpause", "shopflow_daily", env=env)
        yield af, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # components still shutting down
        except ProcessLookupError:
            pass
        log.close()
        af.teardown(postgres)


def test_backfill_replays_each_day_once_and_again_changes_nothing(standalone, postgres):
    af, env = standalone
    schema = "af_backfill"

    def backfill(behavior):
        af.cli("backfill", "create", "--dag-id", "shopflow_daily", "--from-date", DAYS[0],
               "--to-date", DAYS[-1], "--max-active-runs", "1", "--reprocess-behavior", behavior,
               env=env)
        backfill_id = af.meta("SELECT max(id) FROM backfill")[0][0]
        wait_until(lambda: af.meta("SELECT 1 FROM backfill WHERE id = %s AND completed_at IS "
                                   "NOT NULL", backfill_id),
                   f"backfill {backfill_id} to complete", timeout=420, every=1)
        runs = af.meta("SELECT r.run_id, r.logical_date, r.state FROM backfill_dag_run b "
                       "JOIN dag_run r ON r.id = b.dag_run_id WHERE b.backfill_id = %s "
                       "ORDER BY r.logical_date", backfill_id)
        assert [r[1].date().isoformat() for r in runs] == DAYS, runs
        for run_id, _, state in runs:
            assert state == "success", (run_id, af.task_states(run_id))
        return {run_id: af.meta("SELECT try_number FROM task_instance WHERE run_id = %s AND "
                                "task_id = 'replay_days'", run_id)[0][0] for run_id, _, _ in runs}

    first = backfill("none")
    assert list(first.values()) == [1, 1, 1], f"each day replayed once: {first}"
    with psycopg.connect(postgres) as conn:
        once = snapshot(conn, schema)
        for table in FACTS:
            assert day_rows(conn, schema, table, DAYS[0], DAYS[-1]) == \
                day_rows(conn, LIVE, table, DAYS[0], DAYS[-1]), table
    for run_id in first:
        assert af.xcom(run_id, "replay_days")["fact_clicks"]["upserted"] > 0
    # Airflow re-runs days that already have a successful run only when asked to.
    second = backfill("completed")
    assert second == {run_id: 2 for run_id in first}, f"each day replayed once more: {second}"
    with psycopg.connect(postgres) as conn:
        again = snapshot(conn, schema)
    for table in STAR:
        assert again[table] == once[table], f"the second backfill changed {table}"
