#!/usr/bin/env bash
# The demo cluster of docker-compose.yml as plain processes on 127.0.0.1 (no Docker needed):
# a Redis primary with two replicas, three sentinels, three sessiond instances and HAProxy in front,
# and the nginx gateway with the application it protects, all configured from deploy/ (the same
# files the compose file uses). With REDIS=cluster, the
# topology of docker-compose.cluster.yml instead: a Redis Cluster of three primaries with two
# replicas each under the same three sessiond instances and HAProxy.
#
#   scripts/cluster.sh up      starts it in the background, prints the URL and the API key
#   scripts/cluster.sh down    stops everything it started (by PID) and removes its files
#   scripts/cluster.sh heal    starts again what is no longer running (the demo stops some)
#   scripts/cluster.sh restart N   restarts sessiond-N as a rolling deploy does: SIGTERM (it drains,
#                              see README "Shutting down: the drain"), waits for it to exit, then
#                              heals (starts it again and waits until it is ready)
#
# State (PIDs, ports, the API key, logs) lives in CLUSTER_DIR (default .cluster/); `down` reads it.
# CLUSTER_PORT (default 8090) is the load balancer's port; every other port is a free one.
# SESSIOND_BINARY picks the sessiond to run (default: a release build, made first).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

cluster_dir=${CLUSTER_DIR:-.cluster}
state=$cluster_dir/state

down() {
    [[ -f $state ]] || { echo "no cluster running (no $state)"; return 0; }
    # shellcheck disable=SC1090
    source "$state"
    # The gateway and the load balancer first, then the instances, then Redis: nothing is left
    # half-served.
    stop_pids $GATEWAY_PID $HAPROXY_PID $SESSIOND_PIDS $SENTINEL_PIDS $REDIS_PIDS
    rm -rf "$cluster_dir"
    echo "cluster stopped"
}

