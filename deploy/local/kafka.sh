#!/usr/bin/env bash
# A real Apache Kafka broker for development, `make demo` and CI, run natively (no Docker):
# the official jars from Maven Central, one node in KRaft mode acting as broker and
# controller, listening on 127.0.0.1. See docs/local-stack.md.
#
# Usage: deploy/local/kafka.sh COMMAND [ARGS...]
#   fetch                     resolve the Kafka jars into the cache (skipped when present)
#   start                     format the storage once, start the broker in the background
#   wait                      block until the broker answers (KAFKA_WAIT_TIMEOUT, 90 s)
#   stop                      SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT (30 s)
#   status                    print running/stopped; exit 0 when running, 3 when stopped
#   topics-list               list the topics (kafka-topics --list)
#   topics ARGS...            kafka-topics with --bootstrap-server already set
#   console-consumer TOPIC ARGS...   Kafka's console consumer on TOPIC; messages on stdout
#   console-producer TOPIC ARGS...   Kafka's console producer on TOPIC; one message a line
#   run-class CLASS ARGS...   any main class from the Kafka jars (tool logging on stderr)
#   reset                     stop and delete the broker's data (topics, offsets, cluster id)
#   paths                     print where the jars, data, pid file and log are
#
# With KAFKA_BOOTSTRAP_SERVERS set, wait and the tools talk to those servers; with
# EXAMMENTOR_USE_EXTERNAL_KAFKA=1 as well, start and stop do nothing (someone else's cluster).
set -euo pipefail

EM_LOG_NAME=kafka
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

SELF="$EM_REPO_ROOT/deploy/local/kafka.sh"
KAFKA_CONF_DIR="$EM_REPO_ROOT/deploy/local/kafka"
KAFKA_POM="$KAFKA_CONF_DIR/pom.xml"
KAFKA_TEMPLATE="$KAFKA_CONF_DIR/server.properties.template"
KAFKA_LOG4J="$KAFKA_CONF_DIR/log4j2.properties"

# The version is pinned in the pom only; read it back for messages and the fetch marker.
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM" | head -n 1)"
[[ -n "$KAFKA_VERSION" ]] || em_die "no <kafka.version> in $KAFKA_POM"

KAFKA_LIBS_DIR="$EM_CACHE_DIR/kafka/libs"
KAFKA_FETCH_MARKER="$KAFKA_LIBS_DIR/.fetched"
KAFKA_FETCH_LOCK_FILE="$EM_CACHE_DIR/kafka/fetch.lock"
KAFKA_STATE_DIR="$EM_RUN_DIR/kafka"
KAFKA_DATA_DIR="$KAFKA_STATE_DIR/data"
KAFKA_PID_FILE="$KAFKA_STATE_DIR/kafka.pid"
KAFKA_PROPS="$KAFKA_STATE_DIR/server.properties"
KAFKA_CLUSTER_ID_FILE="$KAFKA_STATE_DIR/cluster.id"
KAFKA_LOG_FILE="$EM_LOG_DIR/kafka.log"
KAFKA_LOCK_FILE="$EM_RUN_DIR/kafka.lock"

# Broker settings; every one can be overridden from the environment.
KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_ADVERTISED_HOST="${KAFKA_ADVERTISED_HOST:-$KAFKA_HOST}"
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_QUORUM_VOTERS="${KAFKA_QUORUM_VOTERS:-$KAFKA_NODE_ID@$KAFKA_ADVERTISED_HOST:$KAFKA_CONTROLLER_PORT}"
KAFKA_NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-6}"
KAFKA_DEFAULT_REPLICATION_FACTOR="${KAFKA_DEFAULT_REPLICATION_FACTOR:-1}"
KAFKA_INTERNAL_REPLICATION_FACTOR="${KAFKA_INTERNAL_REPLICATION_FACTOR:-1}"
KAFKA_MIN_INSYNC_REPLICAS="${KAFKA_MIN_INSYNC_REPLICAS:-1}"
KAFKA_EXTRA_PROPERTIES="${KAFKA_EXTRA_PROPERTIES:-}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
KAFKA_OPTS="${KAFKA_OPTS:-}"
KAFKA_TOOLS_LOG_LEVEL="${KAFKA_TOOLS_LOG_LEVEL:-WARN}"
KAFKA_WAIT_TIMEOUT="${KAFKA_WAIT_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

# Where tools and `wait` connect: the servers named by the environment when set (the same
# variable the services read), else this script's broker.
KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA_ADVERTISED_HOST:$KAFKA_PORT}"

