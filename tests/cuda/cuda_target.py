"""Helpers of the CUDA kernel tests: which CUDA target (if any) this process can use.

The simulator must be chosen before numba is imported, so simulator tests run
in their own process: ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda``.
Without it they run only where a real device is present.
"""

from __future__ import annotations

import os

import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# Numba's simulator and launches of tiny grids on a device warn about speed.
CUDA_WARNINGS = [
    pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning"),
]


def real_device() -> bool:
    """A real CUDA device is usable (never true under the simulator)."""
    if SIMULATOR:
        return False
    try:
        from numba import cuda
    except Exception:  # pragma: no cover - numba without its CUDA target
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # pragma: no cover - broken driver
        return False


def require_cuda_target() -> None:
    """Skip the calling test module unless the simulator is on or a device is present."""
    if not (SIMULATOR or real_device()):
        pytest.skip(
            "CUDA kernel tests need NUMBA_ENABLE_CUDASIM=1 (own pytest process) or a GPU",
            allow_module_level=True,
        )
