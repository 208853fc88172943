#!/usr/bin/env bash
# Runs the real-browser end-to-end tests (e2e/*.test.mjs, Node's test runner, playwright-core
# driving Debian's Chromium) against the release build of the web app. Builds what they need
# first: the web app (scripts/build-web.sh into dist/) and the `fleet` binary (debug). Run
# scripts/setup.sh (rust, web, browser) first.
#
# Environment given to the tests: FLEET_E2E_DIST (the built app, relative asset URLs, as
# `fleet local` serves it; the AWS mode included), FLEET_E2E_SITE (the GitHub Pages artefact:
# the Pages workflow's command, scripts/build-web.sh --public-url /<repo>/, here for /fleet/,
# which the static-host tests serve it from), FLEET_E2E_PAGE_HEADERS (the template's page
# hosting headers, scripts/page-headers.sh) and FLEET_BIN (the `fleet` binary, for tests that
# start `fleet local`). Arguments replace the
# default `e2e/` given to `node --test`, e.g. `scripts/e2e.sh e2e/inpage.test.mjs` or
# `scripts/e2e.sh --test-name-pattern in-page e2e/`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

[ -d e2e/node_modules/playwright-core ] || {
  echo "e2e: no e2e/node_modules/playwright-core; run scripts/setup.sh browser" >&2
  exit 1
}

# The release build as shipped (relative asset URLs), which `fleet local` serves from /, and
# the Pages artefact for /fleet/ (e2e/support/dist.mjs). Quick when the build is current:
# the second one reuses the first one's cargo build.
export FLEET_E2E_DIST=$PWD/dist
step "web release build" scripts/build-web.sh
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed 's/.*"target_directory":"\([^"]*\)".*/\1/')
export FLEET_E2E_SITE=$target_dir/e2e/site
step "web release build for /fleet/ (the Pages workflow's)" \
  scripts/build-web.sh --public-url /fleet/ --dist "$FLEET_E2E_SITE"
FLEET_E2E_PAGE_HEADERS=$(scripts/page-headers.sh)
export FLEET_E2E_PAGE_HEADERS

export FLEET_BIN=$target_dir/debug/fleet
step "fleet binary" cargo build --locked -q -p fleet

[ $# -gt 0 ] || set -- e2e/
step "node --test $*" node --test --test-reporter=spec "$@"
