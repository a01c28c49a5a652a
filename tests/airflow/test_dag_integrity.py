"""DAG integrity (issue 17), fast and without services: every file of
airflow/dags imports in Airflow 3 as its DAG processor loads it, the graph has
no cycle, every task has an owner, retries with backoff, an alert and docs,
and the schedule, params and task names are the ones docs/airflow.md gives.

Airflow lives in its own venv (scripts/airflow-setup.sh), so the DAGs are
loaded there by dag_structure.py and the facts come back as JSON.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "airflow" / "dags"
DOC = (ROOT / "docs" / "airflow.md").read_text()
CACHE = Path(os.environ.get("SHOPFLOW_CACHE", Path.home() / ".cache" / "shopflow"))
VENV = Path(os.environ.get("AIRFLOW_VENV", CACHE / "airflow-venv"))
TOPICS = ["clicks", "carts", "purchases"]

sys.path.insert(0, str(DAGS))
from shopflow_lib import completeness  # noqa: E402  (no Airflow import: testable here)


@pytest.fixture(scope="module")
def structure(tmp_path_factory):
    python = VENV / "bin" / "python"
    if not python.is_file():
        pytest.fail(f"no Airflow venv at {VENV}: run scripts/airflow-setup.sh (make setup does)",
                    pytrace=False)
    home = tmp_path_factory.mktemp("airflow-home")
    out = home / "structure.json"
    env = dict(os.environ, AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db")
    proc = subprocess.run([str(python), str(Path(__file__).with_name("dag_structure.py")),
                           str(DAGS), str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def daily(structure):
    return structure["dags"]["shopflow_daily"]


def test_every_dag_file_imports(structure):
    assert structure["import_errors"] == {}
    assert sorted(structure["dags"]) == ["shopflow_daily"]


def test_the_graph_has_no_cycle_and_the_order_is_plan_sensors_replay_checks(daily):
    tasks = {t: set(v["upstream"]) for t, v in daily["tasks"].items()}
    order, ready = [], sorted(t for t, up in tasks.items() if not up)
    done = set()
    while ready:
        t = ready.pop(0)
        order.append(t)
        done.add(t)
        ready += sorted(u for u, up in tasks.items()
                        if u not in done and u not in ready and up <= done)
    assert len(order) == len(tasks), f"a cycle among {set(tasks) - done}"
    assert order[0] == "plan"
    sensors = {f"wait_for_{t}" for t in TOPICS}
    assert sensors <= tasks["replay_days"]
    checks = [t for t in tasks if t.startswith("checks.")]
    assert len(checks) == 16 and all("replay_days" in tasks[c] for c in checks)


def test_every_task_has_an_owner_retries_with_backoff_an_alert_and_docs(daily):
    for task_id, t in daily["tasks"].items():
        assert t["owner"] == "shopflow-data", task_id
        assert t["retries"] >= 1 and t["retry_exponential_backoff"] > 1, task_id
        assert t["alerts"], f"{task_id} has no failure alert"
        assert "When it fails" in t["doc_md"], f"{task_id}: its docs say what to do on failure"
        if task_id.startswith("checks."):
            assert "Meaning" in t["doc_md"], task_id
    for topic in TOPICS:
        assert daily["tasks"][f"wait_for_{topic}"]["mode"] == "reschedule"


def test_schedule_and_params_are_what_the_docs_say(daily):
    assert (daily["timetable"], daily["cron"], daily["timezone"]) == (
        "CronDataIntervalTimetable", "0 0 * * *", "UTC")
    assert "`0 0 * * *`" in DOC and "CronDataIntervalTimetable" in DOC
    assert daily["catchup"] is False and daily["max_active_runs"] == 1
    assert "max_active_runs=1" in DOC and "catchup=False" in DOC
    assert daily["params"] == {"from_date": None, "to_date": None}
    assert "`from_date`" in DOC and "`to_date`" in DOC
    assert {"shopflow", "data-quality"} <= set(daily["tags"]) and daily["doc_md"].strip()


def test_the_docs_name_every_task_variable_and_connection(daily):
    for task_id in daily["tasks"]:
        assert f"`{task_id.removeprefix('checks.')}`" in DOC, f"docs/airflow.md misses {task_id}"
    code = "\n".join(p.read_text() for p in DAGS.rglob("*.py"))
    variables = set(re.findall(r"""["'](shopflow_[a-z_]+)["']""", code))
    names = {v for v in variables if v not in {"shopflow_daily", "shopflow_lib"}}
    for name in names:
        assert f"`{name}`" in DOC, f"docs/airflow.md misses {name}"
    for env in set(re.findall(r"SHOPFLOW_[A-Z_]+_SECONDS", code)):
        assert f"`{env}`" in DOC, f"docs/airflow.md misses {env}"


class FakeLake:
    def day_prefix(self, topic, day):
        return f"raw/{topic}/dt={day}/"

    def key(self, rest):
        return rest


def status(keys, days=("2026-11-25",)):
    return completeness.status(lambda p: [k for k in keys if k.startswith(p)],
                               lambda k: k in keys, FakeLake(), "purchases", list(days))


def test_a_quiet_last_hour_does_not_keep_a_day_open():
    day = [f"raw/purchases/dt=2026-11-25/hr={h:02}/{n}" for h in range(23)
           for n in ("part-0-1-2.parquet", "_SUCCESS")]
    assert status(day)["complete"] is False, "no sign yet that the watermark passed the day"
    got = status(day + ["raw/purchases/dt=2026-11-26/hr=01/_SUCCESS"])
    assert got["complete"] and got["day_closed_because"] == "an hour of 2026-11-26 is marked"
    got = status(day + ["curated/_days/dt=2026-11-25/_SUCCESS"])
    assert got["complete"] and "curated" in got["day_closed_because"]


def test_an_hour_with_files_but_no_marker_keeps_the_day_open():
    keys = ["raw/purchases/dt=2026-11-24/hr=05/part-0-1-2.parquet",
            "raw/purchases/dt=2026-11-25/hr=23/part-0-3-4.parquet",
            "raw/purchases/dt=2026-11-25/hr=23/_SUCCESS"]
    got = status(keys, days=("2026-11-24", "2026-11-25"))
    assert not got["complete"] and got["hours_without_marker"] == {"2026-11-24": ["05"]}
    got = status(keys + ["raw/purchases/dt=2026-11-24/hr=05/_SUCCESS"],
                 days=("2026-11-24", "2026-11-25"))
    assert got["complete"] and got["day_closed_because"] == "hour 23 of 2026-11-25 is marked"
