#!/usr/bin/env bash
# sessiond over HTTP next to its peers, in one run, on one private Redis (see BENCHMARKS.md).
#
# Starts on 127.0.0.1 only: a redis-server primary with one replica, webdis (a C HTTP front end to
# Redis) on that primary, three release-built sessiond instances on it (async and replicated
# durability with events, async with events off: SESSIOND_EVENTS_RETENTION=0), a fourth on the
# primary over TLS (rediss://, a certificate made here with openssl), a fifth on a 3-shard Redis
# Cluster (no replicas), and the session stores
# people deploy instead, on the same primary (Benchmarks/peers: Go net/http + gorilla/sessions +
# redistore, Flask + Flask-Session on gunicorn, Starlette + starsessions on uvicorn). Then, RUNS
# times and interleaved so drift hits every scenario alike, drives each scenario with
# `wrk -t2 -c64` for DURATION seconds, and prints one table of medians: req/s, p50/p99, CPU µs per
# request of the server (all its processes), webdis and Redis, with the target ratios. Every answer
# must be 2xx. Everything started is stopped by PID.
#
# Settings (environment): RUNS (3), DURATION (10 s per scenario run), SESSIONS (100000 sessions for
# the mixed scenario), SOAK_SECONDS (0; when > 0, afterwards runs the mix that long and checks that
# sessiond's resident memory does not grow), BENCH_RESULTS (a file to keep the raw per-run figures).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

runs=${RUNS:-3}
duration=${DURATION:-10}
sessions=${SESSIONS:-100000}
soak_seconds=${SOAK_SECONDS:-0}
wrk_dir=$PWD/Benchmarks/wrk
ticks_per_second=$(getconf CLK_TCK)

work=$(mktemp -d)
swift build -c release --product sessiond >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
binary=$PWD/.build/release/sessiond

# The peers: the Go one from Debian's packages (GOPATH mode, offline), the Python ones from PyPI
# into a virtual environment kept in .build (remade when requirements.txt changes).
peers=$PWD/Benchmarks/peers
(cd "$peers/go-redistore" && GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=$OLDPWD/.build/go-cache go build -o "$work/go-redistore" .)
venv=$PWD/.build/peers-venv
python_venv "$venv" "$peers/requirements.txt"

pids=()
cleanup() { stop_pids "${pids[@]}"; rm -rf "$work"; }
trap cleanup EXIT

# --- the processes under test --------------------------------------------------------------------
# Both Redis servers run with README's recommended hash-max-listpack-value, which keeps a session of
# a few 100-byte attributes in one compact listpack instead of a hash table (half the memory).
# TLS for the TLS rows: a CA and a certificate for 127.0.0.1 (openssl), the primary listening with
# TLS on a second port.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/ca.key" -out "$work/ca.crt" \
    -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/redis.key" -out "$work/redis.csr" \
    -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$work/redis.ext"
openssl x509 -req -in "$work/redis.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial -out "$work/redis.crt" \
    -days 2 -extfile "$work/redis.ext" 2>/dev/null
primary_port=$(free_port) primary_tls_port=$(free_port)
start_redis "$primary_port" "$work/primary" --hash-max-listpack-value 1024 --tls-port "$primary_tls_port" \
    --tls-cert-file "$work/redis.crt" --tls-key-file "$work/redis.key" --tls-ca-cert-file "$work/ca.crt" --tls-auth-clients no
primary_pid=$started_pid
pids+=("$primary_pid")
replica_port=$(free_port)
start_redis "$replica_port" "$work/replica" --hash-max-listpack-value 1024 --replicaof 127.0.0.1 "$primary_port" --repl-diskless-sync-delay 0
replica_pid=$started_pid
pids+=("$replica_pid")
wait_for_redis "$primary_port"
wait_for_redis "$replica_port"

# webdis reads only a config file path: anything else (even --help) makes it listen on every
# interface with defaults. So it always gets this file, which binds 127.0.0.1.
webdis_port=$(free_port)
cat >"$work/webdis.json" <<EOF
{"redis_host": "127.0.0.1", "redis_port": $primary_port, "http_host": "127.0.0.1", "http_port": $webdis_port,
 "threads": 2, "daemonize": false, "database": 0, "verbosity": 1, "logfile": "$work/webdis.log"}
EOF
webdis "$work/webdis.json" >/dev/null 2>&1 &
webdis_pid=$!
pids+=("$webdis_pid")

