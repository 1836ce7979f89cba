#!/usr/bin/env bash
# The whole local stack, natively (no Docker): Kafka (KRaft), Postgres, the embedded LLM,
# the schema and topics, then each service as its own process.
#
#   deploy/local/stack.sh up       start what is not running, wait until each is ready
#   deploy/local/stack.sh down     stop the services, the LLM, Kafka and Postgres
#   deploy/local/stack.sh status   one line per component
#   deploy/local/stack.sh logs     follow every log (Ctrl-C to leave)
#   deploy/local/stack.sh infra    only Kafka, Postgres (and the LLM unless external)
#   deploy/local/stack.sh restart [SERVICE...]
#                                  rolling restart on the code checked out now (a hotfix):
#                                  one instance at a time, drained, started, ready before
#                                  the next; workers first, the gateway last; all by default
#   deploy/local/stack.sh release [SMOKE_OPTION...]
#                                  the rollout (`make release`): back up, migrate, restart
#                                  everything rolling, `exammentor smoke` (options go to it,
#                                  e.g. --no-plan); prints how to roll back when it fails
#
# Replicas: REPLICAS_<SERVICE>=N (e.g. `REPLICAS_PLANNER=2 make up`) runs N processes of a
# worker in its consumer group (Kafka splits the command topic's partitions between them).
# Replica 1 keeps the service's name, pid file, log and ops port; replica i > 1 is
# <service>-<i> with ops port <port> + 100 * (i - 1) (planner-2: 9201). A later `up` with a
# smaller count stops the replicas above it. The gateway runs once (clients hold its ports).
#
# External servers: set KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL (+ APP_DATABASE_URL) or
# OPENAI_BASE_URL and the matching local server is not started.
#
# Ports: EXAMMENTOR_PORT_OFFSET=N adds N to every port the script hands out (the workers'
# ops ports, the gateway's HTTP, gRPC and relay ports) and to those it waits on and smokes,
# so a second stack (a test's) runs beside a developer's. Default 0.
#
# Secrets: the services share EXAMMENTOR_JWT_SECRET and EXAMMENTOR_RELAY_TOKEN. Unless they
# are set already, random ones are made once into .run/secrets.env (mode 600, ignored by
# git) and exported to every service, so tokens survive a restart of the gateway.
set -euo pipefail
EM_LOG_NAME=stack
# shellcheck source=deploy/local/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

cd "$EM_REPO_ROOT"
PY=${PYTHON:-$EM_REPO_ROOT/.venv/bin/python}
PID_DIR="$EM_RUN_DIR/pids"
mkdir -p "$PID_DIR" "$EM_LOG_DIR"

# service name, ops port (health/ready/metrics); the gateway serves them on its HTTP port.
SERVICES=(planner:9101 tutor:9102 quiz:9103 autopilot:9104 gateway:8080)
GATEWAY_GRPC_PORT=50051
GATEWAY_RELAY_PORT=50052

MAX_REPLICAS=9

# The highest base port plus the offset must stay a port: 50052 + 15483 = 65535.
PORT_OFFSET="${EXAMMENTOR_PORT_OFFSET:-0}"
if ! [[ "$PORT_OFFSET" =~ ^[0-9]+$ ]] || ((PORT_OFFSET > 65535 - GATEWAY_RELAY_PORT)); then
  em_die "EXAMMENTOR_PORT_OFFSET=$PORT_OFFSET: want a whole number from 0 to $((65535 - GATEWAY_RELAY_PORT))"
fi

# The port a service's replica i listens on (ops port; the gateway's HTTP port).
instance_port() {
  local base="$1" i="$2"
  echo $((base + 100 * (i - 1) + PORT_OFFSET))
}

# The base port of a service as SERVICES lists it.
base_port() {
  local entry
  for entry in "${SERVICES[@]}"; do
    [[ "${entry%%:*}" != "$1" ]] || {
      echo "${entry##*:}"
      return 0
    }
  done
  return 1
}

