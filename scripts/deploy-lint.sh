#!/usr/bin/env bash
# Lints what runs `fleet sim` shards on other engines (deploy/), offline, and fails on any
# finding. Quiet on success.
#
#   1. deploy/k8s/*.yaml against the Kubernetes API's schemas (kubernetes-validate --strict:
#      unknown fields too), and checkov's Kubernetes checks;
#   2. deploy/ecs/template.yml with cfn-lint and checkov's CloudFormation checks;
#   3. deploy/Dockerfile with checkov's Dockerfile checks, deploy/ecs/run-shards.sh with
#      `bash -n`;
#   4. the shard wiring: the Indexed Job's completions, parallelism and the N of its
#      FLEET_SHARD agree, the shard index reaches FLEET_SHARD and the report path, and the
#      environment variables the manifests set are the ones `fleet sim` reads.
#
# checkov: no failed check, and every skip (Metadata `checkov: skip:` in the template) must
# carry a comment saying why.
#
# Usage: scripts/deploy-lint.sh
# Needs: kubernetes-validate, cfn-lint and checkov on PATH (scripts/setup.sh aws puts them
# in $FLEET_VENV/bin, which scripts/lib.sh adds to PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

for tool in kubernetes-validate cfn-lint checkov; do
  have "$tool" || { echo "deploy lint: $tool not found (run scripts/setup.sh aws)" >&2; exit 2; }
done
shopt -s nullglob
manifests=(deploy/k8s/*.yaml deploy/k8s/*.yml)
[ ${#manifests[@]} -gt 0 ] || { echo "deploy lint: no manifest in deploy/k8s/" >&2; exit 1; }
template=deploy/ecs/template.yml
[ -f "$template" ] || { echo "deploy lint: no $template" >&2; exit 1; }

export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

# Runs a check with its output captured; prints the output only when it fails.
check() { # name command...
  local name=$1
  shift
  if ! "$@" >"$tmp/out" 2>&1; then
    printf '\ndeploy lint: %s found problems:\n' "$name" >&2
    cat "$tmp/out" >&2
    failed=1
  fi
}

# checkov on one file with one framework, judged by scripts/lib.sh's checkov_judged.
checkov_json() { # framework file
  checkov_judged "$1" "$2"
}

# kubernetes-validate's interpreter has PyYAML.
k8s_python() {
  local py
  py=$(head -n 1 "$(readlink -f "$(command -v kubernetes-validate)")" | sed -n 's/^#!//p')
  if [ -z "$py" ] || ! "$py" -c 'import yaml' 2>/dev/null; then
    echo "cannot find kubernetes-validate's Python (with PyYAML); is it a pip install?" >&2
    return 1
  fi
  echo "$py"
}

wiring() {
  local py
  py=$(k8s_python) || return 1
  "$py" - "$template" cli/src/sim.rs "${manifests[@]}" <<'PY'
import re, sys
import yaml

template, sim, manifests = sys.argv[1], sys.argv[2], sys.argv[3:]
problems = []
reads = set(re.findall(r'env = "([A-Z_]+)"', open(sim, encoding="utf-8").read()))
for name in ("FLEET_SHARD", "FLEET_REPORT"):
    if name not in reads:
        problems.append(f"{sim} no longer reads {name}, which deploy/ sets")

jobs = []
for path in manifests:
    with open(path, encoding="utf-8") as f:
        jobs += [(path, d) for d in yaml.safe_load_all(f) if d and d.get("kind") == "Job"]
if not jobs:
    problems.append("no Job in deploy/k8s/")
for path, job in jobs:
    name = f"{path}: Job {job['metadata']['name']}"
    spec = job["spec"]
    if spec.get("completionMode") != "Indexed":
        problems.append(f"{name}: completionMode must be Indexed (the index is the shard)")
    n = spec.get("completions")
    if spec.get("parallelism") != n:
        problems.append(f"{name}: parallelism {spec.get('parallelism')} != completions {n}: "
                        "every shard of the fleet runs at once")
    for c in spec["template"]["spec"]["containers"]:
        env = {e["name"]: e for e in c.get("env", [])}
        index = [k for k, e in env.items()
                 if "job-completion-index" in str(e.get("valueFrom", {}))]
        shard = env.get("FLEET_SHARD", {}).get("value", "")
        if not index:
            problems.append(f"{name}: no env var takes the job-completion-index annotation")
            continue
        if shard != f"$({index[0]})/{n}":
            problems.append(f"{name}: FLEET_SHARD is {shard!r}, expected '$({index[0]})/{n}'")
        report = [a for a in c.get("args", []) if a.startswith("--report")]
        if not report or f"$({index[0]})" not in report[0]:
            problems.append(f"{name}: the --report path must hold the shard index, or shards "
                            "overwrite each other's report")
        if any(a.startswith("--shard") for a in c.get("args", [])):
            problems.append(f"{name}: --shard in args overrides FLEET_SHARD")

with open(template, encoding="utf-8") as f:
    text = f.read()
for name in ("FLEET_SHARD", "FLEET_REPORT"):
    if f"Name: {name}" not in text:
        problems.append(f"{template}: the task definition does not set {name}")
with open("deploy/ecs/run-shards.sh", encoding="utf-8") as f:
    script = f.read()
for name in ("FLEET_SHARD", "FLEET_REPORT"):
    if f'"name":"{name}"' not in script:
        problems.append(f"deploy/ecs/run-shards.sh does not override {name}")
if problems:
    print("\n".join(problems))
    sys.exit(1)
PY
}

check "kubernetes-validate" kubernetes-validate --strict --quiet "${manifests[@]}"
for manifest in "${manifests[@]}"; do
  check "checkov ($manifest)" checkov_json kubernetes "$manifest"
done
check "cfn-lint ($template)" cfn-lint -- "$template"
check "checkov ($template)" checkov_json cloudformation "$template"
check "checkov (deploy/Dockerfile)" checkov_json dockerfile deploy/Dockerfile
check "bash -n (deploy/ecs/run-shards.sh)" bash -n deploy/ecs/run-shards.sh
check "the shard wiring" wiring

exit "$failed"
