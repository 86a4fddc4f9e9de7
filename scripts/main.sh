#!/usr/bin/env bash
# keel's main job, runnable on a fresh machine: bootstrap, the device report, then fine-tune the
# bundled base model on the MNIST task with SPIDER and with full fine-tuning and print the
# side-by-side T/U/H/E/F/O table (bench.md) and where the report is (keel-main/bench.html).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-$(id -u)}"
pnpm -s keel info
pnpm -s keel bench --strategies full,spider --tasks mnist --out keel-main
