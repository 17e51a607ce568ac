"""CUDA pane aggregation, window combination and finalisation against the CPU kernels.

Every op of :mod:`kernels.aggregate` in one plan (with ``where`` masks, null masks,
integer and float sums), several batches into the same state, then a sliding
window combination (several panes per window, in two rounds so that rows that
already hold data are merged again), compared group by group: counts, integer
sums, minima and maxima exactly; float sums, means and M2 to 1e-9 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from agg_cases import FLOAT_OPS, NARROW, PLAN, update_both  # noqa: E402

from kernels import aggregate as cpu  # noqa: E402
from kernels.cuda import aggregate as gpu  # noqa: E402
from kernels.cuda._core import SIM_THREADS, to_host  # noqa: E402
from kernels.cuda.hashindex import DeviceHashIndex  # noqa: E402
from kernels.hashindex import HashIndex  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

N = 241
OPS = np.array([p[0] for p in PLAN], dtype=np.int64)
COL_OF = np.array([p[1] for p in PLAN], dtype=np.int64)
MASK_OF = np.array([p[2] for p in PLAN], dtype=np.int64)
IS_INT = np.array([p[3] for p in PLAN], dtype=np.bool_)


def _batch(rng: np.random.Generator, dtype: str, batch: int):
    keys = np.c_[rng.integers(batch, batch + 4, N), rng.integers(0, 30, N)].astype(np.int64)
    masks = np.stack([rng.random(N) < 0.45, rng.random(N) < 0.9]).astype(np.uint8)
    ints = rng.integers(-1_000, 5_000, N).astype(np.int64)
    x = rng.normal(50.0, 20.0, N)
    x[masks[1] == 0] = 0.0  # nulls are filled with 0, as AggregationPlan.prepare does
    y = rng.exponential(300.0, N)
    fcols = np.stack([x, ints.astype(np.float64), y]).astype(dtype)
    icols = np.stack([np.zeros(N, np.int64), ints, np.zeros(N, np.int64)])
    skip = (rng.random(N) < 0.05).astype(np.int8)  # e.g. rows that failed validation
    return keys, fcols, icols, masks, skip


def _cpu_update(index: HashIndex, state: cpu.AggState, keys, fcols, icols, masks, skip):
    ids = np.full(N, -1, dtype=np.int64)
    ids[skip == 0] = index.insert(keys[skip == 0])
    state.reserve(len(index))
    cpu.update_events(
        ids, OPS, COL_OF, MASK_OF, IS_INT, fcols.astype(np.float64), icols, masks,
        state.rows, state.ist, state.isum, state.f0, state.f1, state.moments,
    )  # fmt: skip


def _gpu_update(index: DeviceHashIndex, state: gpu.DeviceAggState, keys, fcols, icols, masks,
                skip):  # fmt: skip
    ids = index.insert(keys, skip=skip)
    state.reserve(len(index))
    gpu.update_events(ids, OPS, COL_OF, MASK_OF, IS_INT, fcols, icols, masks, state)


def _assert_same_groups(c_index, c_state: cpu.AggState, g_index, g_state) -> None:
    n = len(c_index)
    assert len(g_index) == n
    g_keys = to_host(g_index.keys)
    c_rows = c_index.find(g_keys)  # the CPU row of every GPU row
    assert np.all(c_rows >= 0)
    assert len(np.unique(c_rows)) == n
    g = g_state.to_host(n)
    np.testing.assert_array_equal(g.rows[:n], c_state.rows[c_rows])
    np.testing.assert_array_equal(g.ist[:n], c_state.ist[c_rows])
    exact = cpu.exact_isum(OPS)  # STD/VAR's: a mean's low part, rounded (f0's tolerance)
    np.testing.assert_array_equal(g.isum[:n][:, exact], c_state.isum[c_rows][:, exact])
    for a, op in enumerate(OPS):
        want0, got0 = c_state.f0[c_rows, a], g.f0[:n, a]
        want1, got1 = c_state.f1[c_rows, a], g.f1[:n, a]
        if op in FLOAT_OPS:
            np.testing.assert_allclose(got0, want0, rtol=1e-9, atol=1e-9, err_msg=f"f0[{a}]")
            np.testing.assert_allclose(got1, want1, rtol=1e-9, atol=1e-6, err_msg=f"f1[{a}]")
        else:
            np.testing.assert_array_equal(got0, want0, err_msg=f"f0[{a}]")
            np.testing.assert_array_equal(got1, want1, err_msg=f"f1[{a}]")
        expected = np.empty(n, np.float64)
        expected_valid = np.empty(n, np.bool_)
        cpu.finalize_column(op, IS_INT[a], n, c_state.ist[c_rows], c_state.isum[c_rows],
                            c_state.f0[c_rows], c_state.f1[c_rows], a, expected,
                            expected_valid)  # fmt: skip
        out, valid = gpu.finalize_column(int(op), bool(IS_INT[a]), n, g_state, a)
        np.testing.assert_array_equal(to_host(valid), expected_valid)
        exact = op not in FLOAT_OPS
        np.testing.assert_allclose(to_host(out), expected, rtol=0 if exact else 1e-9,
                                   atol=0 if exact else 1e-9, equal_nan=True)  # fmt: skip
    # the data exercises every op: several events per group, empty masked groups too
    assert c_state.rows[:n].max() > 3
    assert np.any(c_state.ist[:n, 1] == 0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_update_and_merge_match_cpu(dtype: str) -> None:
    rng = np.random.default_rng(42 if dtype == "float64" else 43)
    c_index, g_index = HashIndex(2, capacity=16), DeviceHashIndex(2, capacity=16)
    c_state, g_state = cpu.AggState(OPS, capacity=16), gpu.DeviceAggState(OPS, capacity=16)
    for batch in range(3):
        keys, fcols, icols, masks, skip = _batch(rng, dtype, batch)
        _cpu_update(c_index, c_state, keys, fcols, icols, masks, skip)
        _gpu_update(g_index, g_state, keys, fcols, icols, masks, skip)
    _assert_same_groups(c_index, c_state, g_index, g_state)

    # Window combination: pane p goes into windows p//2 and p//2 + 1 (size 4, slide 2),
    # merged in two rounds so that the second round merges into rows holding data.
    def pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        src = np.repeat(np.arange(len(keys)), 2)
        dst = np.repeat(keys, 2, axis=0)
        dst[:, 0] = dst[:, 0] // 2 + np.tile([0, 1], len(keys))
        return src, dst

    c_src, c_dst = pairs(c_index.keys.copy())
    g_src, g_dst = pairs(to_host(g_index.keys))
    cw_index, gw_index = HashIndex(2, capacity=16), DeviceHashIndex(2, capacity=16)
    cw_state, gw_state = cpu.AggState(OPS, capacity=16), gpu.DeviceAggState(OPS, capacity=16)
    for part in (slice(None, None, 2), slice(1, None, 2)):
        c_ids = cw_index.insert(c_dst[part])
        cw_state.reserve(len(cw_index))
        cpu.merge_into(c_state, cw_state, c_src[part], c_ids)
        g_ids = gw_index.insert(g_dst[part])
        gw_state.reserve(len(gw_index))
        gpu.merge_rows(g_src[part], g_ids, g_state, gw_state, n_rows=len(gw_index))
    assert len(cw_index) < len(c_src)  # several panes per window
    _assert_same_groups(cw_index, cw_state, gw_index, gw_state)


def test_state_round_trips_through_host() -> None:
    rng = np.random.default_rng(5)
    c_index, c_state = HashIndex(2, capacity=16), cpu.AggState(OPS, capacity=16)
    keys, fcols, icols, masks, skip = _batch(rng, "float64", 0)
    _cpu_update(c_index, c_state, keys, fcols, icols, masks, skip)
    n = len(c_index)
    back = gpu.DeviceAggState.from_host(c_state, n).to_host(n)
    for name in ("rows", "ist", "isum", "f0", "f1"):
        np.testing.assert_array_equal(getattr(back, name)[:n], getattr(c_state, name)[:n])


def test_update_plan_shares_accumulators() -> None:
    """Aggregations with the same input share one accumulator: the test plan's 17
    aggregations need 17 steps (a row count, 2 masked counts, 4 float sums, 2 integer
    sums, 3 squared deviations, 3 float and 2 integer extremes), not a set of atomics
    each."""
    plan = gpu.update_plan(OPS, COL_OF, MASK_OF, IS_INT)
    steps = to_host(plan.steps)
    kinds = steps[:, 0].tolist()
    assert kinds.count(gpu.ROWS) == 1
    assert kinds.count(gpu.COUNT_WHERE) == 2  # masks 0 and 1
    # float sums: (mask 1, col 0) for SUM, MEAN and STD; (mask 0, col 2) VAR; (-1, col 2)
    # STD; (mask 0, col 1) the MEAN of integers, which sums them as floats too
    assert kinds.count(gpu.FLOAT_SUM) == 4
    assert kinds.count(gpu.INT_SUM) == 2  # col 1: SUM unmasked; SUM and MEAN under mask 0
    assert kinds.count(gpu.SQUARES) == 3  # STD (1, 0), VAR (0, 2), STD (-1, 2)
    assert kinds.count(gpu.LOWEST) == 2 and kinds.count(gpu.HIGHEST) == 1
    assert kinds.count(gpu.INT_LOWEST) == 1 and kinds.count(gpu.INT_HIGHEST) == 1
    # each squared deviation's slot has its deviations' beside it (the corrected two-pass)
    assert (plan.width, plan.int_width, plan.has_squares) == (1 + 2 + 4 + 2 * 3, 2, True)
    # each tile numbers its own accumulators: pass 1's int32 counts (the row count first)
    # take columns 0..2, its float sums 0..3 and its integer sums 0..1, pass 2's squares
    # 0..2; MIN/MAX none. Those past their tile's width (2 each) add globally.
    tiles = steps[:, 6]
    counts = np.isin(steps[:, 0], [gpu.ROWS, gpu.COUNT_WHERE])
    assert tiles[counts].tolist() == [0, 1, 2] and tiles[0] == 0
    for kind, columns in ((gpu.FLOAT_SUM, 4), (gpu.INT_SUM, 2), (gpu.SQUARES, 3)):
        assert tiles[steps[:, 0] == kind].tolist() == list(range(columns))
    extremes = [gpu.LOWEST, gpu.HIGHEST, gpu.INT_LOWEST, gpu.INT_HIGHEST]
    assert np.all(tiles[np.isin(steps[:, 0], extremes)] == -1)
    kept, native = gpu.tile_columns(steps)
    assert kept.tolist() == [bool(0 <= t < 2) for t in tiles]
    int32_counts = gpu.TILE_COUNT_DTYPE is gpu.int32  # not under TIKTOKTOE_TILE_COUNTS=float64
    assert native.tolist() == (counts & int32_counts).tolist()
    assert gpu.update_plan(OPS, COL_OF, MASK_OF, IS_INT) is plan  # built once per content


@pytest.mark.parametrize("tables", [True, False], ids=["tables", "no-tables"])
@pytest.mark.parametrize("plan", [NARROW, PLAN], ids=["narrow", "wide"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_block_tables_hot_rows_and_full_probes(
    plan: list, dtype: str, tables: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The block's shared table of rows: a hot row taking a third of all events (many per
    tile), skipped events, and rows that all hash to one slot, so that after
    ``TILE_PROBES`` of them a tile's events add straight to the global accumulators and
    one row is fed both ways in one batch. The fold's owner must still be exactly one
    event per row. ``TIKTOKTOE_BLOCK_TABLES=0`` (``tables=False``) adds every event
    globally."""
    monkeypatch.setattr(gpu, "BLOCK_TABLES", tables)
    _hot_rows_and_full_probes(plan, dtype)


def test_block_tables_counting_in_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TIKTOKTOE_TILE_COUNTS=float64``: the tables count as before the int32 tiles."""
    from numba import float64

    monkeypatch.setattr(gpu, "TILE_COUNT_DTYPE", float64)
    _hot_rows_and_full_probes(PLAN, "float64")


def _hot_rows_and_full_probes(plan: list, dtype: str) -> None:
    rng = np.random.default_rng(7)
    n = 600
    colliding = gpu.TILE_SLOTS * rng.integers(1, 3 * gpu.TILE_PROBES, n)  # all to slot 0
    ids = np.where(rng.random(n) < 0.35, 5, colliding).astype(np.int64)
    ids[rng.random(n) < 0.05] = -1
    tiles = np.split(ids[:576], 576 // SIM_THREADS)  # a card's tiles (256) hold more still
    distinct = [len(np.unique(t[t % gpu.TILE_SLOTS == 0])) for t in tiles]
    assert min(distinct) > gpu.TILE_PROBES, "the table's probes must run out in every tile"
    update_both(ids, plan, dtype, rng)
