#!/usr/bin/env bash
# Proves the local stack scripts install, start, report and stop Kafka,
# PostgreSQL and the S3 endpoint on this machine (ports apart from a
# developer's own stack), then tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
export KAFKA_PORT="${CHECK_KAFKA_PORT:-29092}" KAFKA_CONTROLLER_PORT="${CHECK_KAFKA_CONTROLLER_PORT:-29093}"
export PG_PORT="${CHECK_PG_PORT:-25432}" S3_PORT="${CHECK_S3_PORT:-29000}"
# Not mktemp -d: its mode 0700 would keep the postgres user out.
export SHOPFLOW_STATE_DIR="/tmp/shopflow-stack-check-$$"
mkdir -p "$SHOPFLOW_STATE_DIR"
trap 'deploy/local/down.sh >/dev/null 2>&1 || true; rm -rf "$SHOPFLOW_STATE_DIR"' EXIT
deploy/local/up.sh
deploy/local/status.sh
deploy/local/down.sh
if deploy/local/status.sh >/dev/null; then
  echo "stack-check: services still running after down.sh" >&2
  exit 1
fi
echo "stack-check: up, status and down all behaved"