up() {
    if [[ -f $state ]]; then
        echo "a cluster is already running (see $state); stop it with: make cluster-down" >&2
        exit 1
    fi
    local binary=${SESSIOND_BINARY:-}
    if [[ -z $binary ]]; then
        swift build -c release --product sessiond
        binary=.build/release/sessiond
    fi
    binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
    mkdir -p "$cluster_dir"
    cluster_dir=$(cd "$cluster_dir" && pwd)
    state=$cluster_dir/state
    set -a
    # shellcheck disable=SC1091
    source deploy/cluster.env
    set +a

    # Anything that fails from here stops what was started so far.
    local started=()
    trap 'stop_pids "${started[@]}"; rm -rf "$cluster_dir"' ERR

    local redis_mode=${REDIS:-sentinel} redis_env=() redis_summary redis_pids=() redis_ports=() redis_dirs=() sentinel_pids=() sentinel_ports=()
    case $redis_mode in
        sentinel) start_sentinel_redis ;;
        cluster) start_cluster_redis ;;
        *) echo "REDIS must be sentinel or cluster, not '$redis_mode'" >&2; false ;;
    esac

    local api_key sessiond_ports=() sessiond_pids=()
    api_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
    for index in 1 2 3; do
        local port
        port=$(free_port)
        # Its command is kept in a script of its own, so that `heal` can start it again as it was.
        {
            printf 'set -a; source %q; set +a\n' "$PWD/deploy/cluster.env"
            printf 'exec env SESSIOND_HOST=127.0.0.1 SESSIOND_PORT=%q SESSIOND_INSTANCE=%q SESSIOND_API_KEYS=%q' \
                "$port" "sessiond-$index" "$api_key"
            printf ' %q' "${redis_env[@]}" "$binary"
            printf ' >>%q 2>&1\n' "$cluster_dir/sessiond-$index.log"
        } >"$cluster_dir/sessiond-$index.run"
        bash "$cluster_dir/sessiond-$index.run" &
        sessiond_ports+=("$port"); sessiond_pids+=("$!"); started+=("$!")
    done
    for port in "${sessiond_ports[@]}"; do wait_for_url "http://127.0.0.1:$port/readyz" 60; done

    local lb_port=${CLUSTER_PORT:-8090}
    if curl -s -o /dev/null "http://127.0.0.1:$lb_port/"; then
        echo "port $lb_port is taken; set CLUSTER_PORT" >&2
        false
    fi
    LB_BIND=127.0.0.1:$lb_port SESSIOND_1=127.0.0.1:${sessiond_ports[0]} SESSIOND_2=127.0.0.1:${sessiond_ports[1]} \
        SESSIOND_3=127.0.0.1:${sessiond_ports[2]} haproxy -f deploy/haproxy.cfg -db >"$cluster_dir/haproxy.log" 2>&1 &
    local haproxy_pid=$!
    started+=("$haproxy_pid")
    wait_for_url "http://127.0.0.1:$lb_port/readyz" 30

    # The gateway of docker-compose.yml: nginx admitting requests to the demo's application only
    # with a live session, both from deploy/ with their placeholders filled in.
    local gateway_port application_port
    gateway_port=$(free_port) application_port=$(free_port)
    mkdir -p "$cluster_dir/nginx/temp"
    {
        echo "daemon off; pid $cluster_dir/nginx/nginx.pid; error_log $cluster_dir/nginx/error.log warn;"
        echo "events { worker_connections 256; }"
        echo "http { access_log off; client_body_temp_path $cluster_dir/nginx/temp/body; proxy_temp_path $cluster_dir/nginx/temp/proxy;"
        echo "fastcgi_temp_path $cluster_dir/nginx/temp/fastcgi; uwsgi_temp_path $cluster_dir/nginx/temp/uwsgi; scgi_temp_path $cluster_dir/nginx/temp/scgi;"
        sed -e "s|\${SESSIOND_UPSTREAM}|127.0.0.1:$lb_port|" -e "s|\${APPLICATION_UPSTREAM}|127.0.0.1:$application_port|" \
            -e "s|\${GATEWAY_LISTEN}|127.0.0.1:$gateway_port|" -e "s|\${SESSIOND_API_KEY}|$api_key|" \
            -e "s|\${APPLICATION_LISTEN}|127.0.0.1:$application_port|" deploy/nginx-gateway.conf deploy/nginx-application.conf
        echo "}"
    } >"$cluster_dir/nginx/nginx.conf"
    nginx -p "$cluster_dir/nginx" -c "$cluster_dir/nginx/nginx.conf" >"$cluster_dir/nginx.log" 2>&1 &
    local gateway_pid=$!
    started+=("$gateway_pid")
    wait_for_answer "http://127.0.0.1:$gateway_port/" 30

    cat >"$state" <<EOF
REDIS_MODE=$redis_mode
CLUSTER_URL=http://127.0.0.1:$lb_port
CLUSTER_API_KEY=$api_key
GATEWAY_URL=http://127.0.0.1:$gateway_port
GATEWAY_PID=$gateway_pid
HAPROXY_PID=$haproxy_pid
SESSIOND_PIDS="${sessiond_pids[*]}"
SESSIOND_PORTS="${sessiond_ports[*]}"
SENTINEL_PIDS="${sentinel_pids[*]}"
SENTINEL_PORTS="${sentinel_ports[*]}"
REDIS_PIDS="${redis_pids[*]}"
REDIS_PORTS="${redis_ports[*]}"
REDIS_DIRS="${redis_dirs[*]}"
EOF
    trap - ERR
    echo "cluster up: http://127.0.0.1:$lb_port (HAProxy, round robin over 3 sessiond)"
    echo "  API key:   $api_key   (send it as: Authorization: Bearer <key>)"
    echo "  gateway:   http://127.0.0.1:$gateway_port (nginx admitting the demo application only with a session cookie 'sid')"
    echo "  Redis:     $redis_summary"
    echo "  logs and state in $cluster_dir; stop with: make cluster-down"
}

