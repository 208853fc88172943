#!/usr/bin/env python3
"""Who may say what on AWS (ARCHITECTURE 4.8), checked on template.yml as written.

Evaluates the browser guests' role (BrowserRole) and the certificates' IoT policy
(DevicePolicy) the way IAM and IoT Core do, for concrete callers and requests:

- a resource pattern matches with `*` (any run of characters, `/` and `:` included) and `?`
  (one character); everything else is literal, case-sensitive;
- a policy variable (`${iot:Connection.Thing.ThingName}`, `${cognito-identity.amazonaws.com:sub}`)
  is the caller's own value, matched literally, never a wildcard; a variable the caller has
  no value for makes the statement match nothing;
- MQTT wildcards (`+`, `#`) in a topic filter are plain characters to the policy;
- a request is allowed when an Allow statement matches its action, resource and conditions
  and no Deny statement does.

Then it asserts that no caller other than a device reaches that device (its client id, its
telemetry, its commands), that nobody but the pipeline can publish commands or alarms, that
the guest's grants are exactly the browser building's, and that the right callers still get
what they need (so the test fails both ways). A construct this evaluator does not know
(NotAction, an unknown condition operator...) fails the test instead of being guessed at.

And the hosted page (PageHosting, off by default): its bucket is read only by the stack's
CloudFront distribution over TLS, viewers are redirected to HTTPS, and the response headers'
CSP lets the page reach only its own origin, Cognito and the stack's IoT Core endpoint.

It also checks what the access model leans on elsewhere in the template: the rules pass
clientid(), the worker knows the legacy device and the metric buildings, browser access is
off by default and enhanced-flow only, and the WebConfig output is JSON with
`browser_building` at its top level.

Usage: scripts/template-access.py [TEMPLATE]  (default template.yml). Needs cfn-lint's
Python package (scripts/setup.sh aws), for its YAML loader. Quiet on success unless -v.
"""

import json
import re
import sys

from cfnlint.decode import cfn_yaml

PARTITION, REGION, ACCOUNT = "aws", "eu-west-1", "123456789012"
IOT = f"arn:{PARTITION}:iot:{REGION}:{ACCOUNT}:"

# A Cognito guest (identity id `<region>:<uuid>`) and its device namespace (g + the uuid's hex).
GUEST_SUB = "eu-west-1:7d7c5d4e-0a1b-4c2d-8e3f-1234567890ab"
OTHER_GUEST_SUB = "eu-west-1:00000000-1111-4222-8333-444444444444"
GUEST_NS = "g7d7c5d4e0a1b4c2d8e3f1234567890ab"
OTHER_GUEST_NS = "g00000000111142228333444444444444"


class Unsupported(Exception):
    """A policy construct this evaluator does not model: fail rather than guess."""


# --- Wildcards and variables ----------------------------------------------------------------

VARIABLE = re.compile(r"\$\{([^}]*)\}")


def pattern_regex(pattern, context):
    """The regex of an IAM/IoT resource pattern for a caller, or None when it uses a
    variable the caller has no value for (the statement then matches nothing)."""
    out, pos = [], 0
    for m in VARIABLE.finditer(pattern):
        out.append(wildcards(pattern[pos : m.start()]))
        name = m.group(1)
        if name in ("*", "?", "$"):  # IAM's escapes for literal characters
            out.append(re.escape(name))
        elif "," in name:
            raise Unsupported(f"policy variable with a default value: ${{{name}}}")
        elif name not in context:
            return None
        else:
            out.append(re.escape(context[name]))  # the caller's value, literally
        pos = m.end()
    out.append(wildcards(pattern[pos:]))
    return re.compile("".join(out), re.DOTALL)


def wildcards(text):
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


def matches(pattern, value, context, case_sensitive=True):
    rx = pattern_regex(pattern, context)
    if rx is None:
        return False
    if not case_sensitive:
        rx = re.compile(rx.pattern, re.DOTALL | re.IGNORECASE)
    return rx.fullmatch(value) is not None


