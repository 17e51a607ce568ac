"""Mergeable aggregate state on the device: the CUDA twin of :mod:`kernels.aggregate`.

The state columns (``rows``, ``ist``, ``isum``, ``f0``, ``f1``; see the table in
:mod:`kernels.aggregate`) have the same layout and meaning as on the CPU, so a
:class:`DeviceAggState` copies to and from an :class:`~kernels.aggregate.AggState`
unchanged and either side can merge or finalise it.

Adding a batch of events takes three passes, each one thread per event:
1. every event adds itself to its row's *accumulators*, one per distinct
   (kind, mask, column) of the plan: the row's event count, counts under
   ``where``/null masks, float and integer sums (native atomics: float64 add
   needs sm_60+); MIN/MAX go straight into the state (``atomic.min``/``max``
   after a plain read, NaN never wins, as on the CPU; integers in ``isum``).
   Aggregations that share an input share its accumulator, so an event costs one
   atomic per distinct input rather than several per aggregation. A block first
   adds its tile of events into a shared-memory table of rows and then each row's
   tile totals to the global accumulators (``TILE_SLOTS``), so a popular row takes one
   global atomic per tile rather than one per event. The table counts in int32,
   the one shared atomic add that is native on sm_90 (see ``TILE_COUNTS``);
2. STD/VAR only: ``(x - mean)^2`` and ``x - mean`` around the row's batch mean
   (its count and sum from pass 1), since (n, mean, M2) cannot be updated
   atomically; the second takes the mean's rounding out of the first (the corrected
   two-pass algorithm, :func:`~kernels.aggregate.corrected_moments`, as on the CPU);
   through the same kind of table;
3. the event that opened its row's count folds the row's accumulators into the
   state (Chan's formula for STD/VAR: the CPU's merge through the same helpers, though
   NVVM may fuse a multiply and an add that the CPU rounds twice) and clears them:
   no atomics, and work in proportion to the batch, not to the state.
Merging rows takes the per-aggregation route: atomics per merged pair, and for
STD/VAR the same two-pass moments in per-aggregation scratch, folded per row.

API (device arrays; the plan arrays ``ops``, ``col_of``, ``mask_of``, ``is_int`` as host
numpy arrays):

``DeviceAggState(ops, capacity)``: ``.reserve(n_rows)``, ``.to_host(n) -> AggState``,
``DeviceAggState.from_host(state)``.

``update_events(ids, ops, col_of, mask_of, is_int, fcols, icols, masks, state)``
    the CPU ``update_events`` with the state object last; ``fcols`` float64 or
    float32 ``(n_columns, n)``, ``icols`` int64 ``(n_columns, n)`` or ``(0, 0)``,
    ``masks`` uint8 ``(n_masks, n)``; ``ids < 0`` are skipped.
``merge_rows(src_idx, dst_idx, src, dst)``
    merge row ``src_idx[j]`` of ``src`` into row ``dst_idx[j]`` of ``dst``; several
    pairs may share a destination.
``finalize_column(op, is_int, n, state, a) -> (out, valid)``
    float64 values and a bool mask for rows ``0..n-1``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import float64, int32, int64, types

from kernels.aggregate import (
    INT64_MAX,
    INT64_MIN,
    MAX,
    MEAN,
    MIN,
    STD,
    SUM,
    VAR,
    AggState,
    final_value,
    merged_moments,
    part_deviations,
)
from kernels.cuda._core import (
    arr,
    as_device,
    constant,
    copy,
    cuda,
    device_function,
    empty,
    empty_many,
    full,
    kernel,
    launch,
    register,
    span,
    to_host,
)

FLOAT_DTYPES = ("float64", "float32")

_I1, _I2, _F2, _B1 = arr("int64"), arr("int64", 2), arr("float64", 2), arr("bool")


# -- scattering events: accumulators per (mask, column), folded into the state per row ---
# Kinds of the steps of an update plan (see _UpdatePlan).
ROWS, COUNT_WHERE, INT_SUM, FLOAT_SUM, LOWEST, HIGHEST, SQUARES, INT_LOWEST, INT_HIGHEST = range(9)
_STEP = ("kind", "mask", "column", "slot", "count_slot", "sum_slot", "tile")
# The tile a step's accumulator takes a column of, in its pass's shared memory: pass 1's
# count tile (the row count first, then masked counts), its float tile (float sums) and
# integer tile (integer sums), and pass 2's tile (squared deviations).
_TILE_OF = {ROWS: "count", COUNT_WHERE: "count", FLOAT_SUM: "float", INT_SUM: "int",
            SQUARES: "squares"}  # fmt: skip

# Pre-aggregation per block: a block adds its tile of events (one per thread) into a table
# of rows in shared memory, then adds each row's tile totals to the global accumulators
# with one atomic per accumulator. Why: popular content puts many events of a tile on one
# row, and shared-memory atomics are far cheaper than global ones (``benchmarks.atomics``
# counts the global ones on the benchmark's events).
TILE_SLOTS = 512  # rows a block's table holds: a power of two, twice THREADS (load <= 1/2)
TILE_PROBES = 8  # an event whose row finds no slot within this many probes adds globally
# Columns kept per row in shared memory, per tile (a step past its tile's width adds
# globally). Counts are int32: on sm_90 a 32-bit integer add is the only native shared
# atomic (an add of 1 is ATOMS.POPC.INC, which counts a warp's lanes on an address at
# once); float64 and int64 adds compile to compare-and-store loops that a warp goes round
# once per lane on its busiest address (``kernel_resources --sass``, ``benchmarks.atomics``).
# A tile holds at most THREADS events, so an int32 count is exact.
# TIKTOKTOE_TILE_COUNTS=float64 counts in float64 as before (``gpu_check.sh tables`` times
# both ways on a card); those kernels skip the disk cache, whose index does not key on it.
_TILE_COUNT_DTYPES = {"int32": int32, "float64": float64}
_tile_counts = os.environ.get("TIKTOKTOE_TILE_COUNTS", "int32")
if _tile_counts not in _TILE_COUNT_DTYPES:
    raise ValueError(f"TIKTOKTOE_TILE_COUNTS={_tile_counts!r}: expected int32 or float64")
TILE_COUNT_DTYPE = _TILE_COUNT_DTYPES[_tile_counts]
TILE_COUNTS = 2  # the row count and one masked count
TILE_FLOATS = 2  # float sums
TILE_INTS = 2  # integer sums
TILE_SQUARES = 2  # pass 2's squared deviations (and, beside each, the deviations)
_SQUARES_TILE_WIDTH = 2 * TILE_SQUARES  # a constant: shared array shapes must be
TILE_WIDTH = {"count": TILE_COUNTS, "float": TILE_FLOATS, "int": TILE_INTS,
              "squares": TILE_SQUARES}  # fmt: skip
FREE = -1  # an unused slot of a table (row ids are never negative)
_CLAIMED = TILE_SLOTS  # added to the slot that _tile_slot returns to the thread that claimed it
# TIKTOKTOE_BLOCK_TABLES=0: every event adds straight to the global accumulators, as before
# the tables (``gpu_check.sh tables`` times both ways on a card).
BLOCK_TABLES = os.environ.get("TIKTOKTOE_BLOCK_TABLES", "1") != "0"


@device_function
def _tile_slot(table, r):  # pragma: no cover - compiled
    """Slot of row ``r`` in a block's shared ``table`` (``+ _CLAIMED`` when this thread
    claimed it), or -1 when ``TILE_PROBES`` probes find neither ``r`` nor an empty slot."""
    pos = r & (TILE_SLOTS - 1)
    for _ in range(TILE_PROBES):
        found = table[pos]
        if found == FREE:
            found = cuda.atomic.cas(table, pos, FREE, r)
            if found == FREE:
                return pos + _CLAIMED
        if found == r:
            return pos
        pos = (pos + 1) & (TILE_SLOTS - 1)
    return -1


@device_function
def _add_to(acc, tile, r, s, steps, k, v):  # pragma: no cover - compiled
    """Add ``v`` to step ``k``'s accumulator of row ``r``: in its column of the tile's slot
    ``s`` when the row has a slot and the tile keeps that column, else into ``acc``
    (either way cast to the array's dtype)."""
    col = steps[k, 6]
    if s >= 0 and col < tile.shape[1]:
        cuda.atomic.add(tile, (s, col), v)
    else:
        cuda.atomic.add(acc, (r, steps[k, 3]), v)


@device_function
def _flush_one(tile, acc, s, col, r, slot):  # pragma: no cover - compiled
    """Add column ``col`` of slot ``s``'s tile totals into accumulator ``slot`` of row
    ``r`` (an int32 count as a float64), and clear it for the next tile."""
    v = tile[s, col]
    if v != 0:
        cuda.atomic.add(acc, (r, slot), v)
        tile[s, col] = 0


@device_function
def _add_deviation(acc, tile, r, s, col, slot, d):  # pragma: no cover - compiled
    """Add ``d * d`` and ``d`` (a deviation from the row's batch mean) to accumulators
    ``slot`` and ``slot + 1`` of row ``r``: in columns ``2 col`` and ``2 col + 1`` of the
    tile's slot ``s`` when the row has a slot and the tile keeps that pair, else globally."""
    if s >= 0 and col < TILE_SQUARES:
        cuda.atomic.add(tile, (s, 2 * col), d * d)
        cuda.atomic.add(tile, (s, 2 * col + 1), d)
    else:
        cuda.atomic.add(acc, (r, slot), d * d)
        cuda.atomic.add(acc, (r, slot + 1), d)


@device_function
def _clear_tile(table, tile):  # pragma: no cover - compiled
    """Empty a block's table and zero its tile (each thread its share of the slots)."""
    for s in range(cuda.threadIdx.x, TILE_SLOTS, cuda.blockDim.x):
        table[s] = FREE
        for w in range(tile.shape[1]):
            tile[s, w] = 0


@device_function
def _lower(array, r, a, v):  # pragma: no cover - compiled
    """``array[r, a] = min(array[r, a], v)``; a plain read first, since most values lose
    (no atomic then), and NaN never wins."""
    if v < array[r, a]:
        cuda.atomic.min(array, (r, a), v)


@device_function
def _raise(array, r, a, v):  # pragma: no cover - compiled
    """``array[r, a] = max(array[r, a], v)``, as :func:`_lower`."""
    if v > array[r, a]:
        cuda.atomic.max(array, (r, a), v)


@device_function
def _add_event(
    steps, fcols, icols, masks, acc, acc_i, f0, isum, tile_n, tile, tile_i, i, r, s
):  # pragma: no cover - compiled
    """Event ``i`` (row ``r``, tile slot ``s`` or -1) into its accumulators, except the row
    count; MIN/MAX straight into ``f0`` (integers: ``isum``, exactly)."""
    for k in range(steps.shape[0]):
        kind = steps[k, 0]
        if kind == ROWS or kind == SQUARES:
            continue
        m = steps[k, 1]
        if m >= 0 and masks[m, i] == 0:
            continue
        c = steps[k, 2]
        slot = steps[k, 3]
        if kind == COUNT_WHERE:
            _add_to(acc, tile_n, r, s, steps, k, 1)
        elif kind == INT_SUM:
            _add_to(acc_i, tile_i, r, s, steps, k, icols[c, i])
        elif kind == INT_LOWEST:
            _lower(isum, r, slot, icols[c, i])
        elif kind == INT_HIGHEST:
            _raise(isum, r, slot, icols[c, i])
        else:
            x = float64(fcols[c, i])
            if kind == FLOAT_SUM:
                _add_to(acc, tile, r, s, steps, k, x)
            elif kind == LOWEST:
                _lower(f0, r, slot, x)
            else:  # HIGHEST
                _raise(f0, r, slot, x)


def _update_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I2, arr(dt, 2), _I2, arr("uint8", 2), _F2, _I2, _F2, _I2,
                      arr("uint8"), types.boolean)  # fmt: skip