# A primary with two replicas and three sentinels; fills redis_pids, redis_ports, sentinel_pids,
# sentinel_ports, redis_env (sessiond's settings) and redis_summary.
start_sentinel_redis() {
    local primary_port replica_ports=()
    primary_port=$(free_port)
    start_redis_from_config "$primary_port" "$cluster_dir/redis-primary"
    redis_pids+=("$started_pid"); started+=("$started_pid")
    for index in 1 2; do
        local port
        port=$(free_port)
        start_redis_from_config "$port" "$cluster_dir/redis-replica-$index" --replicaof 127.0.0.1 "$primary_port"
        replica_ports+=("$port"); redis_pids+=("$started_pid"); started+=("$started_pid")
    done
    redis_ports=("$primary_port" "${replica_ports[@]}")
    for port in "${redis_ports[@]}"; do wait_for_redis "$port"; done

    for index in 1 2 3; do
        local port dir
        port=$(free_port)
        dir=$cluster_dir/sentinel-$index
        mkdir -p "$dir"
        render_sentinel_config "$port" 127.0.0.1 "$dir" 127.0.0.1 "$primary_port" >"$dir/sentinel.conf"
        redis-sentinel "$dir/sentinel.conf" --logfile "$dir/sentinel.log" --daemonize no >/dev/null 2>&1 &
        sentinel_ports+=("$port"); sentinel_pids+=("$!"); started+=("$!")
    done
    for port in "${sentinel_ports[@]}"; do wait_for_redis "$port"; done
    local sentinels
    sentinels=$(printf '127.0.0.1:%s,' "${sentinel_ports[@]}")
    redis_env=("SESSIOND_SENTINELS=${sentinels%,}")
    redis_summary="primary 127.0.0.1:$primary_port, replicas ${replica_ports[*]}; sentinels ${sentinel_ports[*]} (master '$SESSIOND_SENTINEL_MASTER')"
}

# A Redis Cluster of three primaries with two replicas each (a shard whose primary dies keeps a
# replica, as replicated writes need), made with redis-cli --cluster create; fills redis_pids,
# redis_ports, redis_env and redis_summary.
start_cluster_redis() {
    for index in $(seq 1 9); do
        local port
        port=$(free_cluster_port)
        start_redis_from_config "$port" "$cluster_dir/redis-node-$index" \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT" \
            --cluster-require-full-coverage no
        redis_ports+=("$port"); redis_pids+=("$started_pid"); started+=("$started_pid")
    done
    for port in "${redis_ports[@]}"; do wait_for_redis "$port"; done
    # shellcheck disable=SC2046
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${redis_ports[@]}") --cluster-replicas 2 --cluster-yes \
        >"$cluster_dir/cluster-create.log" 2>&1
    local deadline=$((SECONDS + 30))
    for port in "${redis_ports[@]}"; do
        until redis-cli -p "$port" cluster info 2>/dev/null | grep -q cluster_state:ok; do
            ((SECONDS < deadline)) || { echo "the Redis Cluster did not form within 30 s" >&2; return 1; }
            sleep 0.1
        done
    done
    local seeds
    seeds=$(printf '127.0.0.1:%s,' "${redis_ports[@]}")
    redis_env=("SESSIOND_REDIS_CLUSTER=${seeds%,}")
    redis_summary="Redis Cluster of 3 primaries x 2 replicas on ${redis_ports[*]}"
}

