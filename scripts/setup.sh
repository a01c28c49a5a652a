#!/usr/bin/env bash
# Installs everything `make test` needs on a fresh Debian machine, idempotently.
# Downloads are cached under ${SHOPFLOW_CACHE:-$HOME/.cache/shopflow}.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SHOPFLOW_CACHE:-$HOME/.cache/shopflow}"
mkdir -p "$cache"

# Rust toolchain components used by the lint step.
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }

# Python virtualenv for the schema agreement tests; rebuilt when requirements change.
venv="$cache/venv"
req=tests/schemas/requirements.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/pytest" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating Python venv in $venv"
  python3 -m venv "$venv"
  PIP_CACHE_DIR="$cache/pip" "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
# Prometheus, promtool, Alertmanager and amtool (Debian packages) for `make monitoring`
# and tests/kafka/test_monitoring.py; their services are not left running.
scripts/monitoring-setup.sh
# Airflow for the DAG tests (tests/kafka/test_airflow.py, tests/airflow), in its own venv.
scripts/airflow-setup.sh

echo "setup: ok"
