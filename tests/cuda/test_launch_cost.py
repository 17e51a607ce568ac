"""``benchmarks.launch_cost`` still runs: it stubs Numba's driver calls, so a numba-cuda
release that moves them would break it quietly. A few launches and views suffice; it runs
in its own process, since it patches Numba. PTX process only (it compiles for sm_90)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("launch_cost times Numba's real launch path", allow_module_level=True)
cuda = pytest.importorskip("numba.cuda")
try:
    cuda.compile_ptx(lambda a: None, "void(float64[::1])", cc=(9, 0))
except Exception as exc:  # no NVVM: nothing compiles, as in test_ptx_compile
    pytest.skip(f"NVVM is unavailable ({type(exc).__name__})", allow_module_level=True)
try:
    import kernels.cuda.launcher  # noqa: F401
except ImportError as exc:  # a numba-cuda older than the launcher (see kernels.cuda._core)
    pytest.skip(f"no kernels.cuda.launcher with this numba-cuda: {exc}", allow_module_level=True)


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "benchmarks.launch_cost", *args],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_launch_costs_are_reported_for_both_paths() -> None:
    out = _run("--kernels", "3", "--repeat", "5", "--fresh", "5")
    assert re.search(r"all 3 kernels, median µs a launch: Numba [\d.]+ / [\d.]+, prepared", out)


def test_array_costs_are_reported_for_both_ways() -> None:
    out = _run("--arrays", "--repeat", "20")
    for way in ("span(a, 0, 1000)", "carve(a, 8, (2, 4), int16)", "copy(a, b)", "empty_many"):
        assert re.search(rf"[\d.]+ µs  ours: .*{re.escape(way)}", out), way


_SETTLE = """
import numpy as np
from benchmarks.launch_cost import _stub_context
_stub_context()
from benchmarks import gpu_kernels
from kernels.cuda._core import cuda
gpu_kernels.cuda.synchronize = lambda: None  # the stand-in context has no device to wait on
pending = cuda.current_context().memory_manager.deallocations
pending.memory_capacity = 1 << 40  # a card's size, which the stand-in context never reads
arrays = [cuda.device_array(1000, np.int64) for _ in range(5)]
del arrays
before = len(pending)
gpu_kernels.settle()
print(before, len(pending))
"""


def test_settling_makes_the_frees_numba_deferred() -> None:
    """``benchmarks.gpu_kernels.settle`` empties the memory manager's queue of deferred frees
    (on the stand-in context), so a timed run does not pay for an earlier run's."""
    done = subprocess.run([sys.executable, "-c", _SETTLE], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["5", "0"]
