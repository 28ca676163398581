#!/usr/bin/env bash
# RedisClient GET throughput next to redis-benchmark's, in one run, against one private redis-server.
# 64 concurrent callers, 300-byte value; each figure is the median of 3 runs. Loopback only; stops
# the server it started (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

runs=${RUNS:-3}
seconds=${SECONDS_PER_RUN:-5}
swift build -c release --product RedisClientBenchmark >/dev/null

workdir=$(mktemp -d)
port=$(free_port)
start_redis "$port" "$workdir"
redis_pid=$started_pid
trap 'stop_pids "$redis_pid"; rm -rf "$workdir"' EXIT
wait_for_redis "$port"

client_ops=() client_p99=() peer_ops=() peer_p99=()
for run in $(seq "$runs"); do
    line=$(.build/release/RedisClientBenchmark "redis://127.0.0.1:$port" 64 "$seconds" 300)
    echo "run $run: $line"
    client_ops+=("$(sed -E 's/.*GET: ([0-9]+) ops.*/\1/' <<<"$line")")
    client_p99+=("$(sed -E 's/.*p99 ([0-9]+) .*/\1/' <<<"$line")")
    # Same number of requests the client managed, so both run for a similar time.
    csv=$(timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" -c 64 -t get -d 300 -n $((client_ops[-1] * seconds / 2)) --csv | tail -1)
    echo "run $run: redis-benchmark $csv"
    peer_ops+=("$(cut -d, -f2 <<<"$csv" | tr -d '"' | cut -d. -f1)")
    peer_p99+=("$(cut -d, -f7 <<<"$csv" | tr -d '"' | awk '{ printf "%d", $1 * 1000 }')")
done

client=$(median "${client_ops[@]}")
peer=$(median "${peer_ops[@]}")
printf '\n%-62s %12s %10s\n' "GET, 64 concurrent callers, 300-byte value" "ops/s" "p99 µs"
printf '%-62s %12s %10s\n' "RedisClient (pipelined, shared connections)" "$client" "$(median "${client_p99[@]}")"
printf '%-62s %12s %10s\n' "redis-benchmark -c 64 (one request in flight per connection)" "$peer" "$(median "${peer_p99[@]}")"
ratio=$(awk -v a="$client" -v b="$peer" 'BEGIN { printf "%.2f", a / b }')
echo "ratio: ${ratio}x (target >= 1.5x)"