# No launch bounds: since the tile's counts are int32, (256, 6) spills 20-76 B in every
# arrangement of the flush tried but one, which took 54 registers (4 blocks) without them
# (``kernel_resources --min-blocks 6 --only agg.update``).
@register("agg.update", FLOAT_DTYPES, _update_sig, cached=TILE_COUNT_DTYPE is int32)
def _update(
    ids, steps, fcols, icols, masks, acc, acc_i, f0, isum, owner, tables
):  # pragma: no cover - compiled
    """Pass 1: add each event to its row's accumulators (``acc``: float counts, float sums;
    ``acc_i``: integer sums), through the block's shared table (see ``TILE_SLOTS``), and
    MIN/MAX straight into ``f0`` (integers: ``isum``). The event that opens its row's count
    owns the row for the fold: the claimer of the slot whose tile total opened it, or the
    event itself when it added without a slot. ``tables=False``: no event takes a slot."""
    table = cuda.shared.array(TILE_SLOTS, int64)
    first = cuda.shared.array(TILE_SLOTS, int32)  # the claiming thread of a slot
    tile_n = cuda.shared.array((TILE_SLOTS, TILE_COUNTS), TILE_COUNT_DTYPE)
    tile = cuda.shared.array((TILE_SLOTS, TILE_FLOATS), float64)
    tile_i = cuda.shared.array((TILE_SLOTS, TILE_INTS), int64)
    _clear_tile(table, tile_n)
    _clear_tile(table, tile)
    _clear_tile(table, tile_i)
    cuda.syncthreads()
    n = ids.shape[0]
    tid = cuda.threadIdx.x
    width = cuda.blockDim.x
    for start in range(cuda.blockIdx.x * width, n, cuda.gridDim.x * width):
        i = start + tid
        if i < n:
            owner[i] = 0
            r = ids[i]
            if r >= 0:
                s = _tile_slot(table, r) if tables else -1
                if s >= _CLAIMED:
                    s -= _CLAIMED
                    first[s] = tid
                if s >= 0:
                    cuda.atomic.add(tile_n, (s, 0), 1)
                elif cuda.atomic.add(acc, (r, 0), 1.0) == 0.0:
                    owner[i] = 1
                _add_event(steps, fcols, icols, masks, acc, acc_i, f0, isum, tile_n, tile,
                           tile_i, i, r, s)  # fmt: skip
        cuda.syncthreads()
        for s in range(tid, TILE_SLOTS if tables else 0, width):
            r = table[s]
            if r == FREE:
                continue
            table[s] = FREE
            if cuda.atomic.add(acc, (r, 0), float64(tile_n[s, 0])) == 0.0:
                owner[start + first[s]] = 1
            tile_n[s, 0] = 0
            for k in range(1, steps.shape[0]):  # one pass over the steps for all 3 tiles
                kind = steps[k, 0]
                col = steps[k, 6]
                if kind == COUNT_WHERE and col < TILE_COUNTS:
                    _flush_one(tile_n, acc, s, col, r, steps[k, 3])
                elif kind == FLOAT_SUM and col < TILE_FLOATS:
                    _flush_one(tile, acc, s, col, r, steps[k, 3])
                elif kind == INT_SUM and col < TILE_INTS:
                    _flush_one(tile_i, acc_i, s, col, r, steps[k, 3])
        cuda.syncthreads()


