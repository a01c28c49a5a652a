"""The ops files as data, for tests/ops: the Dockerfile, the compose stack,
the Kubernetes manifests, the CI workflow, what docs/configuration.md
documents, and where scripts/ops-check-setup.sh installs the validators."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_DIR = ROOT / "deploy/compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
K8S_FILES = sorted((ROOT / "deploy/k8s").glob("*.yaml"))
WORKFLOW = ROOT / ".github/workflows/ci.yml"
CONFIGURATION_MD = ROOT / "docs/configuration.md"

CACHE = Path(os.environ.get("SHOPFLOW_CACHE", Path.home() / ".cache/shopflow"))
VENV_BIN = CACHE / "venv/bin"
GO_BIN = CACHE / "go-bin"
# The Kubernetes version of scripts/ops-check-setup.sh (K8S_VERSION).
K8S_SCHEMAS = CACHE / "k8s-schemas/v1.33.0-local-strict"

TIMELY_PORT = 2101
METRICS_PORT = 9464


def tool(name):
    """Path of a validator that scripts/ops-check-setup.sh installs."""
    for path in (VENV_BIN / name, GO_BIN / name):
        if path.is_file():
            return str(path)
    pytest.fail(f"{name} is not installed: run scripts/ops-check-setup.sh (or make ops)", pytrace=False)


def run(*cmd, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def compose():
    return yaml.safe_load(COMPOSE.read_text())


def compose_env(service):
    """A compose service's environment as a dict (compose allows a list too)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def k8s_objects():
    """Every object of deploy/k8s, as (file, object)."""
    return [(path, doc) for path in K8S_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s(kind, name=None):
    """The one object of this kind (and name) in deploy/k8s."""
    found = [o for _, o in k8s_objects() if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/k8s, found {len(found)}"
    return found[0]


def documented_keys():
    """`section.key` names in the first column of docs/configuration.md's tables."""
    return set(re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \|", CONFIGURATION_MD.read_text(), re.M))


def documented_vars():
    """Every SHOPFLOW_* variable a table row of docs/configuration.md names."""
    rows = [line for line in CONFIGURATION_MD.read_text().splitlines() if line.startswith("|")]
    return set(re.findall(r"\bSHOPFLOW_[A-Z0-9_]*[A-Z0-9]\b", "\n".join(rows)))


def toml_keys(text):
    """`section.key` for every key of a shopflow.toml."""
    return {f"{section}.{key}" for section, table in tomllib.loads(text).items() for key in table}


def runs_pipeline(service):
    """Whether a compose service is a process of the cluster (`shopflow run`)."""
    return (service.get("command") or [None])[0] == "run"


def containers(pod_spec):
    return pod_spec.get("initContainers", []) + pod_spec["containers"]
