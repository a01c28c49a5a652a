# shopflow's task runner. `make test` is the one command that checks everything;
# .ci/run calls it. Caches live outside the repo, under $(HOME)/.cache/shopflow,
# so a fresh clone reuses earlier builds and downloads.

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/shopflow
export CARGO_TARGET_DIR ?= $(CACHE)/target
VENV ?= $(CACHE)/venv
PYTEST := $(VENV)/bin/pytest
BIN_DEBUG := $(CARGO_TARGET_DIR)/debug/shopflow
BIN_RELEASE := $(CARGO_TARGET_DIR)/release/shopflow

.PHONY: test setup lint unit schema replay browser stack kafka monitoring ops airflow bench bench-kafka bench-ws bench-lake bench-race demo clean-cache

## Run every check: format, lints, Rust tests, schema agreement, replay vs recomputation.
test: setup monitoring ops lint unit schema replay browser stack airflow kafka
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

## `shopflow replay` vs an independent Python recomputation (release binary: the run is heavy).
replay:
	cargo build --release --locked --bin shopflow
	SHOPFLOW_BIN=$(BIN_RELEASE) $(PYTEST) -q -p no:cacheprovider tests/replay

## The dashboard in a real headless Chromium (playwright-core) against `shopflow demo`;
## the screenshot lands in tests/browser/artifacts/.
browser:
	cargo build --release --locked --bin shopflow
	scripts/browser-setup.sh
	SHOPFLOW_BIN=$(BIN_RELEASE) node tests/browser/dashboard.test.mjs

## Offline checks of deploy/monitoring (seconds, no binary): promtool check config/rules,
## promtool unit tests of every alert, amtool check-config and routes, the Grafana
## dashboard's queries against the declared metrics, docs/metrics.md against the code.
## The live alert test is tests/kafka/test_monitoring.py (in `make kafka`).
monitoring: setup
	$(PYTEST) -q -p no:cacheprovider tests/monitoring

## Offline checks of the container, compose, Kubernetes and CI files (seconds, no Docker
## engine): hadolint, the compose-spec schema, kubeconform with local schemas, actionlint,
## each shown failing on a broken copy, and the names the files must agree on (docs/deploy.md).
ops: setup
	scripts/ops-check-setup.sh
	$(PYTEST) -q -p no:cacheprovider tests/ops

## The local stack scripts (deploy/local/) install, start and stop Kafka, PostgreSQL and S3.
stack:
	scripts/stack-check.sh

## The Airflow DAGs' integrity (imports, graph, owners, retries, docs), without services.
## Their end-to-end tests run with `kafka` (tests/kafka/test_airflow.py), sharing its services.
airflow: setup
	$(PYTEST) -q -p no:cacheprovider tests/airflow

## `shopflow run` against a real Kafka broker started by deploy/local/up.sh (own ports and state dir).
kafka:
	cargo build --release --locked --bin shopflow
	SHOPFLOW_BIN=$(BIN_RELEASE) $(PYTEST) -q -p no:cacheprovider tests/kafka

## Replay throughput from the lake: local directory and moto S3, with and without the warehouse.
bench-lake: setup
	cargo build --release --locked --bin shopflow
	cargo build --release --locked -p shopflow-connectors --example lake_fill
	scripts/bench-lake.sh

## The race: `shopflow replay` against DuckDB's SQL on the same generated files
## (RACE_EVENTS, default 2,000,000); checks the tables agree, prints times and peak RSS.
bench-race: setup
	cargo build --release --locked --bin shopflow
	SHOPFLOW_BIN=$(BIN_RELEASE) $(VENV)/bin/python scripts/bench-race.py

## The live demo (Ctrl-C to stop).
demo:
	cargo run --release --locked -- demo

## Criterion benchmarks (slow; not part of `test`).
bench:
	cargo bench --workspace --locked

## End-to-end Kafka benchmark: produce rate, bare consumer, `run` ingest and lag (prints numbers).
bench-kafka: setup
	cargo build --release --locked --bin shopflow
	cargo build --release --locked -p shopflow-connectors --example consume_raw
	$(VENV)/bin/python scripts/bench-kafka.py

## Dashboard websocket benchmark: 200 clients on `shopflow demo` (prints latency and memory).
bench-ws: setup
	cargo build --release --locked --bin shopflow
	SHOPFLOW_BIN=$(BIN_RELEASE) $(VENV)/bin/python scripts/bench-ws.py

clean-cache:
	rm -rf $(CACHE)