# The replica count of a service (REPLICAS_<SERVICE>, 1 when unset).
replicas() {
  local name="$1" var count
  var="REPLICAS_${name^^}"
  count="${!var:-1}"
  if ! [[ "$count" =~ ^[1-9][0-9]*$ ]] || ((count > MAX_REPLICAS)); then
    em_die "$var=$count: want a whole number from 1 to $MAX_REPLICAS"
  fi
  [[ "$name" != gateway || "$count" == 1 ]] ||
    em_die "$var=$count: the local stack runs one gateway (its HTTP and gRPC ports are fixed)"
  echo "$count"
}

# One line per process to run: instance name, service, ops port.
instances() {
  local entry name port count i
  for entry in "${SERVICES[@]}"; do
    name="${entry%%:*}"
    port="${entry##*:}"
    count="$(replicas "$name")" || exit 1
    echo "$name $name $(instance_port "$port" 1)"
    for ((i = 2; i <= count; i++)); do echo "$name-$i $name $(instance_port "$port" "$i")"; done
  done
}

external_kafka() { [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; }
external_db() { [[ -n "${DATABASE_URL:-}" ]]; }
external_llm() { [[ -n "${OPENAI_BASE_URL:-}" ]]; }

infra_up() {
  if external_kafka; then
    em_log "Kafka: external ($KAFKA_BOOTSTRAP_SERVERS)"
  else
    bash deploy/local/kafka.sh start
  fi
  if external_db; then
    em_log "Postgres: external (DATABASE_URL)"
  else
    bash deploy/local/postgres.sh start
  fi
  if external_llm; then
    em_log "LLM: external ($OPENAI_BASE_URL)"
  else
    bash deploy/local/llm.sh start
  fi
  external_kafka || bash deploy/local/kafka.sh wait
  external_db || bash deploy/local/postgres.sh wait
  external_llm || bash deploy/local/llm.sh wait
}

schema_up() {
  "$PY" -m exammentor.ops.cli migrate up
  "$PY" -m exammentor.ops.cli topics create
}

SECRETS_FILE="$EM_RUN_DIR/secrets.env"

secrets_up() {
  if [[ ! -s "$SECRETS_FILE" ]]; then
    (
      umask 077
      printf 'EXAMMENTOR_JWT_SECRET=%s\nEXAMMENTOR_RELAY_TOKEN=%s\n' \
        "$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')" \
        "$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')" >"$SECRETS_FILE"
    )
    em_log "made local secrets in $SECRETS_FILE"
  fi
  local line key
  while IFS= read -r line; do
    key="${line%%=*}"
    # A value set in the environment wins over the file.
    # shellcheck disable=SC2163 # exports KEY=VALUE, the whole line, on purpose
    [[ -n "${!key:-}" ]] || export "$line"
  done <"$SECRETS_FILE"
}

service_up() {
  local instance="$1" name="$2" port="$3" pid
  local pidfile="$PID_DIR/$instance.pid" log="$EM_LOG_DIR/$instance.log"
  pid="$(em_read_pid "$pidfile")"
  if em_pid_matches "$pid" "services.$name.app"; then
    em_log "$instance already running (pid $pid)"
    return 0
  fi
  em_log "starting $instance"
  (
    export EXAMMENTOR_SERVICE_NAME="$name"
    if [[ "$name" == gateway ]]; then
      export EXAMMENTOR_HTTP_PORT="$port"
      export EXAMMENTOR_GRPC_PORT=$((GATEWAY_GRPC_PORT + PORT_OFFSET))
      export EXAMMENTOR_RELAY_PORT=$((GATEWAY_RELAY_PORT + PORT_OFFSET))
    else
      export EXAMMENTOR_OPS_PORT="$port"
    fi
    exec setsid "$PY" -m "services.$name.app"
  ) </dev/null >>"$log" 2>&1 &
  echo $! >"$pidfile"
}

service_wait() {
  local instance="$1" port="$3" deadline=$((SECONDS + 90))
  until curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)) || ! em_pid_alive "$(em_read_pid "$PID_DIR/$instance.pid")"; then
      em_tail_log "$EM_LOG_DIR/$instance.log"
      em_die "$instance did not become ready"
    fi
    sleep 0.5
  done
  em_log "$instance ready (http://127.0.0.1:$port/ready)"
}

