"""Exclusive prefix sums of int64 arrays on the device.

The building block of stream compaction, of allocating output slots per row
(window pairs) and of counting sorts. An array of up to ``BLOCK_ITEMS`` values
is scanned by a single block in one launch: each thread sums a run of values
into shared memory, one thread scans those sums, and each thread rescans its
run from its offset. A longer array is cut into chunks of ``CHUNK`` consecutive
values, one thread per chunk: a first pass sums every chunk, the chunk sums are
scanned the same way (recursively, until they fit one block), and a second pass
rescans every chunk from its offset. A scan of ``n`` values therefore takes
``1 + 2 * ceil(log16(n / BLOCK_ITEMS))`` launches, the same under the simulator as
on a card; each launch costs the host tens of microseconds, so the engine's
per-batch scans (a few thousand values each) take one instead of five to nine.

API (device arrays; host arrays are copied):

``exclusive_scan(values) -> (offsets, total)``: ``offsets[i] = sum(values[:i])``
    (a device array) and ``sum(values)`` (a host int, the only value read back).
``exclusive_offsets(values) -> offsets``: the same offsets without reading the
    total, which makes the host wait for the device (counting sorts know it).
``flag_offsets(flags) -> (offsets, total)``: the same for uint8 flags, each set
    flag counting one (stream compaction).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import int64, types

from kernels.cuda._core import (
    DEVICE_GRID_THREADS,
    SIM_THREADS,
    SIMULATOR,
    THREADS,
    arr,
    as_device,
    cuda,
    empty,
    empty_many,
    fill,
    full,
    kernel,
    launch,
    register,
    to_host,
)

CHUNK = 16  # values per thread (two cache lines of int64)
BLOCK_THREADS = SIM_THREADS if SIMULATOR else THREADS
BLOCK_ITEMS = THREADS * CHUNK  # scanned by one block in one launch
_I1 = arr("int64")


SCAN_DTYPES = ("int64", "uint8")  # uint8: flags, each counting as one when set (cap 1)
NO_CAP = np.iinfo(np.int64).max


@register("scan.block", SCAN_DTYPES, lambda dt: types.void(arr(dt), _I1, _I1, types.int64))
def _block_scan(values, out, total, cap):  # pragma: no cover - compiled
    """One block scans all of ``values`` (at most a few thousand) and writes the total."""
    n = values.shape[0]
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    run = (n + threads - 1) // threads
    lo = min(n, tid * run)
    hi = min(n, lo + run)
    sums = cuda.shared.array(THREADS, int64)
    acc = int64(0)
    for i in range(lo, hi):
        acc += min(int64(values[i]), cap)
    sums[tid] = acc
    cuda.syncthreads()
    if tid == 0:
        acc = int64(0)
        for t in range(threads):
            v = sums[t]
            sums[t] = acc
            acc += v
        total[0] = acc
    cuda.syncthreads()
    acc = sums[tid]
    for i in range(lo, hi):
        out[i] = acc
        acc += min(int64(values[i]), cap)


def _chunk_sig(dt: np.dtype) -> Any:
    return types.void(arr(dt), types.int64, _I1, types.int64)


@register("scan.chunk_sums", SCAN_DTYPES, _chunk_sig)
def _chunk_sums(values, chunk, sums, cap):  # pragma: no cover - compiled
    n = values.shape[0]
    for t in range(cuda.grid(1), sums.shape[0], cuda.gridsize(1)):
        total = int64(0)
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            total += min(int64(values[i]), cap)
        sums[t] = total


def _chunk_scan_sig(dt: np.dtype) -> Any:
    return types.void(arr(dt), types.int64, _I1, _I1, types.int64)


@register("scan.chunk_scan", SCAN_DTYPES, _chunk_scan_sig)
def _chunk_scan(values, chunk, offsets, out, cap):  # pragma: no cover - compiled
    n = values.shape[0]
    for t in range(cuda.grid(1), offsets.shape[0], cuda.gridsize(1)):
        acc = offsets[t]
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            out[i] = acc
            acc += min(int64(values[i]), cap)


def exclusive_scan(values: Any) -> tuple[Any, int]:
    """(device exclusive prefix sums of ``values``, their total as a host int)."""
    values = as_device(values, np.int64)
    out, total = _scan(values)
    return out, int(to_host(total)[0]) if values.shape[0] else 0


def exclusive_offsets(values: Any) -> Any:
    """Device exclusive prefix sums of ``values``; nothing is read back."""
    return _scan(as_device(values, np.int64))[0]


def flag_offsets(flags: Any) -> tuple[Any, int]:
    """(``offsets[i]`` = how many of ``flags[:i]`` are set, how many are set): the scan of a
    stream compaction, straight from uint8 flags (no int64 copy of them first)."""
    out, total = device_flag_offsets(flags)
    return out, int(to_host(total)[0]) if out.shape[0] else 0


def device_flag_offsets(flags: Any, into: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    """:func:`flag_offsets` with the count left on the device (a one-item int64 array), so
    that nothing waits for the device; written into ``into`` = (offsets, count) when given
    (the caller's scratch, as a hash insert keeps)."""
    return _scan(as_device(flags, np.uint8), cap=1, into=into)


def _scan(values: Any, cap: int = NO_CAP, into: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    """(exclusive prefix sums of ``min(values, cap)``, a one-item device array holding
    their total), in ``into`` when given."""
    n = int(values.shape[0])
    if n == 0:
        if into is None:
            return empty(0, np.int64), full(1, 0, np.int64)
        fill(into[1], 0)
        return into
    # The output and its small companion (the total, or the chunk sums): one allocation.
    if n <= BLOCK_ITEMS:
        out, total = empty_many((n, np.int64), (1, np.int64)) if into is None else into
        kernel("scan.block", values.dtype)[1, BLOCK_THREADS](values, out, total, cap)
        return out, total
    chunk = max(CHUNK, -(-n // DEVICE_GRID_THREADS))  # as on a card, also when simulated
    n_chunks = -(-n // chunk)
    inner = None  # where the chunk sums' scan goes
    if into is None:
        out, sums = empty_many((n, np.int64), (n_chunks, np.int64))
    else:
        sums, chunk_offsets = empty_many((n_chunks, np.int64), (n_chunks, np.int64))
        out, inner = into[0], (chunk_offsets, into[1])
    kernel("scan.chunk_sums", values.dtype)[launch(n_chunks)](values, chunk, sums, cap)
    offsets, total = _scan(sums, into=inner)
    kernel("scan.chunk_scan", values.dtype)[launch(n_chunks)](values, chunk, offsets, out, cap)
    return out, total


__all__ = [
    "BLOCK_ITEMS",
    "CHUNK",
    "device_flag_offsets",
    "exclusive_offsets",
    "exclusive_scan",
    "flag_offsets",
]
