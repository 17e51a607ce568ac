"""The per-kernel device timer (:mod:`kernels.cuda.kernel_times`).

Under the simulator an event's elapsed time is -1, so these check what the
recorder sees: every launch made inside :func:`recording` (by name, as the launch
counter counts them), kernels that still compute what they computed unrecorded,
nothing recorded outside the block, and the summary's arithmetic on given times.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from kernels import validate as cpu_validate  # noqa: E402
from kernels.cuda import _core, validate  # noqa: E402
from kernels.cuda.hashindex import DeviceHashIndex  # noqa: E402
from kernels.cuda.kernel_times import KernelTime, KernelTimes, Summary, recording  # noqa: E402
from kernels.hashindex import HashIndex  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]


def _work(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validation of one column and a hash insert: (values, reason codes, index keys)."""
    values = rng.normal(0.0, 2.0, 300)
    values[::37] = np.nan
    reason = _core.full(len(values), 0, np.int8)
    field = _core.full(len(values), -1, np.int16)
    empty = np.empty(0, np.uint8)
    validate.check_numeric(values, empty, empty, 3, False, False, True, -1.0, 1.0,
                           np.empty(0), reason, field)  # fmt: skip
    keys = rng.integers(0, 20, (len(values), 2))
    index = DeviceHashIndex(2, capacity=16)
    ids = _core.to_host(index.insert(keys, skip=reason))
    stored = _core.to_host(index.keys)
    ok = _core.to_host(reason) == 0
    np.testing.assert_array_equal(stored[ids[ok]], keys[ok])
    assert np.all(ids[~ok] == -1)
    return values, _core.to_host(reason), stored


def test_every_launch_is_recorded_and_still_computes() -> None:
    before = Counter(_core.LAUNCHES)
    with recording() as times:
        values, reason, stored = _work(np.random.default_rng(0))
    launched = Counter(_core.LAUNCHES)
    launched.subtract(before)
    launched.pop("memset", None)  # a driver memset: no kernel, no events
    summary = times.summary()
    assert {k.name: k.launches for k in summary.kernels} == +launched
    assert len(times) == sum(launched.values()) > 0
    assert {"validate.check_numeric", "hash.claim", "hash.resolve"} <= set(launched)

    want = np.zeros(len(values), np.int8)
    empty = np.empty(0, np.uint8)
    cpu_validate.check_numeric(values, empty, empty, 3, False, False, True, -1.0, 1.0,
                               np.empty(0), want, np.full(len(values), -1, np.int16))  # fmt: skip
    np.testing.assert_array_equal(reason, want)
    assert len(stored) == len(HashIndex.from_keys(stored))  # distinct keys


def test_nothing_is_recorded_outside_the_block() -> None:
    with recording() as times:
        pass
    _work(np.random.default_rng(1))
    assert len(times) == 0
    assert times.summary() == Summary([], 0.0)
    assert _core.TIMING[0] is None
    found = _core.kernel("validate.check_numeric", np.dtype(np.float64))
    assert type(found).__name__ != "_TimedKernel"


def test_recordings_do_not_nest() -> None:
    with recording(), pytest.raises(RuntimeError, match="already being recorded"), recording():
        pass
    assert _core.TIMING[0] is None


def test_summary_shares_and_the_time_between_kernels() -> None:
    summary = Summary([KernelTime("b", 3, 6.0), KernelTime("a", 1, 2.0),
                       KernelTime("c", 2, 1.0)], span_ms=10.0)  # fmt: skip
    assert summary.kernel_ms == pytest.approx(9.0)
    assert summary.between_ms == pytest.approx(1.0)
    lines = summary.lines(top=2)
    assert lines[1].split() == ["b", "3", "6.000", "60.0%"]
    assert lines[2].split() == ["a", "1", "2.000", "20.0%"]
    assert lines[3].split() == ["(1", "others)", "2", "1.000", "10.0%"]
    assert lines[4].split()[:5] == ["between", "kernels", "1.000", "10.0%", "(memsets,"]
    assert lines[5].split() == ["span", "10.000"]


class _Event:
    """Stands for a CUDA event recorded at ``at`` ms (the simulator's events give -1)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def elapsed_time(self, later: _Event) -> float:
        return later.at - self.at


def test_times_and_span_from_the_events_in_any_order() -> None:
    """Worker threads append their launches in any order: the span runs from the earliest
    start to the latest end, whichever was recorded first."""
    times = KernelTimes()
    times.add("b", _Event(5.0), _Event(9.0))  # appended first, ran second
    times.add("a", _Event(1.0), _Event(2.5))
    times.add("b", _Event(10.0), _Event(10.5))
    summary = times.summary()
    assert summary.kernels == [KernelTime("b", 2, 4.5), KernelTime("a", 1, 1.5)]
    assert summary.span_ms == pytest.approx(9.5)
    assert summary.between_ms == pytest.approx(3.5)
