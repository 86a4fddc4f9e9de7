#!/usr/bin/env bash
# The test command: bootstraps if needed, then runs every test (GPU tests included; a missing adapter
# fails them, never skips them) and ends with a line "N passed, N failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh >/dev/null
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-$(id -u)}"
results=.vitest-results.json
rm -f "$results"
set +e
pnpm exec vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
status=$?
set -e
if [ -f "$results" ]; then
  node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed`);' "$results"
else
  echo "0 passed, 0 failed (vitest wrote no results; exit $status)"
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
