"""A stable LSD radix sort of int64 columns on the device (the twin of ``np.lexsort``).

Each column is sorted by its offset from its minimum (found by a device
reduction), so only the bits its range needs are passed over: a batch of event
times a few seconds apart takes two passes, not eight. A pass orders the
(key, row) pairs by one 8-bit digit and keeps the order of equal digits, so
passes over the last column first, then the one before, give a lexicographic
order that breaks ties by position, as NumPy's stable ``lexsort`` does.

A pass needs no shared memory and no atomics: the pairs are cut into chunks of
consecutive values, one thread per chunk. Thread ``t`` counts its digits into
column ``t`` of a ``(256, n_chunks)`` table, an exclusive scan of the table (digit
major) gives every (digit, chunk) its first output slot, and thread ``t`` walks its
chunk again, in order, writing each pair at its digit's next slot: stable by
construction. Work is ``O(n)`` per pass whatever the key distribution (a hot key is
no slower than many keys).

API (device arrays; host arrays are copied):

``lex_order(*columns, ranges=None) -> order``: int64 row numbers ordering the rows by
    ``columns[0]``, then ``columns[1]``, ... (ties by row number); ``ranges``: the
    columns' (low, high) bounds when the caller knows them (no read back).
``iota(n) -> 0..n-1`` (int64).
``bounds(columns) -> [(min, max), ...]``: of equally long int64 columns, one read back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import int64, njit, types, uint64

from kernels.cuda import topk  # noqa: F401  (registers topk.iota)
from kernels.cuda._core import (
    DEVICE_GRID_THREADS,
    arr,
    as_device,
    constant,
    copy,
    cuda,
    empty,
    empty_many,
    kernel,
    launch,
    launch_reduce,
    register,
    to_host,
)
from kernels.cuda.ingest import take
from kernels.cuda.scan import exclusive_offsets
from kernels.cuda.windows import INT64_MAX, INT64_MIN

DIGIT_BITS = 8
BINS = 1 << DIGIT_BITS
CHUNK = BINS  # values per thread at least: the count table is no larger than the input
_I1, _i8 = arr("int64"), types.int64


@njit(inline="always")
def digit_of(key, lo, shift):  # pragma: no cover - compiled
    """Digit ``shift // 8`` of ``key - lo`` (taken as unsigned: any int64 range fits).

    Compiled on the CPU target too, so that under the simulator no uint64 value
    reaches simulated (Python) code, as in :func:`kernels.cuda.hashindex.hash_step`.
    """
    return int64(((uint64(key) - uint64(lo)) >> uint64(shift)) & uint64(BINS - 1))


@register("sort.digit_counts", ("int64",), lambda dt: types.void(_I1, _i8, _i8, _i8, _I1))
def _digit_counts(keys, lo, shift, chunk, counts):  # pragma: no cover - compiled
    """``counts[d * n_chunks + t]``: values of chunk ``t`` with digit ``d``."""
    n = keys.shape[0]
    n_chunks = counts.shape[0] // BINS
    for t in range(cuda.grid(1), n_chunks, cuda.gridsize(1)):
        for d in range(BINS):
            counts[d * n_chunks + t] = 0
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            counts[digit_of(keys[i], lo, shift) * n_chunks + t] += 1


def _scatter_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _i8, _i8, _i8, _I1, _I1, _I1)


@register("sort.scatter", ("int64",), _scatter_sig)
def _scatter(keys, rows, lo, shift, chunk, cursor, out_keys, out_rows):  # pragma: no cover
    """Chunk ``t`` writes its pairs in order from ``cursor[d * n_chunks + t]`` (the scan)."""
    n = keys.shape[0]
    n_chunks = cursor.shape[0] // BINS
    for t in range(cuda.grid(1), n_chunks, cuda.gridsize(1)):
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            slot = digit_of(keys[i], lo, shift) * n_chunks + t
            p = cursor[slot]
            cursor[slot] = p + 1
            out_keys[p] = keys[i]
            out_rows[p] = rows[i]


@register("sort.bounds", ("int64",), lambda dt: types.void(_I1, types.int64, _I1))
def _bounds(column, c, out):  # pragma: no cover - compiled
    """``out[2c], out[2c + 1]`` = min, max of ``column`` (``out`` starts at (INT64_MAX,
    INT64_MIN) pairs); each thread reduces its values first (``launch_reduce``)."""
    lo, hi = INT64_MAX, INT64_MIN
    for i in range(cuda.grid(1), column.shape[0], cuda.gridsize(1)):
        lo = min(lo, column[i])
        hi = max(hi, column[i])
    if lo < out[2 * c]:  # a plain read first: most threads lose, no atomic
        cuda.atomic.min(out, 2 * c, lo)
    if hi > out[2 * c + 1]:
        cuda.atomic.max(out, 2 * c + 1, hi)


def bounds(columns: list[Any]) -> list[tuple[int, int]]:
    """(min, max) of each of the equally long int64 device columns: one pass each and one
    read back (one wait for all of them, not one per column)."""
    n = int(columns[0].shape[0])
    start = np.tile(np.array([INT64_MAX, INT64_MIN], np.int64), len(columns))
    out = empty(2 * len(columns), np.int64)
    copy(out, constant(start))
    for c, column in enumerate(columns):
        kernel("sort.bounds")[launch_reduce(n)](column, c, out)
    found = to_host(out).tolist()
    return [(found[2 * c], found[2 * c + 1]) for c in range(len(columns))]


def iota(n: int) -> Any:
    """``0..n-1`` as a device int64 array."""
    out = empty(n, np.int64)
    if n:
        kernel("topk.iota")[launch(n)](out)
    return out


def _radix_pass(keys: Any, rows: Any, lo: int, shift: int) -> tuple[Any, Any]:
    """(keys, rows) stably ordered by the digit of ``keys - lo`` at ``shift``."""
    n = int(keys.shape[0])
    chunk = max(CHUNK, -(-n // DEVICE_GRID_THREADS))  # as on a card, also when simulated
    n_chunks = -(-n // chunk)
    counts, out_keys, out_rows = empty_many((BINS * n_chunks, np.int64), (n, np.int64),
                                            (n, np.int64))  # fmt: skip
    kernel("sort.digit_counts")[launch(n_chunks)](keys, lo, shift, chunk, counts)
    cursor = exclusive_offsets(counts)
    kernel("sort.scatter")[launch(n_chunks)](keys, rows, lo, shift, chunk, cursor, out_keys,
                                             out_rows)  # fmt: skip
    return out_keys, out_rows


def lex_order(*columns: Any, ranges: list[tuple[int, int]] | None = None) -> Any:
    """Row numbers sorting the rows by ``columns[0]``, then ``columns[1]``, ... (stable).

    ``ranges``: a (low, high) bound of each column that the caller knows (a wider range
    costs a pass per 8 more bits); without them the device finds the ranges, and the host
    waits for them.
    """
    n = int(columns[0].shape[0])
    order = iota(n)
    if n < 2:
        return order
    device_columns = [as_device(column, np.int64) for column in columns]
    if ranges is None:
        ranges = bounds(device_columns)
    for column, (lo, hi) in zip(reversed(device_columns), reversed(ranges), strict=True):
        bits = (hi - lo).bit_length()
        if bits == 0:
            continue
        keys = take(column, order)
        for shift in range(0, bits, DIGIT_BITS):
            keys, order = _radix_pass(keys, order, lo, shift)
    return order


__all__ = ["bounds", "iota", "lex_order"]
