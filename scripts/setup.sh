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
install_chromium() {
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
}
if [ "${1:-}" = "--dev" ]; then
  target=".[dev]"
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium (the browser test, and the PDF report)"
    install_chromium
  fi
elif ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && ! command -v google-chrome >/dev/null 2>&1; then
  # the PDF report is printed by a headless Chromium; everything else works without one
  echo "installing Debian's chromium for the PDF report"
  install_chromium || echo "warning: chromium could not be installed; the PDF report will say so (the HTML report has the same content; or set FORENSICS_CHROMIUM)"
fi
# the package itself, editable, with the dependencies of pyproject.toml (and the console script holmes-forensics)
.venv/bin/python -m pip install --disable-pip-version-check -q -e "$target"
.venv/bin/python -c "import forensics, torch, timm; print('holmes-forensics', forensics.__version__, 'ready: torch', torch.__version__, 'timm', timm.__version__)"