def _squares_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I2, arr(dt, 2), arr("uint8", 2), _F2, types.boolean)


@register("agg.update_m2", FLOAT_DTYPES, _squares_sig, min_blocks=5)
def _update_m2(ids, steps, fcols, masks, acc, tables):  # pragma: no cover - compiled
    """Pass 2 (STD/VAR only): squared deviations from the row's batch mean, which pass 1
    left in its count and sum accumulators; through the block's shared table as in pass 1."""
    table = cuda.shared.array(TILE_SLOTS, int64)
    tile = cuda.shared.array((TILE_SLOTS, _SQUARES_TILE_WIDTH), float64)
    _clear_tile(table, tile)
    cuda.syncthreads()
    n = ids.shape[0]
    tid = cuda.threadIdx.x
    width = cuda.blockDim.x
    for start in range(cuda.blockIdx.x * width, n, cuda.gridDim.x * width):
        i = start + tid
        r = ids[i] if i < n else FREE
        if r >= 0:
            s = _tile_slot(table, r) if tables else -1
            if s >= _CLAIMED:
                s -= _CLAIMED
            for k in range(steps.shape[0]):
                if steps[k, 0] != SQUARES:
                    continue
                m = steps[k, 1]
                if m >= 0 and masks[m, i] == 0:
                    continue
                d = float64(fcols[steps[k, 2], i]) - acc[r, steps[k, 5]] / acc[r, steps[k, 4]]
                _add_deviation(acc, tile, r, s, steps[k, 6], steps[k, 3], d)
        cuda.syncthreads()
        for s in range(tid, TILE_SLOTS if tables else 0, width):
            r = table[s]
            if r == FREE:
                continue
            table[s] = FREE
            for k in range(steps.shape[0]):
                col = steps[k, 6]
                if steps[k, 0] == SQUARES and col < TILE_SQUARES:
                    _flush_one(tile, acc, s, 2 * col, r, steps[k, 3])
                    _flush_one(tile, acc, s, 2 * col + 1, r, steps[k, 3] + 1)
        cuda.syncthreads()


