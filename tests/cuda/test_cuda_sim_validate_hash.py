"""CUDA validation, hash index, sketch and session kernels against the CPU kernels.

Run in their own process under the simulator (``NUMBA_ENABLE_CUDASIM=1``) or on a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from kernels import validate as cpu_validate  # noqa: E402
from kernels.cuda import hashindex as gpu_hash  # noqa: E402
from kernels.cuda import ingest  # noqa: E402
from kernels.cuda import sessions as gpu_sessions  # noqa: E402
from kernels.cuda import sketches as gpu_sketches  # noqa: E402
from kernels.cuda import validate as gpu_validate  # noqa: E402
from kernels.cuda._core import as_device, full, to_host  # noqa: E402
from kernels.hashindex import HashIndex  # noqa: E402
from kernels.sessions import merge_intervals  # noqa: E402
from kernels.sketches import bucket_keys, hash_int64  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

N = 257  # not a multiple of the grid: grid-stride tails are exercised


def _values(rng: np.random.Generator, dtype: str) -> np.ndarray:
    if dtype.startswith("float"):
        x = rng.normal(50.0, 40.0, N)
        special = rng.random(N)
        x[special < 0.08] = np.nan
        x[(special >= 0.08) & (special < 0.12)] = np.inf
        x[(special >= 0.12) & (special < 0.15)] = -np.inf
        x[(special >= 0.15) & (special < 0.25)] = rng.integers(0, 5, N)[
            (special >= 0.15) & (special < 0.25)
        ]
        return x.astype(dtype)
    return rng.integers(-3, 110 if dtype != "int8" else 100, N).astype(dtype)


CONFIGS = [
    # nullable, allow_nan, check_range, lo, hi, allowed, with nulls, with cast failures
    (False, False, True, 0.0, 100.0, None, True, True),
    (True, True, True, -10.0, 90.0, [0.0, 1.0, 2.0, 3.0, 4.0], True, False),
    (True, False, False, 0.0, 1.0, None, False, True),
    (False, True, True, -np.inf, np.inf, [1.0, 3.0], False, False),
]


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int32", "int16", "int8"])
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_check_numeric_matches_cpu(dtype: str, config: int) -> None:
    nullable, allow_nan, check_range, lo, hi, allowed, nulls, casts = CONFIGS[config]
    rng = np.random.default_rng(1000 + config)
    values = _values(rng, dtype)
    is_null = rng.random(N) < 0.1 if nulls else np.empty(0, np.uint8)
    cast_failed = rng.random(N) < 0.05 if casts else np.empty(0, np.uint8)
    allowed_arr = np.asarray(allowed if allowed else [], dtype=np.float64)
    reason = np.zeros(N, dtype=np.int8)
    reason[rng.random(N) < 0.1] = cpu_validate.MISSING_COLUMN  # failed on an earlier column
    failed_field = np.where(reason != 0, 0, -1).astype(np.int16)
    d_reason, d_field = as_device(reason.copy()), as_device(failed_field.copy())

    found = cpu_validate.check_numeric(
        values, is_null, cast_failed, 3, nullable, allow_nan, check_range, lo, hi,
        allowed_arr, reason, failed_field,
    )  # fmt: skip
    d_found = gpu_validate.check_numeric(
        values, is_null, cast_failed, 3, nullable, allow_nan, check_range, lo, hi,
        allowed_arr, d_reason, d_field,
    )  # fmt: skip
    np.testing.assert_array_equal(to_host(d_reason), reason)
    np.testing.assert_array_equal(to_host(d_field), failed_field)
    assert d_found == found
    assert found > 0  # the data exercises the rules


def test_mark_rows_keeps_first_reason() -> None:
    rng = np.random.default_rng(7)
    reason = np.where(rng.random(N) < 0.3, cpu_validate.NAN, 0).astype(np.int8)
    field = np.where(reason != 0, 1, -1).astype(np.int16)
    bad = rng.random(N) < 0.4
    d_reason, d_field = as_device(reason.copy()), as_device(field.copy())
    count = gpu_validate.mark_rows(bad, cpu_validate.NOT_ALLOWED, 5, d_reason, d_field)
    fresh = bad & (reason == 0)
    reason[fresh] = cpu_validate.NOT_ALLOWED
    field[fresh] = 5
    np.testing.assert_array_equal(to_host(d_reason), reason)
    np.testing.assert_array_equal(to_host(d_field), field)
    assert count == int(fresh.sum()) > 0


@pytest.mark.parametrize("width", [1, 3])
def test_hash_index_groups_like_cpu(width: int) -> None:
    rng = np.random.default_rng(width)
    cpu = HashIndex(width, capacity=16)
    gpu = gpu_hash.DeviceHashIndex(width, capacity=16)  # small: growth + rehash happen
    for batch in range(3):
        keys = rng.integers(-4, 5, (N, width)).astype(np.int64)
        keys[:, 0] = rng.integers(0, 30 + 40 * batch, N) * (-1 if width == 3 else 1)
        skip = (rng.random(N) < 0.1).astype(np.int8)
        cpu_ids = cpu.insert(keys[skip == 0])
        gpu_ids = to_host(gpu.insert(keys, skip=skip))
        assert np.all(gpu_ids[skip != 0] == -1)
        kept = gpu_ids[skip == 0]
        stored = to_host(gpu.keys)
        assert len(gpu) == len(cpu)
        assert stored.shape == (len(cpu), width)
        np.testing.assert_array_equal(stored[kept], keys[skip == 0])  # id -> its own key
        # same grouping: one gpu id per cpu id and back
        assert len(set(zip(kept.tolist(), cpu_ids.tolist(), strict=True))) == len(set(kept))
        assert len(np.unique(kept)) == len(np.unique(cpu_ids))
        assert sorted(np.unique(to_host(gpu.keys), axis=0).tolist()) == sorted(
            np.unique(cpu.keys, axis=0).tolist()
        )
    probe = np.concatenate([cpu.keys[::3], np.full((5, width), 10**9, np.int64)])
    found = to_host(gpu.find(probe))
    assert np.all(found[-5:] == -1)
    np.testing.assert_array_equal(to_host(gpu.keys)[found[:-5]], probe[:-5])


def test_inserts_do_not_wait_for_the_length() -> None:
    """The length is counted on the device: batches inserted back to back (no read between
    them) number their new keys after each other, no insert waits for the device while
    the tables have room, and the host's upper bound covers the length until it is read."""
    from kernels.cuda import _core

    rng = np.random.default_rng(11)
    batches = [rng.integers(0, 40 * (b + 1), (N, 2)).astype(np.int64) for b in range(3)]
    gpu = gpu_hash.DeviceHashIndex(2, capacity=4 * N)  # room for every batch: no growth
    waits = sum(_core.WAITS.values())
    on_device = [gpu.insert(keys) for keys in batches]
    assert sum(_core.WAITS.values()) == waits  # no insert waited
    ids = [to_host(batch_ids) for batch_ids in on_device]  # read only now
    bound = gpu.upper_bound()
    assert bound == 3 * N
    cpu = HashIndex(2, capacity=16)
    for keys, got in zip(batches, ids, strict=True):
        want = cpu.insert(keys)
        assert len(set(zip(got.tolist(), want.tolist(), strict=True))) == len(set(want.tolist()))
    assert len(gpu) == len(cpu) <= bound
    assert gpu.upper_bound() == len(cpu)  # exact once read
    np.testing.assert_array_equal(to_host(gpu.keys)[ids[2]], batches[2])
    assert gpu.upper_bound(limit=len(cpu) - 1) == len(cpu)


