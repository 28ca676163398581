#!/usr/bin/env bash
# The test command's body (make test): the Swift suite, then the contract test, then one closing line
# counting what ran.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --build-tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# A bound on the whole suite (it takes about a minute): a hang fails loudly instead of eating CI's time.
timeout --signal=KILL 1200 swift test 2>&1 | tee "$log"
swift_tests=$(sed -nE 's/.*Test run with ([0-9]+) tests? .* passed.*/\1/p' "$log" | tail -1)
bash scripts/contract-test.sh
echo "tests: ${swift_tests:-0} swift tests and the schemathesis contract run"
echo "$((${swift_tests:-0} + 1)) passed, 0 failed"
