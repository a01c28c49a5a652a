"""Where the DAGs find shopflow, the lake and the warehouse.

Everything a deployment changes is an Airflow Connection or Variable
(docs/airflow.md, "Connections and variables"); the few knobs that shape the
DAG itself (sensor timing) are environment variables read when the file is
parsed, because Airflow fixes them when it serializes the DAG.

Variables are read inside tasks, never at parse time: a DAG file that
queried the metadata database on every parse would slow the processor.
"""

import os
import shutil
from dataclasses import dataclass
from datetime import date, timedelta

from airflow.sdk import Connection, Variable
from airflow.sdk.exceptions import AirflowFailException

EVENT_TOPICS = ("clicks", "carts", "purchases")
# The fact table each event topic's valid messages become.
FACT_OF_TOPIC = {"clicks": "fact_clicks", "carts": "fact_cart", "purchases": "fact_orders"}

LAKE_CONN = "shopflow_lake"
WAREHOUSE_CONN = "shopflow_warehouse"
WEBHOOK_CONN = "shopflow_alert_webhook"

# Parse-time knobs (environment of the DAG processor and of the workers).
POKE_SECONDS = float(os.environ.get("SHOPFLOW_SENSOR_POKE_SECONDS", "300"))
SENSOR_TIMEOUT_SECONDS = float(os.environ.get("SHOPFLOW_SENSOR_TIMEOUT_SECONDS", str(12 * 3600)))
RETRY_DELAY_SECONDS = float(os.environ.get("SHOPFLOW_RETRY_DELAY_SECONDS", "120"))

# Jinja expressions used by the SQL checks (rendered when a task runs).
SCHEMA = "{{ var.value.get('shopflow_warehouse_schema', 'shopflow') }}"
FIRST_DAY = "{{ params.from_date or ds }}"
LAST_DAY = "{{ params.to_date or ds }}"
# The replayed days as a half-open range of UTC instants.
RANGE_START = f"(TIMESTAMP '{FIRST_DAY} 00:00:00' AT TIME ZONE 'UTC')"
RANGE_END = f"((TIMESTAMP '{LAST_DAY} 00:00:00' + INTERVAL '1 day') AT TIME ZONE 'UTC')"


def variable(key, default=None):
    """An Airflow Variable; `default` when it is not set (None: it is required)."""
    value = Variable.get(key, default=default)
    if value is None:
        raise AirflowFailException(
            f"the Airflow Variable {key} is not set: set it (Admin > Variables, "
            f"`airflow variables set {key} VALUE`, or AIRFLOW_VAR_{key.upper()}); "
            "docs/airflow.md lists what each variable means")
    return value


def connection(conn_id):
    """An Airflow Connection, or a failure that says how to create it."""
    try:
        return Connection.get(conn_id)
    except Exception as e:  # the SDK raises its own not-found type
        raise AirflowFailException(
            f"the Airflow Connection {conn_id} is missing ({e}): create it (Admin > Connections, "
            f"`airflow connections add`, or AIRFLOW_CONN_{conn_id.upper()}); see docs/airflow.md"
        ) from e


def shopflow_bin():
    """Path of the shopflow binary: Variable shopflow_bin, else $SHOPFLOW_BIN, else PATH."""
    name = Variable.get("shopflow_bin", default=None) or os.environ.get("SHOPFLOW_BIN") or "shopflow"
    path = shutil.which(name)
    if not path:
        raise AirflowFailException(
            f"the shopflow binary {name!r} is not an executable on this worker: set the Airflow "
            "Variable shopflow_bin (or SHOPFLOW_BIN in the worker's environment) to its path")
    return path


@dataclass(frozen=True)
class Lake:
    """The lake's bucket and key prefix, from Variable shopflow_lake_url (s3://bucket/prefix)."""

    url: str
    bucket: str
    prefix: str

    @classmethod
    def from_variable(cls):
        url = variable("shopflow_lake_url").rstrip("/")
        if not url.startswith("s3://") or len(url) <= len("s3://"):
            raise AirflowFailException(
                f"shopflow_lake_url is {url!r}: it must be s3://bucket[/prefix], the lake.url "
                "the live `shopflow run` writes to")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(url, bucket, prefix.strip("/"))

    def key(self, rest):
        return f"{self.prefix}/{rest}" if self.prefix else rest

    def day_prefix(self, topic, day):
        """`<prefix>/raw/<topic>/dt=<day>/`: the raw files of one day (docs/lake.md)."""
        return self.key(f"raw/{topic}/dt={day}/")


def days(first, last):
    """Every day from `first` to `last`, inclusive, as ISO strings."""
    d, end = date.fromisoformat(first), date.fromisoformat(last)
    out = []
    while d <= end:
        out.append(d.isoformat())
        d += timedelta(days=1)
    return out


def replay_range(params, ds):
    """(first, last) day of a run: the params' from_date/to_date, else the run's own day."""
    first, last = params.get("from_date"), params.get("to_date")
    if bool(first) != bool(last):
        raise AirflowFailException(
            f"from_date={first!r} and to_date={last!r}: give both (a range replay) or neither "
            "(the run's own day)")
    if not first:
        return ds, ds
    try:
        a, b = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as e:
        raise AirflowFailException(f"from_date/to_date must be YYYY-MM-DD: {e}") from e
    if a > b:
        raise AirflowFailException(f"from_date {first} is after to_date {last}: swap them")
    return first, last
