#!/usr/bin/env bash
# Every test of the project, in stages, each one's result said by name; exit status 1 if any stage failed.
#   bash scripts/test.sh            lint and types, the fast suite, then the slow and browser tests (what CI runs)
#   bash scripts/test.sh fast       only the first two stages (about three minutes)
# Extra arguments after the stage name go to every pytest call (e.g. -x).  GPU tests run where torch sees a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "no .venv: run bash scripts/setup.sh --dev first" >&2; exit 2; }
which_stages=${1:-all}
[ $# -gt 0 ] && shift
failed=()
stage() {
  local name=$1; shift
  echo
  echo "=== $name ==="
  local t0=$SECONDS
  if "$@"; then
    echo "=== $name: passed ($((SECONDS - t0)) s) ==="
  else
    echo "=== $name: FAILED ($((SECONDS - t0)) s) ==="
    failed+=("$name")
  fi
}
stage "lint and types (ruff, mypy)" "$PY" -m pytest -q -p no:cacheprovider -m lint "$@"
stage "fast suite" "$PY" -m pytest -q -p no:cacheprovider -m "not lint and not slow and not browser" "$@"
if [ "$which_stages" != fast ]; then
  stage "slow and browser tests" "$PY" -m pytest -q -p no:cacheprovider -m "not lint and (slow or browser)" "$@"
fi
echo
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all stages passed"
