#!/usr/bin/env bash
# The host-crash demonstration: what a crash of the primary's host (20 ms replication lag) costs in
# the async mode, next to the replicated mode's pass/fail test. How much async loses depends on the
# machine's speed, so it is not part of `make test`; README's failover section quotes its figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
SESSIOND_DEMONSTRATIONS=1 swift test --filter 'HostCrashTests' 2>&1 | grep -E 'host crash,|passed|failed|error'
