"""Helpers of the Airflow tests: a real Airflow (its own venv, installed by
scripts/airflow-setup.sh) whose metadata database is the suite's PostgreSQL,
a webhook receiver and an SMTP server for the alerts.

Airflow runs as subprocesses from its venv; the tests only read its metadata
database (task states, XComs) with psycopg.
"""

import email
import email.policy
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg

from kafka_util import PG_PORT, ROOT

CACHE = Path(os.environ.get("SHOPFLOW_CACHE", Path.home() / ".cache" / "shopflow"))
VENV = Path(os.environ.get("AIRFLOW_VENV", CACHE / "airflow-venv"))
DAGS = ROOT / "airflow" / "dags"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow_bin():
    path = VENV / "bin" / "airflow"
    assert path.is_file(), (f"no Airflow at {path}: run scripts/airflow-setup.sh "
                            "(make setup does) or set AIRFLOW_VENV")
    return str(path)


class Airflow:
    """One AIRFLOW_HOME under /tmp with its metadata database in the suite's PostgreSQL."""

    def __init__(self, postgres_url, s3, lake_url, shopflow, name="dags"):
        self.home = Path(f"/tmp/shopflow-airflow-test-{os.getpid()}-{name}")
        self.db = f"airflow_{os.getpid()}_{name}"
        self.db_url = postgres_url.rsplit("/", 1)[0] + "/" + self.db
        self.api_port = free_port()
        endpoint, _bucket = s3
        lake_conn = {"conn_type": "aws", "login": "test", "password": "test",
                     "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        self.env = dict(
            os.environ,
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=(
                f"postgresql+psycopg2://postgres@127.0.0.1:{PG_PORT}/{self.db}"),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.api_port),
            AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{self.api_port}",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{self.api_port}/execution/",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            # Sensors and retries at test speed (docs/airflow.md: the same knobs in production).
            SHOPFLOW_SENSOR_POKE_SECONDS="2",
            SHOPFLOW_SENSOR_TIMEOUT_SECONDS="600",
            SHOPFLOW_RETRY_DELAY_SECONDS="1",
            AIRFLOW_CONN_SHOPFLOW_LAKE=json.dumps(lake_conn),
            AIRFLOW_CONN_SHOPFLOW_WAREHOUSE=json.dumps(
                {"conn_type": "postgres", "host": "127.0.0.1", "port": PG_PORT,
                 "login": "postgres", "schema": "shopflow"}),
            AIRFLOW_VAR_SHOPFLOW_BIN=shopflow,
            AIRFLOW_VAR_SHOPFLOW_LAKE_URL=lake_url,
            # `airflow standalone` starts its components as `airflow …` from PATH.
            PATH=f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
            AWS_EC2_METADATA_DISABLED="true",
            NO_PROXY="*",
        )
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SHOPFLOW_BIN"):
            self.env.pop(key, None)  # the DAG must take them from its Connections and Variables

    def setup(self, postgres_url):
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.db}")
            conn.execute(f"CREATE DATABASE {self.db}")
        self.cli("db", "migrate", timeout=300)

    def teardown(self, postgres_url):
        shutil.rmtree(self.home, ignore_errors=True)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")

    def with_env(self, **variables):
        """The environment with Airflow Variables (AIRFLOW_VAR_*) and other keys set."""
        env = dict(self.env)
        for k, v in variables.items():
            env[k if k.isupper() else f"AIRFLOW_VAR_{k.upper()}"] = str(v)
        return env

    def cli(self, *args, env=None, timeout=600, check=True):
        proc = subprocess.run([airflow_bin(), *args], env=env or self.env, capture_output=True,
                              text=True, timeout=timeout, cwd=self.home)
        if check:
            assert proc.returncode == 0, (f"airflow {' '.join(args)} exited {proc.returncode}:\n"
                                          f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
        return proc

    def meta(self, sql, *params):
        """Rows of a query on the metadata database."""
        with psycopg.connect(self.db_url) as conn:
            return conn.execute(sql, params).fetchall()

    def task_states(self, run_id):
        return dict(self.meta("SELECT task_id, state FROM task_instance WHERE dag_id = %s "
                              "AND run_id = %s", "shopflow_daily", run_id))

    def runs(self, run_type=None):
        """(run_id, logical date, state) of shopflow_daily's runs, oldest first."""
        rows = self.meta("SELECT run_id, logical_date, state, run_type FROM dag_run "
                         "WHERE dag_id = 'shopflow_daily' ORDER BY logical_date, id")
        return [r[:3] for r in rows if run_type is None or r[3] == run_type]

    def xcom(self, run_id, task_id):
        rows = self.meta("SELECT value FROM xcom WHERE dag_id = 'shopflow_daily' AND run_id = %s "
                         "AND task_id = %s AND key = 'return_value'", run_id, task_id)
        assert rows, f"no XCom from {task_id} in {run_id}"
        value = rows[0][0]
        return json.loads(value) if isinstance(value, str) else value


def wait_until(condition, what, timeout=300, every=0.5):
    """Polls `condition` until truthy; fails with `what` and the last value after `timeout`."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class _Hook(BaseHTTPRequestHandler):
    def log_message(self, *_args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.posts.append(json.loads(body))
        self.send_response(204)
        self.end_headers()


class WebhookReceiver:
    """Collects the JSON documents POSTed to it."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
        self.server.daemon_threads = True
        self.server.lock, self.server.posts = threading.Lock(), []
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def posts(self):
        with self.server.lock:
            return list(self.server.posts)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """A local SMTP server (aiosmtpd) keeping every message it receives, parsed."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages, self.lock = [], threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, _server, _session, envelope):
                with sink.lock:
                    sink.messages.append((envelope.rcpt_tos, email.message_from_bytes(
                        envelope.content, policy=email.policy.default)))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def received(self):
        with self.lock:
            return list(self.messages)

    def close(self):
        self.controller.stop()
