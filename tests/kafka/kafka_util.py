"""Helpers of the Kafka suite: run shopflow against the test broker, read topics."""

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

TABLES = ["agg_funnel_5min", "agg_sales_minute", "agg_top_products_hour", "dim_currency",
          "dim_product", "dim_time", "dim_user", "dq_conflicts", "fact_cart", "fact_clicks",
          "fact_order_items", "fact_orders"]
TOPICS = ["clicks", "carts", "purchases", "fx_rates", "products", "users"]
ROOT = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("TEST_KAFKA_PORT", "29192"))
CONTROLLER_PORT = int(os.environ.get("TEST_KAFKA_CONTROLLER_PORT", "29193"))
PG_PORT = int(os.environ.get("TEST_PG_PORT", "25532"))
S3_PORT = int(os.environ.get("TEST_S3_PORT", "29100"))
S3_BUCKET = "shopflow-lake-test"


class Broker:
    """The test broker: its address, and a way to restart it."""

    def __init__(self):
        self.state = Path(f"/tmp/shopflow-kafka-test-{os.getpid()}")
        self.env = dict(os.environ, SHOPFLOW_STATE_DIR=str(self.state), KAFKA_PORT=str(PORT),
                        KAFKA_CONTROLLER_PORT=str(CONTROLLER_PORT), PG_PORT=str(PG_PORT),
                        S3_PORT=str(S3_PORT), S3_BUCKET=S3_BUCKET)
        self.brokers = f"127.0.0.1:{PORT}"

    def script(self, name, service="kafka"):
        proc = subprocess.run([str(ROOT / "deploy/local" / name), service], env=self.env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{name} {service} failed:\n{proc.stdout}\n{proc.stderr}"

    def up(self):
        self.script("up.sh")

    def down(self):
        self.script("down.sh")


def run_env(broker, prefix, **extra):
    """Environment for `shopflow run` on the test broker, isolated by topic prefix and group."""
    env = dict(os.environ, RUST_LOG="info", SHOPFLOW_KAFKA_BROKERS=broker.brokers,
               SHOPFLOW_KAFKA_TOPIC_PREFIX=prefix, SHOPFLOW_KAFKA_GROUP_ID=f"{prefix}shopflow",
               SHOPFLOW_RUN_CONSOLE="false", SHOPFLOW_METRICS_LISTEN="",
               SHOPFLOW_DASHBOARD_LISTEN="127.0.0.1:0")
    env.update({f"SHOPFLOW_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def sf(binary, args, env, timeout=600):
    """Runs shopflow to completion; fails with its stderr on a non-zero exit."""
    proc = subprocess.run([binary, *map(str, args)], env=env, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, (f"shopflow {' '.join(map(str, args))} exited {proc.returncode}:\n"
                                  + proc.stderr.decode(errors="replace")[-4000:])
    return proc


def key_of(topic, line):
    """The key `generate --kafka` uses, or None for a line without one."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    field = {"products": "product_id", "users": "user_id"}.get(topic, "session_id")
    if topic == "fx_rates":
        cur, date = record.get("currency"), record.get("date")
        return f"{cur}/{date}" if isinstance(cur, str) and isinstance(date, str) else None
    value = record.get(field)
    return value if isinstance(value, str) else None


def interleave(lines_by_topic):
    """(topic, line) pairs with the files merged by relative position, as the
    generator emitted them: a real shop produces to every topic at once, and a
    topic left silent past the idle timeout would let the watermark run ahead."""
    pairs = []
    for topic, lines in lines_by_topic.items():
        pairs.extend(((i + 1) / len(lines), topic, line) for i, line in enumerate(lines))
    pairs.sort(key=lambda p: (p[0], p[1]))
    return [(topic, line) for _, topic, line in pairs]


def produce_lines(brokers, prefix, lines_by_topic):
    """Produces lines to `prefix + topic` interleaved across topics, keyed like
    `generate --kafka`; waits for delivery."""
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True,
                         "linger.ms": 5})
    failures = []
    for topic, line in interleave(lines_by_topic):
        key = key_of(topic, line)
        while True:
            try:
                producer.produce(prefix + topic, line, key,
                                 on_delivery=lambda err, _m: err and failures.append(err))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    assert left == 0 and not failures, f"{left} undelivered, failures {failures[:3]}"


def read_topic(brokers, topic, partitions=1):
    """Every message of a topic, from the beginning to its current end."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"reader-{time.time_ns()}",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out, ended, deadline = [], set(), time.time() + 60
    while len(ended) < partitions:
        assert time.time() < deadline, f"{topic}: did not reach the end in 60 s"
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
            ended.add(msg.partition())
            continue
        out.append(msg)
    consumer.close()
    return out


def message_at(brokers, topic, partition, offset):
    """The payload at one offset."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"at-{time.time_ns()}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, partition, offset)])
    deadline = time.time() + 30
    try:
        while time.time() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                return msg.value()
        raise AssertionError(f"no message at {topic}/{partition}@{offset}")
    finally:
        consumer.close()


def lag(brokers, group, topics_partitions):
    """Per (topic, partition): log end offset minus the group's committed offset."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group,
                         "enable.auto.commit": False})
    tps = [TopicPartition(t, p) for t, n in topics_partitions for p in range(n)]
    committed = consumer.committed(tps, timeout=30)
    out = {}
    for tp in committed:
        _low, high = consumer.get_watermark_offsets(tp, timeout=30)
        out[(tp.topic, tp.partition)] = high - (tp.offset if tp.offset >= 0 else 0)
    consumer.close()
    return out


def metrics(port):
    """The /metrics text of a running shopflow, parsed to {name{labels}: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            number = float(value)  # seconds and histogram sums are not integers
            out[name] = int(number) if number.is_integer() else number
    return out


def total(values, name):
    """Sum of a metric over its labels."""
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))


def wait_for(condition, what, timeout=120, every=0.25):
    """Polls `condition` until it returns a truthy value; fails saying `what` after `timeout`."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = condition()
        except OSError as e:  # the endpoint may not be up yet
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def stop(proc, timeout=120):
    """SIGTERM, then wait for a clean exit; returns stderr."""
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"shopflow run exited {proc.returncode}:\n{err.decode()[-4000:]}"
    return err.decode()