# Stops one instance by its pid file (a worker hands its partitions back as it leaves).
instance_down() {
  em_stop_pid "$(em_read_pid "$1")" 30
  rm -f "$1"
}

# Replicas running above the count now asked for (a smaller REPLICAS_<SERVICE>).
extra_replicas_down() {
  local entry name count pidfile i
  for entry in "${SERVICES[@]}"; do
    name="${entry%%:*}"
    count="$(replicas "$name")" || exit 1
    for pidfile in "$PID_DIR/$name"-*.pid; do
      [[ -e "$pidfile" ]] || continue
      i="${pidfile##*-}"
      i="${i%.pid}"
      if ((i > count)); then
        em_log "stopping ${name}-$i (REPLICAS_${name^^}=$count)"
        instance_down "$pidfile"
      fi
    done
  done
}

services_down() {
  local entry name pidfile
  # The gateway first, so no new commands arrive while the workers drain.
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    entry="${SERVICES[$i]}"
    name="${entry%%:*}"
    for pidfile in "$PID_DIR/$name.pid" "$PID_DIR/$name"-*.pid; do
      [[ -e "$pidfile" ]] && instance_down "$pidfile"
    done
  done
  return 0
}

cmd_up() {
  infra_up
  schema_up
  secrets_up
  local plan line
  plan="$(instances)" || exit 1 # checks every REPLICAS_* before anything starts
  extra_replicas_down
  while read -r line; do
    # shellcheck disable=SC2086 # instance, service and port, split on purpose
    service_up $line
  done <<<"$plan"
  while read -r line; do
    # shellcheck disable=SC2086
    service_wait $line
  done <<<"$plan"
  em_log "stack is up: HTTP http://127.0.0.1:$(gateway_port), gRPC" \
    "127.0.0.1:$((GATEWAY_GRPC_PORT + PORT_OFFSET)) (stop: make down)"
}

gateway_port() { instance_port "$(base_port gateway)" 1; }

# --- rolling restart (a hotfix) and release (a rollout) -----------------------------------

# One line per instance to restart, in restart order: the workers in SERVICES order, the
# gateway last (it sends a new command version only once every worker handles it, see
# docs/operations.md "Rolling updates"); within a service replica 1, 2, ... Each service
# gets its REPLICAS_<SERVICE> count, and any replica running above that count too, so none
# keeps running the old code.
restart_plan() {
  local name count pidfile i base pid
  for name in "$@"; do
    count="$(replicas "$name")" || exit 1
    base="$(base_port "$name")"
    for pidfile in "$PID_DIR/$name"-*.pid; do
      [[ -e "$pidfile" ]] || continue
      i="${pidfile##*-}"
      i="${i%.pid}"
      pid="$(em_read_pid "$pidfile")"
      if [[ "$i" =~ ^[0-9]+$ ]] && ((i > count)) && em_pid_matches "$pid" "services.$name.app"; then
        count="$i"
      fi
    done
    echo "$name $name $(instance_port "$base" 1)"
    for ((i = 2; i <= count; i++)); do echo "$name-$i $name $(instance_port "$base" "$i")"; done
  done
}

