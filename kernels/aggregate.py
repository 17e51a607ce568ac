"""Mergeable aggregate state: scatter events into rows, merge rows, finalise values.

A state table holds, for each row (a pane x key, a window x key, a session),
``rows`` (events counted) and four per-aggregation columns whose meaning
depends on the operation code:

========  ==========  ===============  ===============  ==========
op        ``ist``     ``isum``         ``f0``           ``f1``
========  ==========  ===============  ===============  ==========
COUNT     matches     -                -                -
SUM       non-nulls   sum (integers)   sum (floats)     -
MEAN      non-nulls   int sum (ints)   float sum        -
MIN       non-nulls   min (integers)   min (floats)     -
MAX       non-nulls   max (integers)   max (floats)     -
STD/VAR   non-nulls   -                mean             M2 (Welford/Chan)
QUANTILE  non-nulls   -                -                -   (buckets in a sketch table)
DISTINCT  non-nulls   -                -                -   (hashes in a sketch table)
========  ==========  ===============  ===============  ==========

Every update is associative and commutative, so partial states from panes,
batches and workers merge into the same answer. Integer columns keep their
``sum``, ``min`` and ``max`` in int64, exactly (a float64 holds integers only up
to 2^53); their ``mean`` keeps both sums and takes the exact one unless the float
sum says it may have wrapped past ±2^63 (:func:`integer_mean`).
MIN/MAX rows start at their identities in both columns (the one not fed stays
there), so a merge or combine needs no column types.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

COUNT, SUM, MEAN, MIN, MAX, STD, VAR, QUANTILE, DISTINCT = range(9)
OP_CODES = {
    "count": COUNT,
    "sum": SUM,
    "mean": MEAN,
    "min": MIN,
    "max": MAX,
    "std": STD,
    "var": VAR,
    "quantile": QUANTILE,
    "count_distinct": DISTINCT,
}


class AggState:
    """Columnar, growable aggregate state for ``n_aggs`` aggregations."""

    __slots__ = ("f0", "f1", "ist", "isum", "n_aggs", "ops", "rows")

    def __init__(self, ops: np.ndarray, capacity: int = 1024) -> None:
        self.ops = np.asarray(ops, dtype=np.int64)
        self.n_aggs = len(self.ops)
        capacity = max(capacity, 16)
        self.rows = np.zeros(capacity, dtype=np.int64)
        self.ist = np.zeros((capacity, self.n_aggs), dtype=np.int64)
        self.isum = np.zeros((capacity, self.n_aggs), dtype=np.int64)
        self.f0 = np.zeros((capacity, self.n_aggs), dtype=np.float64)
        self.f1 = np.zeros((capacity, self.n_aggs), dtype=np.float64)
        init_rows(self.ops, self.f0, self.isum, 0, capacity)

    @property
    def capacity(self) -> int:
        return int(self.rows.shape[0])

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.rows, self.ist, self.isum, self.f0, self.f1)))

    def reserve(self, n_rows: int) -> None:
        """Make room for row ids below ``n_rows`` (new rows start empty)."""
        old = self.capacity
        if n_rows <= old:
            return
        new = max(n_rows, 2 * old)
        for name in ("rows", "ist", "isum", "f0", "f1"):
            array = getattr(self, name)
            grown = np.zeros((new, *array.shape[1:]), dtype=array.dtype)
            grown[:old] = array
            setattr(self, name, grown)
        init_rows(self.ops, self.f0, self.isum, old, new)

    def keep_rows(self, keep: np.ndarray, n_old: int) -> None:
        """Keep only rows ``keep`` (ascending), moved to the front in place; the rest reset."""
        compact_rows(np.ascontiguousarray(keep, dtype=np.int64), n_old, self.ops,
                     self.rows, self.ist, self.isum, self.f0, self.f1)  # fmt: skip

    def take(self, rows: np.ndarray) -> AggState:
        """A new state holding only ``rows`` (in that order)."""
        out = AggState(self.ops, capacity=max(16, len(rows)))
        n = len(rows)
        out.rows[:n] = self.rows[rows]
        out.ist[:n] = self.ist[rows]
        out.isum[:n] = self.isum[rows]
        out.f0[:n] = self.f0[rows]
        out.f1[:n] = self.f1[rows]
        return out


INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


@njit(nogil=True, cache=True)
def init_rows(ops, f0, isum, start, stop):  # pragma: no cover - compiled
    """Identity elements: +inf and int64's largest for MIN, -inf and its smallest for MAX.
    Other cells are left alone: every caller's rows are zeroed already (``np.zeros``, or
    the reset in :func:`compact_rows`); the CUDA twin writes their 0 itself."""
    for r in range(start, stop):
        for a in range(ops.shape[0]):
            if ops[a] == MIN:
                f0[r, a] = np.inf
                isum[r, a] = INT64_MAX
            elif ops[a] == MAX:
                f0[r, a] = -np.inf
                isum[r, a] = INT64_MIN


def copy_row(
    s, d, s_rows, s_ist, s_isum, s_f0, s_f1, d_rows, d_ist, d_isum, d_f0, d_f1
):  # pragma: no cover - compiled
    """Copy state row ``s`` into row ``d`` (of the same or another state).

    Plain Python, compiled into the CPU compaction below and the CUDA row move
    (``kernels.cuda.windows``), so the state layout is copied in one place.
    """
    d_rows[d] = s_rows[s]
    for a in range(s_ist.shape[1]):
        d_ist[d, a] = s_ist[s, a]
        d_isum[d, a] = s_isum[s, a]
        d_f0[d, a] = s_f0[s, a]
        d_f1[d, a] = s_f1[s, a]


_copy_row = njit(inline="always")(copy_row)


@njit(nogil=True, cache=True)
def compact_rows(keep, n_old, ops, rows, ist, isum, f0, f1):  # pragma: no cover - compiled
    """Move rows ``keep`` (ascending) to ``0..len(keep)-1``; reset rows up to ``n_old``."""
    n_aggs = ops.shape[0]
    for j in range(keep.shape[0]):
        r = keep[j]
        if r != j:
            _copy_row(r, j, rows, ist, isum, f0, f1, rows, ist, isum, f0, f1)
    for r in range(keep.shape[0], n_old):
        rows[r] = 0
        for a in range(n_aggs):
            ist[r, a] = 0
            isum[r, a] = 0
            f0[r, a] = 0.0
            f1[r, a] = 0.0
    init_rows(ops, f0, isum, keep.shape[0], n_old)


@njit(inline="always")
def update_row(
    r, i, ops, col_of, mask_of, is_int, fcols, icols, masks, rows, ist, isum, f0, f1
):  # pragma: no cover - compiled
    """Add event ``i`` to row ``r`` for every aggregation (see :func:`update_events`)."""
    rows[r] += 1
    for a in range(ops.shape[0]):
        m = mask_of[a]
        if m >= 0 and masks[m, i] == 0:
            continue
        op = ops[a]
        ist[r, a] += 1
        if op == COUNT or op == QUANTILE or op == DISTINCT:
            continue
        c = col_of[a]
        x = fcols[c, i]
        if is_int[a] and op != STD and op != VAR:
            v = icols[c, i]
            if op == SUM or op == MEAN:
                isum[r, a] += v
                if op == MEAN:
                    f0[r, a] += x
            elif v < isum[r, a] if op == MIN else v > isum[r, a]:
                isum[r, a] = v
        elif op == SUM or op == MEAN:
            f0[r, a] += x
        elif op == MIN:
            if x < f0[r, a]:
                f0[r, a] = x
        elif op == MAX:
            if x > f0[r, a]:
                f0[r, a] = x
        else:  # STD / VAR: Welford
            k = ist[r, a]
            delta = x - f0[r, a]
            f0[r, a] = next_mean(f0[r, a], x, delta, k - 1, 1)
            f1[r, a] += delta * (x - f0[r, a])


@njit(nogil=True, cache=True)
def update_events(
    ids, ops, col_of, mask_of, is_int, fcols, icols, masks, rows, ist, isum, f0, f1
):  # pragma: no cover - compiled
    """Scatter event ``i`` into row ``ids[i]`` for every aggregation.

    ``fcols[c]``/``icols[c]`` hold value column ``c`` as float64 / int64 (``icols``: the
    integer columns of SUM, MEAN, MIN and MAX);
    ``masks[m]`` is 1 where an event takes part (not null and ``where`` holds);
    aggregation ``a`` reads column ``col_of[a]`` under mask ``mask_of[a]``.
    """
    for i in range(ids.shape[0]):
        r = ids[i]
        if r >= 0:
            update_row(r, i, ops, col_of, mask_of, is_int, fcols, icols, masks,
                       rows, ist, isum, f0, f1)  # fmt: skip


@njit(inline="always")
def next_mean(mean_a, mean_b, delta, n_a, n_b):  # pragma: no cover - compiled
    """The mean of two parts, ``delta = mean_b - mean_a``. Where that difference of two
    finite means overflowed (values near ±1.7e308), the weighted sum instead: adding
    ``delta * n_b / total`` made the mean infinite, and the next part's delta then
    ``inf - inf``, so the variance came out NaN or inf by how events fell into batches.
    The squared deviations overflow to +inf either way, numpy's variance there."""
    total = n_a + n_b
    if math.isinf(delta) and math.isfinite(mean_a) and math.isfinite(mean_b):
        return mean_a * (n_a / total) + mean_b * (n_b / total)
    return mean_a + delta * n_b / total


