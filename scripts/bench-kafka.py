#!/usr/bin/env python3
"""End-to-end Kafka benchmark: prints numbers, asserts nothing.

1. Produce rate: `shopflow generate --kafka` at full speed (N events).
2. Practical limit: a bare librdkafka consumer (connectors/examples/consume_raw)
   reading and validating the same topics.
3. Sustained ingest of `shopflow run` over the same topics: events/s between
   10% and 90% of the backlog, from its /metrics.
4. Lag: `generate --kafka --realtime --rate R` (event time = wall clock) while
   `run` is live; the completed frontier's lag behind the wall clock, sampled
   every 250 ms after a warm-up (p50, p99). It includes the configured
   out-of-orderness (the watermark waits that long on purpose) and the tick.

Starts its own broker with deploy/local/up.sh (ports 29292/29293) unless
BENCH_BROKERS is set. Knobs: BENCH_EVENTS (default 500000), BENCH_RATE (2000),
BENCH_SECONDS (60), BENCH_WORKERS (2). Run it with `make bench-kafka`.
"""

import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/shopflow/target"))
BIN = TARGET / "release/shopflow"
RAW = TARGET / "release/examples/consume_raw"
EVENTS = int(os.environ.get("BENCH_EVENTS", "500000"))
RATE = int(os.environ.get("BENCH_RATE", "2000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
METRICS_PORT = 29464


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def metrics():
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name.split("{")[0]] = out.get(name.split("{")[0], 0) + float(value)
    return out


def run_env(brokers, prefix, **extra):
    env = dict(os.environ, SHOPFLOW_KAFKA_BROKERS=brokers, SHOPFLOW_KAFKA_TOPIC_PREFIX=prefix,
               SHOPFLOW_KAFKA_GROUP_ID=prefix + "bench", SHOPFLOW_RUN_CONSOLE="false",
               SHOPFLOW_METRICS_LISTEN=f"127.0.0.1:{METRICS_PORT}", SHOPFLOW_DASHBOARD_LISTEN="127.0.0.1:0",
               SHOPFLOW_DATAFLOW_WORKERS=str(WORKERS), SHOPFLOW_KAFKA_START="earliest")
    env.update({f"SHOPFLOW_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def wait_metrics(proc):
    deadline = time.time() + 60
    while time.time() < deadline:
        assert proc.poll() is None, "shopflow run exited early"
        try:
            return metrics()
        except OSError:
            time.sleep(0.2)
    raise SystemExit("shopflow run did not serve /metrics within 60 s")


def throughput(brokers):
    prefix = f"bench{int(time.time())}."
    env = run_env(brokers, prefix, run_exit_when_idle_ms=3000)
    subprocess.run([BIN, "topics", "create"], env=env, check=True, capture_output=True)
    log(f"producing {EVENTS} events to {prefix}* ...")
    gen = subprocess.run([BIN, "generate", "--seed", "1", "--events", str(EVENTS),
                          "--kafka", brokers, "--topic-prefix", prefix],
                         env=env, check=True, capture_output=True, text=True)
    produced = re.search(r"produced to Kafka messages=(\d+) seconds=\"([\d.]+)\" per_second=\"(\d+)\"",
                         gen.stderr)
    messages, produce_rate = int(produced.group(1)), int(produced.group(3))
    log("bare consumer ...")
    raw = {}
    for threads in (1, WORKERS):
        out = subprocess.run([RAW, brokers, prefix, str(threads)], check=True,
                             capture_output=True, text=True).stdout
        raw[threads] = int(re.search(r"per_second=(\d+)", out).group(1))
    log("shopflow run over the backlog ...")
    proc = subprocess.Popen([BIN, "run"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_metrics(proc)
    samples = []
    while proc.poll() is None:
        try:
            samples.append((time.time(), metrics().get("shopflow_messages_total", 0)))
        except OSError:
            break
        time.sleep(0.5)
    lo = next(s for s in samples if s[1] >= 0.1 * messages)
    hi = next((s for s in samples if s[1] >= 0.9 * messages), samples[-1])
    sustained = (hi[1] - lo[1]) / max(hi[0] - lo[0], 1e-9)
    return messages, produce_rate, raw, sustained


def latency(brokers):
    prefix = f"lat{int(time.time())}."
    env = run_env(brokers, prefix)
    subprocess.run([BIN, "topics", "create"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([BIN, "run"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_metrics(proc)
    log(f"realtime producer at {RATE}/s for {SECONDS} s ...")
    gen = subprocess.Popen([BIN, "generate", "--realtime", "--rate", str(RATE), "--duration",
                            f"{SECONDS}s", "--kafka", brokers, "--topic-prefix", prefix],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    warmup = time.time() + 15
    lags = []
    while gen.poll() is None:
        if time.time() > warmup:
            m = metrics()
            if m.get("shopflow_frontier_seconds"):
                lags.append((time.time() - m["shopflow_frontier_seconds"]) * 1000)
        time.sleep(0.25)
    proc.terminate()
    proc.wait(120)
    lags.sort()
    return lags


def main():
    brokers = os.environ.get("BENCH_BROKERS")
    state = Path("/tmp/shopflow-bench-kafka")
    stack_env = dict(os.environ, SHOPFLOW_STATE_DIR=str(state), KAFKA_PORT="29292",
                     KAFKA_CONTROLLER_PORT="29293")
    if not brokers:
        state.mkdir(parents=True, exist_ok=True)
        subprocess.run([ROOT / "deploy/local/up.sh", "kafka"], env=stack_env, check=True)
        brokers = "127.0.0.1:29292"
    try:
        messages, produce_rate, raw, sustained = throughput(brokers)
        lags = latency(brokers)
    finally:
        if not os.environ.get("BENCH_BROKERS"):
            subprocess.run([ROOT / "deploy/local/down.sh", "kafka"], env=stack_env)
    q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))] if lags else float("nan")
    print(f"messages                      {messages}")
    print(f"produce (generate --kafka)    {produce_rate:,} msg/s")
    print(f"bare consumer, 1 thread       {raw[1]:,} msg/s")
    print(f"bare consumer, {WORKERS} threads      {raw[WORKERS]:,} msg/s")
    print(f"shopflow run, {WORKERS} workers       {sustained:,.0f} msg/s sustained")
    print(f"frontier lag at {RATE}/s        p50 {q(0.5) / 1000:.2f} s, p99 {q(0.99) / 1000:.2f} s "
          f"({len(lags)} samples; includes 5 s out-of-orderness)")
    if lags:
        print(f"                              mean {statistics.mean(lags) / 1000:.2f} s")


if __name__ == "__main__":
    main()
