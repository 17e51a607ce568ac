"""Sketch inputs on the device: quantile bucket keys and distinct-count hashes.

The scalar logic is the CPU's own: ``bucket_key`` (:mod:`kernels.sketches`) and
``mix64`` (:mod:`kernels.hashindex`) are ``@njit(inline="always")`` helpers that
numba-cuda compiles into these kernels, so a value lands in the same bucket
and hashes to the same 64-bit value on either backend.

API (device arrays; host arrays are copied):

``bucket_keys(values) -> keys``: int64 bucket keys of float64/float32/int64 values.
``hash_int64(values) -> hashes``: int64 hashes of int64 values (floats: pass
``(values + 0.0).view(int64)`` so that -0.0 and 0.0 hash alike, as on the CPU).
``sketch_entries(ids, agg, keys, index=None, out=None, skip=None) -> entries``: the
``(n, 3)`` int64 entry keys ``(ids[index[k]], agg, keys[k])`` that a sketch index counts;
an entry whose ``index[k]`` or row is -1 has row -1 and, with ``skip``, ``skip[k] = 1``
(for the insert to pass it by).
``add_counts(ids, counts)``: ``counts[ids[i]] += 1`` for ``ids[i] >= 0`` (atomic).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import float64, types

from kernels.cuda._core import arr, as_device, constant, cuda, empty, kernel, launch, register
from kernels.sketches import bucket_key, hash_value


def _unary_sig(dt: np.dtype) -> Any:
    return types.void(arr(dt), arr("int64"))


@register("sketch.bucket_keys", ("float64", "float32", "int64"), _unary_sig)
def _bucket_keys(values, out):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        out[i] = bucket_key(float64(values[i]))


@register("sketch.hash_int64", ("int64",), _unary_sig)
def _hash_int64(values, out):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        out[i] = hash_value(values[i])


def _entries_sig(dt: np.dtype) -> Any:
    i8 = arr("int64")
    return types.void(i8, types.int64, i8, i8, arr("int64", 2), arr("int8"))


@register("sketch.entries", ("int64",), _entries_sig)
def _entries(ids, agg, keys, index, out, skip):  # pragma: no cover - compiled
    has_index = index.shape[0] > 0
    has_skip = skip.shape[0] > 0
    for k in range(cuda.grid(1), keys.shape[0], cuda.gridsize(1)):
        event = index[k] if has_index else k
        row = ids[event] if event >= 0 else -1
        out[k, 0] = row
        out[k, 1] = agg
        out[k, 2] = keys[k]
        if has_skip:
            skip[k] = 1 if row < 0 else 0


def _counts_sig(dt: np.dtype) -> Any:
    return types.void(arr("int64"), arr("int64"))


@register("sketch.add_counts", ("int64",), _counts_sig)
def _add_counts(ids, counts):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), ids.shape[0], cuda.gridsize(1)):
        r = ids[i]
        if r >= 0:
            cuda.atomic.add(counts, r, 1)


def bucket_keys(values: Any) -> Any:
    """Int64 DDSketch bucket keys of ``values`` (device array)."""
    values = as_device(values)
    out = empty(values.shape[0], np.int64)
    if values.shape[0]:
        blocks, threads = launch(values.shape[0])
        kernel("sketch.bucket_keys", values.dtype)[blocks, threads](values, out)
    return out


def hash_int64(values: Any) -> Any:
    """Int64 hashes of int64 ``values`` (device array)."""
    values = as_device(values, np.int64)
    out = empty(values.shape[0], np.int64)
    if values.shape[0]:
        blocks, threads = launch(values.shape[0])
        kernel("sketch.hash_int64")[blocks, threads](values, out)
    return out


_NO_INDEX = np.empty(0, dtype=np.int64)
_NO_SKIP = np.empty(0, dtype=np.int8)


def sketch_entries(
    ids: Any, agg: int, keys: Any, index: Any = None, out: Any = None, skip: Any = None
) -> Any:
    """``(n, 3)`` entry keys ``(row, agg, bucket-or-hash)`` (device array; written into
    ``out`` when given, such as rows of one array holding several aggregations' entries).

    ``index[k] = -1`` (an event index that was not compacted) or ``ids[index[k]] = -1``
    gives row -1 and, when ``skip`` (int8, n) is given, ``skip[k] = 1``."""
    keys = as_device(keys, np.int64)
    n = keys.shape[0]
    out = empty((n, 3), np.int64) if out is None else out
    if n:
        blocks, threads = launch(n)
        kernel("sketch.entries")[blocks, threads](
            as_device(ids, np.int64), int(agg), keys,
            constant(_NO_INDEX) if index is None else as_device(index, np.int64), out,
            constant(_NO_SKIP) if skip is None else skip,
        )  # fmt: skip
    return out


def add_counts(ids: Any, counts: Any) -> None:
    """``counts[ids[i]] += 1`` for every ``ids[i] >= 0`` (atomic; ``counts`` int64 on device)."""
    ids = as_device(ids, np.int64)
    if ids.shape[0]:
        blocks, threads = launch(ids.shape[0])
        kernel("sketch.add_counts")[blocks, threads](ids, counts)


__all__ = ["add_counts", "bucket_keys", "hash_int64", "sketch_entries"]