def _fold_sig(dt: np.dtype) -> Any:
    return types.void(_I1, arr("uint8"), _I1, _B1, _I2, _F2, _I2, _I1, _I2, _I2, _F2, _F2)


@register("agg.fold", ("int64",), _fold_sig)  # 4 blocks spill (a mean in two parts)
def _fold(ids, owner, ops, is_int, fold, acc, acc_i, rows, ist, isum, f0, f1):  # pragma: no cover
    """Pass 3: the owner of each touched row folds the row's accumulators into the state
    (Chan's formula for STD/VAR, as the CPU merge) and clears them. One thread per row, so
    no atomics; work in proportion to the batch, not to the state."""
    n_aggs = ops.shape[0]
    for i in range(cuda.grid(1), ids.shape[0], cuda.gridsize(1)):
        if owner[i] == 0:
            continue
        r = ids[i]
        rows[r] += int64(acc[r, 0])
        for a in range(n_aggs):
            ns = int64(acc[r, fold[a, 0]])
            if ns == 0:
                continue
            op = ops[a]
            if op == STD or op == VAR:
                sq = fold[a, 2]
                f0[r, a], isum[r, a], f1[r, a] = merged_moments(
                    ist[r, a], f0[r, a], isum[r, a], f1[r, a],
                    ns, acc[r, fold[a, 1]], acc[r, sq], acc[r, sq + 1],
                )  # fmt: skip
            elif op == SUM and is_int[a]:
                isum[r, a] += acc_i[r, fold[a, 1]]
            elif op == MEAN and is_int[a]:  # both sums (kernels.aggregate.integer_mean)
                isum[r, a] += acc_i[r, fold[a, 1]]
                f0[r, a] += acc[r, fold[a, 2]]
            elif op == SUM or op == MEAN:
                f0[r, a] += acc[r, fold[a, 1]]
            ist[r, a] += ns
        for s in range(acc.shape[1]):
            acc[r, s] = 0.0
        for s in range(acc_i.shape[1]):
            acc_i[r, s] = 0


def _combine_sig(dt: np.dtype) -> Any:
    return types.void(_I1, types.int64, _I2, _I2, _F2, _F2, _I2, _F2, _F2, _F2)


