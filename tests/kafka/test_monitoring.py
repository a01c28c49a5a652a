"""Monitoring, live: a real Prometheus and Alertmanager (Debian's packages)
watch `shopflow run` on the suite's Kafka, PostgreSQL and S3, fed by a
realtime generator.

- Prometheus scrapes shopflow and its API shows the input rate.
- /metrics passes `promtool check metrics` and lists every metric the rules
  and the Grafana dashboard use.
- PostgreSQL stops: the warehouse alert fires, Alertmanager routes it by
  severity to the test's webhook (the page receiver) and holds back the
  frontier alert it explains; PostgreSQL starts again: the alert resolves
  and the webhook is told.

Prometheus runs the shipped rule files with every window and `for:` divided
by prom_util.TIME_SCALE, scraping and evaluating every second, so the
minutes of production become seconds here.
"""

import json
import subprocess
import time
import urllib.request

import pytest

from kafka_util import sf, wait_for
from lake_util import lake_env
from prom_util import (Daemon, Webhook, alert_state, alertmanager, alertmanager_alerts, free_port,
                       need, prometheus, query)
from promfiles import DASHBOARD, RULE_FILES, declared_metrics, metric_names, rules

RATE = 40  # events per second the generator sends
PREFIX, SCHEMA = "mon.", "mon"
STALLED = "ShopflowWarehouseCommitsStalled"


@pytest.fixture(scope="module")
def watched(broker, postgres, s3, shopflow, tmp_path_factory):
    """shopflow run (warehouse + lake) under a live generator, watched by
    Prometheus and Alertmanager; yields a dict of their ports and handles."""
    work = tmp_path_factory.mktemp("monitoring")
    metrics_port = free_port()
    # Retries without end while PostgreSQL is down (the default, 5, would
    # stop the run); lake flushes every second so that commits, which wait
    # for the lake, keep their one-second pace.
    env = lake_env(broker, PREFIX, s3, warehouse_url=postgres, warehouse_schema=SCHEMA,
                   warehouse_retries=1000000, warehouse_backoff_ms=100, lake_flush_ms=1000,
                   metrics_listen=f"127.0.0.1:{metrics_port}")
    sf(shopflow, ["migrate", "--database-url", postgres, "--schema", SCHEMA], env)
    sf(shopflow, ["topics", "create"], env)
    started = []
    try:
        started.append(Daemon("generator", [shopflow, "generate", "--realtime", "--rate", str(RATE),
                                            "--duration", "30m", "--kafka", broker.brokers,
                                            "--topic-prefix", PREFIX], work / "generate.log"))
        run = Daemon("shopflow run", [shopflow, "run"], work / "run.log", env=env)
        started.append(run)
        hook = Webhook()
        am, am_port = alertmanager(work, hook.port)
        started.append(am)
        prom, prom_port = prometheus(work, metrics_port, am_port)
        started.append(prom)
        yield {"work": work, "metrics": metrics_port, "prom": prom_port, "am": am_port,
               "hook": hook, "run": run}
        run.check_alive()
        hook.stop()
    finally:
        for daemon in reversed(started):
            daemon.stop()


def test_prometheus_scrapes_shopflow_and_sees_the_input_rate(watched):
    prom = watched["prom"]
    events = 'shopflow_messages_total{job="shopflow", topic=~"mon[.](clicks|carts|purchases)"}'
    wait_for(lambda: query(prom, f'up{{job="shopflow"}} == 1'), "Prometheus scraping shopflow")
    # Twenty seconds of samples, so the rate is past the start-up catch-up.
    wait_for(lambda: query(prom, f"sum(count_over_time({events}[25s])) >= 60"),
             "25 s of scraped input", timeout=120)
    (_, rate), = query(prom, f"sum(rate({events}[15s]))")
    assert RATE / 2 <= rate <= RATE * 2, f"input rate {rate}/s, the generator sends {RATE}/s"
    recorded = {labels["topic"]: v for labels, v in query(prom, "job_topic:shopflow_messages:rate1m")}
    assert recorded.get("mon.clicks", 0) > 0, f"the recording rule shows no clicks: {recorded}"