def test_new_ids_are_numbered_by_a_scan_past_one_block() -> None:
    """A batch longer than one scan block (the multi-level scan numbers its claimers): the
    new keys take exactly the next ids, each row gets its key's id, and nothing that was
    there moves."""
    from kernels.cuda.scan import BLOCK_ITEMS

    rng = np.random.default_rng(11)
    gpu = gpu_hash.DeviceHashIndex(2, capacity=16)
    first = rng.integers(0, 50, (40, 2)).astype(np.int64)
    first_ids = to_host(gpu.insert(first))
    before = len(gpu)
    keys = rng.integers(0, 60, (BLOCK_ITEMS + 300, 2)).astype(np.int64)
    ids = to_host(gpu.insert(keys))
    stored = to_host(gpu.keys)
    np.testing.assert_array_equal(stored[ids], keys)
    assert len(gpu) == len(np.unique(np.concatenate([first, keys]), axis=0))
    old = {tuple(k): i for k, i in zip(first.tolist(), first_ids.tolist(), strict=True)}
    new_ids = sorted({i for k, i in zip(keys.tolist(), ids.tolist(), strict=True)
                      if tuple(k) not in old})  # fmt: skip
    assert new_ids == list(range(before, len(gpu)))
    np.testing.assert_array_equal(to_host(gpu.find(first)), first_ids)


