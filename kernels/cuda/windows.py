"""Window emission on the device: the CUDA side of :mod:`kernels.windows`.

Pane rows are keyed ``(pane, key atoms...)`` (a :class:`~kernels.cuda.hashindex.
DeviceHashIndex`); window ``k`` covers ``[k*slide, k*slide + size)`` and pane
``p`` covers ``[p*pane, (p+1)*pane)`` (``pane`` divides ``slide`` and ``size``),
so pane ``p`` belongs to windows ``(p*pane - size) // slide + 1 .. p*pane // slide``.
Instead of the CPU's sort of rows by (key, pane), every live row is expanded
into the windows that contain it, in parallel: a count per row, an exclusive
scan giving each row its output slots, then one pass writing the pairs
``(row, (k, atoms...))``. The group keys are hashed into a fresh device index
(the group ids), rows merged into a fresh device aggregate state, and a
counting sort over ``k - k_min`` orders the groups by window.

API (device arrays; host arrays are copied):

``pane_stats(keys, first_live, dead_before=first_live, count=None) -> PaneStats``
    min and max pane of the rows with pane ``>= first_live`` (``first > last``
    when there are none), how many rows are below ``dead_before`` and how many
    rows it looked at (all, or the first ``count[0]``; one 32-byte read back).
``window_pairs(keys, first_live, last_pane, pane, slide, size, k_min, k_max)
    -> (src, group_keys)``: row ``src[j]`` belongs to group ``group_keys[j]`` =
    ``(k, atoms...)``, for windows ``k_min..k_max`` and panes
    ``first_live..last_pane``.
``counting_order(keys, col, lo, span) -> position``: a counting sort of the rows
    of ``keys`` by ``keys[:, col] - lo`` (in ``0..span-1``); ``position[i]`` is
    row ``i``'s place (stable over at most ``FEW_BINS`` bins, counted per chunk of
    rows without atomics; over more, counted with atomics, equal values in any order).
``scatter_rows(values, position) -> out``: ``out[position[i]] = values[i]`` (1-d or 2-d).
``finalize_groups(state, is_int, position, n) -> (out_f, out_i, valid)``
    the final values of rows ``0..n-1`` of a device aggregate state, written at
    column ``position[g]`` of ``(n_aggs, n)`` arrays, as the CPU
    ``combine_finalize`` writes them (``out_i``: counts and sums).
``compact_live(keys, first_live) -> (live_keys, old_ids)``: stream compaction of
    the rows with pane ``>= first_live`` (their keys and former row ids).
``move_rows(src_idx, dst_idx, src, dst)``: copy aggregate rows (exactly) between states.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit, types

from kernels.aggregate import INT64_MAX, INT64_MIN, MAX, MIN, SUM, copy_row, final_value
from kernels.cuda._core import (
    DEVICE_GRID_THREADS,
    REDUCE_ITEMS,
    arr,
    as_device,
    constant,
    copy,
    cuda,
    device_function,
    empty,
    full,
    kernel,
    launch,
    launch_reduce,
    register,
    to_host,
)
from kernels.cuda.aggregate import DeviceAggState
from kernels.cuda.scan import exclusive_offsets, exclusive_scan

_copy_row = device_function(copy_row)

_I1, _I2, _F2, _B1, _B2 = (
    arr("int64"),
    arr("int64", 2),
    arr("float64", 2),
    arr("bool"),
    arr("bool", 2),
)
_i8 = types.int64
# Counting sorts over at most this many bins (the windows of one emission, usually a few)
# count per chunk of rows instead of with atomics: with few bins, every row's atomic would
# land on one of a few addresses, which a card serialises (about one a clock each).
FEW_BINS = 256


@njit(inline="always")
def windows_of_pane(p, pane, slide, size, k_min, k_max):  # pragma: no cover - compiled
    """(first, last) window in ``k_min..k_max`` containing pane ``p`` (empty when last < first)."""
    start = p * pane
    return max(k_min, (start - size) // slide + 1), min(k_max, start // slide)


@register("win.pane_stats", ("int64",), lambda dt: types.void(_I2, _i8, _I1, _i8, _i8, _I1))
def _pane_stats(keys, n, count, first_live, dead_before, out):  # pragma: no cover - compiled
    """``out`` = (min live pane, max live pane, rows of panes before ``dead_before``, rows),
    from (INT64_MAX, INT64_MIN, 0, 0), over the first ``min(n, count[0])`` rows; each
    thread reduces its rows first, then updates ``out`` once (``launch_reduce``)."""
    rows = min(n, count[0])
    if cuda.grid(1) == 0:
        out[3] = rows
    lo, hi, dead = INT64_MAX, INT64_MIN, 0
    for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
        p = keys[r, 0]
        if p >= first_live:
            lo = min(lo, p)
            hi = max(hi, p)
        if p < dead_before:
            dead += 1
    if lo < out[0]:  # a plain read first: most threads lose, no atomic
        cuda.atomic.min(out, 0, lo)
    if hi > out[1]:
        cuda.atomic.max(out, 1, hi)
    if dead:
        cuda.atomic.add(out, 2, dead)


def _count_sig(dt: np.dtype) -> Any:
    return types.void(_I2, _i8, _i8, _i8, _i8, _i8, _i8, _i8, _i8, _I1)


@register("win.count_windows", ("int64",), _count_sig)
def _count_windows(
    keys, n, first_live, last_pane, pane, slide, size, k_min, k_max, counts
):  # pragma: no cover - compiled
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        p = keys[r, 0]
        c = 0
        if p >= first_live and p <= last_pane:
            lo, hi = windows_of_pane(p, pane, slide, size, k_min, k_max)
            if hi >= lo:
                c = hi - lo + 1
        counts[r] = c


def _expand_sig(dt: np.dtype) -> Any:
    return types.void(_I2, _i8, _i8, _i8, _i8, _i8, _i8, _I1, _I1, _I1, _I2)


@register("win.expand", ("int64",), _expand_sig)
def _expand(
    keys, n, pane, slide, size, k_min, k_max, counts, offsets, src, group_keys
):  # pragma: no cover - compiled
    """Row ``r`` writes its ``counts[r]`` pairs from slot ``offsets[r]`` on."""
    width = keys.shape[1]
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        c = counts[r]
        if c == 0:
            continue
        lo, _ = windows_of_pane(keys[r, 0], pane, slide, size, k_min, k_max)
        base = offsets[r]
        for j in range(c):
            src[base + j] = r
            group_keys[base + j, 0] = lo + j
            for col in range(1, width):
                group_keys[base + j, col] = keys[r, col]


@register("win.histogram", ("int64",), lambda dt: types.void(_I2, _i8, _i8, _I1))
def _histogram(keys, col, lo, counts):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), keys.shape[0], cuda.gridsize(1)):
        cuda.atomic.add(counts, keys[i, col] - lo, 1)


@register("win.place", ("int64",), lambda dt: types.void(_I2, _i8, _i8, _I1, _I1))
def _place(keys, col, lo, cursor, position):  # pragma: no cover - compiled
    """``cursor`` starts at each bin's first slot (an exclusive scan of the histogram)."""
    for i in range(cuda.grid(1), keys.shape[0], cuda.gridsize(1)):
        position[i] = cuda.atomic.add(cursor, keys[i, col] - lo, 1)


