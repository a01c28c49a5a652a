# shopflow's task runner. `make test` is the one command that checks everything;
# .ci/run calls it. Caches live outside the repo, under $(HOME)/.cache/shopflow,
# so a fresh clone reuses earlier builds and downloads.

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/shopflow
export CARGO_TARGET_DIR ?= $(CACHE)/target
VENV ?= $(CACHE)/venv
PYTEST := $(VENV)/bin/pytest
BIN_DEBUG := $(CARGO_TARGET_DIR)/debug/shopflow

.PHONY: test setup lint unit schema bench demo clean-cache

## Run every check: format, lints, Rust tests, schema agreement.
test: setup lint unit schema
	@echo "make test: all checks passed"

## Install what the tests need (idempotent, cached under $(CACHE)).
setup:
	@scripts/setup.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

unit:
	cargo test --workspace --locked

## JSON Schemas vs the Rust validator (needs the debug binary built by `unit`).
schema:
	cargo build --locked --bin shopflow
	SHOPFLOW_BIN=$(BIN_DEBUG) $(PYTEST) -q -p no:cacheprovider tests/schemas

## Criterion benchmarks (slow; not part of `test`).
bench:
	cargo bench --workspace --locked

clean-cache:
	rm -rf $(CACHE)
