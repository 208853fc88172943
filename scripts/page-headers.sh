#!/usr/bin/env bash
# Prints, as one JSON object, the HTTP headers the template's page hosting adds to every
# response (the PageHeadersPolicy in template.yml: HSTS, nosniff, frame options, referrer
# policy, the Content-Security-Policy), as CloudFront sends them. `${AWS::Region}` and
# `${IoTEndpoint}` stay as written: the browser tests (e2e/hosted.test.mjs) fill in theirs
# and serve the app under exactly these headers.
#
# Usage: scripts/page-headers.sh [TEMPLATE]   (default template.yml)
# Needs cfn-lint's Python (scripts/setup.sh aws), for its YAML loader.
set -euo pipefail
if [ $# -gt 0 ]; then template=$(realpath -- "$1"); fi
cd "$(dirname "$0")/.."
. scripts/lib.sh
template=${template:-template.yml}

have cfn-lint || { echo "page-headers: cfn-lint not found (run scripts/setup.sh aws)" >&2; exit 2; }
py=$(head -n 1 "$(readlink -f "$(command -v cfn-lint)")" | sed -n 's/^#!//p')
"$py" - "$template" <<'PY'
import json, sys
from cfnlint.decode import cfn_yaml

policy = cfn_yaml.load(sys.argv[1])["Resources"]["PageHeadersPolicy"]
config = policy["Properties"]["ResponseHeadersPolicyConfig"]
security = config["SecurityHeadersConfig"]
known = {"StrictTransportSecurity", "ContentTypeOptions", "FrameOptions", "ReferrerPolicy",
         "ContentSecurityPolicy"}
if set(security) - known or "CustomHeadersConfig" in config:
    sys.exit(f"page-headers: headers this script does not know: {sorted(set(security) - known)}")

def text(value):
    if isinstance(value, dict) and list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"]
    if isinstance(value, str):
        return value
    sys.exit(f"page-headers: cannot read {value!r}")

headers = {}
hsts = security.get("StrictTransportSecurity")
if hsts:
    v = f"max-age={hsts['AccessControlMaxAgeSec']}"
    v += "; includeSubDomains" if hsts.get("IncludeSubdomains") else ""
    v += "; preload" if hsts.get("Preload") else ""
    headers["strict-transport-security"] = v
if "ContentTypeOptions" in security:
    headers["x-content-type-options"] = "nosniff"
if "FrameOptions" in security:
    headers["x-frame-options"] = security["FrameOptions"]["FrameOption"]
if "ReferrerPolicy" in security:
    headers["referrer-policy"] = security["ReferrerPolicy"]["ReferrerPolicy"]
if "ContentSecurityPolicy" in security:
    headers["content-security-policy"] = text(security["ContentSecurityPolicy"]["ContentSecurityPolicy"])
print(json.dumps(headers))
PY
