#!/usr/bin/env bash
# The web app's MQTT transport (wasm, over the browser's WebSocket) vs MQTT.js 5 (its browser
# bundle) vs the floor (the same bytes pre-encoded, handed to WebSocket.send), in the same
# headless Chromium, against the same mosquitto, counted by a native subscriber: throughput
# at QoS 0 and QoS 1 as the broker received it, and renderer CPU per message. See
# bench/README.md. Arguments go to bench/driver.mjs, e.g.
#   bench/mqttjs-vs-fleet.sh --reps 5 --qos0 1000000 --qos1 200000 --json /tmp/r.json
# Environment: WASM_PROFILE=web-release measures our wasm built as the web app ships it
# (opt-level z); SKIP_BUILD=1 reuses what is built.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

profile="${WASM_PROFILE:-release}"
pkg="bench/mqtt-wasm/pkg"
[[ "$profile" == release ]] || pkg="bench/mqtt-wasm/pkg-$profile"

need() { command -v "$1" >/dev/null || { echo "mqttjs-vs-fleet: $1 is missing ($2)" >&2; exit 1; }; }
need node "Node 20+"
need npm "npm"
need wasm-bindgen "cargo install wasm-bindgen-cli --version 0.2.130 (scripts/setup.sh web)"
[[ -x /usr/bin/chromium ]] || { echo "mqttjs-vs-fleet: /usr/bin/chromium is missing (apt-get install chromium)" >&2; exit 1; }
[[ -x /usr/sbin/mosquitto ]] || { echo "mqttjs-vs-fleet: /usr/sbin/mosquitto is missing (scripts/setup.sh mqtt)" >&2; exit 1; }

if [[ -z "${SKIP_BUILD:-}" ]]; then
  lock_version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
  cli_version=$(wasm-bindgen --version | awk '{print $2}')
  if [[ "$lock_version" != "$cli_version" ]]; then
    echo "mqttjs-vs-fleet: wasm-bindgen CLI $cli_version does not match Cargo.lock's $lock_version" >&2
    exit 1
  fi
  echo "== build: the counter (fleet-client's count example, release), fleet-bench-mqtt-wasm (wasm32, $profile)" >&2
  cargo build --release -p fleet-client --example count
  cargo build --profile "$profile" --target wasm32-unknown-unknown -p fleet-bench-mqtt-wasm
  wasm-bindgen --target web --out-dir "$pkg" \
    "target/wasm32-unknown-unknown/$profile/fleet_bench_mqtt_wasm.wasm"
  # MQTT.js (and ws, for the CDP connection) from the lockfile, when it changed.
  if [[ ! -f bench/node_modules/.package-lock.json \
        || bench/package-lock.json -nt bench/node_modules/.package-lock.json ]]; then
    (cd bench && npm ci --no-audit --no-fund)
  fi
fi

args=()
[[ "$profile" == release ]] || args+=(--fleet-pkg "../mqtt-wasm/pkg-$profile")
exec node bench/driver.mjs "${args[@]}" "$@"