# The services named (all when none), workers before the gateway; an unknown name is
# refused here, before anything stops.
restart_order() {
  local entry name wanted known=() chosen=()
  for entry in "${SERVICES[@]}"; do known+=("${entry%%:*}"); done
  for wanted in "$@"; do
    [[ " ${known[*]} " == *" $wanted "* ]] ||
      em_die "unknown service '$wanted' (one of: ${known[*]}); nothing was restarted"
  done
  for name in "${known[@]}"; do
    [[ "$name" != gateway ]] || continue
    if (($# == 0)) || [[ " $* " == *" $name "* ]]; then chosen+=("$name"); fi
  done
  if (($# == 0)) || [[ " $* " == *" gateway "* ]]; then chosen+=(gateway); fi
  echo "${chosen[*]}"
}

# Stops one instance (a worker drains: it finishes what it holds and hands the rest back
# uncommitted), starts it on the code checked out now, and waits for its /ready.
restart_instance() {
  local instance="$1" name="$2" port="$3" pidfile="$PID_DIR/$1.pid" pid
  pid="$(em_read_pid "$pidfile")"
  if em_pid_matches "$pid" "services.$name.app"; then
    em_log "restarting $instance (pid $pid)"
    instance_down "$pidfile"
  else
    em_log "$instance is not running: starting it"
    rm -f "$pidfile"
  fi
  service_up "$instance" "$name" "$port"
  service_wait "$instance" "$name" "$port"
}

cmd_restart() {
  local order plan line
  order="$(restart_order "$@")" || exit 1
  # shellcheck disable=SC2086 # service names, split on purpose
  plan="$(restart_plan $order)" || exit 1 # checks every REPLICAS_* before anything stops
  secrets_up
  while read -r line; do
    # shellcheck disable=SC2086 # instance, service and port, split on purpose
    restart_instance $line
  done <<<"$plan"
  em_log "restarted: $(cut -d' ' -f1 <<<"$plan" | paste -sd' ')"
}

# The newest migration applied (0 on a database without the schema: a first install).
schema_version() {
  local listing
  listing="$("$PY" -m exammentor.ops.cli migrate status)" ||
    em_die "exammentor migrate status failed: $listing"
  awk '$3 == "applied" || $3 == "CHANGED" { v = $1 + 0 } END { print v + 0 }' <<<"$listing"
}

# The smoke test of this stack's own ports (replica 1 of each worker).
smoke() {
  local entry name ports=()
  for entry in "${SERVICES[@]}"; do
    name="${entry%%:*}"
    [[ "$name" == gateway ]] || ports+=(--ops-port "$name=$(instance_port "${entry##*:}" 1)")
  done
  "$PY" -m exammentor.ops.cli smoke --base-url "http://127.0.0.1:$(gateway_port)" \
    --grpc "127.0.0.1:$((GATEWAY_GRPC_PORT + PORT_OFFSET))" "${ports[@]}" "$@"
}

RELEASED_COMMIT_FILE="$EM_RUN_DIR/released.commit"
RELEASE_STEP=""
RELEASE_BACKUP=""
SCHEMA_BEFORE=""

# Printed when a release stops half-way: what moved, and the commands that undo it.
release_failed() {
  local status="$1" previous now
  trap - EXIT
  ((status != 0)) || return 0
  em_log "release FAILED at: $RELEASE_STEP"
  if [[ "$RELEASE_STEP" == "infrastructure" || "$RELEASE_STEP" == "backup" ]]; then
    em_log "nothing was changed: the stack runs what it ran before"
    exit "$status"
  fi
  previous=""
  [[ ! -s "$RELEASED_COMMIT_FILE" ]] || read -r previous <"$RELEASED_COMMIT_FILE"
  now="$(schema_version 2>/dev/null || echo unknown)"
  {
    echo "to roll back to the previous release:"
    if [[ -n "$SCHEMA_BEFORE" && "$now" != "$SCHEMA_BEFORE" ]]; then
      echo "  the schema moved from version $SCHEMA_BEFORE to $now. The previous code runs on it"
      echo "  (expand, then contract); only when the new schema itself is the problem, undo it"
      echo "  first, with this release's code (it holds the down steps):"
      echo "    exammentor migrate down --to $SCHEMA_BEFORE"
      if [[ -n "$RELEASE_BACKUP" ]]; then
        echo "  or, when data was damaged, restore the backup into a new, empty database and"
        echo "  point DATABASE_URL and APP_DATABASE_URL at it:"
        echo "    exammentor backup restore $RELEASE_BACKUP --database-url postgresql://.../NEW"
      fi
    fi
    echo "  then the previous code, released the same way:"
    echo "    git checkout ${previous:-<the commit released before>}"
    echo "    make release"
  } | sed "s/^/[$EM_LOG_NAME] /" >&2
  exit "$status"
}

cmd_release() {
  local order plan
  order="$(restart_order)"
  # shellcheck disable=SC2086 # service names, split on purpose
  plan="$(restart_plan $order)" || exit 1 # checks every REPLICAS_* before anything starts
  trap 'release_failed $?' EXIT
  RELEASE_STEP="infrastructure"
  infra_up
  RELEASE_STEP="backup"
  SCHEMA_BEFORE="$(schema_version)"
  if ((SCHEMA_BEFORE == 0)); then
    em_log "first install: the database has no schema yet, so no backup is taken"
  else
    mkdir -p "$EM_RUN_DIR/backups"
    RELEASE_BACKUP="$EM_RUN_DIR/backups/pre-release-$(date -u +%Y%m%dT%H%M%SZ).tar"
    "$PY" -m exammentor.ops.cli backup create --out "$RELEASE_BACKUP"
  fi
  # Expand migrations only (docs/operations.md), so the code still serving keeps working.
  RELEASE_STEP="migrations"
  schema_up
  RELEASE_STEP="rolling restart"
  # shellcheck disable=SC2086 # service names, split on purpose
  cmd_restart $order
  RELEASE_STEP="smoke (the failed checks are named above)"
  smoke "$@"
  trap - EXIT
  git rev-parse HEAD >"$RELEASED_COMMIT_FILE" 2>/dev/null || rm -f "$RELEASED_COMMIT_FILE"
  em_log "released $(cat "$RELEASED_COMMIT_FILE" 2>/dev/null || echo 'this checkout'):" \
    "schema $SCHEMA_BEFORE -> $(schema_version), every instance restarted, smoke passed"
}

cmd_down() {
  services_down
  external_llm || bash deploy/local/llm.sh stop || true
  external_kafka || bash deploy/local/kafka.sh stop || true
  external_db || bash deploy/local/postgres.sh stop || true
}

cmd_status() {
  local instance name port pid plan
  plan="$(instances)" || exit 1
  while read -r instance name port; do
    pid="$(em_read_pid "$PID_DIR/$instance.pid")"
    if em_pid_matches "$pid" "services.$name.app"; then
      echo "$instance: running (pid $pid, ops port $port)"
    else
      echo "$instance: stopped"
    fi
  done <<<"$plan"
  if external_kafka; then
    echo "kafka: external ($KAFKA_BOOTSTRAP_SERVERS)"
  else
    echo "kafka: $(bash deploy/local/kafka.sh status 2>&1 || true)"
  fi
  if external_db; then
    echo "postgres: external (DATABASE_URL)"
  else
    echo "postgres: $(bash deploy/local/postgres.sh status 2>&1 || true)"
  fi
  if external_llm; then
    echo "llm: external ($OPENAI_BASE_URL)"
  else
    echo "llm: $(bash deploy/local/llm.sh status 2>&1 || true)"
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  infra) infra_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  restart) cmd_restart "${@:2}" ;;
  release) cmd_release "${@:2}" ;;
  logs) exec tail -n 50 -F "$EM_LOG_DIR"/*.log ;;
  *)
    echo "usage: $0 {up|down|status|logs|infra|restart [SERVICE...]|release [SMOKE_OPTION...]}" >&2
    exit 2
    ;;
esac