start_sessiond() {  # start_sessiond NAME [FLAGS...]: sets started_pid and started_port
    started_port=$(free_port)
    "$binary" --port "$started_port" --redis-url "redis://127.0.0.1:$primary_port" --log-level warning \
        --instance "$1" "${@:2}" >"$work/$1.log" 2>&1 &
    started_pid=$!
    pids+=("$started_pid")
}
# A Redis Cluster of three primaries (redis-cli --cluster create) for the cluster rows.
cluster_ports=() cluster_pids=()
for _ in 1 2 3; do
    port=$(free_cluster_port)
    start_redis "$port" "$work/cluster-$port" --hash-max-listpack-value 1024 --cluster-enabled yes \
        --cluster-config-file nodes.conf --cluster-node-timeout 1000 --cluster-require-full-coverage no
    cluster_ports+=("$port") cluster_pids+=("$started_pid")
    pids+=("$started_pid")
done
for port in "${cluster_ports[@]}"; do wait_for_redis "$port"; done
# shellcheck disable=SC2046
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") --cluster-replicas 0 --cluster-yes >"$work/cluster-create.log" 2>&1
for port in "${cluster_ports[@]}"; do
    until redis-cli -p "$port" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
done
cluster_seeds=$(printf '127.0.0.1:%s,' "${cluster_ports[@]}")

start_sessiond bench-async
async_pid=$started_pid async_port=$started_port
start_sessiond bench-replicated --durability replicated --durability-replicas 1 --durability-timeout 1000
replicated_pid=$started_pid replicated_port=$started_port
start_sessiond bench-cluster --redis-cluster "${cluster_seeds%,}"
cluster_pid=$started_pid cluster_port=$started_port
start_sessiond bench-no-events --events-retention 0
no_events_pid=$started_pid no_events_port=$started_port
start_sessiond bench-tls --redis-url "rediss://127.0.0.1:$primary_tls_port" --redis-tls-ca-file "$work/ca.crt"
tls_pid=$started_pid tls_port=$started_port

# The peers, each on the async primary, as many processes as their documentation advises for 2 cores.
go_port=$(free_port)
"$work/go-redistore" -listen "127.0.0.1:$go_port" -redis "127.0.0.1:$primary_port" >"$work/go.log" 2>&1 &
go_pid=$!
pids+=("$go_pid")
flask_port=$(free_port)
REDIS_URL=redis://127.0.0.1:$primary_port "$venv/bin/gunicorn" --chdir "$peers" --workers 5 \
    --bind "127.0.0.1:$flask_port" flask_session_app:app >"$work/flask.log" 2>&1 &
flask_pid=$!
pids+=("$flask_pid")
starlette_port=$(free_port)
REDIS_URL=redis://127.0.0.1:$primary_port "$venv/bin/uvicorn" --app-dir "$peers" --workers 2 --host 127.0.0.1 \
    --port "$starlette_port" --log-level warning --no-access-log starsessions_app:app >"$work/starlette.log" 2>&1 &
starlette_pid=$!
pids+=("$starlette_pid")

wait_for_url "http://127.0.0.1:$async_port/readyz"
wait_for_url "http://127.0.0.1:$no_events_port/readyz"
wait_for_url "http://127.0.0.1:$replicated_port/readyz"  # 503 until the replica is in sync
wait_for_url "http://127.0.0.1:$cluster_port/readyz"
wait_for_url "http://127.0.0.1:$tls_port/readyz"
wait_for_url "http://127.0.0.1:$webdis_port/PING"
if ss -ltnp | grep "pid=$webdis_pid," | grep -qv "127.0.0.1:$webdis_port"; then
    echo "webdis listens beyond 127.0.0.1:$webdis_port; refusing to go on" >&2
    exit 1
fi

