#!/usr/bin/env bash
# The whole local stack, natively (no Docker): Kafka (KRaft), Postgres, the embedded LLM,
# the schema and topics, then each service as its own process.
#
#   deploy/local/stack.sh up       start what is not running, wait until each is ready
#   deploy/local/stack.sh down     stop the services, the LLM, Kafka and Postgres
#   deploy/local/stack.sh status   one line per component
#   deploy/local/stack.sh logs     follow every log (Ctrl-C to leave)
#   deploy/local/stack.sh infra    only Kafka, Postgres (and the LLM unless external)
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

MAX_REPLICAS=9

# The replica count of a service (REPLICAS_<SERVICE>, 1 when unset).
replicas() {
  local name="$1" var count
  var="REPLICAS_${name^^}"
  count="${!var:-1}"
  [[ "$count" =~ ^[1-9][0-9]*$ ]] && ((count <= MAX_REPLICAS)) ||
    em_die "$var=$count: want a whole number from 1 to $MAX_REPLICAS"
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
    echo "$name $name $port"
    for ((i = 2; i <= count; i++)); do echo "$name-$i $name $((port + 100 * (i - 1)))"; done
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
  "$PY" -m exammentor.cli migrate up
  "$PY" -m exammentor.cli topics create
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
    [[ "$name" == gateway ]] || export EXAMMENTOR_OPS_PORT="$port"
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
  em_log "stack is up: HTTP http://127.0.0.1:8080, gRPC 127.0.0.1:50051 (stop: make down)"
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
  echo "kafka: $(bash deploy/local/kafka.sh status 2>&1 || true)"
  echo "postgres: $(bash deploy/local/postgres.sh status 2>&1 || true)"
  echo "llm: $(bash deploy/local/llm.sh status 2>&1 || true)"
}

case "${1:-}" in
  up) cmd_up ;;
  infra) infra_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) exec tail -n 50 -F "$EM_LOG_DIR"/*.log ;;
  *)
    echo "usage: $0 {up|down|status|logs|infra}" >&2
    exit 2
    ;;
esac
