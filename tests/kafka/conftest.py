"""One real Kafka broker for the whole Kafka suite, started by deploy/local/up.sh.

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


class Broker:
    """The test broker: its address, and a way to restart it."""

    def __init__(self):
        self.state = Path(f"/tmp/shopflow-kafka-test-{os.getpid()}")
        self.env = dict(os.environ, SHOPFLOW_STATE_DIR=str(self.state), KAFKA_PORT=str(PORT),
                        KAFKA_CONTROLLER_PORT=str(CONTROLLER_PORT))
        self.brokers = f"127.0.0.1:{PORT}"

    def script(self, name):
        proc = subprocess.run([str(ROOT / "deploy/local" / name), "kafka"], env=self.env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{name} kafka failed:\n{proc.stdout}\n{proc.stderr}"

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
