"""Seconds this process has spent compiling kernels, for a run's summary.

A machine's first run compiles every kernel it launches (about 13 s of the built-in
demo's 14 on the 2-core development machine), and later runs load them from Numba's disk
cache, so a first run's throughput says little about the engine's. The summary reports
the compiling apart (``compile_s``). CPU kernels are timed by Numba's ``numba:compile``
events (which a load from the disk cache does not send), CUDA kernels by
:mod:`kernels.cuda._core`, which compiles each eagerly for one signature (read here only
when the CUDA backend has imported it, so the engine needs no branch of its own).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from numba.core import event

_TOTAL = [0.0]  # seconds of the CPU kernels' compiles, outermost ones only
_LOCK = threading.Lock()


class _CompileTimer(event.Listener):
    """Adds up Numba's outermost compiles in each thread: compiling a kernel compiles the
    helpers it calls inside the same event, and threads compile one at a time anyway
    (Numba's compiler lock)."""

    def __init__(self) -> None:
        self._thread = threading.local()

    def on_start(self, event: Any) -> None:
        depth = getattr(self._thread, "depth", 0)
        if depth == 0:
            self._thread.started = time.perf_counter()
        self._thread.depth = depth + 1

    def on_end(self, event: Any) -> None:
        depth = getattr(self._thread, "depth", 0)
        if depth <= 0:  # began before this listener was registered: not timed
            return
        self._thread.depth = depth - 1
        if depth == 1:
            spent = time.perf_counter() - self._thread.started
            with _LOCK:
                _TOTAL[0] += spent


event.register("numba:compile", _CompileTimer())  # on import: the engine imports this


def compile_seconds() -> float:
    """Seconds spent compiling kernels in this process since this module was imported
    (CPU kernels) or since the start (CUDA kernels): take differences."""
    with _LOCK:
        total = _TOTAL[0]
    device = sys.modules.get("kernels.cuda._core")  # imported by the CUDA backend alone
    if device is not None:
        total += device.COMPILE_SECONDS[0]
    return total
