# shellcheck shell=bash
# Helpers shared by the local stack scripts (kafka.sh, postgres.sh). Source it; do not run it.
#
# Paths: everything is derived from the repository root, found from this file's location,
# so the scripts work from any working directory and in any clone.
#   EXAMMENTOR_RUN_DIR    runtime state: pid files, data, logs   (default: <repo>/.run)
#   EXAMMENTOR_CACHE_DIR  downloaded artefacts                    (default: <repo>/.cache)
# A relative override is taken relative to the repository root.

if [[ -n "${_EXAMMENTOR_LIB_LOADED:-}" ]]; then
  return 0
fi
_EXAMMENTOR_LIB_LOADED=1

EM_REPO_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
export EM_REPO_ROOT

# Name shown in front of every message; each script sets its own.
EM_LOG_NAME="${EM_LOG_NAME:-stack}"

# em_log MESSAGE... : one line on stderr, stdout stays for data.
em_log() {
  printf '[%s] %s\n' "$EM_LOG_NAME" "$*" >&2
}

em_warn() {
  printf '[%s] warning: %s\n' "$EM_LOG_NAME" "$*" >&2
}

# em_die MESSAGE... : print an error and exit 1.
em_die() {
  printf '[%s] error: %s\n' "$EM_LOG_NAME" "$*" >&2
  exit 1
}

# em_abspath PATH : PATH made absolute, relative paths taken from the repository root.
em_abspath() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$EM_REPO_ROOT/$1" ;;
  esac
}

# shellcheck disable=SC2034 # used by the scripts that source this file
EM_RUN_DIR="$(em_abspath "${EXAMMENTOR_RUN_DIR:-.run}")"
# shellcheck disable=SC2034
EM_CACHE_DIR="$(em_abspath "${EXAMMENTOR_CACHE_DIR:-.cache}")"
# shellcheck disable=SC2034
EM_LOG_DIR="$EM_RUN_DIR/logs"

# em_is_ci : true when running under CI (CI=true or CI=1).
em_is_ci() {
  [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]
}

# em_require_cmd CMD HINT : fail with HINT when CMD is not on PATH.
em_require_cmd() {
  command -v "$1" >/dev/null 2>&1 || em_die "'$1' not found on PATH. $2"
}

# em_read_pid FILE : print the pid stored in FILE, or nothing when absent or malformed.
em_read_pid() {
  local pid=""
  if [[ -f "$1" ]]; then
    read -r pid <"$1" || true
  fi
  if [[ "$pid" =~ ^[0-9]+$ ]]; then
    printf '%s\n' "$pid"
  fi
}

# em_pid_alive PID : true when the process exists (zombies count as dead).
em_pid_alive() {
  local pid="$1" state=""
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/stat" ]]; then
    # Field 3 of /proc/PID/stat is the state; the command name before it may hold spaces.
    state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ "$state" != "Z" ]] || return 1
  fi
  return 0
}

# em_pid_matches PID TEXT : true when the process is alive and its command line contains
# TEXT. Guards against a stale pid file whose number was reused by another program.
em_pid_matches() {
  local pid="$1" text="$2" cmdline=""
  em_pid_alive "$pid" || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 0
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmdline" == *"$text"* ]]
}

# em_port_open HOST PORT : true when a TCP connection to HOST:PORT succeeds within 1 s.
em_port_open() {
  # shellcheck disable=SC2016 # $1 and $2 are expanded by the inner bash
  timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# em_wait_for_port HOST PORT TIMEOUT_S : wait until HOST:PORT accepts connections.
em_wait_for_port() {
  local host="$1" port="$2" timeout_s="$3" deadline
  deadline=$((SECONDS + timeout_s))
  until em_port_open "$host" "$port"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# em_stop_pid PID TIMEOUT_S : SIGTERM, wait up to TIMEOUT_S, then SIGKILL.
em_stop_pid() {
  local pid="$1" timeout_s="$2" deadline
  em_pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout_s))
  while em_pid_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      em_warn "pid $pid still running after ${timeout_s}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
}

# em_lock FILE [TIMEOUT_S] : hold an exclusive lock on FILE, on fd 9, until this shell
# exits; serialises start/stop when several processes (parallel test workers) call them.
# Children that outlive the script (servers) must be started with `9>&-`.
em_lock() {
  local file="$1" timeout_s="${2:-120}"
  mkdir -p "$(dirname -- "$file")"
  exec 9>"$file"
  flock -w "$timeout_s" 9 || em_die "timed out after ${timeout_s}s waiting for the lock $file"
}

# em_tail_log FILE [LINES] : the end of a log on stderr, to explain a failure.
em_tail_log() {
  local file="$1" lines="${2:-40}"
  if [[ -r "$file" ]]; then
    em_log "last $lines lines of $file:"
    tail -n "$lines" "$file" | sed 's/^/    /' >&2
  else
    em_log "no log at $file"
  fi
}
