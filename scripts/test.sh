#!/usr/bin/env bash
# Sets up the environment and runs every check CI runs: lint, types, the CPU test
# suite, the CUDA kernels under the Numba simulator (own process), PTX compilation,
# then the CPU suite and PTX compilation again on numba 0.64 (cuDF 26.10's newest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
. .venv/bin/activate
export PYTHONHASHSEED=0
echo "== ruff" && ruff check .
echo "== mypy" && mypy
echo "== CPU test suite"
# -n spreads every pytest stage over the cores (xdist): CI stays near 10 minutes.
python -m pytest -q -p no:cacheprovider -n auto --ignore=tests/cuda
echo "== benchmark harness smoke test (not a timing gate)"
python -m benchmarks.windows --events 100k --repeat 1
python -m benchmarks.optimizer --instances 20
if [ -d tests/cuda ]; then
  echo "== CUDA kernels under the Numba simulator"
  # One simulator per process (it cannot run two kernels at once): -n spreads the tests.
  NUMBA_ENABLE_CUDASIM=1 python -m pytest -q -p no:cacheprovider -n auto tests/cuda -m "cudasim" \
    || [ $? -eq 5 ]
  echo "== CUDA kernels compiled to PTX (sm_90)"
  python -m pytest -q -p no:cacheprovider -n auto tests/cuda -m "not cudasim and not gpu" \
    || [ $? -eq 5 ]
  echo "== the newest numba cuDF 26.10 allows (0.64): CPU kernels and PTX again"
  # cudf-cu13 26.10 pins numba<0.65 (pyproject.toml), so a GPU host with cuDF runs the
  # kernels on 0.64 while this venv has 0.68: both must keep working. numba-cuda stays.
  overlay=.venv/numba-0.64
  python -m pip install --quiet --no-deps --upgrade --target "$overlay" \
    "numba==0.64.0" "llvmlite==0.46.0"
  PYTHONPATH="$overlay" python -c "import numba; assert numba.__version__ == '0.64.0', numba.__version__"
  PYTHONPATH="$overlay" python -m pytest -q -p no:cacheprovider -n auto --ignore=tests/cuda
  PYTHONPATH="$overlay" python -m pytest -q -p no:cacheprovider -n auto tests/cuda \
    -m "not cudasim and not gpu" || [ $? -eq 5 ]
fi
