#!/usr/bin/env bash
# Set up Holmes forensics in ./.venv.  `--dev` also installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
req=requirements.txt
if [ "${1:-}" = "--dev" ]; then
  req=requirements-dev.txt
fi
.venv/bin/python -m pip install --disable-pip-version-check -q -r "$req"
.venv/bin/python -c "import torch, torchvision, timm; print('holmes-forensics ready: torch', torch.__version__, 'timm', timm.__version__)"