@register("win.chunk_counts", ("int64",), lambda dt: types.void(_I2, _i8, _i8, _i8, _I1))
def _chunk_counts(keys, col, lo, chunk, counts):  # pragma: no cover - compiled
    """``counts[b * n_chunks + t]``: rows of chunk ``t`` in bin ``b`` (no atomics)."""
    n = keys.shape[0]
    n_chunks = (n + chunk - 1) // chunk
    span = counts.shape[0] // n_chunks
    for t in range(cuda.grid(1), n_chunks, cuda.gridsize(1)):
        for b in range(span):
            counts[b * n_chunks + t] = 0
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            counts[(keys[i, col] - lo) * n_chunks + t] += 1


@register("win.chunk_place", ("int64",), lambda dt: types.void(_I2, _i8, _i8, _i8, _I1, _I1))
def _chunk_place(keys, col, lo, chunk, cursor, position):  # pragma: no cover - compiled
    """Chunk ``t`` places its rows in order from ``cursor[b * n_chunks + t]`` (the scan)."""
    n = keys.shape[0]
    n_chunks = (n + chunk - 1) // chunk
    for t in range(cuda.grid(1), n_chunks, cuda.gridsize(1)):
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            slot = (keys[i, col] - lo) * n_chunks + t
            position[i] = cursor[slot]
            cursor[slot] += 1


@register("win.scatter", ("int64",), lambda dt: types.void(_I1, _I1, _I1))
def _scatter(values, position, out):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        out[position[i]] = values[i]


