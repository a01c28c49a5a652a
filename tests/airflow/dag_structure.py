"""Loads airflow/dags the way Airflow's DAG processor does and prints what the
integrity tests check, as JSON into the file argv[2] (Airflow logs to stdout). Run by test_dag_integrity.py with the Python of
the Airflow venv (the test venv has no Airflow)."""

import json
import sys
from pathlib import Path

from airflow.dag_processing.dagbag import BundleDagBag

folder = Path(sys.argv[1])
bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder)
out = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    timetable = dag.timetable
    out["dags"][dag_id] = {
        "timetable": type(timetable).__name__,
        "cron": getattr(timetable, "expression", None),
        "timezone": str(getattr(timetable, "timezone", "")),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tags": sorted(dag.tags),
        "doc_md": dag.doc_md or "",
        "params": {k: dag.params.get_param(k).value for k in dag.params},
        "tasks": {
            t.task_id: {
                "type": type(t).__name__,
                "owner": t.owner,
                "retries": t.retries,
                "retry_exponential_backoff": t.retry_exponential_backoff,
                "mode": getattr(t, "mode", None),
                "alerts": bool(t.on_failure_callback),
                "doc_md": t.doc_md or "",
                "upstream": sorted(t.upstream_task_ids),
            }
            for t in dag.tasks
        },
    }
Path(sys.argv[2]).write_text(json.dumps(out))
