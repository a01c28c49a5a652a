"""Fixtures shared by the Python test suites (schemas, replay)."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def shopflow():
    """Path to the shopflow binary under test, from SHOPFLOW_BIN (never skipped)."""
    value = os.environ.get("SHOPFLOW_BIN")
    if not value:
        pytest.fail("SHOPFLOW_BIN is not set: build shopflow, then "
                    "SHOPFLOW_BIN=<target>/shopflow pytest tests/...", pytrace=False)
    path = Path(value).resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"SHOPFLOW_BIN={value} is not an executable file (build it first)", pytrace=False)
    return str(path)
