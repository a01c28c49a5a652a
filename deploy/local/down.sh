#!/usr/bin/env bash
# deploy/local/down.sh [kafka|postgres|s3 ...]: stop the local stack started by
# up.sh (default: all three). Data stays in $SHOPFLOW_STATE_DIR; safe to rerun.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_pg() {
  if ! pg_bin || [[ ! -f "$PG_DATA/PG_VERSION" ]]; then log "postgres: not initialized here"; return 0; fi
  if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    log "postgres: stopping"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null \
      || die "postgres: pg_ctl stop failed" "see $SHOPFLOW_STATE_DIR/pg/postgres.log; last resort: pg_ctl -m immediate stop"
  else
    log "postgres: not running"
  fi
}

services=("$@"); (( ${#services[@]} )) || services=(kafka s3 postgres)
for s in "${services[@]}"; do
  case "$s" in
    kafka) stop_pid kafka ;;
    s3|moto) stop_pid s3 ;;
    postgres|pg) stop_pg ;;
    *) die "unknown service '$s'" "use any of: kafka postgres s3 (none = all)" ;;
  esac
done
log "stack down (data kept in $SHOPFLOW_STATE_DIR; rm -rf it to start from scratch)"
