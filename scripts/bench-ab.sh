#!/usr/bin/env bash
# Compares two builds of `fleet` on the local stack benchmark, like for like: the same
# `fleet bench` commands, alternated run by run (A B, then B A, …) so that drift on the
# machine hits both alike, then min / median / max of each column per binary and rate.
#
# Usage: scripts/bench-ab.sh BASELINE_BIN NEW_BIN [RUNS=5]
#   e.g. git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release -p fleet)
#        scripts/bench-ab.sh /tmp/base/target/release/fleet target/release/fleet 5
# Environment: FLEET_AB_RATES (default "60000 10000"), FLEET_AB_DEVICES (500),
#              FLEET_AB_SECONDS (20), FLEET_AB_LOG (default bench-ab.log in the current dir).
# Run it on an otherwise idle machine: the bench and the stack share its cores.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BASELINE_BIN NEW_BIN [RUNS]" >&2; exit 2; }
base=$1 new=$2 runs=${3:-5}
for bin in "$base" "$new"; do
  [ -x "$bin" ] || { echo "$0: $bin is not an executable" >&2; exit 2; }
done
log=${FLEET_AB_LOG:-bench-ab.log}
: >"$log"
for run in $(seq 1 "$runs"); do
  for rate in ${FLEET_AB_RATES:-60000 10000}; do
    if [ $((run % 2)) -eq 1 ]; then order="baseline new"; else order="new baseline"; fi
    for which in $order; do
      bin=$base; [ "$which" = new ] && bin=$new
      echo "=== run $run rate $rate bin $which load $(cut -d' ' -f1 /proc/loadavg) $(date +%T)" | tee -a "$log" >&2
      "$bin" bench --devices "${FLEET_AB_DEVICES:-500}" --rate "$rate" \
        --duration "${FLEET_AB_SECONDS:-20}" 2>/dev/null >>"$log"
    done
  done
done
python3 - "$log" <<'PY'
import re, statistics, sys
rows = {}
for block in open(sys.argv[1]).read().split("=== ")[1:]:
    run, rate, which = re.match(r"run (\d+) rate (\d+) bin (\w+)", block).groups()
    num = lambda pattern: float(re.search(pattern, block).group(1))
    rows.setdefault((int(rate), which), []).append({
        "stored/s": num(r"stored/s (\d+)"),
        "lost": num(r"lost (\d+)"),
        "rtt p50 ms": num(r"round trip: p50 ([\d.]+) ms"),
        "rtt p99 ms": num(r"round trip: p50 [\d.]+ ms, p99 ([\d.]+) ms"),
        "stack RSS MiB": num(r"RSS of the stack ([\d.]+) MiB"),
    })
for (rate, which), runs in sorted(rows.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
    print(f"rate {rate}, {which}, {len(runs)} runs (min / median / max):")
    for column in runs[0]:
        xs = sorted(r[column] for r in runs)
        print(f"  {column:14} {xs[0]:>10.2f} {statistics.median(xs):>10.2f} {xs[-1]:>10.2f}")
PY
