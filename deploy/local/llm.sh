#!/usr/bin/env bash
# Runs the embedded model server (SmolLM2-135M-Instruct on llama.cpp) in the background.
#
#   deploy/local/llm.sh start    start it unless it runs already, then wait until it answers
#   deploy/local/llm.sh stop     SIGTERM, then SIGKILL after 20 s
#   deploy/local/llm.sh status   exit 0 when it runs and answers, 3 when it does not
#   deploy/local/llm.sh wait     wait (up to EXAMMENTOR_LLM_WAIT_S, 120 s) until it answers
#
# Where it listens comes from OPENAI_BASE_URL (default http://127.0.0.1:8090/v1).
# EXAMMENTOR_EMBEDDED_LLM chooses whether it runs at all:
#   0     never: another endpoint is configured, start and wait do nothing;
#   1     always, on the host and port of OPENAI_BASE_URL;
#   unset only when OPENAI_BASE_URL is unset or is the embedded default, so a configured
#         external endpoint (OpenAI, vLLM, Ollama ...) is not shadowed.
# Files: .run/llm/llm.pid and .run/logs/llm.log under the repository (EXAMMENTOR_RUN_DIR
# replaces .run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${EXAMMENTOR_RUN_DIR:-$ROOT/.run}"
PID_FILE="$RUN_DIR/llm/llm.pid"
LOG_FILE="$RUN_DIR/logs/llm.log"
PYTHON="${EXAMMENTOR_PYTHON:-$ROOT/.venv/bin/python}"
DEFAULT_BASE_URL="http://127.0.0.1:8090/v1"
BASE_URL="${OPENAI_BASE_URL:-$DEFAULT_BASE_URL}"
WAIT_S="${EXAMMENTOR_LLM_WAIT_S:-120}"
STOP_GRACE_S=20

log() { echo "llm: $*" >&2; }

embedded_wanted() {
  case "${EXAMMENTOR_EMBEDDED_LLM:-}" in
    0 | false | no) return 1 ;;
    1 | true | yes) return 0 ;;
    *) [[ -z "${OPENAI_BASE_URL:-}" || "${OPENAI_BASE_URL%/}" == "$DEFAULT_BASE_URL" ]] ;;
  esac
}

# Host and port of BASE_URL, parsed by Python so IPv6 literals and default ports are right.
listen_address() {
  "$PYTHON" - "$BASE_URL" <<'EOF'
import sys
from urllib.parse import urlsplit

url = urlsplit(sys.argv[1])
print(url.hostname or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80))
EOF
}

# Alive and not a zombie: the server is reparented to init when this shell exits, and a
# finished process stays visible to kill -0 until init reaps it.
alive() {
  local pid="$1" state
  kill -0 "$pid" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ "$state" != "Z" ]]
}

running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  echo "$pid"
}

# One probe of /v1/models, then /health; exit status 0 when either answers 200.
answers() {
  "$PYTHON" - "$BASE_URL" <<'EOF'
import sys
import urllib.request

base = sys.argv[1].rstrip("/")
root = base[: -len("/v1")] if base.endswith("/v1") else base
for url in (f"{base}/models", f"{root}/health"):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
sys.exit(1)
EOF
}

cmd_wait() {
  if ! embedded_wanted; then
    log "embedded server not used (OPENAI_BASE_URL=$BASE_URL, EXAMMENTOR_EMBEDDED_LLM=${EXAMMENTOR_EMBEDDED_LLM:-})"
    return 0
  fi
  local deadline=$((SECONDS + WAIT_S))
  until answers; do
    if [[ -f "$PID_FILE" ]] && ! running_pid >/dev/null; then
      log "server exited during start-up; last lines of $LOG_FILE:"
      tail -n 20 "$LOG_FILE" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "no answer from $BASE_URL after ${WAIT_S}s"
      return 1
    fi
    sleep 0.5
  done
  log "ready at $BASE_URL"
}

cmd_start() {
  if ! embedded_wanted; then
    log "skipped: using $BASE_URL (set EXAMMENTOR_EMBEDDED_LLM=1 to run the embedded server)"
    return 0
  fi
  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid)"
    cmd_wait
    return
  fi
  if answers; then
    log "something else already answers at $BASE_URL; not starting a second server"
    return 0
  fi
  local host port
  read -r host port < <(listen_address)
  mkdir -p "$(dirname "$PID_FILE")" "$(dirname "$LOG_FILE")"
  cd "$ROOT"
  # setsid: the server outlives this shell and a Ctrl-C in it.
  # EXAMMENTOR_LLM_PARALLEL: requests decoded at once (2, for 2 cores); the services size
  # their bound on model calls from it (OPENAI_MAX_CONCURRENCY unset).
  setsid "$PYTHON" -m exammentor.llm.embedded --host "$host" --port "$port" \
    --parallel "${EXAMMENTOR_LLM_PARALLEL:-2}" >>"$LOG_FILE" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  log "started pid $! on $host:$port, log $LOG_FILE"
  cmd_wait
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + STOP_GRACE_S))
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "pid $pid ignored SIGTERM for ${STOP_GRACE_S}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
  log "stopped pid $pid"
}

cmd_status() {
  local pid
  if pid="$(running_pid)" && answers; then
    echo "llm: running (pid $pid) at $BASE_URL"
    return 0
  fi
  if pid="$(running_pid)"; then
    echo "llm: pid $pid runs but does not answer at $BASE_URL"
    return 3
  fi
  echo "llm: not running"
  return 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  wait) cmd_wait ;;
  *)
    echo "usage: $0 {start|stop|status|wait}" >&2
    exit 2
    ;;
esac
