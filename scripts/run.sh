#!/usr/bin/env bash
# The run command: builds sessiond (release) and serves on 127.0.0.1:8080 (or SESSIOND_HOST/PORT).
# When nothing answers on SESSIOND_REDIS_URL (default redis://127.0.0.1:6379) and that URL points at
# this machine, a local redis-server is started for the session and stopped when sessiond exits.
# Every SESSIOND_* variable and flag (see `sessiond --help`) is passed through.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

swift build -c release --product sessiond
binary=.build/release/sessiond
# Nothing balances load in front of an interactive sessiond: Ctrl-C stops it at once unless a
# drain is asked for.
export SESSIOND_SHUTDOWN_DELAY=${SESSIOND_SHUTDOWN_DELAY:-0}

redis_url=${SESSIOND_REDIS_URL:-redis://127.0.0.1:6379}
read -r redis_host redis_port < <(python3 - "$redis_url" <<'PY'
import sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
print(url.hostname or "127.0.0.1", url.port or 6379)
PY
)
redis_password=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.unquote(urllib.parse.urlsplit(sys.argv[1]).password or ""))' "$redis_url")

redis_pid=""
cleanup() { if [[ -n $redis_pid ]]; then stop_pids "$redis_pid"; fi; }
trap cleanup EXIT

if REDISCLI_AUTH=$redis_password redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null | grep -q -e PONG -e NOAUTH; then
    echo "using the Redis already answering at $redis_host:$redis_port"
elif [[ $redis_host == 127.* || $redis_host == localhost ]]; then
    data_dir=${SESSIOND_RUN_DIR:-.run}
    echo "no Redis answers at $redis_host:$redis_port: starting one (data in $data_dir)"
    start_redis "$redis_port" "$data_dir" ${redis_password:+--requirepass "$redis_password"} --save 60 1
    redis_pid=$started_pid
    wait_for_redis "$redis_port"
else
    echo "no Redis answers at $redis_host:$redis_port and it is not on this machine" >&2
    exit 1
fi

"$binary" "$@" &
sessiond_pid=$!
trap 'stop_pids "$sessiond_pid"; cleanup' EXIT INT TERM
wait "$sessiond_pid"
