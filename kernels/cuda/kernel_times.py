"""The device time of every kernel launch, by kernel name: a profiling mode, off by default.

Why: stage timings (``benchmarks.gpu_kernels``) say which step is slow, and the
launch and wait counts (``benchmarks.launches``) say what the host pays, but only
a card can say which kernel holds the device, and card time is short. Inside
:func:`recording`, :func:`kernels.cuda._core.kernel` hands out launchers that put a
pair of CUDA events around each launch on its stream; :meth:`KernelTimes.summary`
reads them once the work is done. Recording costs the host two event records a
launch, so time a run with it or without it, not both at once.

Memsets and copies are not kernels: they show up in the summary's ``between``
(the span from the first launch to the last, less the kernels' own time), together
with the device's idle time while it waits for the host.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kernels.cuda import _core


@dataclass(frozen=True)
class KernelTime:
    name: str
    launches: int
    ms: float


@dataclass(frozen=True)
class Summary:
    kernels: list[KernelTime]  # by device time, most first
    span_ms: float  # from the first launch's start to the last launch's end

    @property
    def kernel_ms(self) -> float:
        return sum(k.ms for k in self.kernels)

    @property
    def between_ms(self) -> float:
        """Device time in the span outside kernels: memsets, copies, and idling."""
        return self.span_ms - self.kernel_ms

    def lines(self, top: int) -> list[str]:
        """A table of the ``top`` kernels with their share of the span, then the rest."""
        span = self.span_ms if self.span_ms > 0 else float("nan")
        out = [f"  {'kernel':<30}{'launches':>9}{'ms':>10}{'share':>8}"]
        for k in self.kernels[:top]:
            out.append(f"  {k.name:<30}{k.launches:>9}{k.ms:>10.3f}{k.ms / span:>8.1%}")
        rest = self.kernels[top:]
        if rest:
            ms = sum(k.ms for k in rest)
            count = sum(k.launches for k in rest)
            out.append(f"  {f'({len(rest)} others)':<30}{count:>9}{ms:>10.3f}{ms / span:>8.1%}")
        out.append(f"  {'between kernels':<30}{'':>9}{self.between_ms:>10.3f}"
                   f"{self.between_ms / span:>8.1%}  (memsets, copies, idle)")  # fmt: skip
        out.append(f"  {'span':<30}{'':>9}{self.span_ms:>10.3f}")
        return out


class KernelTimes:
    """The (name, start event, end event) of every launch made while recording."""

    def __init__(self) -> None:
        self._launches: list[tuple[str, Any, Any]] = []
        self._lock = threading.Lock()

    def wrap(self, name: str, compiled: Any) -> _TimedKernel:
        return _TimedKernel(self, name, compiled)

    def add(self, name: str, start: Any, end: Any) -> None:
        with self._lock:
            self._launches.append((name, start, end))

    def __len__(self) -> int:
        return len(self._launches)

    def summary(self) -> Summary:
        """Milliseconds by kernel name (waits for the device to finish its work)."""
        with self._lock:
            launches = list(self._launches)
        if not launches:
            return Summary([], 0.0)
        _core.cuda.synchronize()  # every event has happened (worker threads record too)
        origin = launches[0][1]
        totals: dict[str, list[float]] = {}
        first, last = 0.0, 0.0  # the span, in ms from the first recorded start
        for name, start, end in launches:
            entry = totals.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] += start.elapsed_time(end)
            first = min(first, origin.elapsed_time(start))
            last = max(last, origin.elapsed_time(end))
        kernels = [KernelTime(name, int(n), ms) for name, (n, ms) in totals.items()]
        kernels.sort(key=lambda k: (-k.ms, k.name))
        return Summary(kernels, last - first)


class _TimedKernel:
    """Stands in for a compiled kernel: ``timed[blocks, threads](*args)``."""

    def __init__(self, times: KernelTimes, name: str, compiled: Any) -> None:
        self._times = times
        self._name = name
        self._compiled = compiled

    def __getitem__(self, dims: Any) -> Any:
        configured = self._compiled[dims]
        stream = dims[2] if isinstance(dims, tuple) and len(dims) > 2 else 0

        def timed(*args: Any) -> None:
            start, end = _core.cuda.event(), _core.cuda.event()
            start.record(stream)
            configured(*args)
            end.record(stream)
            self._times.add(self._name, start, end)

        return timed


@contextmanager
def recording() -> Iterator[KernelTimes]:
    """Time every kernel launched inside the block (by any thread)."""
    times = KernelTimes()
    if _core.TIMING[0] is not None:
        raise RuntimeError("kernel times are already being recorded")
    _core.TIMING[0] = times
    try:
        yield times
    finally:
        _core.TIMING[0] = None


__all__ = ["KernelTime", "KernelTimes", "Summary", "recording"]
