#!/usr/bin/env bash
# Builds the web app for release with Trunk (Trunk.toml, web/index.html): the `web-release`
# cargo profile (opt-level z, fat LTO, one codegen unit, panic=abort) and wasm-opt -Oz from
# npm's binaryen (e2e/node_modules, put first on PATH: Debian's wasm-opt breaks the app).
# Never downloads anything. Then prints the transfer size (scripts/web-size.sh), which fails
# over the budget. Run scripts/setup.sh (rust, web) first.
#
# Usage: scripts/build-web.sh [--public-url URL] [--dist DIR] [other `trunk build` options]
#        (default dist: dist/, from Trunk.toml; default public URL `./`: relative asset URLs,
#        so one build works at the root (`fleet local`) and under any sub-path (a static host))
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

wasm_opt_bin=$PWD/e2e/node_modules/.bin
[ -x "$wasm_opt_bin/wasm-opt" ] || {
  echo "build-web: no $wasm_opt_bin/wasm-opt; run scripts/setup.sh web" >&2
  exit 1
}
export PATH="$wasm_opt_bin:$PATH"

dist=dist
public_url=(--public-url ./)
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --dist | -d) dist=${args[i + 1]:-dist} ;;
    --dist=*) dist=${args[i]#--dist=} ;;
    --public-url | --public-url=*) public_url=() ;;
  esac
done

# Trunk passes --offline to cargo, so the dependencies must be in cargo's cache.
cargo fetch --locked -q
# Quiet on success; on failure the end of the log, and where the whole of it is.
log=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')/build-web.log
mkdir -p "$(dirname "$log")"
if ! TRUNK_OFFLINE=true TRUNK_SKIP_VERSION_CHECK=true TRUNK_BUILD_LOCKED=true NO_COLOR=true \
  trunk build --release "${public_url[@]}" "$@" >"$log" 2>&1; then
  grep -v '^ *[0-9]*: \|^ *at ' "$log" | tail -n 60 >&2
  echo "build-web: trunk build --release failed; the whole log: $log" >&2
  exit 1
fi
scripts/web-size.sh "$dist"
