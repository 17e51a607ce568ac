"""Timing work queued on the device, for the GPU benchmarks: CUDA events around it; and
the check, before any work, that a device (or Numba's simulator) is there to time."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from kernels.cuda._core import SIMULATOR, cuda


def no_device() -> str | None:
    """Why no CUDA kernel can run in this process, in a few words, or None when one can:
    a device is there (``numba.cuda.is_available()``), or the simulator stands in."""
    if SIMULATOR:
        return None
    try:
        return None if cuda.is_available() else "numba.cuda.is_available() is False"
    except Exception as exc:  # a driver that fails to load
        return f"the CUDA driver failed to initialise: {exc}"


def device_missing(what: str) -> bool:
    """Whether no CUDA kernel can run here (:func:`no_device`): if so, says so in one line
    on stderr, naming ``what`` needs a device, and the caller exits with status 2 before
    doing any work (the GPU benchmarks raised the driver's traceback, some after minutes
    of CPU runs)."""
    reason = no_device()
    if reason is None:
        return False
    print(f"{what} needs a CUDA device, and there is no CUDA device or driver here "
          f"({reason}); NUMBA_ENABLE_CUDASIM=1 runs it on Numba's simulator",
          file=sys.stderr)  # fmt: skip
    return True


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of ``fn()`` between CUDA events, synchronised. The simulator's
    events give -1: its wall time then stands in, so rates stay positive."""
    start, end = cuda.event(), cuda.event()
    cuda.synchronize()
    t0 = time.perf_counter()
    start.record()
    result = fn()
    end.record()
    end.synchronize()
    wall = time.perf_counter() - t0
    elapsed = start.elapsed_time(end) / 1e3
    return (elapsed if elapsed > 0 else wall), result


def best_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """The shortest of ``repeats`` runs of ``fn`` (:func:`timed`)."""
    return min(timed(fn)[0] for _ in range(repeats))


__all__ = ["best_seconds", "device_missing", "no_device", "timed"]
