"""The image and the workflow beyond their linters: the runtime stage is not
root and checks /healthz where shopflow serves it, .dockerignore keeps every
file cargo reads in the build context, and CI runs the README's command with
caches, on the same Rust the image is built with."""

import re
import tomllib
from fnmatch import fnmatch

import yaml

from opsfiles import DOCKERFILE, DOCKERIGNORE, METRICS_PORT, ROOT, WORKFLOW


def final_stage():
    """The Dockerfile's instructions after its last FROM, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def test_runtime_stage_is_slim_non_root_and_checks_healthz():
    stage = final_stage()
    assert "slim" in stage[0], stage[0]
    user = [line.split()[1] for line in stage if line.startswith("USER ")][-1]
    assert user.split(":")[0] not in ("0", "root"), user
    (env,) = [line for line in stage if line.startswith("ENV SHOPFLOW_METRICS_LISTEN=")]
    assert env.endswith(f"=0.0.0.0:{METRICS_PORT}"), env
    (check,) = [line for line in stage if line.startswith("HEALTHCHECK ")]
    assert f"http://127.0.0.1:{METRICS_PORT}/healthz" in check, check


def ignored(path, patterns):
    parts = path.split("/")
    return any(fnmatch(path, p) or fnmatch(parts[0], p)
               or (p.startswith("**/") and any(fnmatch(part, p[3:]) for part in parts))
               for p in patterns)


def test_dockerignore_keeps_what_cargo_reads():
    patterns = [l.strip() for l in DOCKERIGNORE.read_text().splitlines() if l.strip() and not l.startswith("#")]
    members = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    needed = {"Cargo.toml", "Cargo.lock", "src/main.rs", "benches"} | {f"{m}/Cargo.toml" for m in members if m != "."}
    # Files compiled into the binary (include_str!, include_bytes!) by any crate of the workspace.
    for source in (path for m in members for path in (ROOT / m / "src").rglob("*.rs")):
        for target in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', source.read_text()):
            needed.add(str((source.parent / target).resolve().relative_to(ROOT)))
    assert "sql/V001__star_schema.sql" in needed  # the scan above found the migrations
    hidden = sorted(p for p in needed if ignored(p, patterns))
    assert hidden == [], f".dockerignore hides files the build reads: {hidden}"


def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


def test_ci_runs_make_test_with_caches():
    test = workflow()["jobs"]["test"]
    assert [s["run"] for s in test["steps"] if "run" in s][-1] == "make test"
    (cache,) = [s for s in test["steps"] if s.get("uses", "").startswith("actions/cache@")]
    assert "~/.cache/shopflow" in cache["with"]["path"].split()
    assert "Cargo.lock" in cache["with"]["key"]


def test_ci_tests_with_the_rust_the_image_is_built_with():
    image = workflow()["jobs"]["test"]["container"]["image"]
    builder = re.search(r"^FROM (rust:\S+)", DOCKERFILE.read_text(), re.M)[1]
    assert image.split(":")[1].split("-")[0] == builder.split(":")[1].split("-")[0], (image, builder)


def test_release_builds_the_image_after_the_tests_on_tags_only():
    release = workflow()["jobs"]["release"]
    assert release["needs"] == "test"
    assert "refs/tags/v" in release["if"]
    (build,) = [s for s in release["steps"] if s.get("uses", "").startswith("docker/build-push-action@")]
    assert build["with"]["context"] == "."  # the Dockerfile at the repository root
    assert release["permissions"]["packages"] == "write"