if [[ "$KAFKA_HOST" == "0.0.0.0" && "$KAFKA_ADVERTISED_HOST" == "0.0.0.0" ]]; then
  em_die "KAFKA_HOST=0.0.0.0 needs KAFKA_ADVERTISED_HOST (the name clients should connect to)"
fi

JAVA_BIN=""

usage() {
  sed -n '/^# Usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
}

# Pick the JDK: $JAVA_HOME/bin/java when JAVA_HOME is set, else `java` on PATH; need 17+.
ensure_java() {
  [[ -z "$JAVA_BIN" ]] || return 0
  if [[ -n "${JAVA_HOME:-}" ]]; then
    JAVA_BIN="$JAVA_HOME/bin/java"
    [[ -x "$JAVA_BIN" ]] || em_die "JAVA_HOME=$JAVA_HOME has no bin/java"
  else
    em_require_cmd java "Install a JDK 17 or newer (Debian: apt-get install -y openjdk-17-jre-headless), or set JAVA_HOME."
    JAVA_BIN="$(command -v java)"
  fi
  local spec
  spec="$("$JAVA_BIN" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n 1)"
  [[ "$spec" =~ ^[0-9]+$ ]] || em_die "cannot tell the version of $JAVA_BIN"
  ((spec >= 17)) || em_die "Kafka $KAFKA_VERSION needs Java 17 or newer; $JAVA_BIN is Java $spec (set JAVA_HOME)"
}

fetch_wanted_marker() {
  local pom_sum
  pom_sum="$(sha256sum <"$KAFKA_POM" | cut -c1-16)"
  printf 'kafka %s pom %s\n' "$KAFKA_VERSION" "$pom_sum"
}

is_fetched() {
  local have=""
  [[ -f "$KAFKA_FETCH_MARKER" ]] || return 1
  read -r have <"$KAFKA_FETCH_MARKER" || true
  [[ "$have" == "$(fetch_wanted_marker)" && -f "$KAFKA_LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" ]]
}

cmd_fetch() {
  em_lock "$KAFKA_FETCH_LOCK_FILE" 600
  if is_fetched; then
    em_log "Kafka $KAFKA_VERSION already fetched in $KAFKA_LIBS_DIR"
    return 0
  fi
  em_require_cmd mvn "Install Maven (Debian: apt-get install -y maven)."
  ensure_java
  local tmp out started=$SECONDS
  mkdir -p "$(dirname -- "$KAFKA_LIBS_DIR")"
  tmp="$KAFKA_LIBS_DIR.tmp.$$"
  out="$(mktemp)"
  rm -rf "$tmp"
  em_log "fetching Kafka $KAFKA_VERSION and its dependencies with Maven into $KAFKA_LIBS_DIR"
  # Maven prints errors on stdout even with -q: keep its output, show it only on failure.
  if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
    </dev/null >"$out" 2>&1; then
    sed 's/^/    /' "$out" >&2
    rm -rf "$tmp" "$out"
    em_die "Maven could not resolve Kafka $KAFKA_VERSION (see above)"
  fi
  rm -f "$out"
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || em_die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
  rm -rf "$KAFKA_LIBS_DIR"
  mv "$tmp" "$KAFKA_LIBS_DIR"
  fetch_wanted_marker >"$KAFKA_FETCH_MARKER"
  em_log "fetched $(find "$KAFKA_LIBS_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - started)) s"
}

ensure_fetched() {
  is_fetched || cmd_fetch
}