@njit(inline="always")
def chan(n_a, mean_a, m2_a, n_b, mean_b, m2_b):  # pragma: no cover - compiled
    """(mean, M2) of two parts combined (Chan et al.), part ``a`` possibly empty.

    Shared by every merge of STD/VAR moments: the CPU row merge and group
    finaliser, and the CUDA fold and merge kernels.
    """
    if n_a == 0:
        return mean_b, m2_b
    total = n_a + n_b
    delta = mean_b - mean_a
    mean = next_mean(mean_a, mean_b, delta, n_a, n_b)
    return mean, m2_a + (m2_b + delta * delta * n_a * n_b / total)


@njit(nogil=True, cache=True)
def merge_rows(
    src_idx, dst_idx, ops, s_rows, s_ist, s_isum, s_f0, s_f1, d_rows, d_ist, d_isum, d_f0, d_f1
):  # pragma: no cover - compiled
    """Merge source row ``src_idx[j]`` into destination row ``dst_idx[j]`` for every ``j``."""
    n_aggs = ops.shape[0]
    for j in range(src_idx.shape[0]):
        s = src_idx[j]
        d = dst_idx[j]
        d_rows[d] += s_rows[s]
        for a in range(n_aggs):
            ns = s_ist[s, a]
            if ns == 0:
                continue
            op = ops[a]
            nd = d_ist[d, a]
            d_ist[d, a] = nd + ns
            if op == SUM or op == MEAN:
                d_isum[d, a] += s_isum[s, a]  # 0 where not fed (floats, means)
                d_f0[d, a] += s_f0[s, a]
            elif op == MIN:  # both columns: the one not fed stays at its identity
                if s_f0[s, a] < d_f0[d, a]:
                    d_f0[d, a] = s_f0[s, a]
                if s_isum[s, a] < d_isum[d, a]:
                    d_isum[d, a] = s_isum[s, a]
            elif op == MAX:
                if s_f0[s, a] > d_f0[d, a]:
                    d_f0[d, a] = s_f0[s, a]
                if s_isum[s, a] > d_isum[d, a]:
                    d_isum[d, a] = s_isum[s, a]
            elif op == STD or op == VAR:
                d_f0[d, a], d_f1[d, a] = chan(nd, d_f0[d, a], d_f1[d, a], ns, s_f0[s, a],
                                              s_f1[s, a])  # fmt: skip