def as_list(v):
    return v if isinstance(v, list) else [v]


# --- Statements -----------------------------------------------------------------------------

def condition_holds(condition, context):
    for operator, tests in (condition or {}).items():
        for key, wanted in tests.items():
            # Condition keys are case-insensitive (aws:SourceArn, AWS:SourceArn).
            have = next((v for k, v in context.items() if k.lower() == key.lower()), None)
            if have is None:
                return False  # a missing key fails every operator modelled here
            wanted = [str(w) for w in as_list(wanted)]
            if operator == "Bool":
                ok = have.lower() in [w.lower() for w in wanted]
            elif operator == "StringEquals":
                ok = have in wanted
            elif operator == "StringLike":
                ok = any(matches(w, have, context) for w in wanted)
            else:
                raise Unsupported(f"condition operator {operator}")
            if not ok:
                return False
    return True


def statement_matches(st, action, resource, context):
    for key in ("NotAction", "NotResource", "NotPrincipal"):
        if key in st:
            raise Unsupported(f"{key} in statement {st.get('Sid')}")
    if not any(matches(a, action, {}, case_sensitive=False) for a in as_list(st["Action"])):
        return False
    if not any(matches(r, resource, context) for r in as_list(st["Resource"])):
        return False
    return condition_holds(st.get("Condition"), context)


def allowed(statements, action, resource, context):
    """IAM's and IoT Core's decision: an Allow matches and no Deny does."""
    hit = [st for st in statements if statement_matches(st, action, resource, context)]
    if any(st["Effect"] == "Deny" for st in hit):
        return False
    return any(st["Effect"] == "Allow" for st in hit)


# --- The template, resolved with its defaults ------------------------------------------------

class Template:
    def __init__(self, path):
        self.doc = cfn_yaml.load(path)
        self.params = self.doc.get("Parameters", {})
        self.resources = self.doc["Resources"]

    def default(self, name):
        p = self.params[name]
        if "Default" not in p:
            return f"<{name}>"
        d = p["Default"]
        return [x.strip() for x in str(d).split(",")] if p["Type"] == "CommaDelimitedList" else str(d)

    def ref(self, name):
        pseudo = {"AWS::Partition": PARTITION, "AWS::Region": REGION,
                  "AWS::AccountId": ACCOUNT, "AWS::StackName": "fleet"}
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            return self.default(name)
        r = self.resources[name]
        if r["Type"] == "AWS::IoT::TopicRule":  # Ref gives the rule's name
            return self.resolve(r["Properties"]["RuleName"])
        return f"<{name}>"

    def sub(self, text, names):
        def one(m):
            inner = m.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in names:
                return str(names[inner])
            if "." in inner:  # ${Resource.Attribute}
                return f"<{inner}>"
            value = self.ref(inner)
            if isinstance(value, list):
                raise Unsupported(f"list parameter {inner} in Fn::Sub")
            return value

        return re.sub(r"\$\{([^}]*)\}", one, text)

    def resolve(self, node):
        if isinstance(node, dict):
            if len(node) == 1:
                (fn, arg), = node.items()
                if fn == "Fn::Sub":
                    text, names = (arg, {}) if isinstance(arg, str) else arg
                    names = {k: self.resolve(v) for k, v in names.items()}
                    return self.sub(text, names)
                if fn == "Ref":
                    return self.ref(arg)
                if fn == "Fn::Join":
                    sep, items = arg
                    parts = []
                    for item in as_list(self.resolve(items)):
                        parts.extend(as_list(self.resolve(item)))
                    return sep.join(str(p) for p in parts)
                if fn == "Fn::GetAtt":
                    target = arg if isinstance(arg, str) else ".".join(arg)
                    return f"<{target}>"
                if fn.startswith("Fn::"):
                    raise Unsupported(f"{fn} where a value is needed")
            return {k: self.resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.resolve(v) for v in node]
        return node

    def props(self, name):
        return self.resources[name]["Properties"]


# --- The checks ------------------------------------------------------------------------------

