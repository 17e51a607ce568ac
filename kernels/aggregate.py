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
STD/VAR   non-nulls   mean's low part  mean             M2 (two-pass/Chan)
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

STD/VAR take a batch, or the rows merged into one, as the CUDA kernels do: its count and
sum first, then the deviations from its mean, squared and not, and the corrected
two-pass moments of those (:func:`corrected_moments`) merged into the row by Chan's
formula, the row's mean kept in two parts (``f0`` and, packed, ``isum``:
:func:`packed_mean`). The two backends then agree to rounding (the device's compiler fuses
some multiply-adds into one rounding). A float64 mean alone rounds
at every merge (on values near 1e15, by up to 0.0625): a per-event (Welford) update drifted
4 % there, and moments merged by batch 2 % in batches of 5. The batch's sums live in
``AggState.moments``, zero between calls.
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

    __slots__ = ("f0", "f1", "ist", "isum", "moments", "n_aggs", "ops", "rows")

    def __init__(self, ops: np.ndarray, capacity: int = 1024) -> None:
        self.ops = np.asarray(ops, dtype=np.int64)
        self.n_aggs = len(self.ops)
        capacity = max(capacity, 16)
        self.rows = np.zeros(capacity, dtype=np.int64)
        self.ist = np.zeros((capacity, self.n_aggs), dtype=np.int64)
        self.isum = np.zeros((capacity, self.n_aggs), dtype=np.int64)
        self.f0 = np.zeros((capacity, self.n_aggs), dtype=np.float64)
        self.f1 = np.zeros((capacity, self.n_aggs), dtype=np.float64)
        self.moments = new_moments(self.ops, capacity)
        init_rows(self.ops, self.f0, self.isum, 0, capacity)

    @property
    def capacity(self) -> int:
        return int(self.rows.shape[0])

    @property
    def nbytes(self) -> int:
        columns = (self.rows, self.ist, self.isum, self.f0, self.f1, self.moments)
        return int(sum(a.nbytes for a in columns))

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
        self.moments = new_moments(self.ops, new)  # zero between calls: nothing to keep
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
LARGEST_DOUBLE = float(np.finfo(np.float64).max)
MOMENT_SUMS = 4  # per row and STD/VAR aggregation: count, sum, squared deviations, deviations


def exact_isum(ops: np.ndarray) -> np.ndarray:
    """Which aggregations' ``isum`` is exact, so equal on every backend: all but STD/VAR's,
    the low part of a mean, which rounds with the float sums (in the order atomics add)."""
    return ~np.isin(np.asarray(ops), [STD, VAR])


def new_moments(ops: np.ndarray, capacity: int) -> np.ndarray:
    """Zeroed scratch ``(capacity, number of STD/VAR aggregations, MOMENT_SUMS)`` in which
    a batch's or a merge's moments are summed before they are folded into the state."""
    n_moments = int(np.count_nonzero((ops == STD) | (ops == VAR)))
    return np.zeros((capacity, n_moments, MOMENT_SUMS), dtype=np.float64)


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
    r, i, ops, col_of, mask_of, is_int, fcols, icols, masks, rows, ist, isum, f0, f1, moments
):  # pragma: no cover - compiled
    """Add event ``i`` to row ``r`` for every aggregation (see :func:`update_events`); of
    STD/VAR only its count and sum, into ``moments``, until :func:`fold_moments`."""
    rows[r] += 1
    j = -1  # the moment slot of aggregation ``a``: the STD/VAR aggregations in order
    for a in range(ops.shape[0]):
        op = ops[a]
        if op == STD or op == VAR:
            j += 1
        m = mask_of[a]
        if m >= 0 and masks[m, i] == 0:
            continue
        if op == STD or op == VAR:
            moments[r, j, 0] += 1.0
            moments[r, j, 1] += fcols[col_of[a], i]
            continue
        ist[r, a] += 1
        if op == COUNT or op == QUANTILE or op == DISTINCT:
            continue
        c = col_of[a]
        x = fcols[c, i]
        if is_int[a]:
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
        elif x > f0[r, a]:  # MAX
            f0[r, a] = x