@register("agg.combine_moments", ("int64",), _combine_sig)
def _combine_moments(ops, n, ist, isum, f0, f1, m_n, m_sum, m_m2, m_dev):  # pragma: no cover
    """Fold scratch moments (count, sum, M2 and deviations around the merged mean, as
    :func:`~kernels.aggregate.corrected_moments` takes them) of rows ``0..n-1`` into
    (ist, f0 and isum: the mean and its low part, f1); clear them."""
    n_aggs = ops.shape[0]
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        for a in range(n_aggs):
            op = ops[a]
            if op != STD and op != VAR:
                continue
            ns = m_n[r, a]
            if ns == 0:
                continue
            f0[r, a], isum[r, a], f1[r, a] = merged_moments(
                ist[r, a], f0[r, a], isum[r, a], f1[r, a], ns, m_sum[r, a], m_m2[r, a], m_dev[r, a]
            )
            ist[r, a] += ns
            m_n[r, a] = 0
            m_sum[r, a] = 0.0
            m_m2[r, a] = 0.0
            m_dev[r, a] = 0.0


def _merge_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I1, _I2, _I2, _F2, _F2, _I1, _I2, _I2, _F2, _F2, _I2, _F2)


@register("agg.merge", ("int64",), _merge_sig)
def _merge(
    src_idx, dst_idx, ops, s_rows, s_ist, s_isum, s_f0, s_f1,
    d_rows, d_ist, d_isum, d_f0, d_f1, m_n, m_sum,
):  # pragma: no cover - compiled  # fmt: skip
    n_aggs = ops.shape[0]
    for j in range(cuda.grid(1), src_idx.shape[0], cuda.gridsize(1)):
        s = src_idx[j]
        d = dst_idx[j]
        cuda.atomic.add(d_rows, d, s_rows[s])
        for a in range(n_aggs):
            ns = s_ist[s, a]
            if ns == 0:
                continue
            op = ops[a]
            if op == STD or op == VAR:  # pass 1 of 2: count and n * mean into scratch
                cuda.atomic.add(m_n, (d, a), ns)
                cuda.atomic.add(m_sum, (d, a), ns * s_f0[s, a])
                continue
            cuda.atomic.add(d_ist, (d, a), ns)
            if op == SUM or op == MEAN:
                cuda.atomic.add(d_isum, (d, a), s_isum[s, a])
                cuda.atomic.add(d_f0, (d, a), s_f0[s, a])
            elif op == MIN:  # both columns: the one not fed stays at its identity
                _lower(d_f0, d, a, s_f0[s, a])
                _lower(d_isum, d, a, s_isum[s, a])
            elif op == MAX:
                _raise(d_f0, d, a, s_f0[s, a])
                _raise(d_isum, d, a, s_isum[s, a])


def _merge_m2_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I2, _I2, _F2, _F2, _I2, _F2, _F2, _F2)


@register("agg.merge_m2", ("int64",), _merge_m2_sig)
def _merge_m2(
    src_idx, dst_idx, ops, s_ist, s_isum, s_f0, s_f1, m_n, m_sum, m_m2, m_dev
):  # pragma: no cover - compiled
    """Pass 2 of STD/VAR merging: ``M2_s + n_s (mean_s - mean)^2`` around the merged mean,
    and ``n_s (mean_s - mean)`` (:func:`~kernels.aggregate.part_deviations`), with which
    :func:`~kernels.aggregate.corrected_moments` takes out its rounding."""
    n_aggs = ops.shape[0]
    for j in range(cuda.grid(1), src_idx.shape[0], cuda.gridsize(1)):
        s = src_idx[j]
        d = dst_idx[j]
        for a in range(n_aggs):
            op = ops[a]
            if op != STD and op != VAR:
                continue
            ns = s_ist[s, a]
            if ns == 0:
                continue
            mean = m_sum[d, a] / m_n[d, a]
            squares, deviations = part_deviations(ns, s_f0[s, a], s_isum[s, a], s_f1[s, a], mean)
            cuda.atomic.add(m_m2, (d, a), squares)
            cuda.atomic.add(m_dev, (d, a), deviations)


def _finalize_sig(dt: np.dtype) -> Any:
    i8 = types.int64
    return types.void(i8, types.boolean, i8, _I2, _I2, _F2, _F2, i8, arr("float64"), _B1)


@register("agg.finalize", ("int64",), _finalize_sig)
def _finalize(op, is_int, n, ist, isum, f0, f1, a, out, valid):  # pragma: no cover - compiled
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[r], valid[r] = final_value(op, is_int, ist[r, a], isum[r, a], f0[r, a], f1[r, a])


def _init_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _F2, _I2, types.int64, types.int64)


@register("agg.init_rows", ("int64",), _init_sig)
def _init_rows(ops, f0, isum, start, stop):  # pragma: no cover - compiled
    """Identity elements of rows ``start..stop-1``: +inf and int64's largest for MIN, -inf
    and its smallest for MAX, 0 elsewhere (as the CPU's ``init_rows``)."""
    n_aggs = ops.shape[0]
    for r in range(start + cuda.grid(1), stop, cuda.gridsize(1)):
        for a in range(n_aggs):
            if ops[a] == MIN:
                f0[r, a] = math.inf
                isum[r, a] = INT64_MAX
            elif ops[a] == MAX:
                f0[r, a] = -math.inf
                isum[r, a] = INT64_MIN
            else:
                f0[r, a] = 0.0
                isum[r, a] = 0