@register("win.scatter_rows", ("int64",), lambda dt: types.void(_I2, _I1, _I2))
def _scatter_rows(values, position, out):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), position.shape[0], cuda.gridsize(1)):
        p = position[i]
        for c in range(values.shape[1]):
            out[p, c] = values[i, c]


def _finalize_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _B1, _I1, _I2, _I2, _F2, _F2, _F2, _I2, _B2)


@register("win.finalize", ("int64",), _finalize_sig)
def _finalize(ops, is_int, position, ist, isum, f0, f1, out_f, out_i, valid):  # pragma: no cover
    n_aggs = ops.shape[0]
    for g in range(cuda.grid(1), position.shape[0], cuda.gridsize(1)):
        p = position[g]
        for a in range(n_aggs):
            op = ops[a]
            k = ist[g, a]
            out_f[a, p], valid[a, p] = final_value(op, is_int[a], k, isum[g, a], f0[g, a], f1[g, a])
            out_i[a, p] = isum[g, a] if op == SUM or op == MIN or op == MAX else k


@register("win.live_flags", ("int64",), lambda dt: types.void(_I2, _i8, _i8, _I1))
def _live_flags(keys, n, first_live, flags):  # pragma: no cover - compiled
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        flags[r] = 1 if keys[r, 0] >= first_live else 0


@register("win.compact", ("int64",), lambda dt: types.void(_I2, _i8, _I1, _I1, _I2, _I1))
def _compact(keys, n, flags, offsets, out_keys, old_ids):  # pragma: no cover - compiled
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        if flags[r] == 0:
            continue
        j = offsets[r]
        old_ids[j] = r
        for c in range(keys.shape[1]):
            out_keys[j, c] = keys[r, c]


def _move_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I2, _I2, _F2, _F2, _I1, _I2, _I2, _F2, _F2)


@register("win.move_rows", ("int64",), _move_sig)
def _move_rows(
    src_idx, dst_idx, s_rows, s_ist, s_isum, s_f0, s_f1, d_rows, d_ist, d_isum, d_f0, d_f1
):  # pragma: no cover - compiled
    for j in range(cuda.grid(1), src_idx.shape[0], cuda.gridsize(1)):
        _copy_row(src_idx[j], dst_idx[j], s_rows, s_ist, s_isum, s_f0, s_f1,
                  d_rows, d_ist, d_isum, d_f0, d_f1)  # fmt: skip


# -- host-callable steps ----------------------------------------------------------------


class PaneStats(NamedTuple):
    first: int  # first live pane (first > last when none is live)
    last: int  # last live pane
    dead: int  # rows of panes before dead_before
    rows: int  # rows looked at


def pane_stats(
    keys: Any, first_live: int, dead_before: int | None = None, count: Any = None
) -> PaneStats:
    """(first live pane, last live pane, dead rows, rows) of pane rows ``keys`` (see module
    doc); the dead rows are those of panes before ``dead_before`` (default ``first_live``),
    so one pass can also count what the next compaction would drop. ``count``: a one-item
    device array holding how many leading rows of ``keys`` to look at (a hash index's
    length, read back with the stats instead of by a wait of its own)."""
    keys = as_device(keys, np.int64)
    n = int(keys.shape[0])
    out = empty(4, np.int64)  # from a device constant: a device-to-device copy, no wait
    copy(out, constant(np.array([INT64_MAX, INT64_MIN, 0, 0], dtype=np.int64)))
    if n:
        dead_before = first_live if dead_before is None else dead_before
        if count is None:  # every row: one shared constant, not one upload per length
            count = constant(np.array([INT64_MAX], np.int64))
        kernel("win.pane_stats")[launch_reduce(n)](keys, n, count, int(first_live),
                                                   int(dead_before), out)  # fmt: skip
    return PaneStats(*(int(v) for v in to_host(out)))


def window_pairs(
    keys: Any, first_live: int, last_pane: int, pane: int, slide: int, size: int,
    k_min: int, k_max: int,
) -> tuple[Any, Any]:  # fmt: skip
    """(src rows, group keys ``(k, atoms...)``) of every (pane row, window) pair (device)."""
    keys = as_device(keys, np.int64)
    n = int(keys.shape[0])
    counts = empty(n, np.int64)
    geometry = (int(pane), int(slide), int(size), int(k_min), int(k_max))
    if n:
        kernel("win.count_windows")[launch(n)](
            keys, n, int(first_live), int(last_pane), *geometry, counts
        )
    offsets, n_pairs = exclusive_scan(counts)
    src = empty(n_pairs, np.int64)
    group_keys = empty((n_pairs, keys.shape[1]), np.int64)
    if n_pairs:
        kernel("win.expand")[launch(n)](keys, n, *geometry, counts, offsets, src, group_keys)
    return src, group_keys


