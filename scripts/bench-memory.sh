#!/usr/bin/env bash
# Memory per device of `fleet sim` (issue 16): peak RSS of the simulator process, per device,
# with one connection per device and with gateway connections, each run against a fresh
# `fleet local` whose own count of stored readings is compared with what the simulator saw
# acknowledged (lost = acked − stored, which must be 0).
#
# What is timed and measured: the simulator's peak RSS over the whole run (ramp-up, steady
# state, drain), from /usr/bin/time's maximum resident set size, divided by its devices. The
# process's fixed cost (runtime, binary, allocator arenas) is included, not subtracted, so
# small fleets read high; the marginal cost is the slope between two fleet sizes. The stack
# runs on the same machine and is not counted.
#
# Usage: scripts/bench-memory.sh [FLEET_BIN] [RUNS]
#   (default target/release/fleet, 3 runs of every scenario, alternated scenario by scenario)
# Environment: FLEET_MEM_SCENARIOS, space-separated DEVICES:CONNECTIONS:BUILDINGS (default
#   "1000:per-device:1 10000:per-device:1 15000:per-device:1 100000:auto:100"),
#   FLEET_MEM_SECONDS (60), FLEET_MEM_PERIOD (2, seconds between readings),
#   FLEET_MEM_LOG (bench-memory.log in the current directory).
# Run it on an otherwise idle machine: the stack and the simulator share its cores.
set -euo pipefail
bin=${1:-target/release/fleet}
runs=${2:-3}
[ -x "$bin" ] || { echo "$0: $bin is not an executable (cargo build --release -p fleet)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "$0: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
scenarios=${FLEET_MEM_SCENARIOS:-1000:per-device:1 10000:per-device:1 15000:per-device:1 100000:auto:100}
seconds=${FLEET_MEM_SECONDS:-60}
period=${FLEET_MEM_PERIOD:-2}
log=${FLEET_MEM_LOG:-bench-memory.log}
: >"$log"

# The value of one Prometheus sample of the stack at $1 (host:port).
metric() {
  python3 - "$1" "$2" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10).read().decode()
print(int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(sys.argv[2] + " ") or l.startswith(sys.argv[2] + "{"))))
PY
}

run_one() { # devices connections buildings run
  local devices=$1 connections=$2 buildings=$3 run=$4 dir stack mqtt http
  dir=$(mktemp -d)
  "$bin" local --data "$dir/data" --mqtt 127.0.0.1:0 --mqtts off --ws off --http 127.0.0.1:0 \
    >"$dir/stack.out" 2>"$dir/stack.err" &
  stack=$!
  for _ in $(seq 1 100); do
    grep -q 'Web app' "$dir/stack.out" 2>/dev/null && break
    sleep 0.1
  done
  mqtt=$(sed -n 's|.*MQTT *mqtt://\([^ ]*\).*|\1|p' "$dir/stack.out")
  http=$(sed -n 's|.*Web app *http://\([^/ ]*\)/.*|\1|p' "$dir/stack.out")
  [ -n "$mqtt" ] && [ -n "$http" ] || { cat "$dir/stack.out" "$dir/stack.err" >&2; exit 1; }
  echo "=== devices $devices connections $connections run $run load $(cut -d' ' -f1 /proc/loadavg) $(date +%T)" | tee -a "$log" >&2
  # Ramp-up over about a tenth of the run, so the steady state dominates.
  /usr/bin/time -f 'maxrss_kib %M' -o "$dir/time" \
    "$bin" sim --broker "mqtt://$mqtt" --devices "$devices" --buildings "$buildings" \
    --connections "$connections" --update-frequency "$period" --duration "$seconds" \
    --connect-rate $((devices * 10 / seconds + 1)) --drain-timeout 60 \
    --report "$dir/report.json" --log-level WARNING >"$dir/sim.out" 2>"$dir/sim.err" ||
    { tail -20 "$dir/sim.err" >&2; exit 1; }
  stored=$(metric "$http" fleet_readings_stored_total)
  kill -INT "$stack"; wait "$stack" || true
  python3 - "$dir/report.json" "$dir/time" "$stored" "$devices" <<'PY' | tee -a "$log"
import json, sys
report = json.load(open(sys.argv[1]))
rss = int(open(sys.argv[2]).read().split("maxrss_kib ")[1].split()[0])
stored, devices = int(sys.argv[3]), int(sys.argv[4])
c = report["counters"]
print(f"connections {c['connections']} peak_rss_kib {rss} kib_per_device {rss / devices:.2f} "
      f"sent {c['sent']} acked {c['acked']} stored {stored} lost {c['acked'] - stored} "
      f"reconnects {c['reconnects']}")
PY
  rm -rf "$dir"
}

for run in $(seq 1 "$runs"); do
  for s in $scenarios; do
    IFS=: read -r devices connections buildings <<<"$s"
    run_one "$devices" "$connections" "$buildings" "$run"
  done
done

python3 - "$log" <<'PY'
import re, statistics, sys
rows = {}
for block in open(sys.argv[1]).read().split("=== ")[1:]:
    devices, connections = re.match(r"devices (\d+) connections (\S+)", block).groups()
    num = lambda k: float(re.search(k + r" (-?[\d.]+)", block).group(1))
    rows.setdefault((int(devices), connections), []).append(
        {k: num(k) for k in ["connections", "peak_rss_kib", "kib_per_device", "acked", "lost"]})
print(f"{'devices':>8} {'connections':>12} {'runs':>4}  KiB/device min/median/max   peak RSS MiB (median)  acked (median)  lost (max)")
for (devices, connections), rs in sorted(rows.items()):
    per = sorted(r["kib_per_device"] for r in rs)
    print(f"{devices:>8} {int(rs[0]['connections']):>12} {len(rs):>4}  "
          f"{per[0]:8.2f} {statistics.median(per):8.2f} {per[-1]:8.2f}   "
          f"{statistics.median(r['peak_rss_kib'] for r in rs) / 1024:20.1f}  "
          f"{statistics.median(r['acked'] for r in rs):14.0f}  {max(r['lost'] for r in rs):10.0f}")
PY
