#!/usr/bin/env bash
# Runs Fleet's main job: builds the web app (release, into dist/), then starts the local
# stack (`fleet local`: MQTT broker on TCP, WebSocket and mutual TLS, the pipeline on SQLite,
# metrics, and the web app at http://127.0.0.1:8080/, whose devices connect over WebSocket),
# with a small simulated fleet (`fleet sim`) so the monitoring → remediation loop is alive
# from the first second.
#
# Environment: FLEET_SIM_DEVICES (default 10; 0 starts the stack alone),
#              FLEET_SKIP_WEB=1 (serve the dist/ already there instead of building it).
# Extra arguments go to `fleet local` (see `fleet local --help`), e.g. --data DIR.
# Stop with Ctrl-C: the stack stores what is queued and closes cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/setup.sh rust web >/dev/null
cargo build --quiet --release --locked -p fleet
if [ "${FLEET_SKIP_WEB:-0}" != 1 ]; then
  echo "building the web app (trunk build --release, into dist/)…"
  scripts/build-web.sh
fi
bin=target/release/fleet
devices=${FLEET_SIM_DEVICES:-10}

"$bin" local "$@" &
stack=$!
sim=
stop() {
  [ -n "$sim" ] && kill "$sim" 2>/dev/null || true
  kill -TERM "$stack" 2>/dev/null || true
  wait "$stack" 2>/dev/null || true
}
trap stop INT TERM EXIT

# Wait for the broker before the devices connect (it prints its addresses when up).
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break
  kill -0 "$stack" 2>/dev/null || exit 1
  sleep 0.1
done
if [ "$devices" -gt 0 ]; then
  "$bin" sim --devices "$devices" --building 1 --log-format text --log-level WARNING &
  sim=$!
  echo "fleet sim: $devices devices publishing to mqtt://127.0.0.1:1883 (commands and alarms in the stack's log; counters at http://127.0.0.1:8080/metrics)"
fi
wait "$stack"
