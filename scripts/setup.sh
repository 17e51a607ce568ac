#!/usr/bin/env bash
# Creates .venv (once) and installs the package. Usage: scripts/setup.sh [extra]
# torch==2.13.0 goes in first: on this project's development machines that is a CPU build
# from local disk, so the project's "torch" requirement does not pull a multi-GB CUDA
# build. Elsewhere PyPI may serve that CUDA build; where 2.13.0 cannot be installed at
# all, the CPU build comes from PyTorch's CPU index.
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
