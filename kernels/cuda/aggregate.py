"""Mergeable aggregate state on the device: the CUDA twin of :mod:`kernels.aggregate`.

The state columns (``rows``, ``ist``, ``isum``, ``f0``, ``f1``; see the table in
:mod:`kernels.aggregate`) have the same layout and meaning as on the CPU, so a
:class:`DeviceAggState` copies to and from an :class:`~kernels.aggregate.AggState`
unchanged and either side can merge or finalise it.

Scattering uses atomics (one thread per event or per merged pair):
``atomic.add`` for counts and sums (float64 atomic add needs sm_60+),
``atomic.min``/``atomic.max`` for MIN/MAX (NaN never wins, as on the CPU).
STD/VAR cannot be updated atomically in (n, mean, M2) form, so they take two
passes into per-row scratch moments: pass 1 adds counts and sums (the mean),
pass 2 adds ``(x - mean)^2`` (or, when merging rows, ``M2_s + n_s (mean_s -
mean)^2``); a per-row pass then folds the batch moments into the state with
Chan's formula, exactly the CPU's merge, and clears the scratch.

API (device arrays; small plan arrays may be host numpy arrays):

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
from typing import Any

import numpy as np
from numba import float64, types

from kernels.aggregate import (
    COUNT,
    DISTINCT,
    MAX,
    MEAN,
    MIN,
    QUANTILE,
    STD,
    SUM,
    VAR,
    AggState,
    final_value,
)
from kernels.cuda._core import (
    arr,
    as_device,
    constant,
    cuda,
    empty,
    full,
    kernel,
    launch,
    register,
    to_host,
)

FLOAT_DTYPES = ("float64", "float32")

_I1, _I2, _F2, _B1 = arr("int64"), arr("int64", 2), arr("float64", 2), arr("bool")


def _update_sig(dt: np.dtype) -> Any:
    return types.void(
        _I1, _I1, _I1, _I1, _B1, arr(dt, 2), _I2, arr("uint8", 2),
        _I1, _I2, _I2, _F2, _F2, _I2, _F2,
    )  # fmt: skip


@register("agg.update", FLOAT_DTYPES, _update_sig)
def _update(
    ids, ops, col_of, mask_of, is_int, fcols, icols, masks,
    rows, ist, isum, f0, f1, m_n, m_sum,
):  # pragma: no cover - compiled  # fmt: skip
    n_aggs = ops.shape[0]
    for i in range(cuda.grid(1), ids.shape[0], cuda.gridsize(1)):
        r = ids[i]
        if r < 0:
            continue
        cuda.atomic.add(rows, r, 1)
        for a in range(n_aggs):
            m = mask_of[a]
            if m >= 0 and masks[m, i] == 0:
                continue
            op = ops[a]
            if op == COUNT or op == QUANTILE or op == DISTINCT:
                cuda.atomic.add(ist, (r, a), 1)
                continue
            c = col_of[a]
            x = float64(fcols[c, i])
            if op == STD or op == VAR:  # pass 1 of 2: count and sum into scratch
                cuda.atomic.add(m_n, (r, a), 1)
                cuda.atomic.add(m_sum, (r, a), x)
                continue
            cuda.atomic.add(ist, (r, a), 1)
            if op == SUM or op == MEAN:
                if is_int[a]:
                    cuda.atomic.add(isum, (r, a), icols[c, i])
                else:
                    cuda.atomic.add(f0, (r, a), x)
            elif op == MIN:
                if x < f0[r, a]:  # a plain read first: most events lose, no atomic
                    cuda.atomic.min(f0, (r, a), x)
            elif op == MAX:
                if x > f0[r, a]:
                    cuda.atomic.max(f0, (r, a), x)


def _m2_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I1, arr(dt, 2), arr("uint8", 2), _I2, _F2, _F2)


@register("agg.update_m2", FLOAT_DTYPES, _m2_sig)
def _update_m2(ids, ops, col_of, mask_of, fcols, masks, m_n, m_sum, m_m2):  # pragma: no cover
    """Pass 2 of STD/VAR: squared deviations from the batch mean of the row."""
    n_aggs = ops.shape[0]
    for i in range(cuda.grid(1), ids.shape[0], cuda.gridsize(1)):
        r = ids[i]
        if r < 0:
            continue
        for a in range(n_aggs):
            op = ops[a]
            if op != STD and op != VAR:
                continue
            m = mask_of[a]
            if m >= 0 and masks[m, i] == 0:
                continue
            d = float64(fcols[col_of[a], i]) - m_sum[r, a] / m_n[r, a]
            cuda.atomic.add(m_m2, (r, a), d * d)


def _combine_sig(dt: np.dtype) -> Any:
    return types.void(_I1, types.int64, _I2, _F2, _F2, _I2, _F2, _F2)


@register("agg.combine_moments", ("int64",), _combine_sig)
def _combine_moments(ops, n, ist, f0, f1, m_n, m_sum, m_m2):  # pragma: no cover - compiled
    """Fold scratch moments (count, sum, M2) of rows ``0..n-1`` into (ist, f0, f1); clear them."""
    n_aggs = ops.shape[0]
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        for a in range(n_aggs):
            op = ops[a]
            if op != STD and op != VAR:
                continue
            ns = m_n[r, a]
            if ns == 0:
                continue
            mean = m_sum[r, a] / ns
            m2 = m_m2[r, a]
            nd = ist[r, a]
            total = nd + ns
            if nd == 0:
                f0[r, a] = mean
                f1[r, a] = m2
            else:  # Chan et al., as in the CPU merge_rows
                delta = mean - f0[r, a]
                f0[r, a] += delta * ns / total
                f1[r, a] += m2 + delta * delta * nd * ns / total
            ist[r, a] = total
            m_n[r, a] = 0
            m_sum[r, a] = 0.0
            m_m2[r, a] = 0.0


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
            elif op == MIN:
                v = s_f0[s, a]
                if v < d_f0[d, a]:
                    cuda.atomic.min(d_f0, (d, a), v)
            elif op == MAX:
                v = s_f0[s, a]
                if v > d_f0[d, a]:
                    cuda.atomic.max(d_f0, (d, a), v)


def _merge_m2_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _I1, _I1, _I2, _F2, _F2, _I2, _F2, _F2)


@register("agg.merge_m2", ("int64",), _merge_m2_sig)
def _merge_m2(src_idx, dst_idx, ops, s_ist, s_f0, s_f1, m_n, m_sum, m_m2):  # pragma: no cover
    """Pass 2 of STD/VAR merging: ``M2_s + n_s (mean_s - mean)^2`` around the merged mean."""
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
            delta = s_f0[s, a] - m_sum[d, a] / m_n[d, a]
            cuda.atomic.add(m_m2, (d, a), s_f1[s, a] + ns * delta * delta)


def _finalize_sig(dt: np.dtype) -> Any:
    i8 = types.int64
    return types.void(i8, types.boolean, i8, _I2, _I2, _F2, _F2, i8, arr("float64"), _B1)


@register("agg.finalize", ("int64",), _finalize_sig)
def _finalize(op, is_int, n, ist, isum, f0, f1, a, out, valid):  # pragma: no cover - compiled
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[r], valid[r] = final_value(op, is_int, ist[r, a], isum[r, a], f0[r, a], f1[r, a])


def _init_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _F2, types.int64, types.int64)


@register("agg.init_rows", ("int64",), _init_sig)
def _init_rows(ops, f0, start, stop):  # pragma: no cover - compiled
    """Identity elements of rows ``start..stop-1``: +inf for MIN, -inf for MAX, 0 elsewhere."""
    n_aggs = ops.shape[0]
    for r in range(start + cuda.grid(1), stop, cuda.gridsize(1)):
        for a in range(n_aggs):
            if ops[a] == MIN:
                f0[r, a] = math.inf
            elif ops[a] == MAX:
                f0[r, a] = -math.inf
            else:
                f0[r, a] = 0.0


_COLUMNS = ("rows", "ist", "isum", "f0", "f1")


class DeviceAggState:
    """Device copy of :class:`~kernels.aggregate.AggState` plus STD/VAR scratch moments."""

    def __init__(self, ops: Any, capacity: int = 1024) -> None:
        self.ops_host = np.ascontiguousarray(to_host(ops), dtype=np.int64)
        self.ops = constant(self.ops_host)  # read-only: shared, uploaded once
        self.n_aggs = len(self.ops_host)
        self.has_moments = bool(np.isin(self.ops_host, [STD, VAR]).any())
        self._alloc(max(capacity, 16))

    def _alloc(self, capacity: int) -> None:
        shape2 = (capacity, self.n_aggs)
        self.rows = full(capacity, 0, np.int64)
        self.ist = full(shape2, 0, np.int64)
        self.isum = full(shape2, 0, np.int64)
        self.f0 = empty(shape2, np.float64)
        self.f1 = full(shape2, 0.0, np.float64)
        self._init(0, capacity)
        scratch = shape2 if self.has_moments else (1, self.n_aggs)
        self.m_n = full(scratch, 0, np.int64)
        self.m_sum = full(scratch, 0.0, np.float64)
        self.m_m2 = full(scratch, 0.0, np.float64)

    def _init(self, start: int, stop: int) -> None:
        if stop > start:
            blocks, threads = launch(stop - start)
            kernel("agg.init_rows")[blocks, threads](self.ops, self.f0, start, stop)

    @property
    def capacity(self) -> int:
        return int(self.rows.shape[0])

    @property
    def nbytes(self) -> int:
        """Device bytes of the state columns (the STD/VAR scratch not counted)."""
        return sum(int(getattr(self, name).nbytes) for name in _COLUMNS)

    def reserve(self, n_rows: int) -> None:
        """Make room for row ids below ``n_rows`` (new rows start empty)."""
        old = self.capacity
        if n_rows <= old:
            return
        kept = {name: getattr(self, name) for name in _COLUMNS}
        self._alloc(max(n_rows, 2 * old))
        for name, array in kept.items():
            getattr(self, name)[:old].copy_to_device(array)

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
            getattr(out, name)[:n].copy_to_device(np.ascontiguousarray(getattr(state, name)[:n]))
        return out


def update_events(
    ids: Any, ops: Any, col_of: Any, mask_of: Any, is_int: Any,
    fcols: Any, icols: Any, masks: Any, state: DeviceAggState, n_rows: int | None = None,
) -> None:  # fmt: skip
    """Scatter event ``i`` into row ``ids[i]`` of ``state`` (already reserved) on the device.

    ``n_rows`` (default: the capacity) bounds the ids, which limits the STD/VAR fold pass.
    """
    ids = as_device(ids, np.int64)
    fcols = as_device(fcols)
    dtype = np.dtype(fcols.dtype)
    plan = (as_device(ops, np.int64), as_device(col_of, np.int64), as_device(mask_of, np.int64))
    n = ids.shape[0]
    if n == 0:
        return
    blocks, threads = launch(n)
    kernel("agg.update", dtype)[blocks, threads](
        ids, *plan, as_device(is_int, np.bool_), fcols, as_device(icols, np.int64),
        as_device(masks, np.uint8), state.rows, state.ist, state.isum, state.f0, state.f1,
        state.m_n, state.m_sum,
    )  # fmt: skip
    if state.has_moments:
        kernel("agg.update_m2", dtype)[blocks, threads](
            ids, *plan, fcols, as_device(masks, np.uint8), state.m_n, state.m_sum, state.m_m2
        )
        _combine(state, n_rows)


def _combine(state: DeviceAggState, n_rows: int | None) -> None:
    n = state.capacity if n_rows is None else min(n_rows, state.capacity)
    blocks, threads = launch(n)
    kernel("agg.combine_moments")[blocks, threads](
        state.ops, n, state.ist, state.f0, state.f1, state.m_n, state.m_sum, state.m_m2
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
            src_idx, dst_idx, dst.ops, src.ist, src.f0, src.f1, dst.m_n, dst.m_sum, dst.m_m2
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
