"""shopflow_daily: each day, wait for the lake's raw layer of the day, replay it
into the warehouse with `shopflow replay`, then check what the replay wrote.

Deployment, connections, variables, every check and its runbook, and how to
backfill: docs/airflow.md.
"""

from datetime import datetime, timedelta, timezone

import logging

from airflow.sdk import (CronDataIntervalTimetable, Param, PokeReturnValue, TaskGroup, dag,
                         get_current_context, task)

from shopflow_lib import checks, completeness, lake_counts, replay, settings
from shopflow_lib.alerts import ShopflowFailureAlert

log = logging.getLogger(__name__)

DOC = """
# shopflow_daily

Rewrites one day of the warehouse from the lake, then checks it.

1. **plan**: the day(s) of the run: its data interval's day (`ds`), or the
   `from_date`/`to_date` params of a manual range run.
2. **wait_for_clicks / carts / purchases**: S3 sensors (reschedule mode) on
   the `_SUCCESS` markers of each topic: every hour of the day with files is
   marked, and the live run's watermark has passed the day's end plus the
   allowed lateness (the hour-23 marker, a marker of the next day, or the
   day's curated marker): nothing on-time can still arrive for the day.
3. **replay**: `shopflow replay --from A --to B`, one transaction per day,
   idempotent (clearing it is always safe).
4. **checks**: keys, foreign keys, lake counts, sales vs orders, funnel
   nesting, and the live pipeline's freshness. A failed check fails the run and
   alerts (webhook and e-mail) with the task's meaning and what to do.

Schedule: daily, for the UTC day that just ended (the run for day D starts
after D+1 00:00). One run at a time. Backfill a range with
`airflow backfill create --dag-id shopflow_daily --from-date A --to-date B`
(one run per day), or trigger one run with `from_date`/`to_date` for a single
long replay. See docs/airflow.md.
"""

SENSOR_DOC = """**Meaning**: the raw layer of `{topic}` is complete for every replayed day: each
hour with files has its `_SUCCESS` marker and the live run's watermark has passed the
last day's end plus the allowed lateness (docs/airflow.md, "When is a day complete").
Each poke logs what is missing.

**When it fails** (timed out): the live pipeline has not got that far: it is stopped or
behind (check `shopflow run`, its frontier lag and lake errors). If the log names hours
with files but no marker while the pipeline is long past them (a restart can leave an
hour unmarked), check those files, write the marker (an empty object) or mark this task
success, then clear the downstream tasks.
"""

DEFAULT_ARGS = {
    "owner": "shopflow-data",
    "retries": 2,
    "retry_delay": timedelta(seconds=settings.RETRY_DELAY_SECONDS),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(hours=1),
    "on_failure_callback": ShopflowFailureAlert(),
}


@dag(
    dag_id="shopflow_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["shopflow", "warehouse", "replay", "data-quality"],
    doc_md=DOC,
    params={
        "from_date": Param(None, type=["null", "string"], format="date",
                           description="First day of a manual range replay (YYYY-MM-DD, UTC); "
                                       "empty: the run's own day"),
        "to_date": Param(None, type=["null", "string"], format="date",
                         description="Last day of a manual range replay, inclusive; set with "
                                     "from_date"),
    },
)
def shopflow_daily():
    @task
    def plan():
        """The day(s) to replay: the run's own day, or the `from_date`/`to_date` params.

        **When it fails**: `from_date`/`to_date` are not both set, not dates, or in
        the wrong order. Trigger again with valid params.
        """
        ctx = get_current_context()
        first, last = settings.replay_range(ctx["params"], ctx["ds"])
        return {"from_date": first, "to_date": last, "days": settings.days(first, last)}

    planned = plan()

    def wait_for(topic):
        @task.sensor(task_id=f"wait_for_{topic}", mode="reschedule",
                     poke_interval=settings.POKE_SECONDS, timeout=settings.SENSOR_TIMEOUT_SECONDS,
                     doc_md=SENSOR_DOC.format(topic=topic))
        def sensor(planned_days: dict):
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            lake, hook = settings.Lake.from_variable(), S3Hook(aws_conn_id=settings.LAKE_CONN)
            found = completeness.status(
                lambda prefix: hook.list_keys(lake.bucket, prefix=prefix) or [],
                lambda key: hook.check_for_key(key, lake.bucket), lake, topic,
                planned_days["days"])
            log.info("raw layer of %s: %s", topic, found)
            return PokeReturnValue(is_done=found["complete"], xcom_value=found)

        return sensor(planned)

    sensors = [wait_for(topic) for topic in settings.EVENT_TOPICS]

    @task(execution_timeout=timedelta(hours=6))
    def replay_days(planned_days: dict):
        """Runs `shopflow replay --from A --to B` into the warehouse (one transaction per day).

        **When it fails**: the log ends with the replay's own message. Typical causes:
        the lake or the warehouse unreachable or refusing the credentials of the
        `shopflow_lake`/`shopflow_warehouse` Connections; `shopflow_bin` wrong;
        flags in `shopflow_replay_args` the binary rejects. Fix it and clear this
        task: days already rewritten are rewritten to the same rows.
        """
        return replay.run_replay(planned_days["from_date"], planned_days["to_date"])

    @task
    def check_lake_counts(planned_days: dict):
        """**Meaning**: per event topic and day, the lake's valid messages, less duplicates
        (messages repeating an event_id), equal the warehouse's facts of the day
        (clicks: fact_clicks, carts: fact_cart, purchases: fact_orders).

        **When it fails**: the message lists each mismatch. Fewer facts: rows lost after
        the replay, or purchases without an FX rate for their date (fact_orders holds
        priced orders only: check fx_rates in the lake). More facts: something besides
        shopflow wrote facts for the day. Clear the replay task to rewrite the day;
        if the counts still differ, compare the lake and the table by event_id.
        """
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        schema = settings.variable("shopflow_warehouse_schema", "shopflow")
        conn = PostgresHook(postgres_conn_id=settings.WAREHOUSE_CONN).get_conn()
        try:
            return lake_counts.check(planned_days["days"], schema, conn)
        finally:
            conn.close()

    replayed = replay_days(planned)
    sensors >> replayed

    with TaskGroup("checks", tooltip="data-quality checks of the replayed days") as quality:
        check_lake_counts(planned)
        checks.key_checks()
        checks.foreign_key_checks()
        checks.aggregate_checks()
        checks.freshness_check()
    replayed >> quality


shopflow_daily()
