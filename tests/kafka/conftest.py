"""One real Kafka broker and one real PostgreSQL for the whole suite, started
by deploy/local/up.sh.

The broker runs on its own ports and state dir (never a developer's stack);
each test isolates itself with a topic prefix and a consumer group of its own.
"""

import shutil

import pytest

from kafka_util import PG_PORT, S3_BUCKET, S3_PORT, Broker


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
