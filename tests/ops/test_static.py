"""The validators of the ops files (`make ops`; seconds, no Docker engine, no
network): hadolint on the Dockerfile, the compose-spec schema on the compose
file, kubeconform on the Kubernetes manifests, actionlint on the workflow,
promtool on the compose stack's Prometheus. Each is also run once on a copy
broken on purpose, so a validator that stopped looking cannot pass unseen.
What the schemas cannot see (names that must agree) is test_agreements.py."""

import os
import shutil

import pytest

from opsfiles import (COMPOSE, COMPOSE_DIR, DOCKERFILE, K8S_FILES, K8S_SCHEMAS, WORKFLOW, k8s_objects,
                      run, tool)


def broken_copy(tmp_path, path, old, new):
    """A copy of `path` in tmp_path with `old` replaced by `new` (once)."""
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}: update the broken copy of this test"
    copy = tmp_path / path.name
    copy.write_text(text.replace(old, new, 1))
    return copy


def hadolint(*paths):
    return run(tool("hadolint"), "--no-color", "-t", "warning", *map(str, paths))


def compose_spec(*paths):
    return run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *map(str, paths))


def kubeconform(*paths):
    if not (K8S_SCHEMAS / "_definitions.json").is_file():
        pytest.fail(f"no schemas in {K8S_SCHEMAS}: run scripts/ops-check-setup.sh", pytrace=False)
    # A proxy that refuses everything: a schema that would be fetched fails the
    # run instead of reaching the network.
    env = dict(os.environ, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    location = f"{K8S_SCHEMAS}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"
    return run(tool("kubeconform"), "-strict", "-summary", "-schema-location", location,
               *map(str, paths), env=env)


def actionlint(*paths):
    # shellcheck and pyflakes off: the result must not depend on what else the
    # machine has installed (actionlint runs them on `run:` steps when found).
    return run(tool("actionlint"), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, paths))


def statefulset_file():
    return next(path for path, obj in k8s_objects() if obj["kind"] == "StatefulSet")


# validator: (run it, the files it checks, how to break one: file, old, new, a
# word its complaint must contain). hadolint and actionlint print findings
# only, so a clean run prints nothing; the others print a summary.
CHECKS = {
    "hadolint": (hadolint, lambda: [DOCKERFILE], lambda: DOCKERFILE, "curl=", "curl ", "DL3008"),
    # Inside the shared x-shopflow-process block: also shows that the YAML anchors are expanded.
    "compose-spec": (compose_spec, lambda: [COMPOSE], lambda: COMPOSE,
                     "  stop_grace_period: 90s", "  stop_grace_periods: 90s", "stop_grace_periods"),
    "kubeconform": (kubeconform, lambda: K8S_FILES, statefulset_file,
                    "podManagementPolicy:", "podManagmentPolicy:", "podManagmentPolicy"),
    "actionlint": (actionlint, lambda: [WORKFLOW], lambda: WORKFLOW,
                   "steps.meta.outputs.tags", "steps.metadata.outputs.tags", "metadata"),
}
QUIET = {"hadolint", "actionlint"}


@pytest.mark.parametrize("name", CHECKS)
def test_the_files_pass(name):
    check, files = CHECKS[name][:2]
    proc = check(*files())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert name not in QUIET or proc.stdout == "", f"{name} findings:\n{proc.stdout}"


@pytest.mark.parametrize("name", CHECKS)
def test_a_broken_copy_fails(name, tmp_path):
    check, _, path, old, new, complaint = CHECKS[name]
    proc = check(broken_copy(tmp_path, path(), old, new))
    assert proc.returncode != 0 and complaint in proc.stdout, proc.stdout + proc.stderr


def test_kubeconform_validates_every_object():
    # Not skipped for want of a schema, and every document counted.
    count = len(k8s_objects())
    summary = f"{count} resources found in {len(K8S_FILES)} files - Valid: {count}, Invalid: 0, Errors: 0, Skipped: 0"
    proc = kubeconform(*K8S_FILES)
    assert summary in proc.stdout, proc.stdout + proc.stderr


def test_compose_prometheus_config_is_valid():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: run scripts/setup.sh (scripts/monitoring-setup.sh)", pytrace=False)
    proc = run(promtool, "check", "config", str(COMPOSE_DIR / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
