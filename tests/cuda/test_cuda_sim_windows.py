"""Window emission on the device (``DevicePaneState``) against the CPU ``PaneState``.

The same random batches go into both states; ``pane_bounds``, ``window_groups``
(every aggregation kind, tumbling and sliding geometries, several window
ranges and first live panes) and ``drop_panes_before`` followed by more
batches must agree: integers and null masks exactly, floats to 1e-9 relative
(device atomics sum in another order). Groups within a window come in any
order on the device, so both sides are sorted by (k, atoms) first.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from window_cases import assert_same_groups, new_states, random_batch  # noqa: E402

from gpu_engine.backend.device_state import DevicePaneState  # noqa: E402
from gpu_engine.windows.panes import PaneGeometry, PaneState  # noqa: E402
from kernels.cuda import windows as device_windows  # noqa: E402
from kernels.cuda._core import as_device, to_host  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]


def _compare_all(cpu: PaneState, gpu: DevicePaneState, geometry: PaneGeometry,
                 ranges: list[tuple[int, int, int]]) -> int:  # fmt: skip
    emitted = 0
    for k_min, k_max, first_live in ranges:
        assert cpu.pane_bounds(first_live) == gpu.pane_bounds(first_live)
        a = cpu.window_groups(geometry, k_min, k_max, first_live)
        b = gpu.window_groups(geometry, k_min, k_max, first_live)
        assert_same_groups(a, b)
        emitted += 0 if a is None else len(a.k)
    return emitted


GEOMETRIES = {
    "tumbling": PaneGeometry(pane=100, slide=100, size=100),
    "sliding": PaneGeometry(pane=50, slide=100, size=250),  # 5 panes, 3 windows per pane
    "hopping": PaneGeometry(pane=100, slide=300, size=200),  # gaps between windows
}


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_window_groups_match_cpu(name: str) -> None:
    geometry = GEOMETRIES[name]
    rng = np.random.default_rng(11)
    cpu, gpu = new_states(chunk_rows=37)  # several pinned chunks per batch
    for b in range(3):
        keys, values = random_batch(rng, 90, (-3 + 4 * b, 9 + 4 * b))
        cpu.add_events(keys, values)
        gpu.add_events(keys, values)
    assert len(cpu) == len(gpu)
    lo, hi = cpu.pane_bounds(-(2**62))  # type: ignore[misc]
    k_lo = (lo * geometry.pane - geometry.size) // geometry.slide + 1
    k_hi = hi * geometry.pane // geometry.slide
    ranges = [
        (k_lo, k_hi, -(2**62)),  # everything
        (k_lo, k_lo, -(2**62)),  # the first window only
        (k_lo + 2, k_hi - 3, lo + 4),  # a middle range, early panes dead
        (k_hi + 1, k_hi + 5, lo),  # past the last pane: nothing
        (k_lo - 3, k_hi, hi + 1),  # no live pane
    ]
    assert _compare_all(cpu, gpu, geometry, ranges) > 20


def test_drop_panes_then_more_batches_match_cpu() -> None:
    geometry = GEOMETRIES["sliding"]
    rng = np.random.default_rng(5)
    cpu, gpu = new_states(chunk_rows=64)
    first_live = -(2**62)
    for step in range(4):
        keys, values = random_batch(rng, 70, (8 * step, 8 * step + 10))
        cpu.add_events(keys, values)
        gpu.add_events(keys, values)
        k_max = (8 * step + 6) * geometry.pane // geometry.slide
        k_min = k_max - 3
        assert _compare_all(cpu, gpu, geometry, [(k_min, k_max, first_live)]) > 0
        first_live = 8 * step + 6
        before, entries = len(gpu), len(gpu.sketches)
        cpu = cpu.drop_panes_before(first_live)  # the CPU may compact in place
        gpu_next = gpu.drop_panes_before(first_live)
        assert len(cpu) == len(gpu_next)
        if gpu_next is not gpu:
            assert len(gpu_next) < before and len(gpu_next.sketches) < entries
        gpu = gpu_next
    keys, values = random_batch(rng, 60, (first_live, first_live + 12))
    cpu.add_events(keys, values)
    gpu.add_events(keys, values)
    k_hi = (first_live + 12) * geometry.pane // geometry.slide
    assert _compare_all(cpu, gpu, geometry, [(k_hi - 8, k_hi, first_live)]) > 0


def test_compaction_keeps_exact_state() -> None:
    """The compacted device rows equal the old ones (a copy, not a re-merge)."""
    rng = np.random.default_rng(3)
    _, gpu = new_states()
    keys, values = random_batch(rng, 120, (0, 10))
    gpu.add_events(keys, values)
    old = gpu.agg.to_host(len(gpu))
    old_keys = gpu.keys
    new = gpu.drop_panes_before(7)
    assert new is not gpu
    assert set(map(tuple, new.keys)) == {tuple(r) for r in old_keys if r[0] >= 7}
    new_state = new.agg.to_host(len(new))
    row_of = {tuple(r): i for i, r in enumerate(old_keys)}
    for j, key in enumerate(map(tuple, new.keys)):
        i = row_of[key]
        for name in ("rows", "ist", "isum", "f0", "f1"):
            np.testing.assert_array_equal(getattr(new_state, name)[j], getattr(old, name)[i])


def test_pane_stats_and_pairs_kernels() -> None:
    keys = np.array([[5, 1], [2, 0], [9, 3], [2, 2], [-4, 1]], dtype=np.int64)
    assert device_windows.pane_stats(keys, 2) == (2, 9, 1, 5)
    first, last, dead, rows = device_windows.pane_stats(keys, 10)
    assert first > last and dead == rows == 5
    # only the first count[0] rows (a hash index's length, kept on the device)
    counted = device_windows.pane_stats(keys, 2, count=as_device(np.array([3], np.int64)))
    assert counted == (2, 9, 0, 3)  # rows 5, 2, 9: none below pane 2
    # panes of 50 ms, windows of 150 every 100: pane p is in (50p - 150) // 100 + 1 .. 50p // 100
    src, group_keys = device_windows.window_pairs(keys, -10, 9, 50, 100, 150, -5, 4)
    pairs = sorted(zip(to_host(src).tolist(), map(tuple, to_host(group_keys)), strict=True))
    expected = []
    for r, (p, atom) in enumerate(keys.tolist()):
        for k in range(max(-5, (50 * p - 150) // 100 + 1), min(4, 50 * p // 100) + 1):
            expected.append((r, (k, atom)))
    assert pairs == sorted(expected)
    position = device_windows.counting_order(np.array([3, 1, 3, 0, 1]), 0, 0, 4)
    assert sorted(to_host(position).tolist()) == [0, 1, 2, 3, 4]
    placed = np.empty(5, dtype=np.int64)
    placed[to_host(position)] = [3, 1, 3, 0, 1]
    np.testing.assert_array_equal(placed, [0, 1, 1, 3, 3])


@pytest.mark.parametrize("first_live", [-(2**62), -3, 40, 10**6])
def test_pane_stats_match_numpy_when_threads_reduce_many_rows(first_live: int) -> None:
    """More rows than threads: each thread folds several rows before its one update."""
    panes = np.random.default_rng(first_live % 97).integers(-50, 100, 1000)
    keys = np.c_[panes, np.zeros_like(panes)].astype(np.int64)
    live = panes[panes >= first_live]
    first, last, dead, _ = device_windows.pane_stats(keys, first_live)
    assert dead == len(panes) - len(live)
    if len(live):
        assert (first, last) == (live.min(), live.max())
    else:
        assert first > last
    # the rows the next compaction would drop, counted in the same pass
    for dead_before in (first_live, 0, 61):
        got = device_windows.pane_stats(keys, first_live, dead_before)
        assert got == (first, last, int(np.count_nonzero(panes < dead_before)), len(panes))


def test_drop_panes_before_reuses_the_count_of_pane_bounds() -> None:
    """pane_bounds(first_live, dropping=x) counts the rows before x, so the following
    drop_panes_before(x) launches no pass of its own, unless rows came in between."""
    from kernels.cuda import _core

    rng = np.random.default_rng(8)
    cpu, gpu = new_states()
    keys, values = random_batch(rng, 120, (0, 10))
    cpu.add_events(keys, values)
    gpu.add_events(keys, values)
    waits = sum(_core.WAITS.values())
    assert gpu.pane_bounds(2, dropping=7) == cpu.pane_bounds(2, dropping=7)
    assert sum(_core.WAITS.values()) == waits + 1  # the index's length came with the stats
    launched = _core.LAUNCHES["win.pane_stats"]
    compacted = gpu.drop_panes_before(7)
    assert _core.LAUNCHES["win.pane_stats"] == launched
    assert compacted is not gpu and len(compacted) == len(cpu.drop_panes_before(7))
    compacted.pane_bounds(7, dropping=9)
    more_keys, more_values = random_batch(rng, 30, (20, 25))  # new pane rows: recount
    compacted.add_events(more_keys, more_values)
    launched = _core.LAUNCHES["win.pane_stats"]
    compacted.drop_panes_before(9)
    assert _core.LAUNCHES["win.pane_stats"] == launched + 1


@pytest.mark.parametrize("span", [1, 3, device_windows.FEW_BINS, device_windows.FEW_BINS + 44])
def test_counting_order_matches_a_stable_sort(span: int) -> None:
    """Few bins: counted per chunk of rows, stable (numpy's stable argsort, inverted); more
    bins: counted with atomics, every row in its bin's range."""
    values = np.random.default_rng(span).integers(0, span, 1000) + 7
    position = to_host(device_windows.counting_order(values.reshape(-1, 1), 0, 7, span))
    assert sorted(position.tolist()) == list(range(len(values)))
    placed = np.empty_like(values)
    placed[position] = values
    np.testing.assert_array_equal(placed, np.sort(values))
    if span <= device_windows.FEW_BINS:
        np.testing.assert_array_equal(np.argsort(position), np.argsort(values, kind="stable"))
