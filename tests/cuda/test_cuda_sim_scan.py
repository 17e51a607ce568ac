"""Device exclusive prefix sums (:mod:`kernels.cuda.scan`) against ``numpy.cumsum``.

Sizes around every boundary of the scan: empty, a single value, the one-block
limit and one past it, and an array whose chunk sums need a second level. Values
are random and signed (counts are never negative in the engine, but nothing in
the scan relies on it); uint8 flags count one for every nonzero flag. Also the
host cost: the number of launches of each size, and that
:func:`exclusive_offsets` reads nothing back.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from kernels.cuda import _core  # noqa: E402
from kernels.cuda.scan import (  # noqa: E402
    BLOCK_ITEMS,
    CHUNK,
    device_flag_offsets,
    exclusive_offsets,
    exclusive_scan,
    flag_offsets,
)

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

# Two levels of chunk sums: n / CHUNK is still above one block's worth.
SIZES = [0, 1, 2, 17, BLOCK_ITEMS - 1, BLOCK_ITEMS, BLOCK_ITEMS + 1, CHUNK * BLOCK_ITEMS + 5]


def _expected(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(values)[:-1]]).astype(np.int64) if len(values) else values


@pytest.mark.parametrize("n", SIZES)
def test_exclusive_scan_matches_cumsum(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.integers(-1000, 1000, n, dtype=np.int64)
    offsets, total = exclusive_scan(values)
    np.testing.assert_array_equal(offsets.copy_to_host(), _expected(values))
    assert total == int(values.sum())
    np.testing.assert_array_equal(exclusive_offsets(values).copy_to_host(), _expected(values))


@pytest.mark.parametrize("n", SIZES)
def test_flag_offsets_count_set_flags(n: int) -> None:
    """Any nonzero uint8 counts one (flags are not always 0/1)."""
    rng = np.random.default_rng(n + 1)
    flags = rng.choice(np.array([0, 0, 1, 7, 255], dtype=np.uint8), n)
    offsets, total = flag_offsets(flags)
    set_ = (flags != 0).astype(np.int64)
    np.testing.assert_array_equal(offsets.copy_to_host(), _expected(set_))
    assert total == int(set_.sum())


@pytest.mark.parametrize("n", SIZES)
def test_flag_offsets_into_given_arrays(n: int) -> None:
    """A caller's scratch (``into``, longer than needed, holding old values) receives the
    offsets and the count, and is what comes back; nothing is allocated but the chunk
    sums of a long scan."""
    from kernels.cuda._core import as_device, full, span

    rng = np.random.default_rng(n + 2)
    flags = rng.choice(np.array([0, 1, 9], dtype=np.uint8), n)
    on_device = as_device(flags)
    out, total = full(n + 7, -5, np.int64), full(1, 123, np.int64)
    allocations = sum(_core.ALLOCATIONS.values())
    got = device_flag_offsets(on_device, into=(span(out, 0, n), total))
    levels, m = 0, n  # one allocation (chunk sums and their offsets) per level of chunks
    while m > BLOCK_ITEMS:
        levels, m = levels + 1, -(-m // CHUNK)
    assert sum(_core.ALLOCATIONS.values()) - allocations == levels
    assert got[1] is total
    set_ = (flags != 0).astype(np.int64)
    np.testing.assert_array_equal(got[0].copy_to_host(), _expected(set_))
    np.testing.assert_array_equal(out.copy_to_host()[n:], -5)  # past the span: untouched
    assert total.copy_to_host()[0] == int(set_.sum())


def test_large_counts_do_not_overflow_a_32_bit_sum() -> None:
    values = np.full(BLOCK_ITEMS + 3, 2**40, dtype=np.int64)
    offsets, total = exclusive_scan(values)
    assert total == (BLOCK_ITEMS + 3) * 2**40
    np.testing.assert_array_equal(offsets.copy_to_host(), _expected(values))


@pytest.mark.parametrize(
    ("n", "launches"),
    [(0, 0), (5, 1), (BLOCK_ITEMS, 1), (BLOCK_ITEMS + 1, 3), (CHUNK * BLOCK_ITEMS + 5, 5)],
)
def test_launches_and_reads(n: int, launches: int) -> None:
    """One launch up to a block's worth, two more per level; offsets alone read nothing."""
    values = np.ones(n, dtype=np.int64)
    before_launches, before_reads = sum(_core.LAUNCHES.values()), sum(_core.READS.values())
    before_memsets = _core.LAUNCHES["memset"]
    exclusive_offsets(_core.as_device(values))
    memsets = _core.LAUNCHES["memset"] - before_memsets
    assert sum(_core.LAUNCHES.values()) - before_launches - memsets == launches
    assert sum(_core.READS.values()) == before_reads


def test_empty_scan_waits_for_nothing() -> None:
    before = sum(_core.READS.values())
    offsets, total = exclusive_scan(_core.as_device(np.empty(0, np.int64)))
    assert total == 0 and offsets.shape == (0,)
    assert sum(_core.READS.values()) == before
