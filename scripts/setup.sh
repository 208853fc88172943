#!/usr/bin/env bash
# Installs the tools Fleet's build and tests need, skipping whatever is already there.
# Safe to run again and again. A fresh machine has only rustup's toolchain, Node/npm,
# Python/pip and apt; this script brings the rest.
#
# Usage: scripts/setup.sh [rust] [aws] [fuzz]      (default: all of them)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

setup_rust() {
  # The toolchain on the machine is used as is: no rust-toolchain.toml, because rustup
  # would try to download a pinned toolchain and the machine cannot reach that server for
  # whole toolchains. Only the components and the wasm32 target are added.
  for component in rustfmt clippy; do
    rustup component list --installed | grep -q "^$component" || rustup component add "$component"
  done
  rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown
  # Fetch once, so later steps can run offline and fail fast on a lockfile mismatch.
  cargo fetch --locked >/dev/null
}

# Python tools (cfn-lint now; the SAM CLI later) live in one virtualenv, so they never fight
# with the system's packages. scripts/lib.sh puts its bin/ on PATH.
setup_aws() {
  [ -x "$FLEET_VENV/bin/python" ] || python3 -m venv "$FLEET_VENV"
  [ -x "$FLEET_VENV/bin/cfn-lint" ] || "$FLEET_VENV/bin/pip" install -q 'cfn-lint>=1.20,<2'
}

setup_fuzz() {
  have cargo-fuzz || cargo install --locked cargo-fuzz --version 0.13.2
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(rust aws fuzz)
for t in "${targets[@]}"; do
  step "setup $t" "setup_$t"
done
