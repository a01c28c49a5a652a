"""The replay task: `shopflow replay --from A --to B` from the lake into the warehouse.

The command gets the lake and the warehouse from the two Airflow Connections
(docs/airflow.md), with secrets passed through the environment the binary
reads (AWS_*, SHOPFLOW_WAREHOUSE_PASSWORD), never on the command line, so the
logged command holds no secret. Each day of the range is one transaction in
the warehouse, so a failed or re-run replay leaves every day either as it
was or fully rewritten: clearing the task is always safe.
"""

import logging
import os
import re
import shlex
import subprocess
from collections import deque

from airflow.sdk.exceptions import AirflowException

from shopflow_lib.settings import LAKE_CONN, WAREHOUSE_CONN, Lake, connection, shopflow_bin, variable

log = logging.getLogger(__name__)


def warehouse_url(conn):
    """postgresql://user@host:port/db from a postgres Connection, without the password."""
    user = f"{conn.login}@" if conn.login else ""
    port = f":{conn.port}" if conn.port else ""
    return f"postgresql://{user}{conn.host or '127.0.0.1'}{port}/{conn.schema or 'postgres'}"


def command_and_env(first, last):
    """The replay's argv and environment, built from the Connections and Variables."""
    lake, lake_conn, wh = Lake.from_variable(), connection(LAKE_CONN), connection(WAREHOUSE_CONN)
    env = dict(os.environ)
    extra = lake_conn.extra_dejson
    if lake_conn.login:
        env["AWS_ACCESS_KEY_ID"] = lake_conn.login
        env["AWS_SECRET_ACCESS_KEY"] = lake_conn.password or ""
    if extra.get("aws_session_token"):
        env["AWS_SESSION_TOKEN"] = extra["aws_session_token"]
    if extra.get("endpoint_url"):
        env["SHOPFLOW_LAKE_S3_ENDPOINT"] = extra["endpoint_url"]
    if extra.get("region_name"):
        env["SHOPFLOW_LAKE_S3_REGION"] = extra["region_name"]
        env.setdefault("AWS_REGION", extra["region_name"])
    if wh.password:
        env["SHOPFLOW_WAREHOUSE_PASSWORD"] = wh.password
    env.setdefault("SHOPFLOW_LOG", "info")
    argv = [shopflow_bin(), "replay", "--from", first, "--to", last, "--lake", lake.url,
            "--database-url", warehouse_url(wh),
            "--schema", variable("shopflow_warehouse_schema", "shopflow"),
            *shlex.split(variable("shopflow_replay_args", ""))]
    return argv, env


# "    fact_clicks                    4312 / 0" in the replay summary.
SUMMARY_ROW = re.compile(r"^\s+([a-z_]+)\s+(\d+) / (\d+)$")


def parse_summary(lines):
    """{table: {"upserted": n, "deleted": m}} from the summary `replay` prints on stdout."""
    out, inside = {}, False
    for line in lines:
        if line.startswith("  warehouse rows upserted / deleted"):
            inside = True
            continue
        m = SUMMARY_ROW.match(line) if inside else None
        if m:
            out[m.group(1)] = {"upserted": int(m.group(2)), "deleted": int(m.group(3))}
        elif inside and not line.startswith("    "):
            inside = False
    return out


def run_replay(first, last):
    """Runs the replay, streaming its output into the task log; returns the rows it wrote."""
    argv, env = command_and_env(first, last)
    log.info("running: %s", shlex.join(argv))
    tail, lines = deque(maxlen=40), []
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            log.info("%s", line)
            tail.append(line)
            lines.append(line)
    if proc.returncode != 0:
        raise AirflowException(
            f"shopflow replay --from {first} --to {last} exited {proc.returncode}. Each day is one "
            "transaction, so days not reported as replayed are unchanged. Fix the cause shown "
            "below (lake or warehouse unreachable, wrong credentials, dataflow flags in "
            "shopflow_replay_args), then clear this task.\n" + "\n".join(tail))
    written = parse_summary(lines)
    if not written:
        raise AirflowException(
            "shopflow replay exited 0 but printed no warehouse summary: it did not write the "
            "warehouse. Check that the binary is a shopflow with `replay --from` and that "
            "--database-url reached it (task log above)")
    return written