# --- the data the scenarios read and write -------------------------------------------------------
value300=$(printf 'v%.0s' $(seq 300))
redis-cli -h 127.0.0.1 -p "$primary_port" set bench:webdis:get "$value300" >/dev/null
create_session() {  # create_session PORT: prints the token of a new session with 300 bytes of data
    local value100=${value300:0:100}
    curl -sf -X POST "http://127.0.0.1:$1/v1/sessions" -H 'Content-Type: application/json' \
        -d "{\"data\":{\"profile\":\"$value100\",\"cart\":\"$value100\",\"prefs\":\"$value100\"}}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}
# login PORT: logs in to a peer (a session of 3 attributes of 100 bytes) and prints its cookie.
login() {
    wait_for_answer "http://127.0.0.1:$1/session"
    curl -sf -D - -o /dev/null -X POST "http://127.0.0.1:$1/login" |
        awk 'tolower($1) == "set-cookie:" { sub(/;.*/, "", $2); print $2 }' | tr -d '\r'
}
go_cookie=$(login "$go_port")
flask_cookie=$(login "$flask_port")
starlette_cookie=$(login "$starlette_port")
for cookie in "$go_cookie" "$flask_cookie" "$starlette_cookie"; do
    [[ -n $cookie ]] || { echo "a peer did not log in; its logs are in $work" >&2; cat "$work"/*.log >&2; exit 1; }
done
async_token=$(create_session "$async_port")
replicated_token=$(create_session "$replicated_port")
cluster_token=$(create_session "$cluster_port")
tls_token=$(create_session "$tls_port")
no_events_token=$(create_session "$no_events_port")

# Memory the stored sessions take: used_memory without the replication backlog and the replica's
# output buffer, fixed-size buffers (1 MiB by default) that fill up with the first megabyte written
# and would otherwise be charged to the sessions (~10 bytes each over 100,000).
used_memory() {
    redis-cli -h 127.0.0.1 -p "$primary_port" info memory |
        awk -F: '/^used_memory:/ { used = $2 } /^mem_replication_backlog:|^mem_clients_slaves:/ { buffers += $2 }
                 END { print used - buffers }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# What the fleet costs Redis while nobody calls it: the events instances' tails of the log and the
# expiry sweeper (ten seconds, before any load).
idle_before=$(cpu_ticks "$primary_pid")
sleep 10  # a fixed stretch of idleness to measure, not a wait for a condition
idle_redis_us_per_s=$((($(cpu_ticks "$primary_pid") - idle_before) * 1000000 / ticks_per_second / 10))
# Seeded through the instance with events off: the sessions alone (the event log is measured apart).
memory_before=$(used_memory)
keys_before=$(session_key_count "$primary_port")
seed_sessions "http://127.0.0.1:$no_events_port" "$sessions" "$work"
# Sessions the seed created beyond the count (requests in flight when a thread stopped) count too.
created=$(($(session_key_count "$primary_port") - keys_before))
bytes_per_session=$((($(used_memory) - memory_before) / created))

# --- the scenarios -------------------------------------------------------------------------------
results=${BENCH_RESULTS:-$work/results.tsv}
: >"$results"
max_rss_kb=0

# redis_ticks: CPU ticks of the Redis processes a scenario uses (REDIS_CPU_PIDS, default the primary),
# summed: a cluster's shards together.
redis_ticks() {
    local total=0 pid
    for pid in ${REDIS_CPU_PIDS:-$primary_pid}; do total=$((total + $(cpu_ticks "$pid"))); done
    echo "$total"
}

# server_ticks PID: CPU ticks of a server and of its child processes (gunicorn's and uvicorn's workers).
server_ticks() {
    local total pid
    total=$(cpu_ticks "$1")
    for pid in $(cat "/proc/$1/task/"*/children 2>/dev/null); do total=$((total + $(cpu_ticks "$pid"))); done
    echo "$total"
}

