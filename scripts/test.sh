#!/usr/bin/env bash
# The test command's body (make test): the Swift suite, the contract test, the demo cluster's compose
# file and its scripted demo, then one closing line counting what ran.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --build-tests
# The landed version (c10d6aa) for the upgrade test, built from this repository's history once per
# machine (about 5 minutes of both cores), in the background at the lowest priority: it takes the
# CPU the suites below leave free while they wait for failovers, and the fuzzing and contract runs,
# which last a fixed time.
upgrade_build_log=$(mktemp)
setsid nice -n 19 bash scripts/upgrade-test.sh build >"$upgrade_build_log" 2>&1 &
upgrade_build_pid=$!
log=$(mktemp)
# An early failure stops the background build below too (its own process group).
trap '[[ -n ${upgrade_build_pid:-} ]] && kill -- "-$upgrade_build_pid" 2>/dev/null; rm -f "$log" "${upgrade_build_log:-}"' EXIT
# A bound on the whole suite (it takes about a minute): a hang fails loudly instead of eating CI's time.
timeout --signal=KILL 1200 swift test 2>&1 | tee "$log"
swift_tests=$(sed -nE 's/.*Test run with ([0-9]+) tests? .* passed.*/\1/p' "$log" | tail -1)

# The session API suites again on Valkey 8 (single server, Sentinel and Cluster), the fork managed
# services now default to: the same tests, with every server they start a valkey-server.
echo "the session API suites on Valkey ($(valkey-server --version | grep -o 'v=[0-9.]*'))"
SESSIOND_TEST_SERVER=valkey timeout --signal=KILL 600 swift test --skip-build \
    --filter 'SessionLifecycleTests|UserSessionsTests|RotationTests|ConcurrencyTests|OtherSessionsTests|WriteIDTests|SecurityTests|SessionLimitsTests' 2>&1 | tee "$log"
valkey_tests=$(sed -nE 's/.*Test run with ([0-9]+) tests? .* passed.*/\1/p' "$log" | tail -1)
# The request parsers and the HTTP request path under libFuzzer, a minute each (scripts/fuzz.sh).
bash scripts/fuzz.sh
bash scripts/contract-test.sh
# The Kubernetes manifests: built, validated against the schemas, held to their policy (offline).
bash scripts/check-kubernetes.sh
# The alert rules (promtool check and unit tests) and the dashboard's metric names against a live scrape.
bash scripts/check-prometheus.sh

# The compose files are valid (no Docker engine here to run them) and refuse to start without API keys.
for compose in docker-compose.yml docker-compose.cluster.yml; do
    echo "checking $compose"
    SESSIOND_API_KEYS=compose-check-key-0123456789 docker-compose -f "$compose" config -q
    if docker-compose -f "$compose" config -q 2>/dev/null; then
        echo "$compose accepted a configuration without SESSIOND_API_KEYS" >&2
        exit 1
    fi
done

# The rolling upgrade from the landed version, on a single Redis and on a Redis Cluster.
wait "$upgrade_build_pid" || { echo "building the landed version failed:" >&2; cat "$upgrade_build_log" >&2; exit 1; }
upgrade_build_pid=""
cat "$upgrade_build_log"
bash scripts/upgrade-test.sh

# The same topologies as plain processes, and the demo against each (the debug build made above):
# Sentinel (docker-compose.yml), then Redis Cluster (docker-compose.cluster.yml).
export CLUSTER_DIR=$PWD/.build/test-cluster CLUSTER_PORT=${CLUSTER_PORT:-18090}
trap 'bash scripts/cluster.sh down >/dev/null; rm -f "$log" "$upgrade_build_log"' EXIT
bash scripts/cluster.sh down >/dev/null  # a cluster left by an interrupted run
for redis in sentinel cluster; do
    echo "running the demo cluster (REDIS=$redis) and its demo"
    REDIS=$redis SESSIOND_BINARY=.build/debug/sessiond bash scripts/cluster.sh up
    timeout 300 bash scripts/demo.sh
    if [[ $redis == sentinel ]]; then
        echo "the demo again on the same cluster (it starts again what its first run stopped)"
        timeout 300 bash scripts/demo.sh
    fi
    bash scripts/cluster.sh down
done

echo "tests: ${swift_tests:-0} swift tests, ${valkey_tests:-0} of them again on Valkey, three fuzzers, the schemathesis contract run, the Kubernetes and Prometheus checks, the compose checks, the rolling upgrade from the landed version on one Redis and on Cluster, and the demo (with its rolling restart) on Sentinel and on Cluster"
echo "$((${swift_tests:-0} + ${valkey_tests:-0} + 11)) passed, 0 failed"
