#!/usr/bin/env bash
# keel's main job, runnable on a fresh machine: bootstrap, then the device report and a GPU smoke test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-$(id -u)}"
pnpm -s keel info
pnpm -s keel smoke
