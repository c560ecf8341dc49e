#!/usr/bin/env bash
# Set up Holmes forensics in ./.venv.
#   bash scripts/setup.sh         what the tool needs
#   bash scripts/setup.sh --dev   plus what the tests need (pytest, playwright, Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
target=.
if [ "${1:-}" = "--dev" ]; then
  target=".[dev]"
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser test"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
fi
# the package itself, editable, with the dependencies of pyproject.toml (and the console script holmes-forensics)
.venv/bin/python -m pip install --disable-pip-version-check -q -e "$target"
.venv/bin/python -c "import forensics, torch, timm; print('holmes-forensics', forensics.__version__, 'ready: torch', torch.__version__, 'timm', timm.__version__)"
