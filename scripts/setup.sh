#!/usr/bin/env bash
# Creates .venv (once) and installs the package. Usage: scripts/setup.sh [extra]
# The CPU build of torch is installed first, so the project's "torch" requirement
# does not pull a multi-GB CUDA build on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install --quiet "torch==2.13.0" \
  || python -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu
if [ -n "$extra" ]; then
  python -m pip install --quiet -e ".[$extra]"
else
  python -m pip install --quiet -e .
fi