# start_redis_from_config PORT DIR [ARGS...]: redis-server on 127.0.0.1:PORT from its own copy of
# deploy/redis.conf (Sentinel has servers rewrite their config file on failover). Its command is
# kept in DIR/run for `heal`; the directory is added to redis_dirs.
start_redis_from_config() {
    local port=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    cp deploy/redis.conf "$dir/redis.conf"
    {
        printf 'exec redis-server %q --bind 127.0.0.1 --port %q --dir %q --logfile %q --daemonize no' \
            "$dir/redis.conf" "$port" "$dir" "$dir/redis.log"
        (($#)) && printf ' %q' "$@"
        printf ' >/dev/null 2>&1\n'
    } >"$dir/run"
    bash "$dir/run" &
    started_pid=$!
    redis_dirs+=("$dir")
}

# Starts again, as they were first started, the sessiond instances and Redis servers of the running
# cluster that are no longer running (the demo stops one of each), and records their new PIDs. A
# Redis primary that failed over comes back as a replica: Sentinel (or the cluster) turns it into one.
heal() {
    [[ -f $state ]] || { echo "no cluster running: start one with make cluster" >&2; exit 1; }
    # shellcheck disable=SC1090
    source "$state"
    local sessiond_pids redis_pids sessiond_ports redis_ports redis_dirs index
    read -r -a sessiond_pids <<<"$SESSIOND_PIDS"
    read -r -a sessiond_ports <<<"$SESSIOND_PORTS"
    read -r -a redis_pids <<<"$REDIS_PIDS"
    read -r -a redis_ports <<<"$REDIS_PORTS"
    read -r -a redis_dirs <<<"$REDIS_DIRS"
    for index in "${!redis_pids[@]}"; do
        kill -0 "${redis_pids[$index]}" 2>/dev/null && continue
        echo "  starting Redis 127.0.0.1:${redis_ports[$index]} again"
        bash "${redis_dirs[$index]}/run" &
        redis_pids[$index]=$!
        wait_for_redis "${redis_ports[$index]}"
    done
    for index in "${!sessiond_pids[@]}"; do
        kill -0 "${sessiond_pids[$index]}" 2>/dev/null && continue
        echo "  starting sessiond-$((index + 1)) again"
        bash "$cluster_dir/sessiond-$((index + 1)).run" &
        sessiond_pids[$index]=$!
        wait_for_url "http://127.0.0.1:${sessiond_ports[$index]}/readyz" 60
    done
    sed -i -e "s/^SESSIOND_PIDS=.*/SESSIOND_PIDS=\"${sessiond_pids[*]}\"/" -e "s/^REDIS_PIDS=.*/REDIS_PIDS=\"${redis_pids[*]}\"/" "$state"
}

# restart N: sessiond-N stopped with SIGTERM (its drain takes SESSIOND_SHUTDOWN_DELAY and then what
# is in flight; 45 s at most before this gives up), then started again by `heal`.
restart() {
    [[ -f $state ]] || { echo "no cluster running: start one with make cluster" >&2; exit 1; }
    # shellcheck disable=SC1090
    source "$state"
    local sessiond_pids pid deadline
    read -r -a sessiond_pids <<<"$SESSIOND_PIDS"
    pid=${sessiond_pids[$(($1 - 1))]:-}
    [[ -n $pid ]] || { echo "no sessiond-$1 in this cluster" >&2; exit 2; }
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 45))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "sessiond-$1 did not exit within 45 s of SIGTERM" >&2; exit 1; }
        sleep 0.05
    done
    heal
}

# render_sentinel_config PORT BIND DIR PRIMARY_HOST PRIMARY_PORT: deploy/sentinel.conf.template
# filled in (the same rendering docker-compose.yml does in each sentinel container).
render_sentinel_config() {
    sed -e "s|@PORT@|$1|g" -e "s|@BIND@|$2|g" -e "s|@DIR@|$3|g" -e "s|@PRIMARY_HOST@|$4|g" -e "s|@PRIMARY_PORT@|$5|g" \
        -e "s|@MASTER@|$SESSIOND_SENTINEL_MASTER|g" -e "s|@QUORUM@|$SENTINEL_QUORUM|g" \
        -e "s|@DOWN_AFTER@|$SENTINEL_DOWN_AFTER_MILLISECONDS|g" deploy/sentinel.conf.template
}

case ${1:-} in
    up) up ;;
    down) down ;;
    heal) heal ;;
    restart) restart "${2:?usage: $0 restart 1|2|3}" ;;
    *) echo "usage: $0 up|down|heal|restart N" >&2; exit 2 ;;
esac
