#!/usr/bin/env bash
# Runs the web crate's browser tests (web/tests/browser.rs) with wasm-bindgen-test in
# headless Chromium: the components, and the WebSocket glue against a real `fleet local`
# that this script starts on free loopback ports and stops at the end; then fleet-core's
# number parsing as the browser does it (crates/core/tests/number_wasm.rs).
#
# The stack lets only pages of allowed origins open its WebSocket, and only with a
# credential it issued (ARCHITECTURE §4.8). The test page is served by
# wasm-bindgen-test-runner, on an origin of its own: this script fixes that origin
# (WASM_BINDGEN_TEST_ADDRESS), starts the stack with --allow-origin for it, and passes the
# tests a page credential from `fleet local token --page` at build time.
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

# A free loopback port for the test page (bound, then released for the runner to take).
page_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
page_origin=http://127.0.0.1:$page_port

target/debug/fleet local --data "$work/data" --mqtt off --mqtts off --http off \
  --ws 127.0.0.1:0 --allow-origin "$page_origin" >"$work/stack.log" 2>&1 &
stack=$!
ws=
for _ in $(seq 1 100); do
  ws=$(sed -n 's/^ *WebSocket *\(ws:[^ ]*\).*/\1/p' "$work/stack.log")
  [ -n "$ws" ] && break
  kill -0 "$stack" 2>/dev/null || { cat "$work/stack.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ws" ] || { echo "wasm-test: fleet local did not start" >&2; cat "$work/stack.log" >&2; exit 1; }

# A namespace as the stack's config.json would issue one (`w` and 10 hex digits), and its
# credential: `fleet local token` prints `page:NS TOKEN`.
ns=w$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')
read -r user password < <(target/debug/fleet local token --data "$work/data" --page "$ns")
[ "$user" = "page:$ns" ] && [ -n "$password" ] || {
  echo "wasm-test: fleet local token --page $ns printed no page credential" >&2
  exit 1
}

# The default 20 s per test is too short for a fleet to get remediated over a broker.
FLEET_TEST_WS=$ws FLEET_TEST_NS=$ns FLEET_TEST_PASSWORD=$password \
  WASM_BINDGEN_TEST_ADDRESS=127.0.0.1:$page_port WASM_BINDGEN_TEST_TIMEOUT=90 \
  CHROMEDRIVER=$(command -v chromedriver) \
  cargo test --locked --target wasm32-unknown-unknown -p fleet-web --test browser

# fleet_core::number in the browser, where it is parseFloat, against Rust's own parser.
CHROMEDRIVER=$(command -v chromedriver) \
  cargo test --locked --target wasm32-unknown-unknown -p fleet-core --test number_wasm
