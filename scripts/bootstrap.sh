#!/usr/bin/env bash
# Gets a fresh clone ready: pnpm (if missing), dependencies from the lockfile, and a WebGPU adapter
# (scripts/setup-headless-gpu.sh). Idempotent and quick when everything is already in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PNPM_VERSION=10.28.1
if ! command -v pnpm >/dev/null 2>&1; then
  echo "bootstrap: installing pnpm@$PNPM_VERSION"
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null
fi
pnpm install --frozen-lockfile --reporter=silent
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
bash scripts/setup-headless-gpu.sh
# the browser test drives Debian's Chromium (SwiftShader WebGPU), never a downloaded browser
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing chromium (apt) for the browser test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "bootstrap: root is needed for the browser test: apt-get install -y chromium" >&2
  fi
fi
