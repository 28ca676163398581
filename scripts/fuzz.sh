#!/usr/bin/env bash
# Fuzzes the parsers and the request path with libFuzzer (the Swift toolchain ships it):
#   json     the JSON scanner (request bodies: data, device, rotation options)
#   headers  the session token parser (X-Session-Token, the cookie) and If-Match
#   http     the whole HTTP request path: raw bytes on a connection through the pipeline every
#            sessiond connection gets (NIO's decoder, RequestLineWatcher, HTTPResponderHandler, the
#            routes, the store) in front of a real redis-server this script starts; no crash, no
#            hang, no 500, and every answer an HTTP/1.1 response (Fuzz/HTTP/HTTPFuzzer.swift)
# json and headers are built with swiftc from their sources; http with `swift build
# --sanitize=fuzzer` in .build/fuzz-http (every dependency instrumented: about 5 minutes the first
# time). All run under AddressSanitizer for FUZZ_SECONDS each (default 60) from the seeds in
# Fuzz/corpus/<name>, plus what earlier runs on this machine found (kept in .build/fuzz/). An input
# that crashes, hangs (5 s) or leaks fails the run and is kept in .build/fuzz/findings-<name>/;
# turn it into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

seconds=${FUZZ_SECONDS:-60}
out=.build/fuzz
mkdir -p "$out"
quiet_linker() { grep -v 'ld.gold: warning: Cannot export local symbol' || true; }

build() {  # build NAME SOURCES...: the fuzzer binary $out/NAME
    local name=$1
    shift
    swiftc -sanitize=fuzzer,address -parse-as-library -O -I Sources/COpenSSL "$@" -o "$out/$name" 2>&1 | quiet_linker
}

build json Sources/SessionService/JSON/JSONScanner.swift Fuzz/JSONScannerFuzzer.swift
build headers Sources/SessionService/Tokens/SessionToken.swift Sources/SessionService/Store/IfMatch.swift Fuzz/TokenFuzzer.swift
SESSIOND_FUZZ=1 swift build --scratch-path .build/fuzz-http --sanitize=fuzzer --sanitize=address --product HTTPFuzzer 2>&1 \
    | quiet_linker | grep -v '^\[[0-9]*/[0-9]*\]' || true
[[ -x .build/fuzz-http/debug/HTTPFuzzer ]] || { echo "the HTTP fuzzer did not build" >&2; exit 1; }
ln -sf "$PWD/.build/fuzz-http/debug/HTTPFuzzer" "$out/http"

# The HTTP fuzzer's Redis, stopped by PID at the end.
redis_pid=""
trap 'if [[ -n $redis_pid ]]; then stop_pids "$redis_pid"; fi' EXIT
redis_port=$(free_port)
start_redis "$redis_port" "$out/redis"
redis_pid=$started_pid
wait_for_redis "$redis_port"
export FUZZ_REDIS_URL=redis://127.0.0.1:$redis_port

# One fuzzer: FUZZ_SECONDS of fuzzing, then its stats (and for the HTTP path, the leak re-run).
fuzz_one() {
    local name=$1
    local corpus=$out/corpus-$name findings=$out/findings-$name
    mkdir -p "$corpus" "$findings"
    # The HTTP path answers each input through tasks that finish after libFuzzer's callback, so
    # its per-input leak check would run on nearly every input (30 inputs a second instead of 300):
    # it is fuzzed without, and every input it kept is then run again once with leak checks.
    local leaks=1
    [[ $name == http ]] && leaks=0
    if ! "$out/$name" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -detect_leaks=$leaks -print_final_stats=1 \
        -artifact_prefix="$findings/" "$corpus" "Fuzz/corpus/$name" >"$out/$name.log" 2>&1; then
        tail -40 "$out/$name.log" >&2
        echo "the $name fuzzer found an input that fails; it is in $findings/" >&2
        return 1
    fi
    echo "$name: $(grep -E '^stat::number_of_executed_units|^Done' "$out/$name.log" | tr '\n' ' ')"
    if ((leaks == 0)); then
        if ! "$out/$name" -runs=0 -timeout=5 -detect_leaks=1 -artifact_prefix="$findings/" "$corpus" "Fuzz/corpus/$name" \
            >"$out/$name-leaks.log" 2>&1; then
            tail -40 "$out/$name-leaks.log" >&2
            echo "an input the $name fuzzer kept leaks; it is in $findings/" >&2
            return 1
        fi
        echo "  the $(find "$corpus" -type f | wc -l) inputs it kept, run again with leak checks: none leaks"
    fi
}

# The two parsers' fuzzers are single-threaded: they run side by side, one per core; the HTTP
# path (sessiond's event loops and a Redis) runs alone after them.
echo "fuzzing json and headers side by side, then http, for ${seconds} s each"
fuzz_one json &
json_pid=$!
fuzz_one headers || { wait "$json_pid"; exit 1; }
wait "$json_pid"
fuzz_one http