EXACT_SUM_BOUND = 2.0**62  # a float sum below it vouches for an int64 sum that did not wrap


@njit(inline="always")
def integer_mean(isum, fsum, k):  # pragma: no cover - compiled
    """Mean of ``k`` integers from their int64 sum (exact, but wrapped past ±2^63) and
    their float64 sum (rounded, never wrapped): the exact one where the float sum is small
    enough that the true sum fits an int64, else the float one."""
    return (float(isum) if abs(fsum) < EXACT_SUM_BOUND else fsum) / k


@njit(inline="always")
def final_value(op, is_int, k, isum, f0, f1):  # pragma: no cover - compiled
    """(value, valid) of one aggregation from its state columns; shared with the CUDA kernels.
    Integer SUM, MIN and MAX come out as float here; their exact int64 is ``isum``."""
    if op == COUNT or op == QUANTILE or op == DISTINCT:
        return float(k), True
    if k == 0:
        return math.nan, False
    if op == SUM or op == MIN or op == MAX:
        return (float(isum) if is_int else f0), True
    if op == MEAN:
        return (integer_mean(isum, f0, k) if is_int else f0 / k), True
    if k < 2:  # STD / VAR: sample statistics need two values
        return math.nan, False
    # -inf: Welford's x - mean overflowed (values 3.4e308 apart), so the squares did too
    var = (math.inf if f1 == -math.inf else max(f1, 0.0)) / (k - 1)
    return (math.sqrt(var) if op == STD else var), True


