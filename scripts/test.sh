#!/usr/bin/env bash
# The test command's body (make test): the Swift suite, the contract test, the demo cluster's compose
# file and its scripted demo, then one closing line counting what ran.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --build-tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# A bound on the whole suite (it takes about a minute): a hang fails loudly instead of eating CI's time.
timeout --signal=KILL 1200 swift test 2>&1 | tee "$log"
swift_tests=$(sed -nE 's/.*Test run with ([0-9]+) tests? .* passed.*/\1/p' "$log" | tail -1)
bash scripts/contract-test.sh

# docker-compose.yml is valid (no Docker engine here to run it) and refuses to start without API keys.
echo "checking docker-compose.yml"
SESSIOND_API_KEYS=compose-check-key-0123456789 docker-compose config -q
if docker-compose config -q 2>/dev/null; then
    echo "docker-compose.yml accepted a configuration without SESSIOND_API_KEYS" >&2
    exit 1
fi

# The same topology as plain processes, and the demo against it (the debug build made above).
echo "running the demo cluster and its demo"
export CLUSTER_DIR=$PWD/.build/test-cluster CLUSTER_PORT=${CLUSTER_PORT:-18090}
trap 'bash scripts/cluster.sh down >/dev/null; rm -f "$log"' EXIT
bash scripts/cluster.sh down >/dev/null  # a cluster left by an interrupted run
SESSIOND_BINARY=.build/debug/sessiond bash scripts/cluster.sh up
timeout 300 bash scripts/demo.sh

echo "tests: ${swift_tests:-0} swift tests, the schemathesis contract run, the compose check and the cluster demo"
echo "$((${swift_tests:-0} + 3)) passed, 0 failed"