class Checks:
    def __init__(self):
        self.failures = []
        self.count = 0

    def expect(self, what, got, want):
        self.count += 1
        if got != want:
            self.failures.append(f"{what}: expected {want!r}, got {got!r}")

    def expect_same(self, what, got, want):
        """Two sets of grants, with the difference named."""
        self.count += 1
        extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
        if extra or missing:
            lines = [f"{what} differ:"]
            lines += [f"    granted, not expected: {g}" for g in extra]
            lines += [f"    expected, not granted: {g}" for g in missing]
            self.failures.append("\n".join(lines))

    def decision(self, who, statements, context, action, resource, want):
        try:
            got = allowed(statements, action, resource, context)
        except Unsupported as e:
            self.failures.append(f"{who}: cannot evaluate {action} {resource}: {e}")
            return
        verdict = {True: "allowed", False: "refused"}
        self.expect(f"{who}: {action} {resource}", verdict[got], verdict[want])


def self_test(c):
    """The matcher itself, on AWS's documented semantics."""
    ctx = {"iot:ClientId": "*", "v": "a.b"}
    c.expect("`*` spans levels", matches("topic/a/*/c", "topic/a/x/y/c", {}), True)
    c.expect("`?` is one character", matches("client/d-?", "client/d-12", {}), False)
    c.expect("a variable is literal", matches("client/${iot:ClientId}", "client/x", ctx), False)
    c.expect("a variable matches itself", matches("client/${iot:ClientId}", "client/*", ctx), True)
    c.expect("`.` is literal", matches("client/${v}.*", "client/aXb.1", ctx), False)
    c.expect("no value, no match", matches("client/${missing}", "client/", ctx), False)
    c.expect("`+` is literal", matches("topicfilter/a/+/c", "topicfilter/a/b/c", {}), False)
    c.expect("actions ignore case", matches("iot:*", "IoT:Publish", {}, case_sensitive=False), True)


def thing(name, client_id, attached=True):
    """An IoT connection's context: a certificate attached (or not) to thing `name`."""
    ctx = {"iot:ClientId": client_id, "iot:Connection.Thing.IsAttached": str(attached).lower()}
    if attached:
        ctx["iot:Connection.Thing.ThingName"] = name
    return ctx


def guest(sub, client_id):
    return {"cognito-identity.amazonaws.com:sub": sub, "iot:ClientId": client_id}


def connected_as(statements, context_of, candidates):
    """The client ids a caller can connect with, among `candidates`: an attacker picks the
    one that helps it most, so later requests are checked for each."""
    return [cid for cid in candidates
            if allowed(statements, "iot:Connect", f"{IOT}client/{cid}", context_of(cid))]


CLIENT_IDS = ["d-0001", "d-0002", "anything", "monitoring-device", "381938912",
              f"{GUEST_SUB}.gw0", f"{OTHER_GUEST_SUB}.gw0", f"{GUEST_NS}.gw0", "*"]


def victim_requests(rules):
    """What nobody but device d-0001 (building 1) may do, and nobody but the pipeline may
    publish: its telemetry and commands, the alarms, and the legacy device's topics."""
    t, f = f"{IOT}topic/", f"{IOT}topicfilter/"
    return [
        ("iot:Publish", t + "dt/monitoring/1/d-0001/telemetry"),
        ("iot:Publish", t + f"$aws/rules/{rules['telemetry']}/dt/monitoring/1/d-0001/telemetry"),
        ("iot:Publish", t + "cmd/monitoring/1/d-0001/remediation"),
        ("iot:Publish", t + "cmd/monitoring/browser/d-0001/remediation"),
        ("iot:Publish", t + f"cmd/monitoring/browser/{GUEST_NS}-0001/remediation"),
        ("iot:Publish", t + "dt/monitoring/alarms"),
        ("iot:Publish", t + "monitoring-device/remediation-1"),
        ("iot:Subscribe", f + "cmd/monitoring/1/d-0001/remediation"),
        ("iot:Subscribe", f + "cmd/monitoring/+/d-0001/remediation"),
        ("iot:Subscribe", f + "cmd/monitoring/+/+/remediation"),
        ("iot:Subscribe", f + "cmd/#"),
        ("iot:Subscribe", f + "#"),
        ("iot:Receive", t + "cmd/monitoring/1/d-0001/remediation"),
    ]


