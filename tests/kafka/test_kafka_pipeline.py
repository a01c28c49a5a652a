"""`shopflow run` against a real Kafka broker.

- A generated data set (duplicates, late events within the allowed lateness,
  malformed lines) produced with `generate --kafka` and consumed by `run` until
  idle gives exactly the tables `replay --output-csv` gives for the same files.
- Every malformed line is in `dead_letters` with its reason and origin, counted exactly.
- Offsets are committed: after a clean stop the consumer group has no lag.
- The broker restarted in the middle of a stream: nothing lost, nothing doubled.
"""

import collections
import json
import re
import socket
import subprocess
import urllib.request

import pytest

from kafka_util import (TABLES, TOPICS, lag, message_at, metrics, produce_lines, read_topic,
                        run_env, sf, stop, total, wait_for)
from shopflow_cli import read_lines

PARTITIONS = 4
FAULTS = ["--duplicates", "0.01", "--late", "0.05", "--max-delay", "2m", "--malformed", "0.005"]


def same_tables(a, b):
    """Every CSV table of two output directories, compared byte for byte."""
    for table in TABLES:
        left, right = (d / f"{table}.csv" for d in (a, b))
        assert left.read_bytes() == right.read_bytes(), (
            f"{table}.csv differs between {a.name} and {b.name}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_run(broker, shopflow, tmp_path_factory):
    """Generates into files and Kafka at once, then runs the pipeline until idle."""
    work = tmp_path_factory.mktemp("live")
    prefix = "t1."
    env = run_env(broker, prefix, kafka_start="earliest", run_exit_when_idle_ms=3000,
                  run_output_csv=work / "live", dataflow_workers=2)
    sf(shopflow, ["topics", "create"], env)
    sf(shopflow, ["generate", "--seed", "11", "--events", "30000", *FAULTS,
                        "--out-dir", work / "gen", "--kafka", broker.brokers,
                        "--topic-prefix", prefix], env)
    sf(shopflow, ["run"], env)
    sf(shopflow, ["replay", "--input", work / "gen", "--output-csv", work / "replay"], env)
    return work, prefix, env


def test_live_run_equals_replay(live_run):
    work, _, _ = live_run
    manifest = json.loads((work / "gen/manifest.json").read_text())
    assert sum(manifest["faults"]["late"].values()) > 100, "the data set must have late events"
    assert sum(manifest["faults"]["duplicates"].values()) > 100
    orders = read_lines(work / "live/fact_orders.csv")
    assert len(orders) > 100, "too few orders to mean anything"
    same_tables(work / "live", work / "replay")


def test_every_malformed_message_is_a_dead_letter(live_run, broker):
    work, prefix, _ = live_run
    manifest = json.loads((work / "gen/manifest.json").read_text())
    expected = manifest["faults"]["malformed_by_reason"]
    letters = read_topic(broker.brokers, prefix + "dead_letters")
    by_reason = collections.Counter(dict(m.headers())["reason"].decode() for m in letters)
    assert dict(by_reason) == expected
    for m in letters[:40]:
        h = {k: v.decode() for k, v in m.headers()}
        assert h["source_topic"].removeprefix(prefix) in TOPICS
        assert h["message"] and h["field"]
        original = message_at(broker.brokers, h["source_topic"], int(h["source_partition"]),
                              int(h["source_offset"]))
        assert original == m.value(), "a dead letter must carry the message as received"


def test_offsets_are_committed_after_a_clean_stop(live_run, broker):
    _, prefix, _ = live_run
    counts = [(prefix + t, PARTITIONS if t in ("clicks", "carts", "purchases") else 1)
              for t in TOPICS]
    lags = lag(broker.brokers, f"{prefix}shopflow", counts)
    assert len(lags) == 3 * PARTITIONS + 3
    assert all(v == 0 for v in lags.values()), lags


def test_a_broker_restart_mid_stream_loses_nothing(broker, shopflow, tmp_path):
    prefix = "t3."
    port = free_port()
    env = run_env(broker, prefix, kafka_start="earliest", run_output_csv=tmp_path / "live",
                  metrics_listen=f"127.0.0.1:{port}", dataflow_workers=2)
    sf(shopflow, ["generate", "--seed", "12", "--events", "20000", *FAULTS,
                        "--out-dir", tmp_path / "gen"], env)
    sf(shopflow, ["topics", "create"], env)
    lines = {t: read_lines(tmp_path / "gen" / f"{t}.jsonl") for t in TOPICS}
    first = {t: ls[: len(ls) // 2] for t, ls in lines.items()}
    second = {t: ls[len(ls) // 2:] for t, ls in lines.items()}
    produce_lines(broker.brokers, prefix, first)
    proc = subprocess.Popen([shopflow, "run"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        half = sum(map(len, first.values()))
        wait_for(lambda: total(metrics(port), "shopflow_messages_total") == half,
                 f"run to consume the first {half} messages")
        broker.down()
        broker.up()
        produce_lines(broker.brokers, prefix, second)
        every = sum(map(len, lines.values()))
        wait_for(lambda: total(metrics(port), "shopflow_messages_total") == every,
                 f"run to consume all {every} messages after the restart")
        seen = metrics(port)
        manifest = json.loads((tmp_path / "gen/manifest.json").read_text())
        assert total(seen, "shopflow_invalid_total") == sum(manifest["faults"]["malformed"].values())
    finally:
        if proc.poll() is None:
            stop(proc)
    assert proc.returncode == 0
    sf(shopflow, ["replay", "--input", tmp_path / "gen", "--output-csv", tmp_path / "replay"], env)
    same_tables(tmp_path / "live", tmp_path / "replay")
    letters = read_topic(broker.brokers, prefix + "dead_letters")
    assert len(letters) == sum(manifest["faults"]["malformed"].values()), "no dead letter lost or doubled"


def test_configuration_problems_are_reported_at_once(shopflow, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[kafka]\nbatch = "lots"\nstart = "middle"\n[dataflow]\ntick_ms = 7\n[nope]\nx = 1\n')
    env = run_env(type("B", (), {"brokers": "127.0.0.1:1"})(), "x.", kafka_group_idd="y")
    proc = subprocess.run([shopflow, "run", "--config", bad], env=env, capture_output=True,
                          timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    for needle in ["kafka.batch", "kafka.start", "tick_ms", "nope.x", "SHOPFLOW_KAFKA_GROUP_IDD"]:
        assert needle in err, f"{needle} not reported:\n{err}"
    assert "5 problem(s)" in err, err


def consumed(stderr):
    """The message count of `run`'s closing log line."""
    match = re.search(r"stopped messages=(\d+)", stderr)
    assert match, f"no closing line in:\n{stderr[-2000:]}"
    return int(match.group(1))


def test_start_positions_committed_and_latest(broker, shopflow, tmp_path):
    prefix = "t5."
    env = run_env(broker, prefix, run_exit_when_idle_ms=2500, dataflow_workers=2)
    sf(shopflow, ["generate", "--seed", "13", "--events", "4000", "--out-dir", tmp_path / "gen"], env)
    sf(shopflow, ["topics", "create"], env)
    lines = {t: read_lines(tmp_path / "gen" / f"{t}.jsonl") for t in TOPICS}
    first = {t: ls[: len(ls) // 2] for t, ls in lines.items()}
    second = {t: ls[len(ls) // 2:] for t, ls in lines.items()}
    produce_lines(broker.brokers, prefix, first)
    # Reference topics (compacted tables) are always read whole; event
    # partitions follow the start position.
    reference = sum(len(lines[t]) for t in ("fx_rates", "products", "users"))
    events = lambda half: sum(len(half[t]) for t in ("clicks", "carts", "purchases"))
    # Nothing committed yet: `committed` starts at the beginning.
    run1 = sf(shopflow, ["run"], dict(env, SHOPFLOW_KAFKA_START="committed"))
    assert consumed(run1.stderr.decode()) == sum(map(len, first.values()))
    produce_lines(broker.brokers, prefix, second)
    # A restart resumes the events exactly after what the first run committed.
    run2 = sf(shopflow, ["run"], dict(env, SHOPFLOW_KAFKA_START="committed"))
    assert consumed(run2.stderr.decode()) == events(second) + reference
    # `latest` skips every event already there (a fresh group, to be sure).
    run3 = sf(shopflow, ["run"], dict(env, SHOPFLOW_KAFKA_START="latest",
                                      SHOPFLOW_KAFKA_GROUP_ID=f"{prefix}other"))
    assert consumed(run3.stderr.decode()) == reference


def test_backpressure_pauses_and_loses_nothing(broker, shopflow, tmp_path):
    prefix = "t6."
    env = run_env(broker, prefix, kafka_start="earliest", run_exit_when_idle_ms=3000,
                  run_output_csv=tmp_path / "live", kafka_max_in_flight=500, kafka_batch=200,
                  metrics_listen="", dataflow_workers=2)
    sf(shopflow, ["topics", "create"], env)
    sf(shopflow, ["generate", "--seed", "14", "--events", "20000", *FAULTS,
                  "--out-dir", tmp_path / "gen", "--kafka", broker.brokers,
                  "--topic-prefix", prefix], env)
    run = sf(shopflow, ["run"], dict(env, SHOPFLOW_LOG="info,shopflow_connectors=debug"))
    pauses = run.stderr.decode().count("paused partitions")
    assert pauses > 0, "a small max_in_flight must make the source pause"
    sf(shopflow, ["replay", "--input", tmp_path / "gen", "--output-csv", tmp_path / "replay"], env)
    same_tables(tmp_path / "live", tmp_path / "replay")


def test_fx_poller_publishes_the_api_rates_into_the_pipeline(broker, shopflow, tmp_path):
    prefix = "t7."
    port = free_port()
    server = subprocess.Popen([shopflow, "fx-server", "--listen", f"127.0.0.1:{port}",
                               "--seed", "5", "--from", "2026-11-01"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        env = run_env(broker, prefix, kafka_start="earliest", run_exit_when_idle_ms=4000,
                      fx_url=f"http://127.0.0.1:{port}", fx_interval_ms=500,
                      fx_backoff_ms=100, dataflow_workers=1)
        sf(shopflow, ["topics", "create"], env)
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/currencies",
                                                timeout=2).status == 200, "fx-server to listen", 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/latest", timeout=5) as r:
            latest = json.load(r)
        sf(shopflow, ["run"], env)
    finally:
        server.terminate()
        server.wait(30)
    records = [json.loads(m.value()) for m in read_topic(broker.brokers, prefix + "fx_rates")]
    published = {(r["currency"], r["date"]): r["rate"] for r in records}
    expected = {(c, latest["date"]): rate for c, rate in latest["rates"].items() if c != "USD"}
    assert published == expected, "each rate once, exactly as served"