_COLUMNS = ("rows", "ist", "isum", "f0", "f1")
_SCRATCH = ("m_n", "m_sum", "m_m2", "m_dev", "acc", "acc_i")


@dataclass(frozen=True)
class _UpdatePlan:
    """How events reach the state: one accumulator per distinct (kind, mask, column).

    Why: aggregations share their inputs. ``count``, ``mean`` and ``std`` of one column
    all count the same events and two of them sum the same values, so pass 1 adds each
    event once per accumulator instead of once per aggregation (``benchmarks.gpu_kernels``'
    nine aggregations: about 3 atomics an event, and 2 more in STD's second pass, where
    they took 13), and the fold spreads the sums to the aggregations. Accumulator 0 counts the
    row's events (the unmasked count).
    """

    steps: Any  # device (n_steps, 7) int64, columns _STEP
    fold: Any  # device (n_aggs, 3) int64: count slot, sum slot, squares (or an integer
    # mean's float sum) slot
    width: int  # float accumulators (counts, float sums, squares)
    int_width: int  # integer sums
    has_squares: bool

    @staticmethod
    def build(ops: np.ndarray, col_of: np.ndarray, mask_of: np.ndarray,
              is_int: np.ndarray) -> _UpdatePlan:  # fmt: skip
        steps, fold, width, int_width = plan_tables(ops, col_of, mask_of, is_int)
        return _UpdatePlan(constant(steps), constant(fold), width, int_width,
                           bool((steps[:, 0] == SQUARES).any()))  # fmt: skip


