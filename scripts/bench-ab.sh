#!/usr/bin/env bash
# Two sessiond builds side by side in the same minutes: the figures BENCHMARKS.md's A/B tables quote.
#
#   bash scripts/bench-ab.sh BINARY_A BINARY_B
#
# Each build gets its own redis-server primary with one replica on 127.0.0.1 (so that each
# Redis' CPU is that build's alone) and one session of 300 bytes in 3
# attributes. Then, ROUNDS times, GET and PATCH of that session on A and then on B with
# `wrk -t2 -c64` for DURATION seconds each, printing req/s and the CPU µs per request of that
# sessiond and of its Redis primary. Every answer must be 2xx. Everything started is stopped by PID.
# Build a commit's binary with `git worktree add /tmp/old COMMIT && (cd /tmp/old && swift build -c
# release --product sessiond)`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

[[ $# -eq 2 && -x $1 && -x $2 ]] || { echo "usage: $0 BINARY_A BINARY_B (two sessiond executables)" >&2; exit 2; }
rounds=${ROUNDS:-3}
duration=${DURATION:-5}
ticks_per_second=$(getconf CLK_TCK)
work=$(mktemp -d)
pids=()
trap 'stop_pids "${pids[@]}"' EXIT

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# start_build NAME BINARY: a primary, its replica and the build on it; sets NAME_pid, NAME_redis_pid,
# NAME_port.
start_build() {
    local name=$1 binary=$2 primary replica port
    primary=$(free_port)
    start_redis "$primary" "$work/$name-primary" --hash-max-listpack-value 1024
    pids+=("$started_pid")
    printf -v "${name}_redis_pid" %s "$started_pid"
    replica=$(free_port)
    start_redis "$replica" "$work/$name-replica" --hash-max-listpack-value 1024 --replicaof 127.0.0.1 "$primary"
    pids+=("$started_pid")
    wait_for_redis "$primary"
    wait_for_redis "$replica"
    port=$(free_port)
    "$binary" --port "$port" --redis-url "redis://127.0.0.1:$primary" --log-level warning --instance "ab-$name" \
        >"$work/$name.log" 2>&1 &
    pids+=("$!")
    printf -v "${name}_pid" %s "$!"
    printf -v "${name}_port" %s "$port"
    wait_for_url "http://127.0.0.1:$port/healthz"
}
start_build a "$1"
start_build b "$2"

value=$(printf 'v%.0s' $(seq 100))
create_session() {  # create_session PORT: prints the token of a new session with 300 bytes of data
    curl -sf -X POST "http://127.0.0.1:$1/v1/sessions" -H 'Content-Type: application/json' \
        -d "{\"data\":{\"profile\":\"$value\",\"cart\":\"$value\",\"prefs\":\"$value\"}}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}
a_token=$(create_session "$a_port")
b_token=$(create_session "$b_port")

# measure LABEL SESSIOND_PID REDIS_PID PORT TOKEN SCRIPT
measure() {
    local label=$1 server=$2 redis=$3 port=$4 token=$5 script=$6 before_server before_redis output requests
    before_server=$(cpu_ticks "$server") before_redis=$(cpu_ticks "$redis")
    output=$(BENCH_DIR=$PWD/Benchmarks/wrk BENCH_TOKEN=$token wrk -t2 -c64 -d"${duration}s" -s "Benchmarks/wrk/$script" "http://127.0.0.1:$port")
    if grep -q "Non-2xx" <<<"$output"; then echo "$label: some answers were not 2xx:" >&2; echo "$output" >&2; exit 1; fi
    requests=$(awk '/requests in/ { print $1 }' <<<"$output")
    awk -v label="$label" -v requests="$requests" -v tps="$ticks_per_second" \
        -v server="$(($(cpu_ticks "$server") - before_server))" -v redis="$(($(cpu_ticks "$redis") - before_redis))" '
        /Requests\/sec/ { rate = $2 }
        END { printf "%-10s %10.0f req/s   sessiond %6.1f µs   Redis %5.2f µs\n", label, rate, server / tps * 1e6 / requests, redis / tps * 1e6 / requests }
    ' <<<"$output"
}

echo "A = $1"
echo "B = $2"
for round in $(seq "$rounds"); do
    echo "# round $round of $rounds"
    for verb in GET PATCH; do
        script=session-$(tr '[:upper:]' '[:lower:]' <<<"$verb").lua
        measure "A $verb" "$a_pid" "$a_redis_pid" "$a_port" "$a_token" "$script"
        measure "B $verb" "$b_pid" "$b_redis_pid" "$b_port" "$b_token" "$script"
    done
done
