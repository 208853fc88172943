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
