# Shared helpers for Fleet's scripts. Source it; do not run it.

# Prints a step header and runs the command, timing it.
step() {
  local name=$1
  shift
  printf '\n==> %s\n' "$name"
  local start=$SECONDS
  "$@"
  printf '<== %s done in %ss\n' "$name" "$((SECONDS - start))"
}

have() { command -v "$1" >/dev/null 2>&1; }

# Run apt-get update at most once per script run, and only when something is missing.
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Where setup.sh keeps the Python tools (cfn-lint, and later the SAM CLI).
FLEET_VENV=${FLEET_VENV:-$HOME/.cache/fleet/venv}
export PATH="$FLEET_VENV/bin:$HOME/.cargo/bin:$PATH"

# checkov on one file with one framework, judged here rather than by its exit code: JSON
# out, no failed check, no skip without a reason (a comment), no parsing error, and at
# least one check run (a file checkov could not parse runs none). Prints the problems.
checkov_judged() { # framework file
  local out err rc=0
  out=$(mktemp) err=$(mktemp)
  checkov --file "$2" --framework "$1" --compact --skip-download --output json \
    >"$out" 2>"$err" || true
  python3 - "$1" "$out" "$err" <<'PY' || rc=$?
import json, sys
framework, path, err = sys.argv[1:4]
try:
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
except (OSError, ValueError) as e:
    print(f"checkov gave no JSON report ({e}):")
    print(open(err, encoding="utf-8", errors="replace").read())
    sys.exit(1)
if isinstance(report, list):  # one report per framework
    report = next((r for r in report if r.get("check_type") == framework), {})
results = report.get("results") or {}
summary = report.get("summary") or {}
problems = []
for c in results.get("failed_checks", []):
    lines = "-".join(str(n) for n in c.get("file_line_range", []))
    problems.append(f"FAILED {c['check_id']} {c['check_name']}\n    {c['resource']} (lines {lines})")
for c in results.get("skipped_checks", []):
    comment = (c.get("check_result") or {}).get("suppress_comment", "")
    if not comment.strip() or comment == "No comment provided":
        problems.append(f"SKIPPED WITHOUT A REASON {c['check_id']} on {c['resource']}")
for e in results.get("parsing_errors", []):
    problems.append(f"PARSE ERROR {e}")
if not summary.get("passed") and not results.get("failed_checks"):
    problems.append(f"checkov ran no {framework} check at all (did it parse the file?)")
if problems:
    print("\n".join(problems))
    sys.exit(1)
PY
  rm -f "$out" "$err"
  return "$rc"
}
