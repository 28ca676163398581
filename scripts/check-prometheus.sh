#!/usr/bin/env bash
# Checks deploy/prometheus (make test): the alert rules are valid (promtool check rules) and do what
# their unit tests say (promtool test rules), and every metric the rules and the Grafana dashboard
# query is one a live sessiond really exports: a sessiond (the debug build `swift build` made) on a
# private redis-server serves some requests and one Redis failure, and its /metrics is scraped.
# Both run on free loopback ports and are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

work=$(mktemp -d)
redis_pid="" sessiond_pid=""
trap 'stop_pids $sessiond_pid $redis_pid; rm -rf "$work"' EXIT

# promtool comes from Debian's prometheus package, unpacked into .build rather than installed:
# installing it would also enable and start a Prometheus server on the machine.
promtool=.build/promtool/usr/bin/promtool
if [[ ! -x $promtool ]]; then
    echo "unpacking promtool from Debian's prometheus package into .build/promtool"
    (cd "$work" && { apt-get download -qq prometheus 2>/dev/null || { apt-get update -qq && apt-get download -qq prometheus; }; })
    dpkg-deb -x "$work"/prometheus_*.deb .build/promtool
fi
"$promtool" check rules deploy/prometheus/sessiond-alerts.yml
"$promtool" test rules deploy/prometheus/sessiond-alerts.test.yml
start_sessiond_with_redis "$work" SESSIOND_SHUTDOWN_DELAY=0
url=$sessiond_url

# What a fleet does: sessions created, read, changed; then Redis goes away under a read.
token=$(curl -sf --max-time 10 -X POST -H 'Content-Type: application/json' -d '{"user":"metrics","data":{"a":1}}' \
    "$url/v1/sessions" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
curl -sf --max-time 10 -o /dev/null -H "X-Session-Token: $token" "$url/v1/session"
curl -sf --max-time 10 -o /dev/null -X PATCH -H "X-Session-Token: $token" -H 'Content-Type: application/json' -d '{"b":2}' "$url/v1/session"
stop_pids "$redis_pid"
redis_pid=""
status=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "X-Session-Token: $token" "$url/v1/session")
[[ $status == 503 ]] || { echo "a read with Redis stopped answered $status, not 503" >&2; exit 1; }
curl -sf --max-time 10 "$url/metrics" >"$work/metrics.txt"

python3 - "$work/metrics.txt" deploy/prometheus/sessiond-alerts.yml deploy/prometheus/sessiond-dashboard.json <<'PY'
import json, re, sys
import yaml

metrics_file, rules_file, dashboard_file = sys.argv[1:]
exported = {line.split("{")[0].split(" ")[0] for line in open(metrics_file) if line.strip() and not line.startswith("#")}
queries = [(f"alert {r['alert']}", r["expr"]) for g in yaml.safe_load(open(rules_file))["groups"] for r in g["rules"]]
dashboard = json.load(open(dashboard_file))
panels = [p for p in dashboard["panels"] if p["type"] != "row"]
problems = [f"panel '{p['title']}' has no query" for p in panels if not p.get("targets")]
queries += [(f"panel '{p['title']}'", t["expr"]) for p in panels for t in p.get("targets", [])]
# `up` is what Prometheus adds to every scraped target; every other name must be in the scrape.
added_by_prometheus = {"up"}
for where, query in queries:
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
    names = set(re.findall(r"\b(?:sessiond|redis)_[a-z0-9_]+\b", without_strings)) | ({"up"} & set(re.findall(r"\b\w+\b", without_strings)))
    if not names:
        problems.append(f"{where} queries no sessiond metric: {query}")
    problems += [f"{where} queries {name}, which /metrics does not export" for name in sorted(names - exported - added_by_prometheus)]
if problems:
    print("deploy/prometheus does not match sessiond's /metrics:", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"prometheus: {len(queries)} queries ({len(panels)} dashboard panels, the alert rules) name only metrics /metrics exports")
PY
