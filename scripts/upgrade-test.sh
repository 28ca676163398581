#!/usr/bin/env bash
# The rolling upgrade from the landed version (commit c10d6aa) to this one, on real processes:
# builds c10d6aa from this repository's own history into its own scratch folder (kept between runs
# on one machine: SESSIOND_UPGRADE_CACHE, default ~/.cache/sessiond-upgrade), then runs
# scripts/upgrade_test.py (a mixed fleet, the rolling replacement, --finalize-layout, a landed
# instance started after it) on a single Redis and on a Redis Cluster against the debug build of
# the working tree (`swift build`). `upgrade-test.sh build` only builds the landed version.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

landed=c10d6aa
cache=${SESSIOND_UPGRADE_CACHE:-$HOME/.cache/sessiond-upgrade}/$landed
if [[ ! -x $cache/build/debug/sessiond ]]; then
    echo "building the landed version ($landed) into $cache (once per machine)"
    rm -rf "$cache/source"
    mkdir -p "$cache/source"
    git cat-file -e "$landed^{commit}" 2>/dev/null || { echo "commit $landed is not in this clone's history (a shallow clone?)" >&2; exit 1; }
    git archive "$landed" | tar -x -C "$cache/source"
    (cd "$cache/source" && swift build --scratch-path "$cache/build" 2>&1 | tail -1)
fi
[[ ${1:-} == build ]] && exit 0
[[ -x .build/debug/sessiond ]] || swift build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for mode in single cluster; do
    mkdir -p "$work/$mode"
    timeout 300 python3 scripts/upgrade_test.py "$cache/build/debug/sessiond" "$PWD/.build/debug/sessiond" "$mode" "$work/$mode" || {
        echo "the upgrade test on $mode Redis failed; the instances' logs:" >&2
        tail -n 20 "$work/$mode"/*.log >&2
        exit 1
    }
done