def legacy_requests(rules):
    t, f = f"{IOT}topic/", f"{IOT}topicfilter/"
    return [
        ("iot:Publish", t + "monitoring-device/building-1"),
        ("iot:Publish", t + f"$aws/rules/{rules['legacy']}/monitoring-device/building-1"),
        ("iot:Subscribe", f + "monitoring-device/remediation-1"),
        ("iot:Receive", t + "monitoring-device/remediation-1"),
    ]


def check_device_policy(c, tpl, rules):
    policy = tpl.resolve(tpl.props("DevicePolicy")["PolicyDocument"])
    st = policy["Statement"]
    t, f = f"{IOT}topic/", f"{IOT}topicfilter/"

    # Other things (and a certificate attached to none) reach nothing of d-0001's.
    attackers = {
        "thing d-0002": lambda cid: thing("d-0002", cid),
        "a certificate with no thing": lambda cid: thing("d-0002", cid, attached=False),
        "thing monitoring-device": lambda cid: thing("monitoring-device", cid),
    }
    # Every request is checked under every client id, not only those Connect allows: the
    # topics must hold on their own, whatever a connection claims to be.
    for who, ctx_of in attackers.items():
        for cid in ["d-0001", "anything", "*"]:
            c.decision(who, st, ctx_of(cid), "iot:Connect", f"{IOT}client/{cid}", False)
        for cid in CLIENT_IDS:
            for action, resource in victim_requests(rules):
                c.decision(f"{who} as {cid}", st, ctx_of(cid), action, resource, False)
    for who in ["thing d-0002", "a certificate with no thing"]:
        for cid in CLIENT_IDS:
            for action, resource in legacy_requests(rules):
                c.decision(f"{who} as {cid}", st, attackers[who](cid), action, resource, False)

    # What a device needs: its own client id, telemetry (and its Basic Ingest twin) and
    # commands, in any building; the original device its legacy topics.
    me = thing("d-0001", "d-0001")
    c.expect("thing d-0001 connects only as d-0001",
             connected_as(st, lambda cid: thing("d-0001", cid), CLIENT_IDS), ["d-0001"])
    c.decision("an unattached certificate", st, thing("d-0001", "d-0001", attached=False),
               "iot:Connect", f"{IOT}client/d-0001", False)
    for action, resource in [
        ("iot:Publish", t + "dt/monitoring/1/d-0001/telemetry"),
        ("iot:Publish", t + "dt/monitoring/7/d-0001/telemetry"),
        ("iot:Publish", t + f"$aws/rules/{rules['telemetry']}/dt/monitoring/1/d-0001/telemetry"),
        ("iot:Subscribe", f + "cmd/monitoring/1/d-0001/remediation"),
        ("iot:Subscribe", f + "cmd/monitoring/+/d-0001/remediation"),
        ("iot:Receive", t + "cmd/monitoring/1/d-0001/remediation"),
    ]:
        c.decision("thing d-0001", st, me, action, resource, True)
    for action, resource in [
        ("iot:Publish", t + "dt/monitoring/1/d-0002/telemetry"),
        ("iot:Publish", t + "cmd/monitoring/1/d-0001/remediation"),
        ("iot:Receive", t + "cmd/monitoring/1/d-0002/remediation"),
    ] + legacy_requests(rules):
        c.decision("thing d-0001", st, me, action, resource, False)

    legacy = thing("monitoring-device", "monitoring-device")
    c.expect("thing monitoring-device connects only as monitoring-device",
             connected_as(st, lambda cid: thing("monitoring-device", cid), CLIENT_IDS),
             ["monitoring-device"])
    for action, resource in legacy_requests(rules):
        c.decision("thing monitoring-device", st, legacy, action, resource, True)


