#!/usr/bin/env bash
# One prepared GPU check (H100-class machine with torch, CuPy, numba-cuda and nvcc; no cuDF,
# no network, no project install): the GPU tests, then the GPU-vs-CPU kernel check and
# throughput on 10M synthetic events, then the optimizer's device check if present.
# Prints "GPU_CHECK PASS" or "GPU_CHECK FAIL" last; exit status 0 only on PASS.
# Budget: well under 5 minutes (each step has its own timeout).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset NUMBA_ENABLE_CUDASIM
PY="${PYTHON:-python}"
status=0

echo "== environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PY" - <<'PY' || status=1
import numba, numpy
from numba import cuda
print("numba", numba.__version__, "numpy", numpy.__version__)
print("cuda available:", cuda.is_available())
if cuda.is_available():
    d = cuda.get_current_device()
    print("device:", d.name, "cc", d.compute_capability)
PY

echo "== GPU tests (pytest -m 'gpu or cudasim' tests/cuda, on the device)"
# Includes device window emission, top-k and the pinned uploads (copy stream, events),
# whose overlap only a device exercises; about 70 kernels compile on first use.
timeout 180 "$PY" -m pytest tests/cuda -m "gpu or cudasim" -q -p no:cacheprovider \
    -o addopts="--strict-markers -ra" || status=1

echo "== PTX compile check"
timeout 60 "$PY" -m pytest tests/cuda/test_ptx_compile.py -q -p no:cacheprovider || status=1

echo "== GPU kernels vs CPU kernels, 10M events"
timeout 240 "$PY" -m benchmarks.gpu_kernels --events "${EVENTS:-10000000}" || status=1

if "$PY" -c "import gpu_engine.optimizer.device_check" 2>/dev/null; then
    echo "== optimizer device check (informational)"
    timeout 60 "$PY" -m gpu_engine.optimizer.device_check || echo "(device_check failed; not counted)"
else
    echo "== gpu_engine.optimizer.device_check not present; skipped"
fi

if [ "$status" -eq 0 ]; then echo "GPU_CHECK PASS"; else echo "GPU_CHECK FAIL"; fi
exit "$status"