def test_metrics_pass_promtool_and_list_every_metric_used(watched):
    with urllib.request.urlopen(f"http://127.0.0.1:{watched['metrics']}/metrics", timeout=5) as r:
        text = r.read().decode()
    lint = subprocess.run([need("promtool"), "check", "metrics"], input=text, text=True,
                          capture_output=True, timeout=60)
    assert lint.returncode == 0 and not lint.stdout + lint.stderr, \
        f"promtool check metrics:\n{lint.stdout}{lint.stderr}"
    exported = {line.split()[2]: line.split()[3] for line in text.splitlines()
                if line.startswith("# TYPE ")}
    # The pipeline's own delay, to the warehouse and to the dashboard, is observed.
    for name in ("shopflow_warehouse_delay_seconds", "shopflow_dashboard_delay_seconds"):
        count = [float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith(f"{name}_count")]
        assert count and count[0] > 0, f"{name} has no observation"
    assert exported == declared_metrics(), "the binary's metrics differ from connectors/src/metrics.rs"
    used = set()
    for path in RULE_FILES:
        for rule in rules(path):
            used |= metric_names(rule["expr"])
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            used |= metric_names(target["expr"])
    suffixes = ("_bucket", "_sum", "_count")
    missing = {n for n in used if ":" not in n and n != "up"
               and n not in exported and not (n.endswith(suffixes) and n.rsplit("_", 1)[0] in exported)}
    assert not missing, f"used by the rules or the dashboard but not exported: {sorted(missing)}"


def test_a_postgres_outage_fires_routes_and_resolves_the_warehouse_alert(watched, broker):
    prom, am, hook = watched["prom"], watched["am"], watched["hook"]
    wait_for(lambda: query(prom, 'shopflow_warehouse_commits_total{job="shopflow"} > 0'),
             "a first warehouse commit", timeout=120)
    wait_for(lambda: query(prom, 'increase(shopflow_warehouse_commits_total{job="shopflow"}[10s]) > 3'),
             "commits every few seconds", timeout=60)
    assert alert_state(prom, STALLED) == "inactive", "the alert fires while commits go on"

    broker.script("down.sh", "postgres")
    stopped = time.time()
    try:
        wait_for(lambda: alert_state(prom, STALLED) == "firing", f"{STALLED} firing", timeout=120)
        fired = time.time() - stopped
        # Routed by severity: critical goes to the page receiver, and only there.
        sent = wait_for(lambda: hook.notifications(STALLED, "firing"), "the page webhook", timeout=60)
        assert {path for path, _ in sent} == {"/shopflow/page"}, sent
        alert = sent[0][1]
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook"] == "docs/operations.md#shopflowwarehousecommitsstalled"
        watched["outage"] = observe_the_outage(prom, am, hook)
    finally:
        broker.script("up.sh", "postgres")
    back = time.time()
    wait_for(lambda: alert_state(prom, STALLED) == "inactive", f"{STALLED} resolved", timeout=120)
    resolved = wait_for(lambda: hook.notifications(STALLED, "resolved"), "the resolved notification",
                        timeout=60)
    assert {path for path, _ in resolved} == {"/shopflow/page"}
    (_, commits), = query(prom, 'increase(shopflow_warehouse_commits_total{job="shopflow"}[10s])')
    assert commits > 0, "the alert resolved but no commit happened"
    print(f"warehouse alert: firing {fired:.0f}s after PostgreSQL stopped, "
          f"resolved {time.time() - back:.0f}s after it came back")


def observe_the_outage(prom, am, hook, timeout=90):
    """While PostgreSQL is down: polls (up to `timeout`) until the failed
    attempts have paged and the frontier alert fires in Prometheus and is
    suppressed in Alertmanager; returns what it saw, for the next test."""
    seen = {}
    deadline = time.time() + timeout
    while time.time() < deadline and len(seen) < 3:
        if hook.notifications("ShopflowWarehouseCommitErrors", "firing"):
            seen["errors paged"] = [p for p, _ in hook.notifications("ShopflowWarehouseCommitErrors",
                                                                   "firing")]
        if alert_state(prom, "ShopflowFrontierStalled") == "firing":
            seen["frontier firing"] = True
        held = [a for a in alertmanager_alerts(am, "ShopflowFrontierStalled")
                if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]]
        if held:
            seen["frontier suppressed"] = True
        time.sleep(0.5)
    seen["frontier notified"] = bool(hook.notifications("ShopflowFrontierStalled", "firing"))
    return seen


def test_during_the_outage_failures_page_and_the_frontier_alert_is_held_back(watched):
    seen = watched.get("outage")
    assert seen is not None, "the outage test did not get as far as the outage"
    assert seen.get("errors paged") and set(seen["errors paged"]) == {"/shopflow/page"}, \
        f"ShopflowWarehouseCommitErrors did not reach the page receiver: {seen}"
    assert seen.get("frontier firing"), f"ShopflowFrontierStalled never fired: {seen}"
    assert seen.get("frontier suppressed"), f"Alertmanager did not inhibit the frontier alert: {seen}"
    assert not seen["frontier notified"], "the inhibited frontier alert was sent anyway"