def plan_tables(ops: np.ndarray, col_of: np.ndarray, mask_of: np.ndarray,
                is_int: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:  # fmt: skip
    """The host tables of an :class:`_UpdatePlan`: (steps, fold, float accumulators,
    integer sums). Host only, so a model of the kernels' work can read them without a
    device (``benchmarks.atomics``)."""
    slots: dict[tuple[int, int, int], int] = {(ROWS, -1, -1): 0}
    int_slots: dict[tuple[int, int, int], int] = {}
    steps: list[tuple[int, ...]] = [(ROWS, -1, -1, 0, -1, -1, 0)]

    def slot(kind: int, mask: int, column: int, table: dict[Any, int],
             count: int = -1, total: int = -1) -> int:  # fmt: skip
        key = (kind, mask, column)
        if key not in table:
            table[key] = len(table)
            steps.append((kind, mask, column, table[key], count, total, -1))
        return table[key]

    fold = np.full((len(ops), 3), -1, dtype=np.int64)
    for a, (op, column, mask) in enumerate(zip(ops, col_of, mask_of, strict=True)):
        m, c = int(mask), int(column)
        count = 0 if m < 0 else slot(COUNT_WHERE, m, -1, slots)
        fold[a, 0] = count
        if op in (SUM, MEAN) and is_int[a]:  # exact, in int64
            fold[a, 1] = slot(INT_SUM, m, c, int_slots)
            if op == MEAN:  # and in float64 (kernels.aggregate.integer_mean)
                fold[a, 2] = slot(FLOAT_SUM, m, c, slots)
        elif op in (SUM, MEAN, STD, VAR):
            fold[a, 1] = slot(FLOAT_SUM, m, c, slots)
        if op in (STD, VAR):
            fresh = (SQUARES, m, c) not in slots
            fold[a, 2] = slot(SQUARES, m, c, slots, count, int(fold[a, 1]))
            if fresh:  # the next slot sums the deviations themselves (corrected_moments)
                slots[(-SQUARES, m, c)] = len(slots)
        elif op == MIN:
            steps.append((INT_LOWEST if is_int[a] else LOWEST, m, c, a, -1, -1, -1))
        elif op == MAX:
            steps.append((INT_HIGHEST if is_int[a] else HIGHEST, m, c, a, -1, -1, -1))
    table = np.array(steps, dtype=np.int64).reshape(-1, len(_STEP))
    taken: dict[str, int] = {}  # tile columns given so far, per tile
    for step in table:
        tile = _TILE_OF.get(int(step[0]))
        if tile is not None:
            step[6] = taken[tile] = taken.get(tile, -1) + 1
    return table, fold, len(slots), len(int_slots)


def tile_columns(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step of a plan's ``steps`` table: whether a block's shared tile keeps its
    accumulator (else its events add globally), and whether that tile's shared add is a
    native atomic (the count tile, in int32) rather than a compare-and-store loop. Host only,
    for ``benchmarks.atomics``' model of the kernels' work."""
    names = [_TILE_OF.get(int(kind)) for kind in steps[:, 0]]
    kept = np.array([n is not None and 0 <= col < TILE_WIDTH[n]
                     for n, col in zip(names, steps[:, 6], strict=True)], np.bool_)  # fmt: skip
    native = np.array([n == "count" and TILE_COUNT_DTYPE is int32 for n in names], np.bool_)
    return kept, native


_PLANS: dict[bytes, _UpdatePlan] = {}


def update_plan(ops: Any, col_of: Any, mask_of: Any, is_int: Any) -> _UpdatePlan:
    """The (cached) update plan of an aggregation plan given as host arrays (device arrays
    are read back, which waits for the device: pass host arrays)."""
    given = zip((ops, col_of, mask_of, is_int), (np.int64, np.int64, np.int64, np.bool_),
                strict=True)  # fmt: skip
    arrays: list[np.ndarray] = [np.ascontiguousarray(to_host(a), dtype=dt) for a, dt in given]
    key = b"|".join(a.tobytes() for a in arrays)
    found = _PLANS.get(key)
    if found is None:
        found = _PLANS[key] = _UpdatePlan.build(*arrays)
    return found


class DeviceAggState:
    """Device copy of :class:`~kernels.aggregate.AggState`, plus scratch: per-row
    accumulators of the batch being added and the STD/VAR moments of merges."""

    # device views made by _alloc: the state columns, then the merge scratch
    rows: Any
    ist: Any
    isum: Any
    f0: Any
    f1: Any
    m_n: Any
    m_sum: Any
    m_m2: Any
    m_dev: Any

    def __init__(self, ops: Any, capacity: int = 1024) -> None:
        self.ops_host = np.ascontiguousarray(to_host(ops), dtype=np.int64)
        self.ops = constant(self.ops_host)  # read-only: shared, uploaded once
        self.n_aggs = len(self.ops_host)
        self.has_moments = bool(np.isin(self.ops_host, [STD, VAR]).any())
        # Accumulator columns (float, integer), made by the first update (states that only
        # receive merges, such as window groups, never need them) and widened by its plans.
        self._widths = (0, 0)
        self.acc: Any = None
        self.acc_i: Any = None
        self.owner: Any = None  # per event of the last batch; grown as needed
        self._alloc(max(capacity, 16))

    def _alloc(self, capacity: int) -> None:
        """The state columns and the merge scratch as views of one zeroed allocation.

        Why: each allocation costs the host a ``cuMemAlloc`` (and later a free that waits
        for the device), and a window emission builds a fresh state for its groups every
        batch: eight arrays and seven memsets become one of each.
        """
        k = self.n_aggs
        scratch = capacity if self.has_moments else 1
        layout = [("rows", capacity, 0, np.int64), ("ist", capacity, k, np.int64),
                  ("isum", capacity, k, np.int64), ("f0", capacity, k, np.float64),
                  ("f1", capacity, k, np.float64), ("m_n", scratch, k, np.int64),
                  ("m_sum", scratch, k, np.float64), ("m_m2", scratch, k, np.float64),
                  ("m_dev", scratch, k, np.float64)]  # fmt: skip
        shapes = [((rows, cols) if cols else rows, dtype) for _, rows, cols, dtype in layout]
        arrays = empty_many(*shapes, zeroed=True)  # zero bits are 0 and 0.0 alike
        for (name, *_), array in zip(layout, arrays, strict=True):
            setattr(self, name, array)
        if np.isin(self.ops_host, [MIN, MAX]).any():  # +inf / -inf: a kernel writes them
            self._init(0, capacity)
        if self._widths[0]:
            self._alloc_accumulators(capacity)

    def _alloc_accumulators(self, capacity: int) -> None:
        """Zeroed accumulators (they are zero between batches: the fold clears them)."""
        self.acc = full((capacity, self._widths[0]), 0.0, np.float64)
        if self._widths[1]:
            self.acc_i = full((capacity, self._widths[1]), 0, np.int64)
        else:  # no integer sums: a shared placeholder no kernel writes to
            self.acc_i = constant(np.zeros((1, 0), np.int64))

    def _init(self, start: int, stop: int) -> None:
        if stop > start:
            blocks, threads = launch(stop - start)
            kernel("agg.init_rows")[blocks, threads](self.ops, self.f0, self.isum, start, stop)

    @property
    def capacity(self) -> int:
        return int(self.rows.shape[0])

    @property
    def nbytes(self) -> int:
        """Device bytes of the state columns and their scratch."""
        arrays = (getattr(self, name) for name in _COLUMNS + _SCRATCH)
        return sum(int(array.nbytes) for array in arrays if array is not None)

    @property
    def bytes_per_row(self) -> int:
        """Device bytes one more row takes (state columns and scratch), for memory limits."""
        moments = 4 * self.n_aggs if self.has_moments else 0
        accumulators = max(self._widths[0], 1) + self._widths[1]  # before the first update too
        return 8 * (1 + 4 * self.n_aggs + moments + accumulators)

    def reserve(self, n_rows: int) -> None:
        """Make room for row ids below ``n_rows`` (new rows start empty)."""
        old = self.capacity
        if n_rows <= old:
            return
        kept = {name: getattr(self, name) for name in _COLUMNS}
        self._alloc(max(n_rows, 2 * old))
        for name, array in kept.items():
            copy(span(getattr(self, name), 0, old), array)

    def prepare(self, plan: _UpdatePlan, n_events: int) -> None:
        """Accumulators wide enough for ``plan`` and owner flags for ``n_events``."""
        widths = (max(self._widths[0], plan.width), max(self._widths[1], plan.int_width))
        if widths != self._widths:
            self._widths = widths
            self._alloc_accumulators(self.capacity)
        if self.owner is None or self.owner.shape[0] < n_events:
            had = 0 if self.owner is None else self.owner.shape[0]
            self.owner = empty(max(n_events, 2 * had), np.uint8)

    def to_host(self, n: int) -> AggState:
        """The first ``n`` rows as a CPU :class:`AggState`."""
        out = AggState(self.ops_host, capacity=max(16, n))
        for name in _COLUMNS:
            getattr(out, name)[:n] = to_host(getattr(self, name)[:n])
        return out

    @classmethod
    def from_host(cls, state: AggState, n: int | None = None) -> DeviceAggState:
        n = state.capacity if n is None else n
        out = cls(state.ops, capacity=max(16, n))
        for name in _COLUMNS:
            copy(span(getattr(out, name), 0, n), np.ascontiguousarray(getattr(state, name)[:n]))
        return out


def update_events(
    ids: Any, ops: Any, col_of: Any, mask_of: Any, is_int: Any,
    fcols: Any, icols: Any, masks: Any, state: DeviceAggState,
) -> None:  # fmt: skip
    """Scatter event ``i`` into row ``ids[i]`` of ``state`` (already reserved) on the device.

    ``ops``, ``col_of``, ``mask_of`` and ``is_int`` should be host arrays (the plan is built
    from them on the host, once per content). Three passes, all in proportion to the
    batch: accumulate, squared deviations (STD/VAR only), fold into the state.
    """
    ids = as_device(ids, np.int64)
    n = ids.shape[0]
    if n == 0:
        return
    plan = update_plan(ops, col_of, mask_of, is_int)
    fcols = as_device(fcols)
    dtype = np.dtype(fcols.dtype)
    masks = as_device(masks, np.uint8)
    state.prepare(plan, n)
    owner = span(state.owner, 0, n)
    blocks, threads = launch(n)
    kernel("agg.update", dtype)[blocks, threads](
        ids, plan.steps, fcols, as_device(icols, np.int64), masks, state.acc, state.acc_i,
        state.f0, state.isum, owner, BLOCK_TABLES,
    )  # fmt: skip
    if plan.has_squares:
        kernel("agg.update_m2", dtype)[blocks, threads](
            ids, plan.steps, fcols, masks, state.acc, BLOCK_TABLES
        )
    kernel("agg.fold")[blocks, threads](
        ids, owner, state.ops, constant(is_int, np.bool_), plan.fold, state.acc, state.acc_i,
        state.rows, state.ist, state.isum, state.f0, state.f1,
    )  # fmt: skip


def _combine(state: DeviceAggState, n_rows: int | None) -> None:
    n = state.capacity if n_rows is None else min(n_rows, state.capacity)
    blocks, threads = launch(n)
    kernel("agg.combine_moments")[blocks, threads](
        state.ops,
        n,
        state.ist,
        state.isum,
        state.f0,
        state.f1,
        state.m_n,
        state.m_sum,
        state.m_m2,
        state.m_dev,
    )


def merge_rows(
    src_idx: Any, dst_idx: Any, src: DeviceAggState, dst: DeviceAggState,
    n_rows: int | None = None,
) -> None:  # fmt: skip
    """Merge row ``src_idx[j]`` of ``src`` into row ``dst_idx[j]`` of ``dst`` (reserved).

    ``n_rows`` (default: ``dst``'s capacity) bounds the destination ids.
    """
    src_idx = as_device(src_idx, np.int64)
    dst_idx = as_device(dst_idx, np.int64)
    n = src_idx.shape[0]
    if n == 0:
        return
    blocks, threads = launch(n)
    kernel("agg.merge")[blocks, threads](
        src_idx, dst_idx, dst.ops, src.rows, src.ist, src.isum, src.f0, src.f1,
        dst.rows, dst.ist, dst.isum, dst.f0, dst.f1, dst.m_n, dst.m_sum,
    )  # fmt: skip
    if dst.has_moments:
        kernel("agg.merge_m2")[blocks, threads](
            src_idx,
            dst_idx,
            dst.ops,
            src.ist,
            src.isum,
            src.f0,
            src.f1,
            dst.m_n,
            dst.m_sum,
            dst.m_m2,
            dst.m_dev,
        )
        _combine(dst, n_rows)


def finalize_column(op: int, is_int: bool, n: int, state: DeviceAggState, a: int) -> Any:
    """(values, valid) device arrays of aggregation ``a`` for rows ``0..n-1``."""
    out = empty(max(n, 0), np.float64)
    valid = empty(max(n, 0), np.bool_)
    if n > 0:
        blocks, threads = launch(n)
        kernel("agg.finalize")[blocks, threads](
            int(op), bool(is_int), n, state.ist, state.isum, state.f0, state.f1, int(a), out, valid
        )
    return out, valid


__all__ = ["FLOAT_DTYPES", "DeviceAggState", "finalize_column", "merge_rows", "update_events"]
