#!/usr/bin/env bash
# Runs every check: formatting, lints, all tests, the wasm32 build of the shared crates, the
# web app's release build and its real-browser tests, and a bounded fuzz run. Installs what
# it needs first (idempotently). This is what CI runs.
#
# Environment: FLEET_FUZZ_SECONDS (per fuzz target, default 30; 0 skips fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

start=$SECONDS
scripts/setup.sh
step "format" cargo fmt --all -- --check
step "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "tests" cargo test --workspace --locked
# The core, the MQTT session, the fleet engine and the clock must stay portable to the browser.
step "wasm32 build" cargo build --locked --target wasm32-unknown-unknown \
  -p fleet-core -p fleet-mqtt -p fleet-engine -p fleet-clock -p fleet-sigv4 -p fleet-web
step "wasm32 clippy" bash -c 'cargo clippy --locked --target wasm32-unknown-unknown -p fleet-web --all-targets -- -D warnings &&
  cargo clippy --locked --target wasm32-unknown-unknown -p fleet-core --test number_wasm -- -D warnings'
# The AWS mode is on by default (web/Cargo.toml); the page without it must still build.
step "web without the aws feature" bash -c 'cargo clippy --locked -p fleet-web --all-targets --no-default-features -- -D warnings &&
  cargo clippy --locked --target wasm32-unknown-unknown -p fleet-web --lib --no-default-features -- -D warnings'
# The web crate's own tests in headless Chromium (wasm-bindgen-test), then the app as shipped
# (dist/, which `fleet local` serves; within its size budget) in a real browser.
step "wasm browser tests" scripts/wasm-test.sh
step "browser tests" scripts/e2e.sh
step "template lint" scripts/template-lint.sh
# The shards' Kubernetes Job, ECS template and image (deploy/): schemas, cfn-lint, checkov.
step "deploy lint" scripts/deploy-lint.sh
step "workflow lint" scripts/workflow-lint.sh
step "fuzz" scripts/fuzz.sh "${FLEET_FUZZ_SECONDS:-30}"
printf '\nAll checks passed in %ss.\n' "$((SECONDS - start))"
