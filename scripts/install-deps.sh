#!/usr/bin/env bash
# Installs the Debian packages sessiond needs to build, test and benchmark, only when missing.
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail

packages=(libhiredis-dev libssl-dev pkg-config redis-server redis-sentinel redis-tools "$@")
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian starts a system-wide redis-server on :6379 when installing it; sessiond's scripts and tests
# start their own servers and never rely on (or stop) that one.
command -v swift >/dev/null || { echo "swift is not on PATH (expected Swift 6.x, e.g. /opt/swift/usr/bin)" >&2; exit 1; }
