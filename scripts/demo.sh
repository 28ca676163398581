#!/usr/bin/env bash
# The scale-out story, step by step, against the running demo cluster (make cluster) through its
# load balancer. Every step prints what it does and checks what it claims; the first claim that
# does not hold stops the demo with exit status 1. Run by the test command (scripts/test.sh).
#
#   1. create sessions;
#   2. read one several times: different instances answer (round robin, no stickiness);
#   3. a rolling restart under load (each sessiond stopped with SIGTERM, drained and started again
#      in turn, 16 keep-alive clients all along): no request fails;
#   4. kill -9 the Redis primary (on a Redis Cluster: the primary of the shard holding bob's
#      session): after the failover every session is still there;
#   5. revoke a user's sessions: every instance refuses them;
#   6. the gateway (nginx auth_request on GET /v1/auth) refuses a request to the application
#      without a session, admits it after a login, and refuses it again after a logout;
#   7. a rotation with a grace window: the old token keeps working on every instance for its
#      window, "sign out my other devices" ends the others, and the old token presented after its
#      window is a reuse that revokes the session;
#   8. events: a consumer tails /v1/events (long polls through the load balancer, so through every
#      instance) while a session is created, rotated and signed out and another left to expire,
#      and prints what it saw.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

state=${CLUSTER_DIR:-.cluster}/state
[[ -f $state ]] || { echo "no cluster running: start one with make cluster" >&2; exit 1; }
# What an earlier run stopped (the Redis primary it killed) is started again first, so
# the demo can be run any number of times on one cluster.
bash scripts/cluster.sh heal
# shellcheck disable=SC1090
source "$state"
url=$CLUSTER_URL
auth="Authorization: Bearer $CLUSTER_API_KEY"

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# request METHOD PATH [TOKEN] [JSON]: prints "STATUS INSTANCE BODY" (bounded by a 10 s deadline).
request() {
    local method=$1 path=$2 token=${3:-} body=${4:-} headers
    local args=(-s -X "$method" --max-time 10 -H "$auth" -D - "$url$path")
    [[ -n $token ]] && args+=(-H "X-Session-Token: $token")
    [[ -n $body ]] && args+=(-H 'Content-Type: application/json' -d "$body")
    headers=$(curl "${args[@]}" -o "$work/body") || { echo "000 - connection failed"; return; }
    printf '%s %s %s\n' "$(awk 'NR == 1 { print $2 }' <<<"$headers")" \
        "$(tr -d '\r' <<<"$headers" | awk -F': ' 'tolower($1) == "x-sessiond-instance" { print $2 }')" "$(cat "$work/body")"
}
json_field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

work=$(mktemp -d)
load_pid=""
consumer_pid=""
trap 'for pid in $load_pid $consumer_pid; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT
# Users of this run only, so that a second run on the same cluster counts only its own sessions.
alice=alice-$RANDOM$RANDOM
bob=bob-$RANDOM$RANDOM

