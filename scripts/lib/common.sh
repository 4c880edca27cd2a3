# shellcheck shell=bash
# Shared by scripts/setup, scripts/in-env, scripts/test and scripts/develop.
# Sourcing it defines paths and helpers only; it runs nothing.

# The checkout this script belongs to (works from any git worktree).
FMHA_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
FMHA_REPO=$(git -C "$FMHA_LIB_DIR" rev-parse --show-toplevel 2>/dev/null) \
  || FMHA_REPO=$(cd "$FMHA_LIB_DIR/../.." && pwd -P)

# Everything that is built lives under one root, shared by all worktrees.
FMHA_CACHE=${FLEXMEASURES_HA_CACHE:-${HOME:-/root}/.cache/flexmeasures-ha}
FMHA_CHROOT=$FMHA_CACHE/chroot            # Debian forky root with python3.14
FMHA_SRC_IN_CHROOT=/src                   # where the repo is bind-mounted inside
FMHA_ALL_TARGETS="2025.4 2026.10 2026.11"

fmha_log() { printf '\033[1m[%(%H:%M:%S)T %s]\033[0m %s\n' -1 "${FMHA_PROG:-fmha}" "$*" >&2; }
fmha_die() { printf '%s: error: %s\n' "${FMHA_PROG:-fmha}" "$*" >&2; exit 1; }

# kind file written by scripts/setup: "host" (plain venv) or "chroot"
fmha_kind() { cat "$FMHA_CACHE/targets/$1.kind" 2>/dev/null || true; }

# venv path as seen by the process that runs in it
fmha_venv() {
  case $(fmha_kind "$1") in
    host) echo "$FMHA_CACHE/venvs/$1" ;;
    chroot) echo "/opt/venvs/$1" ;;
    *) return 1 ;;
  esac
}

fmha_seconds() { date +%s.%N | cut -c1-14; }
fmha_elapsed() { awk -v a="$1" -v b="$(fmha_seconds)" 'BEGIN { printf "%.1f", b - a }'; }

# Chromium (Debian's) and playwright-core (npm ci from package-lock.json), for
# the real-browser checks; each installed only when missing or stale.
fmha_ensure_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    fmha_log "installing Debian's chromium"
    # (a snapshot mirror's Release files may have expired: see .ci/run)
    local apt_opts=(-o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0 -qq)
    DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
    DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y --no-install-recommends chromium >/dev/null
  fi
  local lock_hash
  lock_hash=$(sha256sum "$FMHA_REPO/package-lock.json" | cut -c1-16)
  if [ "$(cat "$FMHA_REPO/node_modules/.browser-test-stamp" 2>/dev/null)" != "$lock_hash" ]; then
    (cd "$FMHA_REPO" && npm ci --no-audit --no-fund --loglevel=error) >&2
    echo "$lock_hash" >"$FMHA_REPO/node_modules/.browser-test-stamp"
  fi
}