# measure NAME SERVER_PID -- COMMAND...: runs a wrk command, appends one line of figures.
measure() {
    local name=$1 server_pid=$2
    shift 3
    local before_server before_webdis before_redis output
    before_server=$(server_ticks "$server_pid") before_webdis=$(cpu_ticks "$webdis_pid") before_redis=$(redis_ticks)
    output=$("$@")
    if grep -q "Non-2xx" <<<"$output"; then
        echo "$name: some answers were not 2xx:" >&2
        echo "$output" >&2
        exit 1
    fi
    local requests
    requests=$(awk '/requests in/ { print $1 }' <<<"$output")
    awk -v name="$name" -v requests="$requests" -v tps="$ticks_per_second" \
        -v server="$(($(server_ticks "$server_pid") - before_server))" \
        -v webdis="$(($(cpu_ticks "$webdis_pid") - before_webdis))" \
        -v redis="$(($(redis_ticks) - before_redis))" '
        function ms(text) {
            if (text ~ /us$/) return substr(text, 1, length(text) - 2) / 1000
            if (text ~ /ms$/) return substr(text, 1, length(text) - 2) + 0
            return substr(text, 1, length(text) - 1) * 1000
        }
        /Requests\/sec/ { rate = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        END {
            us = 1000000 / tps / requests
            printf "%s\t%.0f\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\n", name, rate, p50, p99, server * us, webdis * us, redis * us
        }' <<<"$output" >>"$results"
    local rss
    rss=$(rss_kb "$async_pid")
    ((rss > max_rss_kb)) && max_rss_kb=$rss
    tail -1 "$results"
}

wrk_run() { wrk -t2 -c64 -d"${duration}s" --latency "$@"; }
async=http://127.0.0.1:$async_port
replicated=http://127.0.0.1:$replicated_port
webdis=http://127.0.0.1:$webdis_port
export BENCH_DIR=$wrk_dir BENCH_WORK=$work

echo "scenario	req/s	p50 ms	p99 ms	server µs/req	webdis µs/req	redis µs/req"
for run in $(seq "$runs"); do
    echo "# run $run of $runs"
    measure "sessiond /healthz" "$async_pid" -- wrk_run "$async/healthz"
    BENCH_TOKEN=$async_token measure "sessiond GET /v1/session" "$async_pid" -- wrk_run -s "$wrk_dir/session-get.lua" "$async"
    BENCH_TOKEN=$async_token measure "sessiond GET /v1/auth" "$async_pid" -- wrk_run -s "$wrk_dir/session-auth.lua" "$async"
    measure "webdis GET" "$async_pid" -- wrk_run "$webdis/GET/bench:webdis:get"
    BENCH_TOKEN=$async_token measure "sessiond PATCH /v1/session" "$async_pid" -- wrk_run -s "$wrk_dir/session-patch.lua" "$async"
    measure "webdis SETEX" "$async_pid" -- wrk_run -s "$wrk_dir/webdis-setex.lua" "$webdis"
    BENCH_TOKEN=$replicated_token measure "sessiond PATCH, replicated" "$replicated_pid" -- wrk_run -s "$wrk_dir/session-patch.lua" "$replicated"
    measure "sessiond POST /v1/sessions" "$async_pid" -- wrk_run -s "$wrk_dir/session-create.lua" "$async"
    # The same three with events off, on the same Redis, in the same minutes.
    BENCH_TOKEN=$no_events_token measure "sessiond GET, events off" "$no_events_pid" -- wrk_run -s "$wrk_dir/session-get.lua" "http://127.0.0.1:$no_events_port"
    BENCH_TOKEN=$no_events_token measure "sessiond PATCH, events off" "$no_events_pid" -- wrk_run -s "$wrk_dir/session-patch.lua" "http://127.0.0.1:$no_events_port"
    measure "sessiond POST, events off" "$no_events_pid" -- wrk_run -s "$wrk_dir/session-create.lua" "http://127.0.0.1:$no_events_port"
    measure "sessiond 90% GET / 10% PATCH" "$async_pid" -- wrk_run -s "$wrk_dir/session-mix.lua" "$async"
    BENCH_COOKIE=$go_cookie measure "go-redistore GET" "$go_pid" -- wrk_run -s "$wrk_dir/peer-get.lua" "http://127.0.0.1:$go_port"
    BENCH_COOKIE=$go_cookie measure "go-redistore PATCH" "$go_pid" -- wrk_run -s "$wrk_dir/peer-patch.lua" "http://127.0.0.1:$go_port"
    BENCH_COOKIE=$flask_cookie measure "flask-session GET" "$flask_pid" -- wrk_run -s "$wrk_dir/peer-get.lua" "http://127.0.0.1:$flask_port"
    BENCH_COOKIE=$flask_cookie measure "flask-session PATCH" "$flask_pid" -- wrk_run -s "$wrk_dir/peer-patch.lua" "http://127.0.0.1:$flask_port"
    BENCH_COOKIE=$starlette_cookie measure "starsessions GET" "$starlette_pid" -- wrk_run -s "$wrk_dir/peer-get.lua" "http://127.0.0.1:$starlette_port"
    BENCH_COOKIE=$starlette_cookie measure "starsessions PATCH" "$starlette_pid" -- wrk_run -s "$wrk_dir/peer-patch.lua" "http://127.0.0.1:$starlette_port"
    BENCH_TOKEN=$tls_token measure "sessiond GET, TLS to Redis" "$tls_pid" -- wrk_run -s "$wrk_dir/session-get.lua" "http://127.0.0.1:$tls_port"
    BENCH_TOKEN=$tls_token measure "sessiond PATCH, TLS to Redis" "$tls_pid" -- wrk_run -s "$wrk_dir/session-patch.lua" "http://127.0.0.1:$tls_port"
    BENCH_TOKEN=$cluster_token REDIS_CPU_PIDS="${cluster_pids[*]}" \
        measure "sessiond GET, 3-shard cluster" "$cluster_pid" -- wrk_run -s "$wrk_dir/session-get.lua" "http://127.0.0.1:$cluster_port"
    BENCH_TOKEN=$cluster_token REDIS_CPU_PIDS="${cluster_pids[*]}" \
        measure "sessiond PATCH, 3-shard cluster" "$cluster_pid" -- wrk_run -s "$wrk_dir/session-patch.lua" "http://127.0.0.1:$cluster_port"
    # redis-benchmark: Redis's own ceiling for the same value size (its CPU is all in redis-server).
    for test in get set; do
        before_redis=$(cpu_ticks "$primary_pid")
        csv=$(timeout 120 redis-benchmark -h 127.0.0.1 -p "$primary_port" -c 64 -d 300 -t "$test" -n 500000 --csv | tail -1)
        tr -d '"' <<<"$csv" | awk -F, -v name="redis-benchmark ${test^^}" -v ticks="$(($(cpu_ticks "$primary_pid") - before_redis))" -v tps="$ticks_per_second" '
            { printf "%s\t%.0f\t%.2f\t%.2f\t-\t-\t%.1f\n", name, $2, $5, $7, ticks * 1000000 / tps / 500000 }' >>"$results"
        tail -1 "$results"
    done
done

# Memory per retained event: the log (every create of the runs above appended one) over its length.
log_entries=$(redis-cli -h 127.0.0.1 -p "$primary_port" xlen 'sd:{e}:log')
log_bytes=$(redis-cli -h 127.0.0.1 -p "$primary_port" memory usage 'sd:{e}:log' samples 0)
bytes_per_event=$((${log_bytes:-0} / (log_entries > 0 ? log_entries : 1)))

# --- the table of medians and the targets --------------------------------------------------------
echo
python3 - "$results" "$runs" "$max_rss_kb" "$bytes_per_session" "$bytes_per_event" "$log_entries" "$idle_redis_us_per_s" <<'PY'
import statistics, sys
path, runs, max_rss_kb, bytes_per_session = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
bytes_per_event, log_entries, idle_redis = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
rows = {}
for line in open(path):
    name, *figures = line.rstrip("\n").split("\t")
    rows.setdefault(name, []).append(figures)

def median(name, column):
    values = [float(f[column]) for f in rows[name] if f[column] != "-"]
    return statistics.median(values) if values else None

print(f"Medians of {runs} runs, wrk -t2 -c64, 300-byte values, all on 127.0.0.1:")
print(f"{'scenario':36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'server µs':>12} {'webdis µs':>10} {'redis µs':>9}")
for name in rows:
    cells = [median(name, c) for c in range(6)]
    text = [f"{cells[0]:9.0f}", f"{cells[1]:8.2f}", f"{cells[2]:8.2f}"] + [
        f"{'-' if v is None or v == 0 else f'{v:.1f}':>{w}}" for v, w in zip(cells[3:], (12, 10, 9))]
    print(f"{name:36} " + " ".join(text))

def ratio(a, b):
    return median(a, 0) / median(b, 0)

# The fastest of the session stores people deploy instead, per operation.
peers = ("go-redistore", "flask-session", "starsessions")
fastest = {verb: max((f"{peer} {verb}" for peer in peers), key=lambda name: median(name, 0)) for verb in ("GET", "PATCH")}
get, patch = "sessiond GET /v1/session", "sessiond PATCH /v1/session"
targets = [
    (f"session GET / {fastest['GET']}", ratio(get, fastest["GET"]), ">=", 2.0),
    (f"session PATCH / {fastest['PATCH']}", ratio(patch, fastest["PATCH"]), ">=", 2.0),
    (f"session GET p99 / {fastest['GET']} p99", median(get, 2) / median(fastest["GET"], 2), "<", 1.0),
    (f"session PATCH p99 / {fastest['PATCH']} p99", median(patch, 2) / median(fastest["PATCH"], 2), "<", 1.0),
    ("session GET / webdis GET", ratio(get, "webdis GET"), ">=", 0.6),
    ("session PATCH / webdis SETEX", ratio(patch, "webdis SETEX"), ">=", 0.5),
    ("sessiond CPU per GET / webdis CPU per GET", median(get, 3) / median("webdis GET", 4), "<=", 2.0),
    ("Redis CPU per session GET / per plain GET", median(get, 5) / median("webdis GET", 5), "<=", 1.5),
    ("Redis CPU per session PATCH / per SETEX", median(patch, 5) / median("webdis SETEX", 5), "<=", 3.0),
    ("replicated PATCH / async PATCH", ratio("sessiond PATCH, replicated", patch), ">=", 0.5),
    ("sessiond max RSS MiB (< 64)", max_rss_kb / 1024, "<", 64),
    ("Redis bytes per session / 300 data bytes", bytes_per_session / 300, "<=", 2.0),
]
print()
for name, value, op, target in targets:
    met = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    print(f"{name:52} {value:8.2f}  target {op} {target:<5} {'met' if met else 'MISSED'}")
print(f"\nRedis memory per stored session (3 attributes, 300 bytes of data): {bytes_per_session} bytes")
print(f"GET /v1/auth: {ratio('sessiond GET /v1/auth', get):.2f}x the GET /v1/session req/s; sessiond CPU per request "
      f"{median('sessiond GET /v1/auth', 3):.1f} µs (GET /v1/session {median(get, 3):.1f} µs)")
for verb, single in (("GET", "sessiond GET /v1/session"), ("PATCH", "sessiond PATCH /v1/session")):
    tls = f"sessiond {verb}, TLS to Redis"
    print(f"TLS to Redis {verb}: {ratio(tls, single):.2f}x the plain req/s; sessiond CPU per request {median(tls, 3):.1f} µs "
          f"(plain {median(single, 3):.1f} µs), Redis {median(tls, 5):.1f} µs (plain {median(single, 5):.1f} µs)")
print("Events on / off (same Redis, same minutes): "
      + "; ".join(f"{verb} req/s {ratio(on, off):.2f}x, Redis CPU per request {median(on, 5):.1f} µs vs {median(off, 5):.1f} µs"
                  for verb, on, off in (("GET", get, "sessiond GET, events off"), ("PATCH", patch, "sessiond PATCH, events off"),
                                        ("POST", "sessiond POST /v1/sessions", "sessiond POST, events off"))))
print(f"Event log: {log_entries} events retained, {bytes_per_event} bytes of Redis memory each; "
      f"the fleet idle (the log's tails of 3 instances with events, and the sweeper) costs Redis {idle_redis / 1000:.1f} ms of CPU per second")
for verb, single in (("GET", "sessiond GET /v1/session"), ("PATCH", "sessiond PATCH /v1/session")):
    cluster = f"sessiond {verb}, 3-shard cluster"
    print(f"3-shard cluster {verb}: {ratio(cluster, single):.2f}x the single-Redis req/s; Redis CPU per request "
          f"summed over the shards {median(cluster, 5):.1f} µs (single Redis {median(single, 5):.1f} µs)")
PY

# --- optional soak: resident memory over a long mixed load ---------------------------------------
if ((soak_seconds > 0)); then
    echo
    echo "soak: ${soak_seconds}s of the 90/10 mix; sessiond RSS every 30 s"
    wrk -t2 -c64 -d"${soak_seconds}s" -s "$wrk_dir/session-mix.lua" "$async" >"$work/soak.out" &
    soak_pid=$!
    samples=()
    while kill -0 "$soak_pid" 2>/dev/null; do
        samples+=("$(rss_kb "$async_pid")")
        echo "  t=$(( (${#samples[@]} - 1) * 30 ))s rss ${samples[-1]} kB"
        for _ in $(seq 300); do kill -0 "$soak_pid" 2>/dev/null || break; sleep 0.1; done
    done
    wait "$soak_pid"
    grep -E "requests in|Requests/sec|Non-2xx" "$work/soak.out"
    # Growth is judged after a warm-up minute: allocator caches fill during the first one.
    python3 - "${samples[@]}" <<'PY'
import sys
samples = [int(s) for s in sys.argv[1:]]
warm = samples[2:] or samples
growth = warm[-1] - warm[0]
print(f"soak: rss after warm-up {warm[0]} kB, at the end {warm[-1]} kB, max {max(samples)} kB; growth {growth} kB")
sys.exit(0 if max(samples) < 64 * 1024 and growth <= 2048 else 1)
PY
fi