# Every instance back behind the load balancer (its health check brings a restarted one back
# within a few seconds).
deadline=$((SECONDS + 30))
declare -A up=()
while ((${#up[@]} < 3)); do
    ((SECONDS < deadline)) || fail "only ${!up[*]} answered through the load balancer within 30 s"
    read -r status instance body < <(request GET /readyz)
    [[ $status == 200 ]] && up[$instance]=1
    sleep 0.1
done

step "1. Create five sessions for $alice and one for $bob"
alice_tokens=()
for n in 1 2 3 4 5; do
    read -r status instance body < <(request POST /v1/sessions "" "{\"user\":\"$alice\",\"data\":{\"n\":$n}}")
    [[ $status == 201 ]] || fail "create answered $status: $body"
    alice_tokens+=("$(json_field "$body" token)")
    echo "  created alice #$n on $instance"
done
read -r status instance body < <(request POST /v1/sessions "" "{\"user\":\"$bob\",\"data\":{\"cart\":[42]}}")
[[ $status == 201 ]] || fail "create answered $status: $body"
bob_token=$(json_field "$body" token)
bob_id=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["session"]["id"])' "$body")
echo "  created bob's on $instance"

step "2. Read bob's session six times: the load balancer spreads the reads"
declare -A seen=()
for _ in 1 2 3 4 5 6; do
    read -r status instance body < <(request GET /v1/session "$bob_token")
    [[ $status == 200 ]] || fail "read answered $status: $body"
    seen[$instance]=1
    echo "  200 from $instance"
done
((${#seen[@]} >= 3)) || fail "only ${!seen[*]} answered; expected all three instances"
echo "  -> answered by ${#seen[@]} different instances, same session every time"

step "3. A rolling restart under load: each sessiond in turn is stopped (SIGTERM), drains and comes back; no request fails"
# 16 keep-alive clients doing create/read/patch/read/delete through the load balancer all along.
python3 scripts/keepalive-load.py "$url" "$CLUSTER_API_KEY" "$work/stop-load" 16 >"$work/load.json" &
load_pid=$!
for n in 1 2 3; do
    restart_began=$SECONDS
    bash scripts/cluster.sh restart "$n"
    # Back behind the load balancer: its health check has seen it ready and routes to it again.
    until read -r status instance body < <(request GET /readyz) && [[ $instance == "sessiond-$n" ]]; do
        ((SECONDS - restart_began < 60)) || fail "sessiond-$n was not back behind the load balancer within 60 s"
        sleep 0.1
    done
    echo "  sessiond-$n drained, restarted and answering again after $((SECONDS - restart_began)) s"
done
touch "$work/stop-load"
wait "$load_pid" || fail "the load clients failed: $(cat "$work/load.json")"
load_pid=""
python3 - "$work/load.json" <<'PY' || fail "requests failed during the rolling restart: $(cat "$work/load.json")"
import json, sys
load = json.load(open(sys.argv[1]))
print(f"  {load['requests']} requests by {load['clients']} keep-alive clients in {load['seconds']} s, "
      f"{load['failed']} failed; answered by {load['answered_by']}")
assert load["requests"] > 0 and load["failed"] == 0
assert all(load["answered_by"].get(f"sessiond-{n}", 0) > 0 for n in (1, 2, 3))
PY

read -r -a redis_pids <<<"$REDIS_PIDS"
read -r -a redis_ports <<<"$REDIS_PORTS"
if [[ ${REDIS_MODE:-sentinel} == cluster ]]; then
    step "4. kill -9 the primary of the shard holding bob's session: its replica takes over, sessiond follows, nothing is lost"
    # The session's key in storage layout 2: its bucket is the low 10 bits of the id's first two bytes.
    slot=$(redis-cli -p "${redis_ports[0]}" cluster keyslot "sd:{b$((16#${bob_id:0:4} % 1024))}:s:$bob_id")
    victim=""
    for index in "${!redis_ports[@]}"; do
        port=${redis_ports[$index]}
        if [[ $(redis-cli -p "$port" role | head -1) == master && $(redis-cli -p "$port" cluster countkeysinslot "$slot") -gt 0 ]]; then
            victim=$index
        fi
    done
    [[ -n $victim ]] || fail "no primary holds slot $slot"
    kill -9 "${redis_pids[$victim]}"
    killed=$SECONDS
    echo "  primary 127.0.0.1:${redis_ports[$victim]} (slot $slot) killed; patching bob's session until it is accepted again"
    until read -r status instance body < <(request PATCH /v1/session "$bob_token" '{"after":"failover"}') && [[ $status == 200 ]]; do
        ((SECONDS - killed < 30)) || fail "bob's session was not writable again within 30 s of the kill (last: $status $body)"
        echo "  $status (waiting for the replica's promotion)"
    done
    echo "  bob's shard written again after about $((SECONDS - killed)) s (answered by $instance)"
else
    step "4. kill -9 the Redis primary: Sentinel fails over, sessiond follows, nothing is lost"
    read -r -a sentinel_ports <<<"$SENTINEL_PORTS"
    primary_port=$(redis-cli -p "${sentinel_ports[0]}" sentinel get-master-addr-by-name "$(awk -F= '$1 == "SESSIOND_SENTINEL_MASTER" { print $2 }' deploy/cluster.env)" | tail -1)
    victim=""
    for index in "${!redis_ports[@]}"; do [[ ${redis_ports[$index]} == "$primary_port" ]] && victim=$index; done
    [[ -n $victim ]] || fail "the sentinels name no primary of this cluster (got '$primary_port')"
    kill -9 "${redis_pids[$victim]}"
    killed=$SECONDS
    echo "  primary 127.0.0.1:$primary_port killed; writing until writes are accepted again"
    until read -r status instance body < <(request POST /v1/sessions "" '{"data":{"after":"failover"}}') && [[ $status == 201 ]]; do
        ((SECONDS - killed < 30)) || fail "writes were not accepted again within 30 s of the kill (last: $status $body)"
        echo "  $status (waiting for the failover)"
    done
    echo "  writes accepted again after about $((SECONDS - killed)) s (answered by $instance)"
fi
for token in "$bob_token" "${alice_tokens[@]}"; do
    read -r status instance body < <(request GET /v1/session "$token")
    [[ $status == 200 ]] || fail "after the failover a session answered $status: $body"
done
echo "  all 6 sessions written before the kill are still there"
read -r status instance body < <(request GET /readyz)
echo "  /readyz on $instance: $body"

step "5. Revoke all of $alice's sessions: every instance refuses them at once"
read -r status instance body < <(request DELETE "/v1/users/$alice/sessions")
[[ $status == 200 ]] || fail "revoke answered $status: $body"
echo "  $instance revoked: $body"
[[ $(json_field "$body" revoked) == 5 ]] || fail "expected 5 revoked"
declare -A refused_by=()
for token in "${alice_tokens[@]}" "${alice_tokens[@]}"; do
    read -r status instance body < <(request GET /v1/session "$token")
    [[ $status == 404 ]] || fail "a revoked session answered $status on $instance"
    refused_by[$instance]=1
done
((${#refused_by[@]} >= 2)) || fail "only ${!refused_by[*]} were asked"
echo "  10 reads of revoked sessions: 404 from ${!refused_by[*]}"
read -r status instance body < <(request GET /v1/session "$bob_token")
[[ $status == 200 ]] || fail "bob's session answered $status"
echo "  bob's session is untouched: 200 from $instance"

step "6. The gateway: nginx lets requests reach the application only with a live session"
gateway() {  # gateway [COOKIE]: prints "STATUS BODY" of GET / through the gateway
    local args=(-s --max-time 10 -o "$work/gateway" -w '%{http_code}' "$GATEWAY_URL/")
    [[ -n ${1:-} ]] && args+=(-H "Cookie: sid=$1")
    printf '%s %s\n' "$(curl "${args[@]}" || echo 000)" "$(cat "$work/gateway" 2>/dev/null)"
}
read -r status body < <(gateway)
[[ $status == 401 ]] || fail "without a session the gateway answered $status"
echo "  no session: $status at the gateway, the application never asked"
carol=carol-$RANDOM$RANDOM
read -r status instance body < <(request POST /v1/sessions "" "{\"user\":\"$carol\",\"data\":{\"role\":\"customer\"}}")
[[ $status == 201 ]] || fail "login answered $status: $body"
carol_token=$(json_field "$body" token)
echo "  $carol logs in: the application's login created her session on $instance and set the cookie"
read -r status body < <(gateway "$carol_token")
[[ $status == 200 && $body == *"user=$carol role=\"customer\""* ]] || fail "with her cookie the gateway answered $status: $body"
echo "  with the cookie: $status, the application sees: $body"
read -r status instance body < <(request DELETE /v1/session "$carol_token")
[[ $status == 204 ]] || fail "logout answered $status"
read -r status body < <(gateway "$carol_token")
[[ $status == 401 ]] || fail "after the logout the gateway answered $status"
echo "  after her logout: $status again"

step "7. Rotation without logouts, sign-out-others, and a stolen token noticed"
dan=dan-$RANDOM$RANDOM
read -r status instance body < <(request POST /v1/sessions "" "{\"user\":\"$dan\",\"device\":{\"label\":\"laptop\"}}")
[[ $status == 201 ]] || fail "create answered $status: $body"
laptop_token=$(json_field "$body" token)
read -r status instance body < <(request POST /v1/sessions "" "{\"user\":\"$dan\",\"device\":{\"label\":\"phone\"}}")
[[ $status == 201 ]] || fail "create answered $status: $body"
phone_token=$(json_field "$body" token)
phone_id=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["session"]["id"])' "$body")
echo "  $dan signed in on a laptop and a phone"
grace=10
rotated_at=$SECONDS
read -r status instance body < <(request POST /v1/session/rotate "$phone_token" "{\"grace_seconds\":$grace}")
[[ $status == 200 ]] || fail "rotate answered $status: $body"
old_phone_token=$phone_token
phone_token=$(json_field "$body" token)
[[ $(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["session"]["id"])' "$body") == "$phone_id" ]] \
    || fail "the rotation changed the session id"
echo "  the phone's token rotated on $instance (grace $grace s); the session id stays $phone_id"
declare -A graced_by=()
for _ in 1 2 3 4; do
    read -r status instance body < <(request GET /v1/session "$old_phone_token")
    # Judged by the window itself: a machine too slow to read within it is not a failure.
    [[ $status == 200 ]] || ((SECONDS - rotated_at >= grace - 1)) \
        || fail "the old token answered $status on $instance $((SECONDS - rotated_at)) s into its $grace s grace window"
    graced_by[$instance]=1
done
echo "  requests in flight with the old token still work: 200 from ${!graced_by[*]}"
read -r status instance body < <(request DELETE /v1/session/others "$phone_token")
[[ $status == 200 && $(json_field "$body" revoked) == 1 ]] || fail "sign-out-others answered $status: $body"
read -r status instance body < <(request GET /v1/session "$laptop_token")
[[ $status == 404 ]] || fail "the laptop's session answered $status after sign-out-others"
echo "  from the phone, 'sign out my other devices': the laptop's session is gone (404 on $instance)"
deadline=$((rotated_at + grace + 10))
until read -r status instance body < <(request GET /v1/session "$old_phone_token") && [[ $status == 404 ]]; do
    ((SECONDS < deadline)) || fail "the old token still answered $status 10 s after its grace window"
    sleep 0.2
done
read -r status instance body < <(request GET /v1/session "$phone_token")
[[ $status == 404 ]] || fail "after a reuse the new token answered $status"
echo "  the old token after its window is a reuse: the session is revoked, the new token too (404 on $instance)"

step "8. Events: a consumer tails /v1/events while a session is created, rotated, signed out, and another expires"
# The consumer: reads to the end of what is kept, says so, then long-polls (wait=5) through the load
# balancer, printing each event as it comes, until told to stop. A cursor from one instance is
# good on every other.
python3 - "$url" "$CLUSTER_API_KEY" "$work/events" "$work/stop-events" <<'PY' &
import json, os, sys, urllib.request
url, key, out, stop = sys.argv[1:5]
def read(after, wait):
    query = f"limit=1000&wait={wait}" + (f"&after={after}" if after else "")
    request = urllib.request.Request(f"{url}/v1/events?{query}", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=wait + 10) as response:
        return json.load(response)
after = None
while True:
    page = read(after, 0)
    if not page["events"]:
        break
    after = page["next"]
with open(out, "a") as log:
    print("ready", flush=True, file=log)
    while not os.path.exists(stop):
        page = read(after or page["next"], 5)
        after = page["next"]
        for event in page["events"]:
            print(json.dumps(event), flush=True, file=log)
PY
consumer_pid=$!
deadline=$((SECONDS + 30))
until grep -q '^ready' "$work/events" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "the events consumer did not catch up within 30 s"
    sleep 0.1
done
erin=erin-$RANDOM$RANDOM
read -r status instance body < <(request POST /v1/sessions "" "{\"user\":\"$erin\"}")
[[ $status == 201 ]] || fail "create answered $status: $body"
erin_token=$(json_field "$body" token)
erin_id=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["session"]["id"])' "$body")
read -r status instance body < <(request POST /v1/session/rotate "$erin_token" '{}')
[[ $status == 200 ]] || fail "rotate answered $status: $body"
read -r status instance body < <(request DELETE /v1/session "$(json_field "$body" token)")
[[ $status == 204 ]] || fail "logout answered $status: $body"
read -r status instance body < <(request POST /v1/sessions "" "{\"user\":\"$erin\",\"idle_timeout\":2}")
[[ $status == 201 ]] || fail "create answered $status: $body"
idle_id=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["session"]["id"])' "$body")
echo "  $erin logged in, rotated and signed out ($erin_id), and logged in again with a 2 s idle timeout ($idle_id), then went quiet"
deadline=$((SECONDS + 20))
until grep "$idle_id" "$work/events" | grep -q '"session.expired"'; do
    ((SECONDS < deadline)) || fail "no session.expired for $idle_id within 20 s; the consumer saw: $(cat "$work/events")"
    sleep 0.2
done
touch "$work/stop-events"
python3 - "$work/events" "$erin_id" "$idle_id" <<'PY' || fail "the consumer did not see what happened: $(cat "$work/events")"
import json, sys
seen = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
# At least once: a repeated id is the same event again.
unique = list({event["id"]: event for event in seen}.values())
for session, expected in ((sys.argv[2], ["session.created", "session.rotated", "session.revoked logout"]),
                          (sys.argv[3], ["session.created", "session.expired idle"])):
    mine = [event for event in unique if event["session"]["id"] == session]
    for event in mine:
        print(f"  the consumer saw {event['type']:<16} {session}  reason {event['reason']}  at {event['time']}")
    got = [event["type"] + (f" {event['reason']}" if event["reason"] else "") for event in mine]
    assert got == expected, (session, got)
PY
kill "$consumer_pid" 2>/dev/null || true
consumer_pid=""

printf '\ndemo: every step held\n'
