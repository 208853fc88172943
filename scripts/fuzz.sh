#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time (default 30 s each; 0 skips).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# cargo-fuzz needs nightly-only sanitizer flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them, so no second toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

seconds=${1:-30}
shift || true
[ "$seconds" -gt 0 ] || { echo "fuzzing skipped (0 seconds)"; exit 0; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(packet_decode session_input payload_parse)

export RUSTC_BOOTSTRAP=1
cd fuzz
mkdir -p logs
# libFuzzer narrates every new input; keep that in a log and show the totals, or the whole
# log if the target found a crash.
fuzz_one() {
  local t=$1 log="logs/$1.log"
  mkdir -p "corpus/$t"
  local seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  if cargo fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done' "$log" || true
  else
    tail -n 60 "$log"
    echo "fuzz target $t failed: see fuzz/$log and fuzz/artifacts/$t/" >&2
    return 1
  fi
}
for t in "${targets[@]}"; do
  step "fuzz $t (${seconds}s)" fuzz_one "$t"
done