@njit(nogil=True, cache=True)
def finalize_column(op, is_int, n, ist, isum, f0, f1, a, out, valid):  # pragma: no cover
    """Value of aggregation ``a`` for rows ``0..n-1`` into ``out`` (float64), ``valid`` mask."""
    for r in range(n):
        out[r], valid[r] = final_value(op, is_int, ist[r, a], isum[r, a], f0[r, a], f1[r, a])


def merge_into(src: AggState, dst: AggState, src_idx: np.ndarray, dst_idx: np.ndarray) -> None:
    """Merge rows of ``src`` into ``dst`` pairwise (``dst`` must be reserved already)."""
    merge_rows(
        np.ascontiguousarray(src_idx, dtype=np.int64),
        np.ascontiguousarray(dst_idx, dtype=np.int64),
        src.ops,
        src.rows, src.ist, src.isum, src.f0, src.f1,
        dst.rows, dst.ist, dst.isum, dst.f0, dst.f1,
    )  # fmt: skip


@njit(nogil=True, cache=True)
def combine_finalize(
    lo, hi, position, ops, is_int, ist, isum, f0, f1, out_f, out_i, valid
):  # pragma: no cover - compiled
    """Final values of groups made of runs of rows, without building a group state.

    Group ``g`` is made of rows ``lo[g]:hi[g]`` (state rows gathered so that
    each group's rows are contiguous; groups may share rows) and written at
    column ``position[g]`` of ``out_f`` (float results), ``out_i`` (integer sums, minima,
    maxima and counts) and ``valid``, each shaped ``(n_aggs, n_groups)`` so that every
    output column is contiguous. The generic reference of the kernels generated
    by :mod:`kernels.specialize`.
    """
    n_aggs = ops.shape[0]
    cnt = np.zeros(n_aggs, dtype=np.int64)
    iacc = np.zeros(n_aggs, dtype=np.int64)
    acc = np.zeros(n_aggs, dtype=np.float64)
    m2 = np.zeros(n_aggs, dtype=np.float64)
    for g in range(lo.shape[0]):
        for a in range(n_aggs):
            cnt[a] = 0
            iacc[a] = INT64_MAX if ops[a] == MIN else (INT64_MIN if ops[a] == MAX else 0)
            m2[a] = 0.0
            acc[a] = np.inf if ops[a] == MIN else (-np.inf if ops[a] == MAX else 0.0)
        for s in range(lo[g], hi[g]):
            for a in range(n_aggs):
                ns = ist[s, a]
                if ns == 0:
                    continue
                op = ops[a]
                if op == SUM or op == MEAN:
                    iacc[a] += isum[s, a]
                    acc[a] += f0[s, a]
                elif op == MIN:
                    if f0[s, a] < acc[a]:
                        acc[a] = f0[s, a]
                    if isum[s, a] < iacc[a]:
                        iacc[a] = isum[s, a]
                elif op == MAX:
                    if f0[s, a] > acc[a]:
                        acc[a] = f0[s, a]
                    if isum[s, a] > iacc[a]:
                        iacc[a] = isum[s, a]
                elif op == STD or op == VAR:
                    acc[a], m2[a] = chan(cnt[a], acc[a], m2[a], ns, f0[s, a], f1[s, a])
                cnt[a] += ns
        p = position[g]
        for a in range(n_aggs):
            op = ops[a]
            n = cnt[a]
            ok = True
            value = 0.0
            if op == COUNT or op == QUANTILE or op == DISTINCT:
                out_i[a, p] = n
                value = n
            elif n == 0:
                ok = False
            elif op == SUM or op == MIN or op == MAX:
                out_i[a, p] = iacc[a]
                value = iacc[a] if is_int[a] else acc[a]
            elif op == MEAN:
                value = integer_mean(iacc[a], acc[a], n) if is_int[a] else acc[a] / n
            elif n < 2:
                ok = False
            else:
                var = (math.inf if m2[a] == -math.inf else max(m2[a], 0.0)) / (n - 1)
                value = math.sqrt(var) if op == STD else var
            out_f[a, p] = value if ok else math.nan
            valid[a, p] = ok
