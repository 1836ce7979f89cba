#!/usr/bin/env bash
# A PostgreSQL cluster of the project's own for development, `make demo` and CI, run
# natively from Debian's postgresql-15 (not the Debian system cluster): 127.0.0.1:5433,
# superuser `postgres` with trust authentication, database `exammentor`.
# See docs/local-stack.md.
#
# Usage: deploy/local/postgres.sh COMMAND [ARGS...]
#   install        apt-get install postgresql-15 when its server binary is missing (root)
#   start          create the cluster once, start it, create the database if missing
#   wait           block until the server accepts connections (EXAMMENTOR_PG_WAIT_TIMEOUT, 60 s)
#   stop           fast shutdown (pg_ctl stop -m fast)
#   status         print running/stopped; exit 0 when running, 3 when stopped
#   psql [ARGS...] psql as `postgres` on the exammentor database
#   reset          stop and delete the cluster's data directory
#   paths          print where the data directory and the log are
#
# With DATABASE_URL set and EXAMMENTOR_USE_EXTERNAL_DB=1 the server is someone else's:
# start and stop do nothing, wait/status/psql use DATABASE_URL.
set -euo pipefail

EM_LOG_NAME=postgres
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

PG_VERSION="${EXAMMENTOR_PG_VERSION:-15}"
PG_BIN="${EXAMMENTOR_PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}"
PG_PORT="${PGPORT:-5433}"
PG_HOST="${EXAMMENTOR_PG_HOST:-127.0.0.1}"
PG_DB="${EXAMMENTOR_PG_DB:-exammentor}"
PG_SUPERUSER=postgres
# Outside the repository on purpose: when the scripts run as root, the server runs as the
# `postgres` OS user, which may not be able to enter the folder holding the repository.
PG_DATA="$(em_abspath "${EXAMMENTOR_PG_DATA:-/var/tmp/exammentor-pg-$PG_PORT}")"
PG_LOG_FILE="$(em_abspath "${EXAMMENTOR_PG_LOG:-$PG_DATA.log}")"
PG_LOG_LINK="$EM_LOG_DIR/postgres.log"
PG_LOCK_FILE="$EM_RUN_DIR/postgres.lock"
PG_MAX_CONNECTIONS="${EXAMMENTOR_PG_MAX_CONNECTIONS:-200}"
PG_SHARED_BUFFERS="${EXAMMENTOR_PG_SHARED_BUFFERS:-128MB}"
PG_EXTRA_CONF="${EXAMMENTOR_PG_EXTRA_CONF:-}"
PG_WAIT_TIMEOUT="${EXAMMENTOR_PG_WAIT_TIMEOUT:-60}"
PG_STOP_TIMEOUT="${EXAMMENTOR_PG_STOP_TIMEOUT:-60}"

usage() {
  sed -n '/^# Usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
}

is_root() {
  [[ "$(id -u)" -eq 0 ]]
}

# An external server, named by DATABASE_URL, was asked for.
use_external() {
  [[ "${EXAMMENTOR_USE_EXTERNAL_DB:-}" == "1" && -n "${DATABASE_URL:-}" ]]
}

# as_pg CMD... : run as the cluster's OS user: `postgres` when we are root (initdb and
# pg_ctl refuse root), else ourselves. From / so that an unreadable cwd does not matter,
# and without fd 9, the start/stop lock, which the server must not inherit and keep.
as_pg() {
  if is_root; then
    (cd / && exec runuser -u postgres -- "$@" 9>&-)
  else
    (cd / && exec "$@" 9>&-)
  fi
}

# Give FILE (a file or directory we created) to the cluster's OS user.
give_to_pg() {
  if is_root; then
    chown postgres:postgres "$@"
  fi
}

server_installed() {
  [[ -x "$PG_BIN/postgres" && -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]]
}

cmd_install() {
  if server_installed; then
    em_log "PostgreSQL $PG_VERSION is installed ($PG_BIN)"
    return 0
  fi
  is_root || em_die "PostgreSQL $PG_VERSION is missing ($PG_BIN/postgres); install postgresql-$PG_VERSION as root"
  em_require_cmd apt-get "Install PostgreSQL $PG_VERSION with the system's package manager, or set EXAMMENTOR_PG_BIN."
  em_log "installing postgresql-$PG_VERSION with apt-get"
  # The package may also create and start Debian's own cluster (port 5432); it is not used.
  apt-get update -q </dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "postgresql-$PG_VERSION" </dev/null
  server_installed || em_die "postgresql-$PG_VERSION installed, but $PG_BIN/postgres is still missing"
  em_log "installed PostgreSQL $PG_VERSION"
}