def check_browser_role(c, tpl, rules, building):
    role = tpl.resources["BrowserRole"]
    c.expect("BrowserRole only with browser access", role.get("Condition"), "HasBrowserAccess")
    props = tpl.resolve(role["Properties"])
    c.expect("BrowserRole has no managed policies", props.get("ManagedPolicyArns"), None)
    st = [s for p in props["Policies"] for s in p["PolicyDocument"]["Statement"]]
    t, f = f"{IOT}topic/", f"{IOT}topicfilter/"

    # Exactly the browser building, its own identity's client ids, and the alarms.
    granted = sorted(
        (a, r, json.dumps(s.get("Condition"), sort_keys=True))
        for s in st if s["Effect"] == "Allow"
        for a in as_list(s["Action"]) for r in as_list(s["Resource"]))
    want = sorted((a, r, "null") for a, r in [
        ("iot:Connect", IOT + "client/${cognito-identity.amazonaws.com:sub}.*"),
        ("iot:Publish", t + f"dt/monitoring/{building}/*/telemetry"),
        ("iot:Publish", t + f"$aws/rules/{rules['telemetry']}/dt/monitoring/{building}/*/telemetry"),
        ("iot:Subscribe", f + f"cmd/monitoring/{building}/*/remediation"),
        ("iot:Subscribe", f + "dt/monitoring/alarms"),
        ("iot:Receive", t + f"cmd/monitoring/{building}/*/remediation"),
        ("iot:Receive", t + "dt/monitoring/alarms"),
    ])
    c.expect_same("the guest role's grants", granted, want)

    me = lambda cid: guest(GUEST_SUB, cid)  # noqa: E731
    c.expect("a guest connects only with its own identity's client ids",
             connected_as(st, me, CLIENT_IDS), [f"{GUEST_SUB}.gw0"])
    for cid in [f"{GUEST_SUB}.tab-2", f"{GUEST_SUB}.{GUEST_NS}-0001"]:
        c.decision("guest", st, me(cid), "iot:Connect", f"{IOT}client/{cid}", True)
    for cid in [GUEST_SUB, f"{GUEST_SUB}x.gw0", f"{OTHER_GUEST_SUB}.gw0", f"{GUEST_NS}.gw0",
                "d-0001", "anything"]:
        c.decision("guest", st, me(cid), "iot:Connect", f"{IOT}client/{cid}", False)

    for cid in CLIENT_IDS:
        for action, resource in victim_requests(rules) + legacy_requests(rules) + [
            ("iot:Publish", t + "dt/monitoring/10/d-0001/telemetry"),
            ("iot:Publish", t + f"dt/monitoring/1/{GUEST_NS}-0001/telemetry"),
            ("iot:Subscribe", f + "dt/monitoring/+/+/telemetry"),
            ("iot:Receive", t + "dt/monitoring/1/d-0001/telemetry"),
            ("iot:Receive", t + "cmd/monitoring/2/d-0002/remediation"),
        ]:
            c.decision(f"guest as {cid}", st, me(cid), action, resource, False)
    for cid in connected_as(st, me, CLIENT_IDS):
        # What the page needs, in the browser building only. IAM cannot see a device id's
        # namespace: a guest may publish any device's topic there, and the worker keeps
        # only its own devices' readings (device_not_publisher; lambdas/tests/aws_moto.rs).
        for action, resource in [
            ("iot:Publish", t + f"dt/monitoring/{building}/{GUEST_NS}-0001/telemetry"),
            ("iot:Publish", t + f"$aws/rules/{rules['telemetry']}/dt/monitoring/{building}/{GUEST_NS}-0001/telemetry"),
            ("iot:Publish", t + f"dt/monitoring/{building}/{OTHER_GUEST_NS}-0001/telemetry"),
            ("iot:Subscribe", f + f"cmd/monitoring/{building}/+/remediation"),
            ("iot:Subscribe", f + "dt/monitoring/alarms"),
            ("iot:Receive", t + f"cmd/monitoring/{building}/{GUEST_NS}-0001/remediation"),
            ("iot:Receive", t + "dt/monitoring/alarms"),
        ]:
            c.decision(f"guest as {cid}", st, me(cid), action, resource, True)


