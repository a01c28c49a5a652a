#!/usr/bin/env bash
# Launch a shopflow cluster under its supervisor (docs/cluster.md).
#
#   deploy/cluster/launch.sh [-n PROCESSES] [-w WORKERS] [-p INDEX] [-h HOSTFILE] [-m PORT] -- run|replay ARGS...
#
# On one machine (no -p): starts all PROCESSES, writing a hostfile
# (127.0.0.1:2101+i) if HOSTFILE does not exist. On one host of a cluster
# spread over several (-p INDEX, HOSTFILE required): starts that process only;
# every host runs the same command with its own index. On one machine,
# process i of `run` serves /metrics and /healthz on 127.0.0.1:PORT+i
# (-m, default 9464; 0 keeps metrics.listen as configured).
#
# The supervisor restarts the whole cluster when any process fails, and stops
# it gracefully on SIGINT/SIGTERM. SHOPFLOW_BIN picks the binary (default:
# shopflow on PATH, else the release build of this checkout).
set -euo pipefail

processes=2 workers="" index="" hostfile="" metrics=""
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    -n) processes="$2"; shift 2 ;;
    -w) workers="$2"; shift 2 ;;
    -p) index="$2"; shift 2 ;;
    -h) hostfile="$2"; shift 2 ;;
    -m) metrics="$2"; shift 2 ;;
    --help) usage 0 ;;
    --) shift; break ;;
    *) echo "launch.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $# -gt 0 ]] || { echo "launch.sh: give the command after --, e.g. -- run --config shopflow.toml" >&2; exit 2; }

bin="${SHOPFLOW_BIN:-}"
if [[ -z "$bin" ]]; then
  if command -v shopflow >/dev/null; then
    bin=shopflow
  else
    root="$(cd "$(dirname "$0")/../.." && pwd)"
    bin="${CARGO_TARGET_DIR:-$HOME/.cache/shopflow/target}/release/shopflow"
    [[ -x "$bin" ]] || { echo "launch.sh: no shopflow binary; build it with: (cd $root && cargo build --release)" >&2; exit 2; }
  fi
fi

args=(supervise --processes "$processes")
[[ -n "$index" ]] && args+=(--process "$index")
[[ -n "$hostfile" ]] && args+=(--hostfile "$hostfile")
[[ -n "$metrics" ]] && args+=(--metrics-port "$metrics")
command=("$@")
[[ -n "$workers" ]] && command+=(--workers "$workers")
exec "$bin" "${args[@]}" -- "${command[@]}"
