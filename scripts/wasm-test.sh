#!/usr/bin/env bash
# Runs the web crate's browser tests (web/tests/browser.rs) with wasm-bindgen-test in
# headless Chromium: the components, and the WebSocket glue against a real `fleet local`
# that this script starts on free loopback ports and stops at the end.
# Needs scripts/setup.sh rust web browser (wasm-bindgen-test-runner, chromedriver).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

cargo build --quiet --locked -p fleet
work=$(mktemp -d)
stack=
cleanup() {
  [ -n "$stack" ] && kill -TERM "$stack" 2>/dev/null && wait "$stack" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
target/debug/fleet local --data "$work/data" --mqtt off --mqtts off --http off \
  --ws 127.0.0.1:0 >"$work/stack.log" 2>&1 &
stack=$!
ws=
for _ in $(seq 1 100); do
  ws=$(sed -n 's/^ *WebSocket *\(ws:[^ ]*\).*/\1/p' "$work/stack.log")
  [ -n "$ws" ] && break
  kill -0 "$stack" 2>/dev/null || { cat "$work/stack.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ws" ] || { echo "wasm-test: fleet local did not start" >&2; cat "$work/stack.log" >&2; exit 1; }

# The default 20 s per test is too short for a fleet to get remediated over a broker.
FLEET_TEST_WS=$ws WASM_BINDGEN_TEST_TIMEOUT=90 CHROMEDRIVER=$(command -v chromedriver) \
  cargo test --locked --target wasm32-unknown-unknown -p fleet-web --test browser