def check_surroundings(c, tpl, building):
    c.expect("BrowserAccess default", tpl.default("BrowserAccess"), "false")
    c.expect("no ClientIdPrefix parameter", "ClientIdPrefix" in tpl.params, False)
    pool = tpl.resources["BrowserIdentityPool"]
    c.expect("identity pool only with browser access", pool.get("Condition"), "HasBrowserAccess")
    c.expect("AllowClassicFlow", pool["Properties"].get("AllowClassicFlow"), False)
    trust = tpl.resolve(tpl.props("BrowserRole")["AssumeRolePolicyDocument"])["Statement"]
    c.expect("the guest role trusts only the pool's unauthenticated identities",
             [(s["Action"], s["Condition"]["ForAnyValue:StringLike"]["cognito-identity.amazonaws.com:amr"],
               s["Condition"]["StringEquals"]["cognito-identity.amazonaws.com:aud"]) for s in trust],
             [("sts:AssumeRoleWithWebIdentity", "unauthenticated", "<BrowserIdentityPool>")])

    for rule in ["TelemetryRule", "LegacyTelemetryRule"]:
        sql = tpl.props(rule)["TopicRulePayload"]["Sql"]
        c.expect(f"{rule} passes clientid()", "clientid() AS client_id" in sql, True)
    env = tpl.resolve(tpl.props("WorkerFunction")["Environment"]["Variables"])
    c.expect("LEGACY_DEVICE_ID", env.get("LEGACY_DEVICE_ID"), tpl.default("LegacyDeviceId"))
    c.expect("METRIC_BUILDINGS", env.get("METRIC_BUILDINGS"), ",".join(tpl.default("MetricBuildings")))

    output = tpl.doc["Outputs"]["WebConfig"]
    c.expect("WebConfig only with browser access", output.get("Condition"), "HasBrowserAccess")
    text = tpl.resolve(output["Value"])
    try:
        config = json.loads(text)
    except ValueError as e:
        c.failures.append(f"WebConfig is not JSON ({e}): {text}")
        return
    c.expect("WebConfig browser_building", config.get("browser_building"), building)
    c.expect("WebConfig has no client_id_prefix", "client_id_prefix" in text, False)


def principal_statements(statements, kind, name):
    """The statements of a resource policy whose Principal names the caller (`kind` is
    "Service" or "AWS"); a Principal of "*" names everyone."""
    out = []
    for st in statements:
        p = st.get("Principal")
        if p == "*" or (isinstance(p, dict) and any(
                k == kind and ("*" in as_list(v) or name in as_list(v)) for k, v in p.items())):
            out.append(st)
    return out


