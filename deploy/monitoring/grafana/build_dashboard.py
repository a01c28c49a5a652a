#!/usr/bin/env python3
"""Builds the shopflow Grafana dashboard (dashboards/shopflow.json) from the
panel list below, so that every panel is laid out, sized and wired to the
datasource the same way. Python standard library only.

    python3 deploy/monitoring/grafana/build_dashboard.py          # rewrite the JSON
    python3 deploy/monitoring/grafana/build_dashboard.py --check  # exit 1 if it is stale

tests/monitoring checks that the committed JSON is what this prints and that
every query names a metric shopflow exports or a recording rule of
deploy/monitoring/rules. Queries use the recording rules where one exists
(they are the heavy ones); `$job` and `$instance` are dashboard variables.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards" / "shopflow.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
J = 'job="$job"'
JI = 'job="$job", instance=~"$instance"'

# (title, kind, unit, [(expr, legend)], description); kind: stat | timeseries | heatmap.
ROWS = [
    ("Health at a glance", [
        ("Targets up", "stat", "none",
         [(f"sum(up{{{JI}}})", "up")],
         "shopflow processes Prometheus scrapes successfully (alert ShopflowDown)."),
        ("Frontier lag", "stat", "s",
         [(f"max(instance:shopflow_frontier_lag:seconds{{{JI}}})", "lag")],
         "Wall clock minus the completed frontier; about 5 s (the watermark's delay) when healthy."),
        ("Consumer lag", "stat", "short",
         [(f"sum(shopflow_kafka_consumer_lag{{{JI}}})", "messages")],
         "Messages after the committed offsets, all partitions (not yet read or not yet durable)."),
        ("Warehouse commits", "stat", "ops",
         [(f"sum(rate(shopflow_warehouse_commits_total{{{JI}}}[1m]))", "commits/s")],
         "Transactions committed per second; zero for minutes pages (ShopflowWarehouseCommitsStalled)."),
        ("Dead-letter share", "stat", "percentunit",
         [(f"max(instance:shopflow_invalid:ratio_rate10m{{{JI}}})", "share")],
         "Share of consumed messages that failed validation, last 10 minutes."),
        ("Memory of limit", "stat", "percentunit",
         [(f"max(process_resident_memory_bytes{{{JI}}} / on(job, instance) shopflow_memory_limit_bytes{{{JI}}})", "used")],
         "Resident memory over the cgroup limit (empty without a limit)."),
        ("Dashboard clients", "stat", "none",
         [(f"sum(shopflow_dashboard_clients{{{JI}}})", "clients")],
         "Websocket clients of the live dashboard."),
        ("Version", "stat", "none",
         [(f"count by (version) (shopflow_build_info{{{JI}}})", "{{version}}")],
         "Processes per running version."),
    ]),
    ("Throughput", [
        ("Messages in per topic", "timeseries", "ops",
         [(f"job_topic:shopflow_messages:rate1m{{{J}}}", "{{topic}}")],
         "Kafka messages consumed per second, by topic."),
        ("Events by admission", "timeseries", "ops",
         [(f"job_admission:shopflow_events:rate1m{{{J}}}", "{{admission}}")],
         "Valid events per second: on time, late (applied as a correction), too late (replay only)."),
        ("Warehouse rows out per table", "timeseries", "ops",
         [(f"job_table:shopflow_warehouse_rows:rate1m{{{J}}}", "{{table}}")],
         "Rows staged into the warehouse per second, by table."),
        ("Lake records out per topic", "timeseries", "ops",
         [(f"job_topic:shopflow_lake_records:rate1m{{{J}}}", "{{topic}}"),
          (f"sum(rate(shopflow_dead_letters_total{{{JI}}}[1m]))", "dead_letters topic")],
         "Messages written to the lake's raw layer per second, and records delivered to dead_letters."),
    ]),
    ("Lags", [
        ("Frontier lag", "timeseries", "s",
         [(f"instance:shopflow_frontier_lag:seconds{{{JI}}}", "{{instance}}")],
         "Wall clock minus the completed frontier. It grows without bound when the dataflow is blocked."),
        ("Consumer lag per partition", "timeseries", "short",
         [(f"shopflow_kafka_consumer_lag{{{JI}}}", "{{topic}}/{{partition}}")],
         "High watermark minus the committed offset (offsets are committed once results are durable)."),
        ("Backpressure pauses", "timeseries", "ops",
         [(f"sum by (instance) (rate(shopflow_partition_pauses_total{{{JI}}}[5m]))", "{{instance}}")],
         "Times per second a worker paused its partitions because the dataflow fell behind."),
    ]),
    ("Input quality", [
        ("Dead letters by reason", "timeseries", "ops",
         [(f"job_reason:shopflow_invalid:rate5m{{{J}}}", "{{reason}}")],
         "Messages that failed validation per second, by reason code (each one is in dead_letters)."),
        ("Late and too-late events", "timeseries", "percentunit",
         [(f'sum(rate(shopflow_events_total{{{JI}, admission="late"}}[5m])) / sum(rate(shopflow_events_total{{{JI}}}[5m]))', "late"),
          (f"max(instance:shopflow_events_too_late:ratio_rate10m{{{JI}}})", "too late")],
         "Share of events behind the watermark: late ones correct their windows, too-late ones wait for a replay."),
        ("Duplicates and conflicts (live state)", "timeseries", "short",
         [(f"sum(shopflow_live_duplicates{{{JI}}})", "duplicates"),
          (f"sum(shopflow_live_conflicts{{{JI}}})", "conflicts")],
         "Extra copies received and ids with conflicting payloads, over the last ~70 minutes of event time."),
    ]),
    ("Sinks", [
        ("Warehouse commit latency", "timeseries", "s",
         [(f"instance:shopflow_warehouse_commit_seconds:p50_5m{{{JI}}}", "p50 {{instance}}"),
          (f"instance:shopflow_warehouse_commit_seconds:p99_5m{{{JI}}}", "p99 {{instance}}")],
         "Time to make a step durable in PostgreSQL, retries included (alert above 5 s at p99)."),
        ("Warehouse commit latency distribution", "heatmap", "s",
         [(f"sum by (le) (rate(shopflow_warehouse_commit_seconds_bucket{{{JI}}}[1m]))", "{{le}}")],
         "Commits per latency bucket."),
        ("Warehouse and offset commit failures", "timeseries", "ops",
         [(f"sum(rate(shopflow_warehouse_commit_errors_total{{{JI}}}[5m]))", "warehouse attempts failed"),
          (f"sum(rate(shopflow_offset_commit_errors_total{{{JI}}}[5m]))", "offset commits failed")],
         "Failed warehouse transaction attempts and Kafka offset commits per second."),
        ("Lake flush latency", "timeseries", "s",
         [(f"instance:shopflow_lake_flush_seconds:p50_5m{{{JI}}}", "p50 {{instance}}"),
          (f"instance:shopflow_lake_flush_seconds:p99_5m{{{JI}}}", "p99 {{instance}}")],
         "Time to write one partition's raw file to the lake."),
        ("Lake failures and retries", "timeseries", "ops",
         [(f"sum(rate(shopflow_lake_flush_errors_total{{{JI}}}[5m]))", "flushes failed"),
          (f"sum by (op) (rate(shopflow_lake_errors_total{{{JI}}}[5m]))", "calls failed {{op}}"),
          (f"sum by (op) (rate(shopflow_lake_retries_total{{{JI}}}[5m]))", "calls retried {{op}}")],
         "A failed flush blocks its partition until a retry succeeds."),
        ("Curated days", "timeseries", "s",
         [(f"time() - max(shopflow_lake_curated_until_seconds{{{JI}}})", "since the end of the last curated day")],
         "Above 26 h, yesterday's _SUCCESS is overdue (ShopflowCuratedDayOverdue)."),
    ]),
    ("Dashboard and process", [
        ("Dashboard clients and traffic", "timeseries", "short",
         [(f"sum(shopflow_dashboard_clients{{{JI}}})", "clients"),
          (f"sum(rate(shopflow_dashboard_messages_total{{{JI}}}[1m]))", "messages/s"),
          (f"sum by (why) (rate(shopflow_dashboard_refused_total{{{JI}}}[5m]))", "refused/s {{why}}"),
          (f"sum(rate(shopflow_dashboard_dropped_total{{{JI}}}[5m]))", "dropped/s")],
         "Websocket clients, messages sent, requests refused and slow clients dropped."),
        ("Memory", "timeseries", "bytes",
         [(f"process_resident_memory_bytes{{{JI}}}", "resident {{instance}}"),
          (f"shopflow_memory_limit_bytes{{{JI}}}", "limit {{instance}}")],
         "Resident memory and the cgroup limit."),
        ("Restarts", "timeseries", "none",
         [(f"changes(process_start_time_seconds{{{JI}}}[1h])", "{{instance}}")],
         "Process starts in the last hour (alert at 3 in 30 minutes)."),
    ]),
]


def panel(pid, x, y, w, h, title, kind, unit, queries, description):
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
             "legendFormat": legend, **({"format": "heatmap"} if kind == "heatmap" else {})}
            for i, (expr, legend) in enumerate(queries)
        ],
    }
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    if kind == "heatmap":
        p["options"] = {"calculate": False, "yAxis": {"unit": unit}}
    return p


def variable(name, label, query, multi):
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": name}, "refresh": 2, "sort": 1,
        "multi": multi, "includeAll": multi,
        **({"allValue": ".*", "current": {"text": "All", "value": "$__all"}} if multi else {}),
    }


def dashboard():
    panels, pid, y = [], 1, 0
    for title, row in ROWS:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})
        pid, y = pid + 1, y + 1
        stats = all(p[1] == "stat" for p in row)
        w, h = (3, 4) if stats else (8, 8)
        for i, p in enumerate(row):
            x = (i * w) % 24
            if i and x == 0:
                y += h
            panels.append(panel(pid, x, y, w, h, *p))
            pid += 1
        y += h
    return {
        "uid": "shopflow-pipeline",
        "title": "shopflow pipeline",
        "description": "Health of a shopflow deployment: throughput, lags, sink latencies, dead letters, late data (docs/operations.md).",
        "tags": ["shopflow"],
        "timezone": "utc",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {"text": "shopflow-prometheus", "value": "shopflow-prometheus"}},
            variable("job", "Job", 'label_values(shopflow_build_info, job)', False),
            variable("instance", "Instance", 'label_values(shopflow_build_info{job="$job"}, instance)', True),
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render():
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    text = render()
    if sys.argv[1:] == ["--check"]:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run python3 {Path(__file__).name} to rebuild it")
    else:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text)
        print(f"wrote {OUT}")
