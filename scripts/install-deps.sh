#!/usr/bin/env bash
# Installs the Debian packages sessiond needs to build, test and benchmark, only when missing.
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail

packages=(libhiredis-dev libssl-dev pkg-config redis-server redis-sentinel redis-tools "$@")
missing=()
backports=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" && continue
    case "$package" in
        # Valkey 8 is in bookworm-backports only.
        valkey-*) backports+=("$package") ;;
        *) missing+=("$package") ;;
    esac
done
if ((${#missing[@]} + ${#backports[@]})); then
    echo "installing: ${missing[*]} ${backports[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ((${#backports[@]})) && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            > /etc/apt/sources.list.d/bookworm-backports.sources
    fi
    apt-get update -qq
    if ((${#missing[@]})); then apt-get install -y -qq --no-install-recommends "${missing[@]}"; fi
    if ((${#backports[@]})); then apt-get install -y -qq --no-install-recommends -t bookworm-backports "${backports[@]}"; fi
fi
# Debian starts a system-wide redis-server on :6379 when installing it; sessiond's scripts and tests
# start their own servers and never rely on (or stop) that one.
command -v swift >/dev/null || { echo "swift is not on PATH (expected Swift 6.x, e.g. /opt/swift/usr/bin)" >&2; exit 1; }