def test_inserts_reuse_their_scratch() -> None:
    """An index keeps its insert scratch (claims, flags, their scan) from insert to insert,
    growing it only for a longer batch; batches of every size after a long one (whose scan
    spans several blocks) still get the CPU's grouping."""
    from kernels.cuda import _core
    from kernels.cuda.scan import BLOCK_ITEMS

    rng = np.random.default_rng(12)
    gpu = gpu_hash.DeviceHashIndex(2, capacity=4 * BLOCK_ITEMS)
    cpu = HashIndex(2, capacity=16)
    grown = []
    for n in (50, BLOCK_ITEMS + 300, 7, 0, BLOCK_ITEMS + 300, 200, BLOCK_ITEMS + 900):
        keys = rng.integers(0, 90, (n, 2)).astype(np.int64)
        before = _core.ALLOCATIONS["_insert_scratch"]
        got = to_host(gpu.insert(keys))
        grown.append(_core.ALLOCATIONS["_insert_scratch"] - before)
        want = cpu.insert(keys)
        assert len(set(zip(got.tolist(), want.tolist(), strict=True))) == len(set(want.tolist()))
        np.testing.assert_array_equal(to_host(gpu.keys)[got], keys)
    assert grown == [1, 1, 0, 0, 0, 0, 1]  # grown for the first batch, then for longer ones
    assert len(gpu) == len(cpu)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_bucket_keys_match_cpu(dtype: str) -> None:
    rng = np.random.default_rng(3)
    if dtype == "int64":
        values = rng.integers(-(10**12), 10**12, N)
        values[:4] = [0, 1, -1, 2**53]
    else:
        values = rng.lognormal(0.0, 8.0, N) * rng.choice([-1.0, 1.0], N)
        values[:9] = [0.0, -0.0, 1e-310, 1.0, 3.4e38, -1e-5, np.nan, np.inf, -np.inf]
        values = values.astype(dtype)
    expected = np.empty(N, dtype=np.int64)
    bucket_keys(values.astype(np.float64), expected)
    np.testing.assert_array_equal(to_host(gpu_sketches.bucket_keys(values)), expected)


def test_canonical_floats_make_every_nan_one() -> None:
    bits = np.array([0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000001,
                     0x7FF0000000000001], dtype=np.uint64).view(np.float64)  # fmt: skip
    values = np.r_[bits, -0.0, 0.0, 2.5]
    got = to_host(ingest.canonical(as_device(values))).view(np.int64)
    want = np.r_[np.full(4, np.nan), 0.0, 0.0, 2.5].view(np.int64)
    np.testing.assert_array_equal(got, want)


