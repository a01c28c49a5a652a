"""One real Kafka broker and one real PostgreSQL for the whole suite, started
by deploy/local/up.sh.

The broker runs on its own ports and state dir (never a developer's stack);
each test isolates itself with a topic prefix and a consumer group of its own.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def broker():
    b = Broker()
    b.state.mkdir(parents=True, exist_ok=True)
    b.up()
    try:
        yield b
    finally:
        b.down()
        shutil.rmtree(b.state, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(broker):
    """PostgreSQL in the broker's state dir; yields its URL (database shopflow)."""
    broker.script("up.sh", "postgres")
    try:
        yield f"postgresql://postgres@127.0.0.1:{PG_PORT}/shopflow"
    finally:
        broker.script("down.sh", "postgres")


@pytest.fixture(scope="session")
def s3(broker):
    """A moto S3 server with one bucket; yields (endpoint, bucket). Tests
    isolate themselves by key prefix."""
    broker.script("up.sh", "s3")
    try:
        yield f"http://127.0.0.1:{S3_PORT}", S3_BUCKET
    finally:
        broker.script("down.sh", "s3")
