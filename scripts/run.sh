#!/usr/bin/env bash
# The run command: installs what is missing, builds the release binary and
# starts the service on the embedded default (no external server). Extra
# arguments go to cluster-scheduler (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
exec build/cluster-scheduler "$@"
