#!/usr/bin/env bash
# Prints the transfer size of a built web app: each .wasm, .js and .css file in DIST, raw and
# gzip -9, and the gzip total. Fails when the total is over the budget (250 KB gzip, 1 KB =
# 1000 bytes; FLEET_WEB_BUDGET_KB overrides it). BENCHMARKS.md cites its output.
#
# Usage: scripts/web-size.sh [DIST]      (default: dist)
set -euo pipefail
dist=${1:-dist}
budget_kb=${FLEET_WEB_BUDGET_KB:-250}

shopt -s nullglob
files=("$dist"/*.wasm "$dist"/*.js "$dist"/*.css)
[ ${#files[@]} -gt 0 ] || { echo "web-size: no .wasm, .js or .css in $dist" >&2; exit 1; }

kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1000 }'; }
total=0
for f in "${files[@]}"; do
  raw=$(wc -c <"$f")
  gz=$(gzip -9 -c "$f" | wc -c)
  total=$((total + gz))
  printf '%-40s %10s raw %10s gzip\n' "$(basename "$f")" "$(kb "$raw")" "$(kb "$gz")"
done
printf '%-40s %10s     %10s gzip (budget %s KB)\n' total '' "$(kb "$total")" "$budget_kb"
if [ "$total" -gt $((budget_kb * 1000)) ]; then
  echo "web-size: over the ${budget_kb} KB gzip budget" >&2
  exit 1
fi
