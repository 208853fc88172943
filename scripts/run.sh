#!/usr/bin/env bash
# Runs Fleet's main job. Today: the whole monitoring → remediation loop in one process,
# headless (a simulated fleet, the worker plan and the remediation policy), printing readings
# and decisions. Extra arguments go to `fleet demo` (see `fleet demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh rust >/dev/null
exec cargo run --quiet --release --locked -p fleet -- demo "$@"
