#!/usr/bin/env bash
# deploy/local/status.sh: one line per service of the local stack (running or
# stopped, pid, port, health). Exit 0 if all three are up and healthy, else 1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

down=0
line() { printf '%-9s %-8s pid=%-8s port=%-6s %s\n' "$@"; }

# kafka: process alive + port open + broker log says started
if pid=$(pid_of kafka) && port_open "$KAFKA_PORT" \
   && grep -q "Kafka Server started" "$SHOPFLOW_STATE_DIR/kafka/logs/server.log" 2>/dev/null; then
  line kafka running "$pid" "$KAFKA_PORT" "controller=$KAFKA_CONTROLLER_PORT bootstrap=127.0.0.1:$KAFKA_PORT"
else
  line kafka stopped "${pid:--}" "$KAFKA_PORT" "log: $SHOPFLOW_STATE_DIR/kafka/logs/server.log"; down=1
fi
pid=

# postgres: pg_isready on the port; pid from postmaster.pid
ppid=-; [[ -f "$PG_DATA/postmaster.pid" ]] && ppid=$(head -1 "$PG_DATA/postmaster.pid")
if pg_bin && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
  line postgres running "$ppid" "$PG_PORT" "db=$PG_DB url=postgresql://postgres@127.0.0.1:$PG_PORT/$PG_DB"
else
  line postgres stopped "$ppid" "$PG_PORT" "log: $SHOPFLOW_STATE_DIR/pg/postgres.log"; down=1
fi

# s3: moto answers HTTP 200 on /
if pid=$(pid_of s3) && [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/")" == 200 ]]; then
  line s3 running "$pid" "$S3_PORT" "endpoint=http://127.0.0.1:$S3_PORT bucket=$S3_BUCKET"
else
  line s3 stopped "${pid:--}" "$S3_PORT" "log: $SHOPFLOW_STATE_DIR/s3/moto.log"; down=1
fi
exit "$down"