# run_tool CLASS ARGS... : run a Kafka command-line class in the foreground (exec), with its
# logging on stderr so that stdout carries only the tool's output.
run_tool() {
  ensure_java
  ensure_fetched
  local class="$1"
  shift
  # shellcheck disable=SC2086 # KAFKA_TOOLS_JAVA_OPTS is a list of JVM options
  exec "$JAVA_BIN" ${KAFKA_TOOLS_JAVA_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
    -XX:+DisplayVMOutputToStderr \
    -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
    -Dexammentor.log.target=SYSTEM_ERR \
    -Dexammentor.log.level="$KAFKA_TOOLS_LOG_LEVEL" \
    -cp "$KAFKA_LIBS_DIR/*" "$class" "$@" 9>&-
}

broker_pid() {
  local pid
  pid="$(em_read_pid "$KAFKA_PID_FILE")"
  # The properties path is unique to this run dir: a reused pid will not match.
  if [[ -n "$pid" ]] && em_pid_matches "$pid" "kafka.Kafka $KAFKA_PROPS"; then
    printf '%s\n' "$pid"
  fi
}

render_properties() {
  local line name value tmp="$KAFKA_PROPS.tmp"
  local names=(KAFKA_NODE_ID KAFKA_QUORUM_VOTERS KAFKA_HOST KAFKA_PORT KAFKA_CONTROLLER_PORT
    KAFKA_ADVERTISED_HOST KAFKA_DATA_DIR KAFKA_NUM_PARTITIONS KAFKA_DEFAULT_REPLICATION_FACTOR
    KAFKA_MIN_INSYNC_REPLICAS KAFKA_INTERNAL_REPLICATION_FACTOR)
  {
    printf '# Generated by deploy/local/kafka.sh from %s; edits are lost at the next start.\n' \
      "${KAFKA_TEMPLATE#"$EM_REPO_ROOT"/}"
    while IFS= read -r line || [[ -n "$line" ]]; do
      for name in "${names[@]}"; do
        value="${!name}"
        line="${line//"{{$name}}"/$value}"
      done
      [[ "$line" == "#"* || "$line" != *"{{"* ]] || em_die "unreplaced placeholder in template: $line"
      printf '%s\n' "$line"
    done <"$KAFKA_TEMPLATE"
    if [[ -n "$KAFKA_EXTRA_PROPERTIES" ]]; then
      local extra
      extra="$(em_abspath "$KAFKA_EXTRA_PROPERTIES")"
      [[ -r "$extra" ]] || em_die "KAFKA_EXTRA_PROPERTIES=$KAFKA_EXTRA_PROPERTIES is not a readable file"
      printf '\n# From KAFKA_EXTRA_PROPERTIES=%s\n' "$KAFKA_EXTRA_PROPERTIES"
      cat -- "$extra"
    fi
  } >"$tmp"
  mv "$tmp" "$KAFKA_PROPS"
}

# Format the storage the first time only: an existing meta.properties means formatted.
format_storage_once() {
  if [[ -f "$KAFKA_DATA_DIR/meta.properties" ]]; then
    return 0
  fi
  local cluster_id="${KAFKA_CLUSTER_ID:-}"
  if [[ -z "$cluster_id" && -s "$KAFKA_CLUSTER_ID_FILE" ]]; then
    read -r cluster_id <"$KAFKA_CLUSTER_ID_FILE"
  fi
  if [[ -z "$cluster_id" ]]; then
    cluster_id="$( (run_tool kafka.tools.StorageTool random-uuid) | tail -n 1)"
  fi
  [[ -n "$cluster_id" ]] || em_die "could not generate a cluster id"
  em_log "formatting storage in $KAFKA_DATA_DIR (cluster id $cluster_id)"
  if ! (run_tool kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$KAFKA_PROPS" \
    --ignore-formatted) >>"$KAFKA_LOG_FILE" 2>&1; then
    em_tail_log "$KAFKA_LOG_FILE" 20
    em_die "formatting the storage failed"
  fi
  printf '%s\n' "$cluster_id" >"$KAFKA_CLUSTER_ID_FILE"
}

# An external cluster, named by KAFKA_BOOTSTRAP_SERVERS, was asked for.
use_external() {
  [[ "${EXAMMENTOR_USE_EXTERNAL_KAFKA:-}" == "1" && -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]
}

cmd_start() {
  if use_external; then
    em_log "EXAMMENTOR_USE_EXTERNAL_KAFKA=1: using $KAFKA_BOOTSTRAP_SERVERS, not starting a broker"
    return 0
  fi
  ensure_java
  ensure_fetched
  em_lock "$KAFKA_LOCK_FILE"
  local pid
  pid="$(broker_pid)"
  if [[ -n "$pid" ]]; then
    if em_port_open "$KAFKA_ADVERTISED_HOST" "$KAFKA_PORT"; then
      em_log "already running (pid $pid) on $KAFKA_ADVERTISED_HOST:$KAFKA_PORT"
    else
      em_log "already started (pid $pid), not answering yet on $KAFKA_ADVERTISED_HOST:$KAFKA_PORT: run '$0 wait'"
    fi
    return 0
  fi
  rm -f "$KAFKA_PID_FILE"
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if em_port_open "$KAFKA_ADVERTISED_HOST" "$port"; then
      em_die "port $port on $KAFKA_ADVERTISED_HOST is taken by another process (not this checkout's broker). Stop it, or choose KAFKA_PORT / KAFKA_CONTROLLER_PORT"
    fi
  done

  mkdir -p "$KAFKA_DATA_DIR" "$EM_LOG_DIR"
  # The log is appended to across restarts; keep one previous generation past ~50 MB.
  if [[ -f "$KAFKA_LOG_FILE" ]] && (($(stat -c %s "$KAFKA_LOG_FILE") > 50 * 1024 * 1024)); then
    mv -f "$KAFKA_LOG_FILE" "$KAFKA_LOG_FILE.1"
  fi
  render_properties
  format_storage_once

  em_log "starting Kafka $KAFKA_VERSION (KRaft, node $KAFKA_NODE_ID) on $KAFKA_HOST:$KAFKA_PORT, controller on :$KAFKA_CONTROLLER_PORT"
  printf '\n===== %s starting Kafka %s =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$KAFKA_VERSION" >>"$KAFKA_LOG_FILE"
  # Own session (setsid) so that the broker outlives this shell and its terminal; run from
  # the state dir so that JVM crash files land there, not in the working directory.
  # shellcheck disable=SC2086 # the *_OPTS variables are lists of JVM options
  (
    cd "$KAFKA_STATE_DIR"
    exec setsid nohup "$JAVA_BIN" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS $KAFKA_OPTS \
      -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
      -Dexammentor.log.target=SYSTEM_OUT \
      -Dexammentor.log.level="${KAFKA_LOG_LEVEL:-INFO}" \
      -cp "$KAFKA_LIBS_DIR/*" kafka.Kafka "$KAFKA_PROPS" 9>&-
  ) </dev/null >>"$KAFKA_LOG_FILE" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$KAFKA_PID_FILE"
  sleep 1
  if ! em_pid_alive "$pid"; then
    rm -f "$KAFKA_PID_FILE"
    em_tail_log "$KAFKA_LOG_FILE"
    em_die "the broker exited at once"
  fi
  em_log "started (pid $pid), log in ${KAFKA_LOG_FILE#"$EM_REPO_ROOT"/}; '$0 wait' blocks until it answers"
}

# The first host:port of the bootstrap list, for a cheap TCP check before the real probe.
first_bootstrap_host() { local first="${KAFKA_BOOTSTRAP%%,*}"; printf '%s\n' "${first%:*}"; }
first_bootstrap_port() { local first="${KAFKA_BOOTSTRAP%%,*}"; printf '%s\n' "${first##*:}"; }

cmd_wait() {
  local host port deadline pid_file_seen=0 pid started=$SECONDS
  host="$(first_bootstrap_host)"
  port="$(first_bootstrap_port)"
  deadline=$((SECONDS + KAFKA_WAIT_TIMEOUT))
  [[ -f "$KAFKA_PID_FILE" ]] && pid_file_seen=1
  em_log "waiting up to ${KAFKA_WAIT_TIMEOUT}s for Kafka at $KAFKA_BOOTSTRAP"
  while ((SECONDS < deadline)); do
    if ((pid_file_seen)) && [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
      pid="$(broker_pid)"
      if [[ -z "$pid" ]]; then
        em_tail_log "$KAFKA_LOG_FILE"
        em_die "the broker is not running any more"
      fi
    fi
    if em_port_open "$host" "$port"; then
      # The port opens before the broker has joined the quorum and registered: ask for
      # the brokers' API versions, which needs a working metadata answer.
      if timeout 30 "$SELF" run-class org.apache.kafka.tools.BrokerApiVersionsCommand \
        --bootstrap-server "$KAFKA_BOOTSTRAP" </dev/null >/dev/null 2>&1; then
        em_log "ready at $KAFKA_BOOTSTRAP after $((SECONDS - started)) s"
        return 0
      fi
    fi
    sleep 1
  done
  if ((pid_file_seen)); then
    em_tail_log "$KAFKA_LOG_FILE"
  fi
  em_die "Kafka at $KAFKA_BOOTSTRAP did not answer within ${KAFKA_WAIT_TIMEOUT}s"
}

cmd_stop() {
  local pid
  if use_external; then
    em_log "EXAMMENTOR_USE_EXTERNAL_KAFKA=1: $KAFKA_BOOTSTRAP_SERVERS is not ours to stop"
    return 0
  fi
  em_lock "$KAFKA_LOCK_FILE"
  pid="$(broker_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$KAFKA_PID_FILE"
    em_log "not running"
    return 0
  fi
  em_log "stopping (pid $pid)"
  em_stop_pid "$pid" "$KAFKA_STOP_TIMEOUT"
  rm -f "$KAFKA_PID_FILE"
  em_log "stopped"
}

cmd_status() {
  local pid
  pid="$(broker_pid)"
  if [[ -z "$pid" ]]; then
    echo "stopped"
    return 3
  fi
  if em_port_open "$KAFKA_ADVERTISED_HOST" "$KAFKA_PORT"; then
    echo "running (pid $pid, $KAFKA_ADVERTISED_HOST:$KAFKA_PORT)"
  else
    echo "running (pid $pid, starting: $KAFKA_ADVERTISED_HOST:$KAFKA_PORT not answering yet)"
  fi
}

cmd_reset() {
  cmd_stop
  em_log "deleting $KAFKA_STATE_DIR (topics, offsets, cluster id)"
  rm -rf "$KAFKA_STATE_DIR"
}

cmd_paths() {
  printf 'version=%s\nlibs=%s\nstate=%s\ndata=%s\npid_file=%s\nlog=%s\nproperties=%s\nbootstrap=%s\n' \
    "$KAFKA_VERSION" "$KAFKA_LIBS_DIR" "$KAFKA_STATE_DIR" "$KAFKA_DATA_DIR" "$KAFKA_PID_FILE" \
    "$KAFKA_LOG_FILE" "$KAFKA_PROPS" "$KAFKA_BOOTSTRAP"
}

# Kafka 4 renamed some console tool options and prints a deprecation notice for the old
# names on stdout, which would mix with the messages: pass the new names instead.
# rewrite_options "OLD:NEW ..." ARGS... : the result is in TOOL_ARGS.
TOOL_ARGS=()
rewrite_options() {
  local pairs="$1" arg pair old new
  shift
  TOOL_ARGS=()
  for arg in "$@"; do
    for pair in $pairs; do
      old="${pair%%:*}"
      new="${pair#*:}"
      if [[ "$arg" == "$old" ]]; then
        arg="$new"
        break
      elif [[ "$arg" == "$old="* ]]; then
        arg="$new=${arg#"$old="}"
        break
      fi
    done
    TOOL_ARGS+=("$arg")
  done
}

# console_consumer TOPIC ARGS... : Kafka's console consumer. With --max-messages N it exits
# 1 when fewer than N messages came before --timeout-ms (Kafka's own tool exits 0 then).
console_consumer() {
  local topic="$1" max="" prev="" arg
  shift
  for arg in "$@"; do
    if [[ "$prev" == "--max-messages" ]]; then
      max="$arg"
    elif [[ "$arg" == --max-messages=* ]]; then
      max="${arg#--max-messages=}"
    fi
    prev="$arg"
  done
  if [[ -z "$max" ]]; then
    run_tool org.apache.kafka.tools.consumer.ConsoleConsumer \
      --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" "$@"
  fi
  local err rc=0 processed
  err="$(mktemp)"
  # shellcheck disable=SC2064 # expand now: the path is local
  trap "rm -f '$err'" EXIT
  (run_tool org.apache.kafka.tools.consumer.ConsoleConsumer \
    --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" "$@") 2>"$err" || rc=$?
  grep -v '^Processed a total of' "$err" >&2 || true
  processed="$(sed -n 's/^Processed a total of \([0-9]*\) messages*$/\1/p' "$err" | tail -n 1)"
  ((rc == 0)) || exit "$rc"
  if [[ "$max" =~ ^[0-9]+$ ]] && ((${processed:-0} < max)); then
    em_die "received ${processed:-0} of $max message(s) from $topic before the timeout"
  fi
  em_log "received ${processed:-0} message(s) from $topic"
}

need_topic() {
  [[ $# -ge 1 && -n "$1" && "$1" != -* ]] || em_die "usage: $0 $2 TOPIC [ARGS...]"
}

main() {
  local cmd="${1:-}"
  [[ $# -eq 0 ]] || shift
  case "$cmd" in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    wait) cmd_wait ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    paths) cmd_paths ;;
    topics-list)
      run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --list "$@"
      ;;
    topics)
      run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"
      ;;
    console-consumer)
      need_topic "${1:-}" "$cmd"
      local topic="$1"
      shift
      rewrite_options "--property:--formatter-property --consumer-property:--command-property --consumer.config:--command-config" "$@"
      console_consumer "$topic" ${TOOL_ARGS[@]+"${TOOL_ARGS[@]}"}
      ;;
    console-producer)
      need_topic "${1:-}" "$cmd"
      local topic="$1"
      shift
      rewrite_options "--property:--reader-property --producer-property:--command-property --producer.config:--command-config" "$@"
      run_tool org.apache.kafka.tools.ConsoleProducer \
        --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" ${TOOL_ARGS[@]+"${TOOL_ARGS[@]}"}
      ;;
    run-class)
      [[ $# -ge 1 ]] || em_die "usage: $0 run-class CLASS [ARGS...]"
      run_tool "$@"
      ;;
    -h | --help | help)
      usage
      ;;
    *)
      usage
      exit 2
      ;;
  esac
}

main "$@"
