#!/usr/bin/env bash
# Runs Fleet's main job: builds the web app (release, into dist/), then starts the local
# stack (`fleet local`: MQTT broker on TCP, WebSocket and mutual TLS, the pipeline on SQLite,
# metrics, and the web app at http://127.0.0.1:8080/, whose devices connect over WebSocket),
# with a small simulated fleet (`fleet sim`) so the monitoring → remediation loop is alive
# from the first second.
#
# Environment: FLEET_SIM_DEVICES (default 10; 0 starts the stack alone),
#              FLEET_SKIP_WEB=1 (serve the dist/ already there instead of building it),
#              FLEET_BIN (a `fleet` binary to run instead of building target/release/fleet).
# Extra arguments go to `fleet local` (see `fleet local --help`), e.g. --data DIR or
# --mqtt 127.0.0.1:1884 --http 127.0.0.1:8081. The simulator goes wherever the stack says
# it listens (its banner): MQTT over TCP, or the WebSocket when TCP is off, with the
# stack's fleet credential.
# Stop with Ctrl-C: the stack stores what is queued and closes cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
needs=()
[ -n "${FLEET_BIN:-}" ] || needs+=(rust)
[ "${FLEET_SKIP_WEB:-0}" = 1 ] || needs+=(rust web)
[ ${#needs[@]} -eq 0 ] || scripts/setup.sh "${needs[@]}" >/dev/null
bin=${FLEET_BIN:-}
if [ -z "$bin" ]; then
  cargo build --quiet --release --locked -p fleet
  bin=target/release/fleet
fi
if [ "${FLEET_SKIP_WEB:-0}" != 1 ]; then
  echo "building the web app (trunk build --release, into dist/)…"
  scripts/build-web.sh
fi
devices=${FLEET_SIM_DEVICES:-10}

# The stack prints where each listener is bound, then "Stop with Ctrl-C." (cli/src/local.rs):
# its banner, copied here as it goes to the terminal, is where the simulator's broker comes
# from, whatever flags (or defaults) put the listeners there.
banner=$(mktemp "${TMPDIR:-/tmp}/fleet-run.XXXXXX")
"$bin" local "$@" > >(tee "$banner") &
stack=$!
sim=
status=0
stop() {
  [ -n "$sim" ] && kill "$sim" 2>/dev/null || true
  if kill -TERM "$stack" 2>/dev/null; then
    wait "$stack" || status=$?
  fi
  rm -f "$banner"
}
# Ctrl-C or SIGTERM: the stack stops cleanly, and its exit status is the script's.
trap 'stop; exit $status' INT TERM
trap stop EXIT

until grep -q '^Stop with Ctrl-C' "$banner"; do
  kill -0 "$stack" 2>/dev/null || exit 1 # the stack said why on stderr
  sleep 0.1
done
# A listener on every address (0.0.0.0, [::], with --allow-remote) is reached on loopback.
listener() { # banner-label scheme
  sed -n "s|^  $1 *$2://\([^ /]*\).*|\1|p" "$banner" | head -n 1 |
    sed 's|^0\.0\.0\.0:|127.0.0.1:|; s|^\[::\]:|[::1]:|'
}
mqtt=$(listener MQTT mqtt)
ws=$(listener WebSocket ws)
web=$(listener 'Web app' http)
token=$(sed -n 's|^Credentials[^:]*: fleet token \(.*/fleet\.token\), read-only .*|\1|p' "$banner")

if [ "$devices" -gt 0 ]; then
  if [ -n "$mqtt" ]; then
    broker=mqtt://$mqtt
  elif [ -n "$ws" ]; then
    broker=ws://$ws/mqtt
  else
    broker=
    echo "fleet sim: not started: the stack has neither MQTT over TCP nor a WebSocket listener" >&2
  fi
  if [ -n "$broker" ]; then
    "$bin" sim --devices "$devices" --building 1 --broker "$broker" \
      --username fleet --password-file "$token" --log-format text --log-level WARNING &
    sim=$!
    echo "fleet sim: $devices devices publishing to $broker (commands and alarms in the stack's log${web:+; counters at http://$web/metrics})"
  fi
fi
wait "$stack"
