"""Sketch entries of pane rows on the device: weighted counts, renumbering, combination.

Entries are ``(row, aggregation, bucket-or-hash) -> count`` (see :mod:`kernels.sketches`),
kept in a :class:`~kernels.cuda.hashindex.DeviceHashIndex` of width 3 with an int64
count per id. Instead of the CPU's k-way merge of sorted runs, windows combine them
by hashing: the entries are counting-sorted by row, every (pane row -> group) pair
copies its row's entries as ``(segment, bucket-or-hash)`` with ``segment = group *
n_slots + slot`` (``slot``: the aggregation's place among the sketch aggregations)
into a fresh width-2 index whose counts add up atomically, and the distinct keys
are counting-sorted by segment. One thread per segment then finishes it: a distinct
count is its length; a quantile is the smallest bucket ``b`` with ``count(key <= b)``
above rank ``floor(q * (total - 1))``, found by bisection on the key without any
sort (the CPU's bucket, which is where the cumulative count first exceeds the rank).

API (device arrays; host arrays are copied):

``add_weights(ids, weights, counts)``: ``counts[ids[i]] += weights[i]`` for ``ids[i] >= 0``.
``renumber(keys, old_ids, new_ids, n_old) -> (moved, skip)``: entry keys with row
    ``old_ids[j]`` renamed ``new_ids[j]``; ``skip`` (int8) marks the entries of
    other rows, for :meth:`DeviceHashIndex.insert`.
``combine(keys, counts, n_rows, src, dst, position, n_groups, slot_of, is_quantile, q)
    -> (result, valid)``: ``(n_slots, n_groups)`` arrays, column ``position[g]`` for
    group ``g`` (rows ``src[j]`` with ``dst[j] == g``): the distinct count (always
    valid), or the quantile's bucket key (valid when the group has values).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import types

from kernels.cuda._core import (
    arr,
    as_device,
    constant,
    cuda,
    device_function,
    empty,
    full,
    kernel,
    launch,
    register,
)
from kernels.cuda.hashindex import DeviceHashIndex
from kernels.cuda.scan import exclusive_scan
from kernels.cuda.windows import counting_order, scatter_rows

_I1, _I2, _B1, _B2, _F1 = arr("int64"), arr("int64", 2), arr("bool"), arr("bool", 2), arr("float64")
_i8 = types.int64


@register("sketch_state.add_weights", ("int64",), lambda dt: types.void(_I1, _I1, _I1))
def _add_weights(ids, weights, counts):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), ids.shape[0], cuda.gridsize(1)):
        r = ids[i]
        if r >= 0:
            cuda.atomic.add(counts, r, weights[i])


@register("sketch_state.renumber", ("int64",), lambda dt: types.void(_I2, _I1, _I2, arr("int8")))
def _renumber(keys, new_of_old, moved, skip):  # pragma: no cover - compiled
    for e in range(cuda.grid(1), keys.shape[0], cuda.gridsize(1)):
        r = new_of_old[keys[e, 0]]
        moved[e, 0] = r
        moved[e, 1] = keys[e, 1]
        moved[e, 2] = keys[e, 2]
        skip[e] = 1 if r < 0 else 0


@register("sketch_state.new_of_old", ("int64",), lambda dt: types.void(_I1, _I1, _I1))
def _new_of_old(old_ids, new_ids, new_of_old):  # pragma: no cover - compiled
    for j in range(cuda.grid(1), old_ids.shape[0], cuda.gridsize(1)):
        new_of_old[old_ids[j]] = new_ids[j]


@register("sketch_state.bounds", ("int64",), lambda dt: types.void(_I2, _I1, _I1))
def _bounds(keys, starts, ends):  # pragma: no cover - compiled
    """Rows sorted by ``keys[:, 0]``: value ``v`` spans rows ``starts[v]..ends[v]-1``."""
    n = keys.shape[0]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        v = keys[i, 0]
        if i == 0 or keys[i - 1, 0] != v:
            starts[v] = i
        if i == n - 1 or keys[i + 1, 0] != v:
            ends[v] = i + 1


@register("sketch_state.pair_sizes", ("int64",), lambda dt: types.void(_I1, _I1, _I1, _I1))
def _pair_sizes(src, starts, ends, sizes):  # pragma: no cover - compiled
    for j in range(cuda.grid(1), src.shape[0], cuda.gridsize(1)):
        sizes[j] = ends[src[j]] - starts[src[j]]


def _expand_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I1, _I1, _I2, _I1, _I1, _i8, _I2, _I1)


@register("sketch_state.expand", ("int64",), _expand_sig)
def _expand(
    src, dst, offsets, starts, ends, keys, counts, slot_of, n_slots, out_keys, out_counts
):  # pragma: no cover - compiled
    """Pair ``j`` writes its row's entries, as ``(segment, key)``, from slot ``offsets[j]`` on."""
    for j in range(cuda.grid(1), src.shape[0], cuda.gridsize(1)):
        r = src[j]
        first = dst[j] * n_slots
        o = offsets[j] - starts[r]
        for e in range(starts[r], ends[r]):
            out_keys[o + e, 0] = first + slot_of[keys[e, 1]]
            out_keys[o + e, 1] = keys[e, 2]
            out_counts[o + e] = counts[e]


