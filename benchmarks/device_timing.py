"""Timing work queued on the device, for the GPU benchmarks: CUDA events around it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kernels.cuda._core import cuda


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


__all__ = ["best_seconds", "timed"]
