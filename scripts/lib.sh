# Shared helpers for sessiond's scripts (sourced, not run).

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# free_cluster_port: a free port below 55536 whose cluster bus port (+10000) is free too.
free_cluster_port() {
    python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    if port + 10000 < 65536:
        b = socket.socket()
        try:
            b.bind(("127.0.0.1", port + 10000)); b.close(); s.close(); print(port); break
        except OSError:
            pass
    s.close()'
}

# wait_for_redis PORT [SECONDS]: polls until redis on 127.0.0.1:PORT answers PING, or fails.
wait_for_redis() {
    local port=$1 deadline=$((SECONDS + ${2:-10}))
    until redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q -e PONG -e NOAUTH; do
        if ((SECONDS >= deadline)); then echo "redis on port $port did not answer" >&2; return 1; fi
        sleep 0.05
    done
}

# start_redis PORT DIR [ARGS...]: starts redis-server on 127.0.0.1:PORT as a background job of this
# shell and sets started_pid to its PID. No persistence unless ARGS say otherwise.
start_redis() {
    local port=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)  # absolute: redis-server resolves its log file after changing into --dir
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" \
        --logfile "$dir/redis-$port.log" --daemonize no "$@" >/dev/null 2>&1 &
    started_pid=$!
}

# stop_pids PID...: SIGTERM to each, then waits for them to exit (SIGKILL after 10 s).
stop_pids() {
    local pid
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        local deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then kill -9 "$pid" 2>/dev/null || true; fi
            sleep 0.05
        done
        wait "$pid" 2>/dev/null || true
    done
}

# rss_kb PID: the process's resident memory in KiB.
rss_kb() {
    awk '/^VmRSS/ { print $2 }' "/proc/$1/status"
}

# median of the numbers given as arguments (integers).
median() {
    printf '%s\n' "$@" | sort -n | awk '{ values[NR] = $1 } END { print values[int((NR + 1) / 2)] }'
}

# wait_for_url URL [SECONDS]: polls until URL answers 2xx, or fails (default 30 s).
wait_for_url() {
    local deadline=$((SECONDS + ${2:-30}))
    until curl -sf -o /dev/null --max-time 2 "$1"; do
        if ((SECONDS >= deadline)); then echo "$1 did not answer 2xx within ${2:-30} s" >&2; return 1; fi
        sleep 0.1
    done
}

# wait_for_answer URL [SECONDS]: polls until URL answers with any HTTP status, or fails (default 30 s).
wait_for_answer() {
    local deadline=$((SECONDS + ${2:-30}))
    until curl -s -o /dev/null --max-time 2 "$1"; do
        if ((SECONDS >= deadline)); then echo "$1 did not answer within ${2:-30} s" >&2; return 1; fi
        sleep 0.1
    done
}

# seed_sessions URL COUNT DIR: creates COUNT sessions (300 bytes of data each) through URL with
# Benchmarks/wrk/seed.lua and leaves their tokens in DIR/tokens-*.txt; fails if fewer were made.
# BENCH_API_KEY, when set, is sent as the bearer key.
seed_sessions() {
    local url=$1 count=$2 dir=$3
    BENCH_DIR=$PWD/Benchmarks/wrk BENCH_WORK=$dir BENCH_SESSIONS=$count BENCH_THREADS=2 \
        wrk -t2 -c64 -d600s -s "$PWD/Benchmarks/wrk/seed.lua" "$url" >/dev/null &
    local seed_pid=$!
    # wrk runs until its -d deadline even when every thread has stopped: stop it once both are done.
    until [[ -e $dir/done-1 && -e $dir/done-2 ]]; do
        kill -0 "$seed_pid" 2>/dev/null || { echo "seeding stopped before $count sessions" >&2; return 1; }
        sleep 0.2
    done
    stop_pids "$seed_pid"
    local seeded
    seeded=$(cat "$dir"/tokens-*.txt | wc -l)
    ((seeded >= count)) || { echo "seeding made $seeded of $count sessions" >&2; return 1; }
}

# session_key_count PORT: how many sessions the Redis on 127.0.0.1:PORT holds, counted by their keys
# (storage layout 2: sd:{b<n>}:s:<id>), not by DBSIZE, which also counts the buckets' deadline
# indexes (up to 1,024) and the fleet's keys.
session_key_count() {
    redis-cli -h 127.0.0.1 -p "$1" --scan --pattern 'sd:{b*}:s:*' | wc -l
}

# python_venv DIR REQUIREMENTS_FILE: a Python virtual environment in DIR holding the packages of
# REQUIREMENTS_FILE from PyPI, made again whenever that file changes.
python_venv() {
    local venv=$1 requirements=$2
    cmp -s "$requirements" "$venv/requirements.txt" && return 0
    echo "installing from PyPI into $venv: $(grep -v '^#' "$requirements" | tr '\n' ' ')"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
}

# start_sessiond_with_redis DIR [VARIABLE=VALUE...]: a redis-server and the debug sessiond (the one
# `swift build` made, with the given settings) on free 127.0.0.1 ports, their data and logs in DIR;
# waits until sessiond answers /healthz and sets redis_pid, sessiond_pid and sessiond_url. The
# caller stops both by PID.
start_sessiond_with_redis() {
    local dir=$1 redis_port port
    shift
    redis_port=$(free_port)
    start_redis "$redis_port" "$dir"
    redis_pid=$started_pid
    wait_for_redis "$redis_port"
    port=$(free_port)
    env SESSIOND_PORT="$port" SESSIOND_REDIS_URL="redis://127.0.0.1:$redis_port" "$@" .build/debug/sessiond >"$dir/sessiond.log" 2>&1 &
    sessiond_pid=$!
    sessiond_url=http://127.0.0.1:$port
    wait_for_url "$sessiond_url/healthz" 30 || { echo "sessiond did not start:" >&2; cat "$dir/sessiond.log" >&2; return 1; }
}
