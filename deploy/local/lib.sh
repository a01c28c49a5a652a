# deploy/local/lib.sh: shared settings and helpers for the local stack scripts
# (up.sh, down.sh, status.sh). Sourced, not run. All knobs are env variables.
# shellcheck shell=bash disable=SC2034 # variables are used by the sourcing scripts

SHOPFLOW_CACHE="${SHOPFLOW_CACHE:-$HOME/.cache/shopflow}"
SHOPFLOW_STATE_DIR="${SHOPFLOW_STATE_DIR:-$PWD/.stack}"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
PG_PORT="${PG_PORT:-5432}"
PG_DB="${PG_DB:-shopflow}"
S3_PORT="${S3_PORT:-9000}"
S3_BUCKET="${S3_BUCKET:-shopflow-lake}"
MOTO_SPEC="${MOTO_SPEC:-moto[server]}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"    # set JAVA_HOME to use another JDK (17+)
STACK_TIMEOUT="${STACK_TIMEOUT:-120}" # seconds each health check may take

# absolute (pid files, postgres run as another user); created by up.sh only
SHOPFLOW_STATE_DIR="$(realpath -m "$SHOPFLOW_STATE_DIR")"
KAFKA_HOME="$SHOPFLOW_CACHE/kafka-$KAFKA_VERSION" # libs/ = every runtime jar
MOTO_VENV="$SHOPFLOW_CACHE/moto-venv"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# die MESSAGE [HINT]: print what went wrong and what to do, exit 1.
die() {
  printf 'ERROR: %s\n' "$1" >&2
  [[ -n "${2:-}" ]] && printf '  what to do: %s\n' "$2" >&2
  exit 1
}
now() { date +%s; }

# port_open PORT: true if something accepts TCP on 127.0.0.1:PORT.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# wait_for DESC SECONDS CMD...: run CMD every 0.5 s until it succeeds or the
# deadline passes (then return 1). Never waits longer than SECONDS.
wait_for() {
  local desc="$1" secs="$2"; shift 2
  local deadline=$(( $(now) + secs ))
  until "$@"; do
    if (( $(now) >= deadline )); then
      log "timed out after ${secs}s waiting for $desc"
      return 1
    fi
    sleep 0.5
  done
}

# pid_of NAME: print the pid in $STATE/NAME.pid if that process is alive and
# its command line contains the pattern stored on the file's second line.
pid_of() {
  local f="$SHOPFLOW_STATE_DIR/$1.pid" pid pat
  [[ -f "$f" ]] || return 1
  { read -r pid; read -r pat; } <"$f" || true
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ -z "$pat" ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pat" || return 1
  echo "$pid"
}

# stop_pid NAME: TERM the recorded process, wait up to 30 s, then KILL.
stop_pid() {
  local name="$1" pid
  if ! pid="$(pid_of "$name")"; then
    log "$name: not running"
    rm -f "$SHOPFLOW_STATE_DIR/$name.pid"
    return 0
  fi
  log "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for "$name to exit" 30 bash -c "! kill -0 $pid 2>/dev/null"; then
    log "$name: still alive after 30 s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$SHOPFLOW_STATE_DIR/$name.pid"
}

# require_free_port SERVICE PORT VAR: fail with a hint if someone else holds PORT.
require_free_port() {
  if port_open "$2"; then
    die "$1: port $2 on 127.0.0.1 is already in use by another process" \
      "see it with: ss -ltnp 'sport = :$2'; stop it, or pick another port with $3=..."
  fi
}

# apt_install PKG...: install Debian packages (root only; apt-get update once).
apt_install() {
  (( EUID == 0 )) || die "need Debian packages $* and not root" "run as root, or: sudo apt-get install -y $*"
  log "apt: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z "${APT_UPDATED:-}" ]]; then
    apt-get update -q >/dev/null || die "apt-get update failed" "check the Debian mirror is reachable"
    APT_UPDATED=1
  fi
  apt-get install -y -q "$@" >/dev/null || die "apt-get install $* failed" "run it by hand to see why"
}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/pg_ctl" ]] && PG_BIN="$d"; done
  [[ -n "${PG_BIN:-}" ]]
}
PG_DATA="$SHOPFLOW_STATE_DIR/pg/data"
PG_SOCK="$SHOPFLOW_STATE_DIR/pg/run"
as_pg() { runuser -u postgres -- "$@"; }
