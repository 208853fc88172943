#!/usr/bin/env bash
# Lints the SAM template four ways, offline, and fails on any finding. Quiet on success.
#
#   1. `sam validate --lint`: the SAM CLI's lint (cfn-lint with its SAM settings);
#   2. `cfn-lint` on the template as written;
#   3. the SAM transform itself (samtranslator, as `sam validate` and `sam deploy` run it:
#      misspelled event properties), then `cfn-lint` on its output: with the transform in
#      place cfn-lint misses bad Refs/GetAtts and skips its IAM action check (W3037), and
#      every role here is written by hand;
#   4. `checkov`: no failed check; every skip (Metadata `checkov: skip:` on the resource)
#      must carry a comment saying why. Twice: on the template as written, and with every
#      optional part on (PageHosting with its own domain, BrowserAccess, AlarmEmail),
#      because checkov leaves out resources whose Condition is false with the defaults;
#   5. each function's role grants exactly the data-plane actions (DynamoDB, S3, IoT) that
#      lambdas/iam.json lists for its binary, which lambdas/tests/aws_moto.rs checks against
#      the calls the code really makes on moto;
#   6. scripts/template-access.py: who may say what (ARCHITECTURE 4.8), the guest role and
#      the device policy evaluated as IAM and IoT Core do: no other caller reaches a
#      certificate device's client id or topics, and each caller keeps what it needs.
#
# Usage: scripts/template-lint.sh [TEMPLATE]   (default template.yml)
# Needs: cfn-lint, sam and checkov on PATH (scripts/setup.sh aws puts them in
# $FLEET_VENV/bin, which scripts/lib.sh adds to PATH).
set -euo pipefail
if [ $# -gt 0 ]; then template=$(realpath -- "$1"); fi
cd "$(dirname "$0")/.."
. scripts/lib.sh

template=${template:-template.yml}
[ -f "$template" ] || { echo "template lint: no such file: $template" >&2; exit 2; }
for tool in sam cfn-lint checkov; do
  have "$tool" || { echo "template lint: $tool not found (run scripts/setup.sh aws)" >&2; exit 2; }
done

export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

# Runs a check with its output captured; prints the output only when it fails.
check() { # name command...
  local name=$1
  shift
  if ! "$@" >"$tmp/out" 2>&1; then
    printf '\ntemplate lint: %s found problems in %s:\n' "$name" "$template" >&2
    cat "$tmp/out" >&2
    failed=1
    return 1
  fi
}

check "sam validate --lint" sam validate --lint --template-file "$template" || true
check "cfn-lint" cfn-lint -- "$template" || true

# The SAM translator is a library of the SAM CLI: use the SAM CLI's own interpreter. Local
# CodeUri values become a placeholder S3 URI, as `sam validate` does.
sam_python() {
  local sam_py
  sam_py=$(head -n 1 "$(readlink -f "$(command -v sam)")" | sed -n 's/^#!//p')
  if [ -z "$sam_py" ] || ! "$sam_py" -c 'import samtranslator' 2>/dev/null; then
    echo "cannot find the SAM CLI's Python (samtranslator); is sam a pip install?"
    return 1
  fi
  echo "$sam_py"
}

translate() {
  local sam_py
  sam_py=$(sam_python) || { echo "$sam_py"; return 1; }
  "$sam_py" - "$template" "$tmp/translated.json" <<'PY'
import json, sys
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

src, dst = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8") as f:
    template = yaml_parse(f.read())
placeholder = "s3://bucket/key"
function = template.get("Globals", {}).get("Function", {})
if isinstance(function.get("CodeUri"), str):
    function["CodeUri"] = placeholder
for resource in template.get("Resources", {}).values():
    props = resource.get("Properties") or {}
    if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
        props["CodeUri"] = placeholder
try:
    translated = transform(template, {}, NoManagedPolicies())
except InvalidDocumentException as e:
    for cause in e.causes:
        print(cause.message)
    sys.exit(1)
with open(dst, "w", encoding="utf-8") as f:
    json.dump(translated, f, indent=1, default=str)
PY
}
if check "the SAM transform" translate; then
  check "cfn-lint (after the SAM transform)" cfn-lint -- "$tmp/translated.json" || true
fi

# cfn-lint's own interpreter has its YAML loader (cfnlint.decode), which reads the short
# forms (!Sub, !Ref...) as the intrinsic functions they are.
cfn_lint_python() {
  local py
  py=$(head -n 1 "$(readlink -f "$(command -v cfn-lint)")" | sed -n 's/^#!//p')
  if [ -z "$py" ] || ! "$py" -c 'import cfnlint.decode' 2>/dev/null; then
    echo "cannot find cfn-lint's Python (cfnlint.decode); is cfn-lint a pip install?" >&2
    return 1
  fi
  echo "$py"
}
# checkov on the template (or the file given), judged by scripts/lib.sh's checkov_judged:
# an empty result (a template checkov could not parse) fails too, as does a skip without a
# comment.
checkov_json() { # [template]
  checkov_judged cloudformation "${1:-$template}"
}
check "checkov" checkov_json || true

# The template with every optional part on, as JSON (cfn-lint's YAML loader reads the short
# forms), for checkov: the defaults of the parameters that switch them are flipped.
options_on() {
  local py
  py=$(cfn_lint_python) || return 1
  "$py" - "$template" "$tmp/options-on.json" <<'PY'
import json, sys
from cfnlint.decode import cfn_yaml

template = cfn_yaml.load(sys.argv[1])
on = {
    "PageHosting": "true",
    "PageDomainName": "fleet.example.com",
    "PageCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
    "BrowserAccess": "true",
    "AlarmEmail": "ops@example.com",
}
for name, value in on.items():
    template["Parameters"][name]["Default"] = value
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(template, f, indent=1)
PY
  checkov_json "$tmp/options-on.json"
}
check "checkov (every optional part on)" options_on || true

# Each function's role against lambdas/iam.json: every listed action granted, and no other
# DynamoDB, S3 or IoT action than those and the stream reads Lambda's event source mapping
# makes with the role.
iam_actions() {
  local sam_py
  sam_py=$(sam_python) || { echo "$sam_py"; return 1; }
  "$sam_py" - "$template" lambdas/iam.json <<'PY'
import json, sys
from samtranslator.yaml_helper import yaml_parse

with open(sys.argv[1], encoding="utf-8") as f:
    resources = yaml_parse(f.read()).get("Resources", {})
with open(sys.argv[2], encoding="utf-8") as f:
    listed = {k: set(v) for k, v in json.load(f).items() if not k.startswith("/")}
DATA_PLANE = ("dynamodb:", "s3:", "iot:")
EVENT_SOURCE = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                "dynamodb:ListStreams"}

def role_of(props):
    role = props.get("Role")
    target = role.get("Fn::GetAtt") if isinstance(role, dict) else None
    if isinstance(target, str):
        target = target.split(".")
    return target[0] if target else None

def granted(role):
    actions = set()
    for policy in resources[role]["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            if st.get("Effect") == "Allow":
                a = st.get("Action", [])
                actions.update([a] if isinstance(a, str) else a)
    return actions

problems, seen = [], set()
for name, r in resources.items():
    binary = ((r.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
    if r.get("Type") != "AWS::Serverless::Function" or not binary:
        continue
    seen.add(binary)
    role = role_of(r.get("Properties", {}))
    if role not in resources:
        problems.append(f"{name}: no role of its own in the template")
        continue
    have = {a for a in granted(role) if a.startswith(DATA_PLANE)} - EVENT_SOURCE
    want = listed.get(binary, set())
    for a in sorted(want - have):
        problems.append(f"{name} ({binary}) calls {a} but {role} does not grant it")
    for a in sorted(have - want):
        problems.append(f"{role} grants {a}, which {binary} never calls (lambdas/iam.json)")
for binary in sorted(set(listed) - seen):
    problems.append(f"lambdas/iam.json lists {binary}, which no function builds")
if problems:
    print("\n".join(problems))
    sys.exit(1)
PY
}
check "IAM actions (lambdas/iam.json)" iam_actions || true

access() {
  local py
  py=$(cfn_lint_python) || return 1
  "$py" scripts/template-access.py "$template"
}
check "access rules (scripts/template-access.py)" access || true

exit "$failed"
