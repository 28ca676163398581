#!/usr/bin/env bash
# The scale-out comparison of README's "Why not sticky sessions or replication", measured on the demo
# cluster (make cluster's topology, started here in its own directory and stopped at the end):
#
#   1. memory: each sessiond's resident memory and Redis' used memory while the stored session count
#      grows from 0 to SESSIONS (default 1,000,000; 300 bytes of data each, created through the LB);
#   2. network: bytes between the sessiond tier and Redis per session write (PATCH), through the LB
#      over 3 instances and straight to 1 instance;
#   3. an instance dying (kill -9): how many of 3,000 sessions can still be read.
#
# Loopback only, bounded (each load step is DURATION seconds; ~5 minutes in all), stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
bash scripts/install-deps.sh wrk haproxy

sessions_wanted=${SESSIONS:-1000000}
step_seconds=${DURATION:-20}
wrk_dir=$PWD/Benchmarks/wrk
export CLUSTER_DIR=$PWD/.build/compare-cluster CLUSTER_PORT=${CLUSTER_PORT:-18091}
swift build -c release --product sessiond >/dev/null 2>&1 || swift build -c release --product sessiond
bash scripts/cluster.sh down >/dev/null
SESSIOND_BINARY=.build/release/sessiond bash scripts/cluster.sh up >/dev/null
trap 'bash scripts/cluster.sh down >/dev/null' EXIT
# shellcheck disable=SC1091
source "$CLUSTER_DIR/state"
read -r -a sessiond_pids <<<"$SESSIOND_PIDS"
read -r -a sessiond_ports <<<"$SESSIOND_PORTS"
export BENCH_DIR=$wrk_dir BENCH_API_KEY=$CLUSTER_API_KEY

# The primary can change if a failover happened; ask a sentinel each time.
primary_port() {
    redis-cli -p "${SENTINEL_PORTS%% *}" sentinel get-master-addr-by-name sessiond | tail -1
}
redis_info() {  # redis_info FIELD: one numeric field of the primary's INFO
    redis-cli -p "$(primary_port)" info | tr -d '\r' | awk -F: -v field="$1" '$1 == field { print $2 }'
}
auth=(-H "Authorization: Bearer $CLUSTER_API_KEY")

echo "== 1. Memory while the stored sessions grow to $sessions_wanted (300-byte data, no user)"
printf '%12s %14s %14s %14s %16s\n' sessions "sessiond-1 KiB" "sessiond-2 KiB" "sessiond-3 KiB" "Redis used MiB"
report_memory() {
    printf '%12s %14s %14s %14s %16s\n' "$1" "$(rss_kb "${sessiond_pids[0]}")" "$(rss_kb "${sessiond_pids[1]}")" \
        "$(rss_kb "${sessiond_pids[2]}")" "$(($(redis_info used_memory) / 1048576))"
}
report_memory "$(session_key_count "$(primary_port)")"
deadline=$((SECONDS + 900))
while (($(session_key_count "$(primary_port)") < sessions_wanted)); do
    ((SECONDS < deadline)) || { echo "did not reach $sessions_wanted sessions within 15 minutes" >&2; exit 1; }
    output=$(BENCH_USER="" wrk -t2 -c64 -d"${step_seconds}s" -s "$wrk_dir/session-create.lua" "$CLUSTER_URL")
    if grep -q "Non-2xx" <<<"$output"; then echo "$output" >&2; exit 1; fi
    report_memory "$(session_key_count "$(primary_port)")"
done

echo
echo "== 2. Network bytes between sessiond and Redis per session write (PATCH of one 100-byte attribute)"
token=$(curl -sf "${auth[@]}" -X POST "$CLUSTER_URL/v1/sessions" -H 'Content-Type: application/json' \
    -d '{"data":{"profile":"p","cart":"c","prefs":"x"}}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
measure_writes() {  # measure_writes LABEL URL
    local in_before out_before repl_before output requests
    in_before=$(redis_info total_net_input_bytes) out_before=$(redis_info total_net_output_bytes)
    repl_before=$(redis_info total_net_repl_output_bytes)
    output=$(BENCH_TOKEN=$token wrk -t2 -c16 -d10s -s "$wrk_dir/session-patch.lua" "$2")
    if grep -q "Non-2xx" <<<"$output"; then echo "$output" >&2; exit 1; fi
    requests=$(awk '/requests in/ { print $1 }' <<<"$output")
    local in_bytes=$(($(redis_info total_net_input_bytes) - in_before))
    local repl_bytes=$(($(redis_info total_net_repl_output_bytes) - repl_before))
    local out_bytes=$(($(redis_info total_net_output_bytes) - out_before - repl_bytes))
    printf '%-34s %8d writes: %5d B to Redis, %5d B back, %5d B to the 2 replicas per write\n' \
        "$1" "$requests" $((in_bytes / requests)) $((out_bytes / requests)) $((repl_bytes / requests))
}
measure_writes "through the LB, 3 instances" "$CLUSTER_URL"
measure_writes "straight to 1 instance" "http://127.0.0.1:${sessiond_ports[0]}"

echo
echo "== 3. kill -9 of one sessiond: can every session still be read?"
work=$(mktemp -d)
seed_sessions "$CLUSTER_URL" 3000 "$work"
kill -9 "${sessiond_pids[2]}"
cat "$work"/tokens-*.txt | python3 -c '
import http.client, sys, urllib.parse
url, key = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2]
tokens = sys.stdin.read().split()
readable = 0
for token in tokens:
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request("GET", "/v1/session", headers={"X-Session-Token": token, "Authorization": "Bearer " + key})
    readable += connection.getresponse().status == 200
    connection.close()
print(f"sessiond-3 killed: {readable} of {len(tokens)} sessions readable through the LB right after")
' "$CLUSTER_URL" "$CLUSTER_API_KEY"
rm -rf "$work"