@device_function
def _weight_upto(keys, counts, lo, hi, v):  # pragma: no cover - compiled
    """Total count of the entries ``lo..hi-1`` whose key is at most ``v``."""
    w = 0
    for e in range(lo, hi):
        if keys[e, 1] <= v:
            w += counts[e]
    return w


@device_function
def _quantile_key(keys, counts, lo, hi, q):  # pragma: no cover - compiled
    """The bucket of rank ``floor(q * (total - 1))`` among the entries ``lo..hi-1`` (not empty)."""
    total = 0
    k_lo = keys[lo, 1]
    k_hi = k_lo
    for e in range(lo, hi):
        total += counts[e]
        k_lo = min(k_lo, keys[e, 1])
        k_hi = max(k_hi, keys[e, 1])
    rank = math.floor(q * (total - 1))
    while k_lo < k_hi:  # invariant: the answer is in k_lo..k_hi
        mid = (k_lo & k_hi) + ((k_lo ^ k_hi) >> 1)  # floor of the mean, without overflow
        if _weight_upto(keys, counts, lo, hi, mid) > rank:
            k_hi = mid
        else:
            k_lo = mid + 1
    return k_lo


def _finish_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I2, _I1, _B1, _F1, _I1, _I2, _B2)


@register("sketch_state.finish", ("int64",), _finish_sig)
def _finish(
    starts, ends, keys, counts, is_quantile, q, position, result, valid
):  # pragma: no cover - compiled
    n_slots = is_quantile.shape[0]
    for s in range(cuda.grid(1), starts.shape[0], cuda.gridsize(1)):
        g = s // n_slots
        slot = s - g * n_slots
        p = position[g]
        lo = starts[s]
        hi = ends[s]
        if not is_quantile[slot]:
            result[slot, p] = hi - lo
            valid[slot, p] = True
        elif hi > lo:
            result[slot, p] = _quantile_key(keys, counts, lo, hi, q[slot])
            valid[slot, p] = True
        else:
            result[slot, p] = 0
            valid[slot, p] = False


# -- host-callable steps ----------------------------------------------------------------


def add_weights(ids: Any, weights: Any, counts: Any) -> None:
    """``counts[ids[i]] += weights[i]`` for every ``ids[i] >= 0`` (atomic, on the device)."""
    n = int(ids.shape[0])
    if n:
        kernel("sketch_state.add_weights")[launch(n)](ids, as_device(weights, np.int64), counts)


def renumber(keys: Any, old_ids: Any, new_ids: Any, n_old: int) -> tuple[Any, Any]:
    """(entry keys with rows ``old_ids`` renamed ``new_ids``, int8 skip flags of the others)."""
    n = int(keys.shape[0])
    new_of_old = full(n_old, -1, np.int64)
    if old_ids.shape[0]:
        kernel("sketch_state.new_of_old")[launch(old_ids.shape[0])](
            as_device(old_ids, np.int64), as_device(new_ids, np.int64), new_of_old
        )
    moved, skip = empty((n, 3), np.int64), empty(n, np.int8)
    if n:
        kernel("sketch_state.renumber")[launch(n)](keys, new_of_old, moved, skip)
    return moved, skip


def _segments(keys: Any, values: Any, span: int) -> tuple[Any, Any, Any, Any]:
    """(keys, values) sorted by ``keys[:, 0]`` in ``0..span-1``, and each value's (start, end)."""
    position = counting_order(keys, 0, 0, span)
    keys, values = scatter_rows(keys, position), scatter_rows(values, position)
    starts, ends = full(span, 0, np.int64), full(span, 0, np.int64)
    if keys.shape[0]:
        kernel("sketch_state.bounds")[launch(keys.shape[0])](keys, starts, ends)
    return keys, values, starts, ends


def combine(
    keys: Any, counts: Any, n_rows: int, src: Any, dst: Any, position: Any, n_groups: int,
    slot_of: Any, is_quantile: Any, q: Any,
) -> tuple[Any, Any]:  # fmt: skip
    """(result, valid) of every (sketch slot, group), at ``position[g]`` (see module doc)."""
    n_slots = int(is_quantile.shape[0])
    keys, counts, starts, ends = _segments(keys, counts, n_rows)
    n_pairs = int(src.shape[0])
    sizes = empty(n_pairs, np.int64)
    if n_pairs:
        kernel("sketch_state.pair_sizes")[launch(n_pairs)](src, starts, ends, sizes)
    offsets, n_out = exclusive_scan(sizes)
    pair_keys, pair_counts = empty((n_out, 2), np.int64), empty(n_out, np.int64)
    if n_out:
        kernel("sketch_state.expand")[launch(n_pairs)](
            src, dst, offsets, starts, ends, keys, counts,
            constant(slot_of, np.int64), n_slots, pair_keys, pair_counts,
        )  # fmt: skip
    merged = DeviceHashIndex(2, capacity=n_out)
    ids = merged.insert(pair_keys)
    merged_counts = full(len(merged), 0, np.int64)
    add_weights(ids, pair_counts, merged_counts)
    span = n_groups * n_slots
    keys, counts, starts, ends = _segments(merged.keys, merged_counts, span)
    result, valid = empty((n_slots, n_groups), np.int64), empty((n_slots, n_groups), np.bool_)
    if span:
        kernel("sketch_state.finish")[launch(span)](
            starts, ends, keys, counts, constant(is_quantile, np.bool_),
            constant(q, np.float64), position, result, valid,
        )  # fmt: skip
    return result, valid


__all__ = ["add_weights", "combine", "renumber"]