@njit(nogil=True, cache=True)  # not inlined: compiled once for its callers
def fold_moments(
    events, ids, ops, col_of, mask_of, fcols, masks, ist, isum, f0, f1, moments
):  # pragma: no cover - compiled
    """The rest of STD/VAR for events ``events``, after :func:`update_row` summed their
    counts and values: the deviations from each row's batch mean, then the corrected
    moments merged into the row (Chan's formula); ``moments`` is left zeroed."""
    if moments.shape[1] == 0:
        return
    for e in range(events.shape[0]):
        i = events[e]
        r = ids[i]
        if r < 0:
            continue
        j = -1
        for a in range(ops.shape[0]):
            if ops[a] != STD and ops[a] != VAR:
                continue
            j += 1
            m = mask_of[a]
            if m >= 0 and masks[m, i] == 0:
                continue
            d = fcols[col_of[a], i] - moments[r, j, 1] / moments[r, j, 0]
            moments[r, j, 2] += d * d
            moments[r, j, 3] += d
    for e in range(events.shape[0]):
        r = ids[events[e]]
        if r >= 0:
            fold_row_moments(r, ops, ist, isum, f0, f1, moments)


@njit(inline="always")
def fold_row_moments(r, ops, ist, isum, f0, f1, moments):  # pragma: no cover - compiled
    """Merge row ``r``'s summed moments (:data:`MOMENT_SUMS`) into its state; zero them."""
    j = -1
    for a in range(ops.shape[0]):
        if ops[a] != STD and ops[a] != VAR:
            continue
        j += 1
        ns = np.int64(moments[r, j, 0])
        if ns == 0:
            continue
        f0[r, a], isum[r, a], f1[r, a] = merged_moments(
            ist[r, a], f0[r, a], isum[r, a], f1[r, a],
            ns, moments[r, j, 1], moments[r, j, 2], moments[r, j, 3],
        )  # fmt: skip
        ist[r, a] += ns
        for k in range(MOMENT_SUMS):
            moments[r, j, k] = 0.0


