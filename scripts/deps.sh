#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the service need,
# and only when one is missing, so repeated runs cost nothing.
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
      libcmocka-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
      libsqlite3-dev sqlite3 libhiredis-dev redis-server python3 curl valgrind
      chromium fonts-dejavu-core groff-base)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The dashboard test drives Chromium with node (playwright-core from npm).
# A node that came with its own npm (e.g. NodeSource's) counts as present.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