def check_page(c, tpl):
    """The hosted page (PageHosting): off by default; its bucket read only by this stack's
    CloudFront distribution, over TLS, never written through it; viewers on HTTPS; and a CSP
    that lets the page reach its own files, Cognito and IoT Core, and nothing else."""
    c.expect("PageHosting default", tpl.default("PageHosting"), "false")
    names = sorted(n for n in tpl.resources if n.startswith("Page"))
    c.expect("page resources", names, ["PageBucket", "PageBucketPolicy", "PageDistribution",
                                       "PageHeadersPolicy", "PageOriginAccessControl"])
    for n in names:
        c.expect(f"{n} only with page hosting", tpl.resources[n].get("Condition"), "HasPageHosting")
    for n in ["PageUrl", "PageBucketName"]:
        c.expect(f"output {n} only with page hosting",
                 tpl.doc["Outputs"][n].get("Condition"), "HasPageHosting")

    statements = tpl.resolve(tpl.props("PageBucketPolicy")["PolicyDocument"])["Statement"]
    ours = f"arn:{PARTITION}:cloudfront::{ACCOUNT}:distribution/<PageDistribution>"
    other = f"arn:{PARTITION}:cloudfront::{ACCOUNT}:distribution/EOTHER"
    obj = "<PageBucket.Arn>/index.html"
    cloudfront = principal_statements(statements, "Service", "cloudfront.amazonaws.com")
    anyone = principal_statements(statements, "AWS", f"arn:{PARTITION}:iam::{ACCOUNT}:root")
    tls = {"aws:SecureTransport": "true"}
    for who, sts, action, context, want in [
        ("this distribution", cloudfront, "s3:GetObject", {**tls, "AWS:SourceArn": ours}, True),
        ("this distribution without TLS", cloudfront, "s3:GetObject",
         {"aws:SecureTransport": "false", "AWS:SourceArn": ours}, False),
        ("another distribution", cloudfront, "s3:GetObject", {**tls, "AWS:SourceArn": other}, False),
        ("this distribution", cloudfront, "s3:PutObject", {**tls, "AWS:SourceArn": ours}, False),
        ("this distribution", cloudfront, "s3:ListBucket", {**tls, "AWS:SourceArn": ours}, False),
        ("an account principal, by the bucket policy", anyone, "s3:GetObject", tls, False),
    ]:
        c.decision(f"page bucket: {who}", sts, context, action, obj, want)

    config = tpl.props("PageDistribution")["DistributionConfig"]
    behavior = config["DefaultCacheBehavior"]
    c.expect("page viewers", behavior.get("ViewerProtocolPolicy"), "redirect-to-https")
    c.expect("page methods", behavior.get("AllowedMethods"), ["GET", "HEAD"])
    c.expect("page headers policy", behavior.get("ResponseHeadersPolicyId"), {"Ref": "PageHeadersPolicy"})
    origin = config["Origins"][0]
    c.expect("page origin access control (not an identity)",
             (origin.get("OriginAccessControlId"), origin["S3OriginConfig"].get("OriginAccessIdentity")),
             ({"Fn::GetAtt": ["PageOriginAccessControl", "Id"]}, ""))
    own_cert = config["ViewerCertificate"]["Fn::If"]
    c.expect("page TLS with its own certificate",
             (own_cert[0], own_cert[1].get("MinimumProtocolVersion")), ("PageOnOwnDomain", "TLSv1.2_2021"))

    headers = tpl.props("PageHeadersPolicy")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    c.expect("page security headers", sorted(headers), sorted([
        "StrictTransportSecurity", "ContentTypeOptions", "FrameOptions", "ReferrerPolicy",
        "ContentSecurityPolicy"]))
    c.expect("every page header overrides the origin's",
             [h for h, v in headers.items() if v.get("Override") is not True], [])
    c.expect("page framing", headers["FrameOptions"]["FrameOption"], "DENY")
    csp = tpl.resolve(headers["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    c.expect("CSP", directives, {
        "default-src": ["'none'"],
        "script-src": ["'self'", "'wasm-unsafe-eval'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'", f"https://cognito-identity.{REGION}.amazonaws.com", "wss://<IoTEndpoint>"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
    })


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    tpl = Template(args[0] if args else "template.yml")
    c = Checks()
    self_test(c)
    rules = {"telemetry": tpl.ref("TelemetryRule"), "legacy": tpl.ref("LegacyTelemetryRule")}
    building = tpl.default("BrowserBuilding")
    for check in (lambda: check_device_policy(c, tpl, rules),
                  lambda: check_browser_role(c, tpl, rules, building),
                  lambda: check_surroundings(c, tpl, building),
                  lambda: check_page(c, tpl)):
        try:
            check()
        except (Unsupported, KeyError, TypeError, ValueError) as e:
            c.failures.append(f"cannot check the template: {type(e).__name__}: {e}")
    if c.failures:
        print(f"{len(c.failures)} of {c.count} access checks failed:")
        print("\n".join(f"  {f}" for f in c.failures))
        return 1
    if verbose:
        print(f"{c.count} access checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