ensure_installed() {
  if ! server_installed; then
    if is_root && command -v apt-get >/dev/null 2>&1; then
      cmd_install
    else
      em_die "PostgreSQL $PG_VERSION server not found in $PG_BIN: run '$0 install' as root (or set EXAMMENTOR_PG_BIN)"
    fi
  fi
  if is_root; then
    id -u postgres >/dev/null 2>&1 || em_die "no 'postgres' OS user; reinstall postgresql-$PG_VERSION"
  fi
}

is_running() {
  [[ -f "$PG_DATA/PG_VERSION" ]] || return 1
  as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

is_ready() {
  "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -t 1 >/dev/null 2>&1
}

take_lock() {
  em_lock "$PG_LOCK_FILE"
}

init_cluster() {
  local out
  if [[ -e "$PG_DATA" ]] && [[ -n "$(ls -A -- "$PG_DATA" 2>/dev/null)" ]]; then
    em_die "$PG_DATA exists, is not empty and holds no cluster (no PG_VERSION file); choose EXAMMENTOR_PG_DATA"
  fi
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  give_to_pg "$PG_DATA"
  if ! as_pg test -w "$PG_DATA"; then
    em_die "the postgres OS user cannot write $PG_DATA (a parent folder is closed to it?); set EXAMMENTOR_PG_DATA to a place it can reach"
  fi
  em_log "creating the cluster in $PG_DATA"
  out="$(mktemp)"
  if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" --auth=trust \
    --encoding=UTF8 --no-locale </dev/null >"$out" 2>&1; then
    sed 's/^/    /' "$out" >&2
    rm -f "$out"
    em_die "initdb failed"
  fi
  rm -f "$out"
  # Trust, and only over the local socket and loopback: a development cluster. Servers
  # elsewhere are reached through DATABASE_URL, with a password.
  as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by deploy/local/postgres.sh: a local development cluster, no passwords.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
EOF
  printf "\n# ExamMentor settings, rewritten at every start by deploy/local/postgres.sh\ninclude_if_exists = 'exammentor.conf'\n" |
    as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

# Settings applied at every start, so that changed environment variables take effect.
write_settings() {
  {
    printf '# Written by deploy/local/postgres.sh at every start; edits are lost.\n'
    printf "listen_addresses = '%s'\n" "$PG_HOST"
    printf 'port = %s\n' "$PG_PORT"
    printf "unix_socket_directories = '%s'\n" "$PG_DATA"
    printf 'max_connections = %s\n' "$PG_MAX_CONNECTIONS"
    printf 'shared_buffers = %s\n' "$PG_SHARED_BUFFERS"
    printf 'fsync = on\n'
    printf "log_line_prefix = '%%m [%%p] %%q%%u@%%d '\n"
    if [[ -n "$PG_EXTRA_CONF" ]]; then
      local extra
      extra="$(em_abspath "$PG_EXTRA_CONF")"
      [[ -r "$extra" ]] || em_die "EXAMMENTOR_PG_EXTRA_CONF=$PG_EXTRA_CONF is not a readable file"
      printf '\n# From EXAMMENTOR_PG_EXTRA_CONF=%s\n' "$PG_EXTRA_CONF"
      cat -- "$extra"
    fi
  } | as_pg tee "$PG_DATA/exammentor.conf" >/dev/null
}

ensure_database() {
  local exists
  exists="$("$PG_BIN/psql" -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -tAc \
    "select 1 from pg_database where datname = '$PG_DB'" </dev/null)"
  if [[ "$exists" != "1" ]]; then
    em_log "creating database $PG_DB"
    "$PG_BIN/createdb" -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" "$PG_DB" </dev/null
  fi
}

cmd_start() {
  if use_external; then
    em_log "EXAMMENTOR_USE_EXTERNAL_DB=1: using the server in DATABASE_URL, not starting one"
    return 0
  fi
  ensure_installed
  take_lock
  if is_running; then
    em_log "already running on $PG_HOST:$PG_PORT (data $PG_DATA)"
    if is_ready; then
      ensure_database
    fi
    return 0
  fi
  if em_port_open "$PG_HOST" "$PG_PORT"; then
    em_die "port $PG_PORT on $PG_HOST is taken by another server (not the cluster in $PG_DATA). Stop it, or choose PGPORT"
  fi
  [[ -f "$PG_DATA/PG_VERSION" ]] || init_cluster
  write_settings

  mkdir -p "$EM_LOG_DIR"
  if [[ ! -e "$PG_LOG_FILE" ]]; then
    mkdir -p "$(dirname -- "$PG_LOG_FILE")"
    : >"$PG_LOG_FILE"
  fi
  give_to_pg "$PG_LOG_FILE"
  # The server may be unable to write into the repository: the log lives beside the data,
  # and .run/logs/postgres.log points to it.
  ln -sfn "$PG_LOG_FILE" "$PG_LOG_LINK"

  em_log "starting PostgreSQL $PG_VERSION on $PG_HOST:$PG_PORT (data $PG_DATA)"
  if ! as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG_FILE" -w -t "$PG_WAIT_TIMEOUT" \
    </dev/null >/dev/null 2>&1; then
    em_tail_log "$PG_LOG_FILE"
    em_die "PostgreSQL did not start"
  fi
  ensure_database
  em_log "started; log in $PG_LOG_FILE (linked from ${PG_LOG_LINK#"$EM_REPO_ROOT"/})"
}

cmd_wait() {
  local deadline started=$SECONDS
  deadline=$((SECONDS + PG_WAIT_TIMEOUT))
  if use_external; then
    em_require_cmd pg_isready "Install the PostgreSQL client (Debian: postgresql-client)."
    until pg_isready -q -d "$DATABASE_URL" -t 1 >/dev/null 2>&1; do
      ((SECONDS < deadline)) || em_die "the server in DATABASE_URL did not answer within ${PG_WAIT_TIMEOUT}s"
      sleep 1
    done
    em_log "external server ready"
    return 0
  fi
  ensure_installed
  until is_ready; do
    if ((SECONDS >= deadline)); then
      em_tail_log "$PG_LOG_FILE"
      em_die "PostgreSQL on $PG_HOST:$PG_PORT did not answer within ${PG_WAIT_TIMEOUT}s"
    fi
    sleep 0.5
  done
  em_log "ready on $PG_HOST:$PG_PORT after $((SECONDS - started)) s"
}

cmd_stop() {
  if use_external; then
    em_log "EXAMMENTOR_USE_EXTERNAL_DB=1: the server in DATABASE_URL is not ours to stop"
    return 0
  fi
  ensure_installed
  take_lock
  if ! is_running; then
    em_log "not running"
    return 0
  fi
  em_log "stopping (data $PG_DATA)"
  if ! as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t "$PG_STOP_TIMEOUT" </dev/null >/dev/null 2>&1; then
    em_tail_log "$PG_LOG_FILE"
    em_die "PostgreSQL did not stop within ${PG_STOP_TIMEOUT}s"
  fi
  em_log "stopped"
}

cmd_status() {
  if use_external; then
    if pg_isready -q -d "$DATABASE_URL" -t 2 >/dev/null 2>&1; then
      echo "running (external, DATABASE_URL)"
      return 0
    fi
    echo "stopped (external, DATABASE_URL not answering)"
    return 3
  fi
  if server_installed && is_running; then
    if is_ready; then
      echo "running ($PG_HOST:$PG_PORT, data $PG_DATA)"
    else
      echo "running ($PG_HOST:$PG_PORT not accepting connections yet, data $PG_DATA)"
    fi
    return 0
  fi
  echo "stopped"
  return 3
}

cmd_psql() {
  if use_external; then
    exec psql "$DATABASE_URL" "$@"
  fi
  ensure_installed
  exec "$PG_BIN/psql" -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d "$PG_DB" "$@"
}

cmd_reset() {
  if use_external; then
    em_die "EXAMMENTOR_USE_EXTERNAL_DB=1: will not delete anything of the server in DATABASE_URL"
  fi
  cmd_stop
  if [[ -d "$PG_DATA" ]]; then
    # Only ever delete a folder that holds a cluster (or nothing).
    if [[ -f "$PG_DATA/PG_VERSION" || -z "$(ls -A -- "$PG_DATA")" ]]; then
      em_log "deleting $PG_DATA"
      rm -rf -- "$PG_DATA"
    else
      em_die "$PG_DATA does not look like a cluster; not deleting it"
    fi
  fi
  rm -f -- "$PG_LOG_FILE" "$PG_LOG_LINK"
}

cmd_paths() {
  printf 'bin=%s\ndata=%s\nlog=%s\nlog_link=%s\nhost=%s\nport=%s\ndatabase=%s\nurl=postgresql://%s@%s:%s/%s\n' \
    "$PG_BIN" "$PG_DATA" "$PG_LOG_FILE" "$PG_LOG_LINK" "$PG_HOST" "$PG_PORT" "$PG_DB" \
    "$PG_SUPERUSER" "$PG_HOST" "$PG_PORT" "$PG_DB"
}

main() {
  local cmd="${1:-}"
  [[ $# -eq 0 ]] || shift
  case "$cmd" in
    install) cmd_install ;;
    start) cmd_start ;;
    wait) cmd_wait ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    psql) cmd_psql "$@" ;;
    reset) cmd_reset ;;
    paths) cmd_paths ;;
    -h | --help | help) usage ;;
    *)
      usage
      exit 2
      ;;
  esac
}

main "$@"
