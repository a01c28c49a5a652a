"""The monitoring files of deploy/monitoring as data, for the offline checks
(tests/monitoring) and the live alert test (tests/kafka/test_monitoring.py):
rules, the metric names their expressions use, the metrics shopflow declares,
and a time-scaled copy of the rules for a test that cannot wait minutes."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy/monitoring"
PROMETHEUS_YML = MONITORING / "prometheus.yml"
ALERTMANAGER_YML = MONITORING / "alertmanager.yml"
RECORDING = MONITORING / "rules/shopflow-recording.yml"
ALERTS = MONITORING / "rules/shopflow-alerts.yml"
RULE_FILES = [RECORDING, ALERTS]
ALERTS_TEST = ROOT / "tests/monitoring/alerts.test.yml"
DASHBOARD = MONITORING / "grafana/dashboards/shopflow.json"
METRICS_RS = ROOT / "connectors/src/metrics.rs"
OPERATIONS_MD = ROOT / "docs/operations.md"
METRICS_MD = ROOT / "docs/metrics.md"

# Prometheus type of each `Kind` in connectors/src/metrics.rs.
PROM_TYPE = {"Counter": "counter", "Gauge": "gauge", "Seconds": "gauge", "Scraped": "gauge",
             "Histogram": "histogram"}


def rules(path):
    """Every rule of a rule file, in order."""
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def alert_rules():
    return rules(ALERTS)


def recorded_names():
    return {r["record"] for r in rules(RECORDING)}


def declared_metrics():
    """{name: Prometheus type} of every metric declared in connectors/src/metrics.rs
    (what `/metrics` lists: the endpoint renders HELP and TYPE for each)."""
    text = METRICS_RS.read_text()
    found = re.findall(r'\(\s*"([a-z_:][a-z0-9_:]*)",\s*Kind::(\w+),', text)
    assert len(found) > 30, f"parsed too few definitions from {METRICS_RS}: {found}"
    return {name: PROM_TYPE[kind] for name, kind in found}


def sample_names(types):
    """The series names a set of metrics produces (histograms: _bucket, _sum, _count)."""
    out = set()
    for name, kind in types.items():
        out |= ({f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name})
    return out


def metric_names(expr):
    """Metric and recording-rule names a PromQL expression selects: identifiers
    starting with shopflow_ or process_, recorded names (they hold a ':'), and
    `up`; label values (quoted) are dropped first."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)  # label matchers
    tokens = re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare)
    return {t for t in tokens if t.startswith(("shopflow_", "process_")) or ":" in t or t == "up"}


def scaled_rules(dest, factor):
    """Writes copies of the rule files to `dest` with every range and `for:`
    duration divided by `factor` (ranges at least 3 s, so a 1 s scrape gives a
    rate), so that a live test exercises the shipped expressions in seconds.
    Returns the paths."""
    unit = {"s": 1, "m": 60, "h": 3600}

    def seconds(text):
        return sum(int(n) * unit[u] for n, u in re.findall(r"(\d+)([smh])", text))

    def ranged(m):
        return f"[{max(3, round(seconds(m.group(1)) / factor))}s]"

    def held(m):
        return f"for: {max(1, round(seconds(m.group(1)) / factor))}s"

    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for path in RULE_FILES:
        text = re.sub(r"\[((?:\d+[smh])+)\]", ranged, path.read_text())
        text = re.sub(r"for: ((?:\d+[smh])+)", held, text)
        target = dest / path.name
        target.write_text(text)
        out.append(target)
    return out


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_sections():
    """{anchor: section text} of the `###` headings of docs/operations.md."""
    sections, anchor = {}, None
    for line in OPERATIONS_MD.read_text().splitlines():
        if line.startswith("### "):
            anchor = github_anchor(line[4:])
            sections[anchor] = ""
        elif line.startswith("## "):
            anchor = None
        elif anchor:
            sections[anchor] += line + "\n"
    return sections
