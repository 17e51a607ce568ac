"""Sketch entries on the device (``DeviceSketchEntries``) against the CPU ``SketchEntries``.

The same entries go into both; combining rows into groups must give exactly the
CPU's quantiles (bucket representatives, nulls) and distinct counts, with
several sketch aggregations of one plan, rows without entries, extreme ranks
(q = 0 and 1), negative and zero values, and after rows are renumbered the way
compaction renumbers them.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from window_cases import FIELDS  # noqa: E402

from gpu_engine.backend.device_sketches import DeviceSketchEntries  # noqa: E402
from gpu_engine.config.models import AggregationSpec  # noqa: E402
from gpu_engine.windows.aggregations import AggregationPlan, BatchValues  # noqa: E402
from gpu_engine.windows.state import SketchEntries  # noqa: E402
from kernels.cuda._core import as_device, to_host  # noqa: E402
from kernels.sketches import bucket_keys, hash_int64  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

AGGS = [
    {"name": "n", "op": "count"},  # a scalar first: sketch slots differ from aggregation ids
    {"name": "x_p50", "op": "quantile", "column": "x", "q": 0.5},
    {"name": "u_distinct", "op": "count_distinct", "column": "u"},
    {"name": "x_p0", "op": "quantile", "column": "x", "q": 0.0},
    {"name": "x_p100", "op": "quantile", "column": "x", "q": 1.0},
    {"name": "x_p90", "op": "quantile", "column": "x", "q": 0.9},
    {"name": "x_distinct", "op": "count_distinct", "column": "x"},
]
PLAN = AggregationPlan([AggregationSpec.model_validate(a) for a in AGGS], FIELDS)


def _sketch_values(rng: np.random.Generator, n_events: int, spread: float) -> BatchValues:
    """Sketch inputs of ``n_events`` events, about a fifth of them null per aggregation."""
    inputs = []
    for a in PLAN.sketch_aggs:
        index = np.flatnonzero(rng.random(n_events) > 0.2)
        keys = np.empty(len(index), dtype=np.int64)
        if AGGS[a]["op"] == "quantile":
            x = rng.normal(0.0, spread, len(index)) * rng.integers(0, 2, len(index))  # zeros
            bucket_keys(x, keys)
        else:
            hash_int64(rng.integers(-3, 9, len(index)), keys)  # repeats across rows
        inputs.append((a, index, keys))
    empty = np.empty((0, n_events))
    return BatchValues(empty, np.empty((0, 0), np.int64), empty.astype(np.uint8),
                       np.full(len(AGGS), -1, np.int64), inputs)  # fmt: skip


def _both(rng: np.random.Generator, n_rows: int, batches: int, spread: float = 50.0):
    """The same random entries of rows ``0..n_rows-1`` on the host and on the device."""
    cpu, gpu = SketchEntries(capacity=16), DeviceSketchEntries(capacity=16)  # growth
    for _ in range(batches):
        n = int(rng.integers(1, 40))
        ids = rng.integers(0, n_rows, n)
        values = _sketch_values(rng, n, spread)
        cpu.add_events(ids, values)
        gpu.add_events(as_device(ids), values)
    return cpu, gpu


def _random_groups(rng: np.random.Generator, n_rows: int, n_groups: int):
    """Pairs ``src -> dst`` (every group has at least one row, a row may be in several)."""
    src, dst = [], []
    for g in range(n_groups):
        rows = rng.choice(n_rows, size=int(rng.integers(1, min(n_rows, 6) + 1)), replace=False)
        src += rows.tolist()
        dst += [g] * len(rows)
    return np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64)


def _assert_combine_equal(cpu: SketchEntries, gpu: DeviceSketchEntries, src, dst, n_rows: int,
                          n_groups: int, rng: np.random.Generator) -> None:  # fmt: skip
    position = rng.permutation(n_groups).astype(np.int64)
    expected = cpu.combine(PLAN, src, dst, position, n_groups)  # pairs grouped by dst
    shuffle = rng.permutation(len(src))  # the device takes them in any order
    got = gpu.combine(PLAN, as_device(src[shuffle]), as_device(dst[shuffle]), as_device(position),
                      n_groups, n_rows)  # fmt: skip
    assert sorted(got) == sorted(expected) == PLAN.sketch_aggs
    for a in PLAN.sketch_aggs:
        np.testing.assert_array_equal(got[a][1], expected[a][1], err_msg=AGGS[a]["name"])
        np.testing.assert_array_equal(got[a][0], expected[a][0], err_msg=AGGS[a]["name"])
        assert got[a][0].dtype == expected[a][0].dtype == np.float64


def _entries(state: SketchEntries | DeviceSketchEntries) -> dict[tuple[int, ...], int]:
    keys = state.index.keys
    counts = state.counts[: len(state)]
    keys, counts = to_host(keys), to_host(counts)
    return {tuple(k): int(c) for k, c in zip(keys.tolist(), counts, strict=True)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_combine_matches_cpu(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows = 24
    cpu, gpu = _both(rng, n_rows, batches=4, spread=[50.0, 1e-3, 1e6][seed])
    assert _entries(cpu) == _entries(gpu)
    src, dst = _random_groups(rng, n_rows + 3, 12)  # rows n_rows.. have no entries
    _assert_combine_equal(cpu, gpu, src, dst, n_rows + 3, 12, rng)


def test_groups_without_entries_and_no_entries_at_all() -> None:
    rng = np.random.default_rng(4)
    cpu, gpu = SketchEntries(), DeviceSketchEntries()
    src, dst = np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])
    _assert_combine_equal(cpu, gpu, src, dst, 3, 3, rng)  # every value null
    result = gpu.combine(PLAN, as_device(src), as_device(dst), as_device(np.arange(3)), 3, 3)
    assert not result[1][1].any() and np.isnan(result[1][0]).all()  # quantile: null
    assert result[2][1].all() and (result[2][0] == 0).all()  # distinct: 0
    values = BatchValues(np.empty((0, 1)), np.empty((0, 0), np.int64), np.empty((0, 1), np.uint8),
                         np.full(len(AGGS), -1, np.int64),
                         [(a, np.array([0]), np.array([7])) for a in PLAN.sketch_aggs])  # fmt: skip
    cpu.add_events(np.array([1]), values)  # one entry per aggregation, in row 1 only
    gpu.add_events(as_device(np.array([1])), values)
    _assert_combine_equal(cpu, gpu, src, dst, 3, 3, rng)


def test_negative_zero_and_repeated_values() -> None:
    rng = np.random.default_rng(6)
    x = np.array([-5.0, 0.0, -0.0, 3.0, -1e-310, 3.0, -5.0, 2.5e8, -2.5e8, 1e-300])
    keys = np.empty(len(x), dtype=np.int64)
    bucket_keys(x, keys)
    cpu, gpu = SketchEntries(), DeviceSketchEntries()
    for row in range(4):
        take = np.flatnonzero(rng.random(len(x)) < 0.7)
        values = BatchValues(np.empty((0, len(x))), np.empty((0, 0), np.int64),
                             np.empty((0, len(x)), np.uint8), np.full(len(AGGS), -1, np.int64),
                             [(a, take, keys[take]) for a in PLAN.sketch_aggs])  # fmt: skip
        ids = np.full(len(x), row)
        cpu.add_events(ids, values)
        gpu.add_events(as_device(ids), values)
    src, dst = np.array([0, 1, 2, 3, 0, 3, 2]), np.array([0, 0, 0, 0, 1, 1, 2])
    _assert_combine_equal(cpu, gpu, src, dst, 4, 3, rng)


def test_renumbered_keeps_the_live_rows_entries() -> None:
    rng = np.random.default_rng(8)
    n_rows = 20
    cpu, gpu = _both(rng, n_rows, batches=3)
    old_ids = np.sort(rng.choice(n_rows, size=7, replace=False))
    new_ids = rng.permutation(7)
    moved = gpu.renumbered(as_device(old_ids), as_device(new_ids), n_rows)
    rename = dict(zip(old_ids.tolist(), new_ids.tolist(), strict=True))
    expected = {(rename[r], a, k): c for (r, a, k), c in _entries(cpu).items() if r in rename}
    assert _entries(moved) == expected
    assert 0 < len(moved) < len(gpu) and moved.nbytes > 0
    # the renumbered entries combine like the CPU's kept rows, and keep taking batches
    kept = SketchEntries()
    keys = np.array(list(expected), dtype=np.int64).reshape(-1, 3)
    kept.add(keys, np.array(list(expected.values()), dtype=np.float64))
    values = _sketch_values(rng, 10, 50.0)
    ids = rng.integers(0, 9, 10)
    kept.add_events(ids, values)
    moved.add_events(as_device(ids), values)
    src, dst = _random_groups(rng, 9, 5)
    _assert_combine_equal(kept, moved, src, dst, 9, 5, rng)


def test_device_sketch_inputs_are_not_compacted_and_wait_for_nothing() -> None:
    """A device batch's sketch inputs keep every row, -1 where the mask (non-null, ``where``)
    or a subset leaves the event out, so preparing them reads nothing back; their kept rows
    and keys are the host path's (``ArrowColumns``, compacted with numpy) exactly, for
    device columns and host string columns with and without nulls. Two quantiles of one
    column share one input."""
    import pyarrow as pa

    from gpu_engine.backend.device_frame import DeviceColumn, DeviceFrame
    from gpu_engine.backend.device_prepared import DeviceBatchValues, DeviceColumns
    from gpu_engine.config.models import FieldSpec
    from gpu_engine.windows.aggregations import ArrowColumns
    from kernels.cuda import _core

    rng = np.random.default_rng(12)
    n = 53
    x, k = rng.normal(size=n), rng.integers(0, 6, n)
    x_null = rng.random(n) < 0.3
    s = pa.array([None if r < 0.2 else f"s{int(r * 9)}" for r in rng.random(n)])
    t = pa.array([f"t{v}" for v in rng.integers(0, 7, n)])  # a string column without nulls
    fields = {
        "x": FieldSpec(type="float64", nullable=True), "k": FieldSpec(type="int64"),
        "s": FieldSpec(type="string", nullable=True), "t": FieldSpec(type="string"),
    }  # fmt: skip
    specs = [
        {"name": "x_p50", "op": "quantile", "column": "x", "q": 0.5},
        {"name": "x_p99", "op": "quantile", "column": "x", "q": 0.99},
        {"name": "k_distinct", "op": "count_distinct", "column": "k", "where": {"k": [1, 4]}},
        {"name": "s_distinct", "op": "count_distinct", "column": "s"},
        {"name": "t_distinct", "op": "count_distinct", "column": "t"},
    ]
    plan = AggregationPlan([AggregationSpec.model_validate(a) for a in specs], fields)
    table = pa.table({"x": pa.array(x, mask=x_null), "k": k, "s": s, "t": t})
    frame = DeviceFrame(
        {"x": DeviceColumn(as_device(np.where(x_null, 0.0, x)), as_device(x_null.view(np.uint8))),
         "k": DeviceColumn(as_device(k)), "s": s, "t": t},
        n, {"x": pa.float64(), "k": pa.int64(), "s": pa.string(), "t": pa.string()},
    )  # fmt: skip
    waits = sum(_core.WAITS.values())
    got = plan.prepare_from(DeviceColumns(frame, fields))
    on_device = DeviceBatchValues(got.fcols, got.icols, got.masks, got.mask_of,
                                  got.sketch_inputs)  # fmt: skip
    rows = np.flatnonzero(rng.random(n) < 0.6)
    subset = on_device.subset(rows)
    assert sum(_core.WAITS.values()) == waits  # nothing was read back
    assert got.sketch_inputs[0][1] is got.sketch_inputs[1][1]  # p50 and p99: one input
    want = plan.prepare_from(ArrowColumns(table, fields))
    for device, host in ((got, want), (subset, want.subset(rows))):
        assert [a for a, _, _ in device.sketch_inputs] == [a for a, _, _ in host.sketch_inputs]
        for (_, index, keys), (_, host_index, host_keys) in zip(
            device.sketch_inputs, host.sketch_inputs, strict=True
        ):
            index, keys = to_host(index), to_host(keys)
            assert len(index) == len(keys)
            kept = index >= 0
            np.testing.assert_array_equal(index[kept], host_index)
            np.testing.assert_array_equal(keys[kept], host_keys)
