"""Exclusive prefix sums of int64 arrays on the device.

The building block of stream compaction, of allocating output slots per row
(window pairs) and of counting sorts. The array is cut into chunks of
``CHUNK`` (or more) consecutive values, one thread per chunk: a first pass
sums every chunk, the chunk sums are scanned the same way (recursively, one
level per factor of ``CHUNK``, down to a single chunk), and a second pass
rescans every chunk from its offset. No shared memory and no barriers, so the
simulator runs it at the speed of any other kernel; on a device each thread
walks one or two cache lines.

API (device arrays; host arrays are copied):

``exclusive_scan(values) -> (offsets, total)``: ``offsets[i] = sum(values[:i])``
    (a device array) and ``sum(values)`` (a host int, the only value read back).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import int64, types

from kernels.cuda._core import (
    GRID_THREADS,
    arr,
    as_device,
    cuda,
    empty,
    full,
    kernel,
    launch,
    register,
    to_host,
)

CHUNK = 16  # values per thread (two cache lines of int64)
_I1 = arr("int64")


@register("scan.chunk_sums", ("int64",), lambda dt: types.void(_I1, types.int64, _I1))
def _chunk_sums(values, chunk, sums):  # pragma: no cover - compiled
    n = values.shape[0]
    for t in range(cuda.grid(1), sums.shape[0], cuda.gridsize(1)):
        total = int64(0)
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            total += values[i]
        sums[t] = total


@register("scan.chunk_scan", ("int64",), lambda dt: types.void(_I1, types.int64, _I1, _I1))
def _chunk_scan(values, chunk, offsets, out):  # pragma: no cover - compiled
    n = values.shape[0]
    for t in range(cuda.grid(1), offsets.shape[0], cuda.gridsize(1)):
        acc = offsets[t]
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            v = values[i]
            out[i] = acc
            acc += v


def exclusive_scan(values: Any) -> tuple[Any, int]:
    """(device exclusive prefix sums of ``values``, their total as a host int)."""
    values = as_device(values, np.int64)
    n = int(values.shape[0])
    out = empty(n, np.int64)
    if n == 0:
        return out, 0
    chunk = max(CHUNK, -(-n // GRID_THREADS))
    n_chunks = -(-n // chunk)
    sums = empty(n_chunks, np.int64)
    kernel("scan.chunk_sums")[launch(n_chunks)](values, chunk, sums)
    if n_chunks == 1:
        offsets, total = full(1, 0, np.int64), int(to_host(sums)[0])
    else:
        offsets, total = exclusive_scan(sums)
    kernel("scan.chunk_scan")[launch(n_chunks)](values, chunk, offsets, out)
    return out, total


__all__ = ["CHUNK", "exclusive_scan"]