@njit(nogil=True, cache=True)
def update_events(
    ids, ops, col_of, mask_of, is_int, fcols, icols, masks, rows, ist, isum, f0, f1, moments
):  # pragma: no cover - compiled
    """Scatter event ``i`` into row ``ids[i]`` for every aggregation.

    ``fcols[c]``/``icols[c]`` hold value column ``c`` as float64 / int64 (``icols``: the
    integer columns of SUM, MEAN, MIN and MAX);
    ``masks[m]`` is 1 where an event takes part (not null and ``where`` holds);
    aggregation ``a`` reads column ``col_of[a]`` under mask ``mask_of[a]``;
    ``moments`` is the state's zeroed STD/VAR scratch (:func:`new_moments`).
    """
    for i in range(ids.shape[0]):
        r = ids[i]
        if r >= 0:
            update_row(r, i, ops, col_of, mask_of, is_int, fcols, icols, masks,
                       rows, ist, isum, f0, f1, moments)  # fmt: skip
    if moments.shape[1]:
        events = np.arange(ids.shape[0])
        fold_moments(events, ids, ops, col_of, mask_of, fcols, masks, ist, isum, f0, f1, moments)


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
def two_sum(a, b):  # pragma: no cover - compiled
    """(s, e): ``s = a + b`` rounded and ``e`` its rounding error, ``a + b = s + e`` exactly
    (Knuth's TwoSum, for finite values)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


LOW_PART_SCALE = 2.0**113  # a low part below ulp(mean) / 2 <= |mean| 2^-53 packs in 2^60
SMALLEST_PACKED = 2.0**-900  # below it, no low part: LOW_PART_SCALE / |mean| would overflow


@njit(inline="always")
def packed_mean(hi, lo):  # pragma: no cover - compiled
    """(mean, code): the mean ``hi + lo`` rounded to float64, and what rounding lost as an
    int64 fraction of the mean (``code / LOW_PART_SCALE * |mean|``), kept in the row's
    ``isum`` (unused by STD/VAR otherwise). A float64 mean alone loses up to half its
    spacing at every merge: 0.0625 for means near 1e15, a variance 2 % off with a few
    events a batch."""
    if not (math.isfinite(hi) and math.isfinite(lo)):  # values near float64's largest
        return hi, np.int64(0)
    s, e = two_sum(hi, lo)
    if not (math.isfinite(s) and math.isfinite(e)):
        return hi, np.int64(0)
    if abs(s) < SMALLEST_PACKED:
        return s, np.int64(0)
    return s, np.int64(e * (LOW_PART_SCALE / abs(s)))  # truncated: 2^-113 of the mean


@njit(inline="always")
def low_part(mean, code):  # pragma: no cover - compiled
    """The low part that :func:`packed_mean` kept of ``mean`` as ``code``."""
    if code == 0:
        return 0.0
    return code * (abs(mean) / LOW_PART_SCALE)


@njit(inline="always")
def chan(n_a, mean_a, lo_a, m2_a, n_b, mean_b, lo_b, m2_b):  # pragma: no cover - compiled
    """(mean, its low part, M2) of two parts combined (Chan et al.), part ``a`` possibly
    empty; each part's mean is ``mean + lo``, so the difference of two means near each
    other keeps the bits that float64 means alone round away."""
    if n_a == 0:
        return mean_b, lo_b, m2_b
    total = n_a + n_b
    delta = (mean_b - mean_a) + (lo_b - lo_a)
    if math.isinf(delta):  # finite means 3.4e308 apart: next_mean's weighted sum
        return next_mean(mean_a, mean_b, delta, n_a, n_b), 0.0, m2_a + (m2_b + delta * delta)
    # delta * (n_b / total), not delta * n_b / total: a step no larger than delta keeps the
    # mean between the two means, where delta * n_b alone could pass float64 (then inf - inf)
    mean, lost = two_sum(mean_a, delta * (n_b / total))
    return mean, lost + lo_a, m2_a + (m2_b + delta * delta * n_a * n_b / total)


@njit(inline="always")
def corrected_moments(total, n, squares, deviations):  # pragma: no cover - compiled
    """(mean, its low part, M2) of ``n`` values from their ``total`` and the sums of their
    deviations from ``m = total / n``, squared and not: the corrected two-pass algorithm
    (Chan, Golub and LeVeque, 1983), ``M2 = sum (x - m)^2 - (sum (x - m))^2 / n``, which
    takes out the rounding of ``m`` (the mean is ``m + deviations / n``). Without it a
    column of 100 x (1e15 + 0.2) had a std of 0.13, and 1e15 + {0, 1} a variance 56 % too
    large. Squares past float64 give M2 as they are (inf), never inf - inf; where finite
    values' total passed it (``m`` infinite, the squares +inf) the mean is kept at
    float64's largest, so that later merges (Chan's formula, ``next_mean``) stay finite
    rather than inf - inf."""
    m = total / n
    if squares == math.inf:  # finite values far apart, or whose sum overflowed
        if math.isnan(m):  # merged parts' means of ±float64's largest: inf - inf
            return 0.0, 0.0, squares
        return (math.copysign(LARGEST_DOUBLE, m) if math.isinf(m) else m), 0.0, squares
    if not (math.isfinite(m) and math.isfinite(squares)):
        return m, 0.0, squares  # NaN values: NaN
    # deviations / n first: deviations^2 alone may pass float64 where squares does not
    return m, deviations / n, max(squares - deviations * (deviations / n), 0.0)


@njit(inline="always")
def merged_moments(n_a, mean_a, code_a, m2_a, n_b, total, squares, deviations):  # pragma: no cover
    """A state row's (mean, packed low part, M2) after ``n_b`` values, given as
    :func:`corrected_moments` takes them, merge into its ``n_a``: shared by every fold of
    STD/VAR moments into a row, on the CPU and on the device."""
    mean_b, lo_b, m2_b = corrected_moments(total, n_b, squares, deviations)
    mean, lo, m2 = chan(n_a, mean_a, low_part(mean_a, code_a), m2_a, n_b, mean_b, lo_b, m2_b)
    mean, code = packed_mean(mean, lo)
    return mean, code, m2


@njit(inline="always")
def part_deviations(n_s, mean_s, code_s, m2_s, mean):  # pragma: no cover - compiled
    """(squares, deviations) that a part of ``n_s`` values (its mean, the mean's packed low
    part, and M2) adds around the merged ``mean``: ``M2_s + n_s (mean_s - mean)^2`` and
    ``n_s (mean_s - mean)``, as :func:`corrected_moments` takes them."""
    delta = (mean_s - mean) + low_part(mean_s, code_s)
    squares = m2_s + n_s * delta * delta
    if math.isnan(squares) and not (math.isnan(mean_s) or math.isnan(m2_s)):
        return math.inf, 0.0  # means of ±float64's largest: inf - inf
    return squares, n_s * delta


@njit(nogil=True, cache=True)
def merge_rows(
    src_idx, dst_idx, ops, s_rows, s_ist, s_isum, s_f0, s_f1,
    d_rows, d_ist, d_isum, d_f0, d_f1, moments,
):  # pragma: no cover - compiled  # fmt: skip
    """Merge source row ``src_idx[j]`` into destination row ``dst_idx[j]`` for every ``j``;
    STD/VAR in two passes through the destination's zeroed ``moments`` (as the device)."""
    n_aggs = ops.shape[0]
    for j in range(src_idx.shape[0]):
        s = src_idx[j]
        d = dst_idx[j]
        d_rows[d] += s_rows[s]
        k = -1
        for a in range(n_aggs):
            op = ops[a]
            if op == STD or op == VAR:
                k += 1
            ns = s_ist[s, a]
            if ns == 0:
                continue
            if op == STD or op == VAR:  # pass 1 of 2: count and n * mean
                moments[d, k, 0] += ns
                moments[d, k, 1] += ns * s_f0[s, a]
                continue
            d_ist[d, a] += ns
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
    if moments.shape[1] == 0:
        return
    for j in range(src_idx.shape[0]):  # pass 2: around each destination's merged mean
        s = src_idx[j]
        d = dst_idx[j]
        k = -1
        for a in range(n_aggs):
            if ops[a] != STD and ops[a] != VAR:
                continue
            k += 1
            ns = s_ist[s, a]
            if ns:
                mean = moments[d, k, 1] / moments[d, k, 0]
                squares, deviations = part_deviations(
                    ns, s_f0[s, a], s_isum[s, a], s_f1[s, a], mean
                )
                moments[d, k, 2] += squares
                moments[d, k, 3] += deviations
    for j in range(dst_idx.shape[0]):
        fold_row_moments(dst_idx[j], ops, d_ist, d_isum, d_f0, d_f1, moments)


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
    var = max(f1, 0.0) / (k - 1)
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
        dst.rows, dst.ist, dst.isum, dst.f0, dst.f1, dst.moments,
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
    dev = np.zeros(n_aggs, dtype=np.float64)
    for g in range(lo.shape[0]):
        for a in range(n_aggs):
            cnt[a] = 0
            iacc[a] = INT64_MAX if ops[a] == MIN else (INT64_MIN if ops[a] == MAX else 0)
            m2[a] = 0.0
            dev[a] = 0.0
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
                elif op == STD or op == VAR:  # the total; deviations from its mean below
                    acc[a] += ns * f0[s, a]
                cnt[a] += ns
        for a in range(n_aggs):
            if (ops[a] == STD or ops[a] == VAR) and cnt[a]:
                for s in range(lo[g], hi[g]):
                    if ist[s, a]:
                        squares, deviations = part_deviations(
                            ist[s, a], f0[s, a], isum[s, a], f1[s, a], acc[a] / cnt[a]
                        )
                        m2[a] += squares
                        dev[a] += deviations
                m2[a] = corrected_moments(acc[a], cnt[a], m2[a], dev[a])[2]
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
                var = max(m2[a], 0.0) / (n - 1)
                value = math.sqrt(var) if op == STD else var
            out_f[a, p] = value if ok else math.nan
            valid[a, p] = ok