def test_hashes_and_sketch_entries_match_cpu() -> None:
    rng = np.random.default_rng(4)
    values = rng.integers(-(2**62), 2**62, N)
    values[:3] = [0, -1, 2**63 - 1]
    expected = np.empty(N, dtype=np.int64)
    hash_int64(values, expected)
    hashes = gpu_sketches.hash_int64(values)
    np.testing.assert_array_equal(to_host(hashes), expected)

    # distinct-count entries (row, agg, hash) of a masked subset, counted on the device
    rows = rng.integers(0, 6, N)
    small = rng.integers(0, 12, N)
    small_h = np.empty(N, dtype=np.int64)
    hash_int64(small, small_h)
    index = np.flatnonzero(rng.random(N) < 0.7)
    entries = to_host(gpu_sketches.sketch_entries(rows, 2, small_h[index], index))
    np.testing.assert_array_equal(entries, np.c_[rows[index], np.full(len(index), 2),
                                                 small_h[index]])  # fmt: skip
    gpu_index = gpu_hash.DeviceHashIndex(3, capacity=16)
    assert _device_counts(gpu_index, gpu_index.insert(entries)) == _tally(entries)


def _device_counts(index: gpu_hash.DeviceHashIndex, ids: object) -> dict[tuple[int, ...], int]:
    """{entry key: count} of inserted entries, counted on the device."""
    counts = full(len(index), 0, np.int64)
    gpu_sketches.add_counts(ids, counts)
    return {tuple(k): c for k, c in zip(to_host(index.keys).tolist(),
                                        to_host(counts).tolist(), strict=True)}  # fmt: skip


def _tally(entries: np.ndarray) -> dict[tuple[int, ...], int]:
    """The host oracle: {entry key: how many times it occurs}."""
    want: dict[tuple[int, ...], int] = {}
    for key in entries.tolist():
        want[tuple(key)] = want.get(tuple(key), 0) + 1
    return want


def test_uncompacted_sketch_entries_are_skipped() -> None:
    """An event index with -1 for masked events, and rows of -1, give skipped entries: the
    counts equal those of the compacted entries (a dict oracle)."""
    rng = np.random.default_rng(9)
    rows = rng.integers(-1, 6, N)  # -1: an event without a row
    keys = rng.integers(0, 5, N)
    index = np.where(rng.random(N) < 0.7, np.arange(N), -1)
    skip = full(N, 7, np.int8)
    entries = to_host(gpu_sketches.sketch_entries(rows, 3, keys, index, skip=skip))
    kept = (index >= 0) & (rows[np.maximum(index, 0)] >= 0)
    np.testing.assert_array_equal(to_host(skip), (~kept).astype(np.int8))
    np.testing.assert_array_equal(entries[kept], np.c_[rows[index[kept]], np.full(kept.sum(), 3),
                                                       keys[kept]])  # fmt: skip
    np.testing.assert_array_equal(entries[~kept, 0], -1)
    gpu_index = gpu_hash.DeviceHashIndex(3, capacity=16)
    ids = gpu_index.insert(entries, skip)
    assert (to_host(ids)[~kept] == -1).all()
    assert _device_counts(gpu_index, ids) == _tally(entries[kept])


@pytest.mark.parametrize("width", [0, 1, 2])
def test_session_merge_matches_cpu(width: int) -> None:
    rng = np.random.default_rng(10 + width)
    atoms = rng.integers(0, 4, (N, width)).astype(np.int64)
    start = rng.integers(0, 2_000 if width else 20_000, N).astype(np.int64)
    end = start + rng.integers(1, 120, N)
    order = np.lexsort((start, *atoms.T[::-1])) if width else np.argsort(start, kind="stable")
    atoms, start, end = np.ascontiguousarray(atoms[order]), start[order], end[order]
    expected = np.empty(N, dtype=np.int64)
    n_expected = merge_intervals(atoms if width else np.zeros((N, 0), np.int64), start, end,
                                 expected)  # fmt: skip
    ids, n_groups = gpu_sessions.merge_intervals(atoms, start, end)
    assert n_groups == n_expected
    np.testing.assert_array_equal(to_host(ids), expected)
    assert 1 < n_groups < N
