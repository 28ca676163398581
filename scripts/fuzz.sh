#!/usr/bin/env bash
# Fuzzes the parsers every request goes through with libFuzzer (the Swift toolchain ships it):
#   json     the JSON scanner (request bodies: data, device, rotation options)
#   headers  the session token parser (X-Session-Token, the cookie) and If-Match
# Each is built with swiftc from its sources under AddressSanitizer (crashes, overflows and leaks
# stop it) and run for FUZZ_SECONDS (default 60) from the seeds in Fuzz/corpus/<name>, plus what
# earlier runs on this machine found (kept in .build/fuzz/). An input that crashes, hangs (5 s) or
# leaks fails the run and is kept in .build/fuzz/findings-<name>/; turn it into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
out=.build/fuzz
mkdir -p "$out"

build() {  # build NAME SOURCES...: the fuzzer binary $out/NAME
    local name=$1
    shift
    swiftc -sanitize=fuzzer,address -parse-as-library -O -I Sources/COpenSSL "$@" -o "$out/$name" 2>&1 \
        | { grep -v 'ld.gold: warning: Cannot export local symbol' || true; }
}

build json Sources/SessionService/JSON/JSONScanner.swift Fuzz/JSONScannerFuzzer.swift
build headers Sources/SessionService/Tokens/SessionToken.swift Sources/SessionService/Store/IfMatch.swift Fuzz/TokenFuzzer.swift

for name in json headers; do
    corpus=$out/corpus-$name findings=$out/findings-$name
    mkdir -p "$corpus" "$findings"
    echo "fuzzing $name for ${seconds} s"
    if ! "$out/$name" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$findings/" "$corpus" "Fuzz/corpus/$name" >"$out/$name.log" 2>&1; then
        tail -40 "$out/$name.log" >&2
        echo "the $name fuzzer found an input that fails; it is in $findings/" >&2
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^Done' "$out/$name.log" | tr '\n' ' '
    echo
done
