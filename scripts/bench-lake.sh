#!/usr/bin/env bash
# Replay throughput from the lake (issue 6): `shopflow replay --from --to` over
# one day of generated traffic, from a local directory and from a moto S3
# server, computing only (the dataflow's aggregates) and with the warehouse
# write. Prints a table and the machine. Run with `make bench-lake`.
#   EVENTS (default 1000000), WORKERS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/shopflow/target}"
bin="$target/release/shopflow"
fill="$target/release/examples/lake_fill"
events="${EVENTS:-1000000}"
workers="${WORKERS:-2}"
work="$(mktemp -d /tmp/shopflow-bench-lake.XXXXXX)"
chmod 755 "$work"  # PostgreSQL runs as its own user
export SHOPFLOW_STATE_DIR="$work/state" S3_PORT=29300 PG_PORT=29301 S3_BUCKET=shopflow-bench
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export SHOPFLOW_LOG=warn SHOPFLOW_LAKE_S3_ENDPOINT=http://127.0.0.1:29300
trap 'deploy/local/down.sh s3 postgres >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir -p "$SHOPFLOW_STATE_DIR"
deploy/local/up.sh s3 postgres >/dev/null

day=2026-11-24
"$bin" generate --seed 9 --events "$events" --rate 500 --duplicates 0.01 --late 0.05 \
  --max-delay 2m --out-dir "$work/gen" >/dev/null 2>&1
echo "fill local: $("$fill" "$work/gen" "$work/lake")"
echo "fill s3:    $("$fill" "$work/gen" "s3://$S3_BUCKET/bench" "http://127.0.0.1:$S3_PORT")"
db="postgresql://postgres@127.0.0.1:$PG_PORT/shopflow"

row() { # label, replay args...
  local label="$1"; shift
  local t0 t1 out valid
  t0=$(date +%s.%N)
  out=$("$bin" replay --from "$day" --to "$day" --workers "$workers" "$@")
  t1=$(date +%s.%N)
  valid=$(printf '%s\n' "$out" | awk '/messages by topic/{f=1;next} /rejected by reason/{f=0} f && ($1=="clicks"||$1=="carts"||$1=="purchases"){s+=$2} END{print s+0}')
  awk -v l="$label" -v n="$valid" -v a="$t0" -v b="$t1" \
    'BEGIN{printf "| %-34s | %10d | %8.2f | %12.0f |\n", l, n, b-a, n/(b-a)}'
}

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); workers=$workers"
echo "| replay of one day                  |     events |  seconds |     events/s |"
echo "|---|---:|---:|---:|"
row "local dir, aggregates only" --lake "$work/lake"
row "moto S3, aggregates only" --lake "s3://$S3_BUCKET/bench"
row "local dir, with the warehouse" --lake "$work/lake" --database-url "$db" --schema bench
row "local dir, warehouse again (no-op)" --lake "$work/lake" --database-url "$db" --schema bench
