#!/usr/bin/env bash
# `sam build` as a deploy runs it: SAM calls cargo-lambda for each function
# (`BuildMethod: rust-cargolambda`), which cross-compiles an arm64 `bootstrap` with zig.
# Opt-in, not part of scripts/test.sh: cargo-lambda alone takes ~40 min to install on two
# cores (docs/deploy.md). Installs what is missing (scripts/setup.sh aws lambda), builds into
# .aws-sam/, and checks that every function got an aarch64 Linux executable.
#
# Runs with no terminal (CI, a pipe, `</dev/null`): SAM CLI 1.170 asks nothing for
# `BuildMethod: rust-cargolambda`. Older SAM CLIs asked to confirm it as a beta feature;
# SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 answers that prompt should a later one bring it back, and
# stdin is closed so that any other prompt fails the build at once instead of waiting.
#
# Usage: scripts/sam-build.sh [extra `sam build` options]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

scripts/setup.sh aws lambda
export SAM_CLI_TELEMETRY=0 SAM_CLI_BETA_RUST_CARGO_LAMBDA=1
# The workspace's release profile keeps line tables (for profiling the local stack); a
# deployed function needs none: stripped, each bootstrap is a few MB instead of ~40.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
# cargo-lambda looks for zig as `python3 -m ziglang`: the venv that has it goes first.
export PATH="$(dirname "$FLEET_VENV")/venv-zig/bin:$PATH"

step "sam build" sam build "$@" </dev/null
found=0
for bootstrap in .aws-sam/build/*/bootstrap; do
  [ -e "$bootstrap" ] || continue
  found=$((found + 1))
  # An ELF header: class 64-bit (byte 5 = 2), little endian, machine 0xB7 (AArch64).
  header=$(od -An -tx1 -N20 "$bootstrap" | tr -d ' \n')
  case "$header" in
    7f454c460201*) ;;
    *) echo "sam-build: $bootstrap is not a 64-bit little-endian ELF" >&2; exit 1 ;;
  esac
  [ "${header:36:4}" = b700 ] || {
    echo "sam-build: $bootstrap is not built for aarch64 (e_machine ${header:36:4})" >&2
    exit 1
  }
  printf '%-60s %s\n' "$bootstrap" "$(du -h "$bootstrap" | cut -f1) aarch64 ELF"
done
[ "$found" -eq 3 ] || { echo "sam-build: expected 3 functions, built $found" >&2; exit 1; }