def counting_order(keys: Any, col: int, lo: int, span: int) -> Any:
    """``position`` of a counting sort of the rows of ``keys`` by ``keys[:, col] - lo``
    (stable, rows keeping their order within a bin, when ``span <= FEW_BINS``)."""
    keys = as_device(keys, np.int64)
    if keys.ndim == 1:
        keys = keys.reshape(keys.shape[0], 1)
    n = int(keys.shape[0])
    position = empty(n, np.int64)
    if n == 0:
        return position
    if span <= FEW_BINS:  # one thread per chunk of rows: no atomics, stable
        chunk = max(span, REDUCE_ITEMS, -(-n // DEVICE_GRID_THREADS))
        n_chunks = -(-n // chunk)
        counts = empty(span * n_chunks, np.int64)
        kernel("win.chunk_counts")[launch(n_chunks)](keys, int(col), int(lo), chunk, counts)
        cursor = exclusive_offsets(counts)
        kernel("win.chunk_place")[launch(n_chunks)](
            keys, int(col), int(lo), chunk, cursor, position
        )
        return position
    counts = full(span, 0, np.int64)
    kernel("win.histogram")[launch(n)](keys, int(col), int(lo), counts)
    cursor = exclusive_offsets(counts)
    kernel("win.place")[launch(n)](keys, int(col), int(lo), cursor, position)
    return position


def scatter_rows(values: Any, position: Any) -> Any:
    """``out[position[i]] = values[i]`` for 1-d or 2-d int64 ``values`` (device)."""
    values = as_device(values, np.int64)
    n = int(position.shape[0])
    out = empty(values.shape, np.int64)
    if n:
        if values.ndim == 1:
            kernel("win.scatter")[launch(n)](values, position, out)
        else:
            kernel("win.scatter_rows")[launch(n)](values, position, out)
    return out


def finalize_groups(state: DeviceAggState, is_int: Any, position: Any, n: int) -> Any:
    """(out_f, out_i, valid) device arrays ``(n_aggs, n)`` of rows ``0..n-1`` at ``position``."""
    shape = (state.n_aggs, n)
    out_f, out_i, valid = empty(shape, np.float64), empty(shape, np.int64), empty(shape, np.bool_)
    if n:
        kernel("win.finalize")[launch(n)](
            state.ops, as_device(is_int, np.bool_), position,
            state.ist, state.isum, state.f0, state.f1, out_f, out_i, valid,
        )  # fmt: skip
    return out_f, out_i, valid


def compact_live(keys: Any, first_live: int) -> tuple[Any, Any]:
    """(keys, former row ids) of the rows of ``keys`` with pane ``>= first_live`` (device)."""
    keys = as_device(keys, np.int64)
    n = int(keys.shape[0])
    flags = empty(n, np.int64)
    if n:
        kernel("win.live_flags")[launch(n)](keys, n, int(first_live), flags)
    offsets, n_live = exclusive_scan(flags)
    live_keys = empty((n_live, keys.shape[1]), np.int64)
    old_ids = empty(n_live, np.int64)
    if n_live:
        kernel("win.compact")[launch(n)](keys, n, flags, offsets, live_keys, old_ids)
    return live_keys, old_ids


def move_rows(src_idx: Any, dst_idx: Any, src: DeviceAggState, dst: DeviceAggState) -> None:
    """Row ``dst_idx[j]`` of ``dst`` (reserved, empty) becomes a copy of row ``src_idx[j]``."""
    n = int(src_idx.shape[0])
    if n:
        kernel("win.move_rows")[launch(n)](
            as_device(src_idx, np.int64), as_device(dst_idx, np.int64),
            src.rows, src.ist, src.isum, src.f0, src.f1,
            dst.rows, dst.ist, dst.isum, dst.f0, dst.f1,
        )  # fmt: skip


__all__ = [
    "compact_live",
    "counting_order",
    "finalize_groups",
    "move_rows",
    "pane_stats",
    "scatter_rows",
    "window_pairs",
    "windows_of_pane",
]
