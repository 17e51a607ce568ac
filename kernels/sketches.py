"""Mergeable sketches: DDSketch-style log buckets for quantiles, hashes for distinct counts.

Both are stored as *entries* ``(row, aggregation, bucket) -> count`` in a hash
index owned by the caller, so they merge across panes, batches and workers by
remapping ``row`` and adding counts, exactly like the scalar state.

Quantiles: a value ``x > 0`` goes to bucket ``ceil(log_gamma(x))`` with
``gamma = (1 + alpha) / (1 - alpha)``; the bucket's representative
``2 gamma^k / (gamma + 1)`` is within ``alpha`` relative error of every value
in it. Negative values mirror this; zero has its own
bucket. Bucket keys are encoded so that integer order equals value order.

Distinct counts: 64-bit hashes of the values; the count of distinct hashes is
exact up to hash collisions (probability ~ n^2 / 2^65).
"""

from __future__ import annotations

import math

from numba import int64, njit, uint64

from kernels.hashindex import HASH_SEED, find_or_add, find_or_add_triple, mix64

ALPHA = 0.005  # below the 1% promise, leaving room for float rounding in log()
GAMMA = (1.0 + ALPHA) / (1.0 - ALPHA)
LOG_GAMMA = math.log(GAMMA)
_OFFSET = 1 << 20  # |ceil(log_gamma(x))| < 2^18 for every finite float64
_LOG_SCALE = math.log(2.0 / (GAMMA + 1.0))  # the representative, as a log: no overflow
_FLOAT_MAX = 1.7976931348623157e308
# Infinities and NaN (in ``allow_nan`` fields) get buckets of their own beyond every
# finite value's, NaN after +inf as Polars and DuckDB sort it: converting their
# logarithms to int would be undefined, and differ between the CPU and a GPU.
INF_KEY = 1 << 40
NAN_KEY = INF_KEY + 1


@njit(inline="always")
def bucket_key(x: float) -> int:  # pragma: no cover - compiled
    if x != x:
        return NAN_KEY
    ax = abs(x)
    if ax == 0.0:
        return 0
    if ax == math.inf:
        return INF_KEY if x > 0 else -INF_KEY
    k = int(math.ceil(math.log(ax) / LOG_GAMMA)) + _OFFSET
    return k if x > 0 else -k


@njit(inline="always")
def bucket_value(key: int) -> float:  # pragma: no cover - compiled
    if key == 0:
        return 0.0
    if key == NAN_KEY:
        return math.nan
    if abs(key) == INF_KEY:
        return math.inf if key > 0 else -math.inf
    k = abs(key) - _OFFSET
    # exp of the sum: 2 * exp(k log gamma) overflowed for values past ~9e307. The bucket
    # of a value within alpha of the largest float may still exceed it: clamped there.
    v = min(math.exp(k * LOG_GAMMA + _LOG_SCALE), _FLOAT_MAX)
    return v if key > 0 else -v


@njit(nogil=True, cache=True)
def bucket_keys(values, out):  # pragma: no cover - compiled
    for i in range(values.shape[0]):
        out[i] = bucket_key(values[i])


@njit(inline="always")
def hash_value(v):  # pragma: no cover - compiled
    """The 64-bit hash of one int64 value, as an int64; shared with the CUDA kernels."""
    return int64(mix64(uint64(v) + uint64(HASH_SEED)))


@njit(nogil=True, cache=True)
def hash_int64(values, out):  # pragma: no cover - compiled
    """64-bit hashes of int64 values (a bijection, so distinct values never collide)."""
    for i in range(values.shape[0]):
        out[i] = hash_value(values[i])


@njit(nogil=True, cache=True)
def count_entries(slots, stored, n, counts, keys, weights):  # pragma: no cover - compiled
    """Add ``weights[i]`` to the count of entry ``keys[i]`` (inserted when new); the new size.

    The index (``slots``, ``stored``, ``n``) and ``counts`` must have room for
    every key to be new.
    """
    rest = keys[:, 1:]
    for i in range(keys.shape[0]):
        sid, n = find_or_add(slots, stored, n, keys[i, 0], rest, i)
        counts[sid] += weights[i]
    return n


@njit(nogil=True, cache=True)
def count_event_entries(
    slots, stored, n, counts, ids, agg, event_index, sketch_keys, mine
):  # pragma: no cover - compiled
    """Count entry ``(ids[event_index[i]], agg, sketch_keys[i])`` once per event; the new size.

    Events ``event_index[i]`` outside ``mine`` (a mask over the batch; empty:
    every event is mine) are skipped. Room as for :func:`count_entries`.
    """
    every = mine.shape[0] == 0
    for i in range(event_index.shape[0]):
        e = event_index[i]
        if every or mine[e]:
            sid, n = find_or_add_triple(slots, stored, n, ids[e], agg, sketch_keys[i])
            counts[sid] += 1
    return n


@njit(nogil=True, cache=True)
def quantiles_from_entries(group, bucket, count, q, n_groups, out, valid):  # pragma: no cover
    """Quantile ``q`` of each group from entries sorted by (group, bucket).

    Returns the representative of the bucket holding the value of rank
    ``floor(q * (n - 1))`` (0-based), the "lower" quantile of numpy.
    """
    for g in range(n_groups):
        valid[g] = False
        out[g] = math.nan
    i = 0
    n = group.shape[0]
    while i < n:
        g = group[i]
        j = i
        total = 0
        while j < n and group[j] == g:
            total += count[j]
            j += 1
        rank = math.floor(q * (total - 1))
        cum = 0
        for e in range(i, j):
            cum += count[e]
            if cum > rank:
                out[g] = bucket_value(bucket[e])
                valid[g] = True
                break
        i = j


@njit(inline="always")
def _smallest_run(src, j, width, cursor, ends, keys):  # pragma: no cover - compiled
    """Which of the runs ``0..width-1`` has the smallest current key (-1: all done)."""
    best = -1
    for s in range(width):
        c = cursor[s]
        if c < ends[src[j + s]] and (best < 0 or keys[c] < keys[cursor[best]]):
            best = s
    return best


@njit(inline="always")
def _take_key(key, src, j, width, cursor, ends, keys, counts):  # pragma: no cover - compiled
    """Step every run past ``key``; the total count of ``key`` across runs."""
    total = 0
    for s in range(width):
        c = cursor[s]
        if c < ends[src[j + s]] and keys[c] == key:
            total += counts[c]
            cursor[s] = c + 1
    return total


@njit(nogil=True, cache=True)
def combine_sketches(
    src, dst, position, starts, ends, keys, counts, is_quantile, q, out, valid, cursor
):  # pragma: no cover - compiled
    """Quantile or distinct count of groups made of rows, by merging sorted sketch runs.

    Pairs ``(src[j], dst[j])`` come grouped by ``dst``; the entries of row ``r``
    are ``keys[starts[r]:ends[r]]`` (sorted bucket keys or hashes) with
    ``counts``. Writes group ``g`` at ``position[g]``. ``cursor`` is scratch
    space of at least the largest group's size. No hashing: a k-way merge.
    """
    n_pairs = src.shape[0]
    j = 0
    while j < n_pairs:
        g = dst[j]
        e = j
        total = 0
        while e < n_pairs and dst[e] == g:
            r = src[e]
            cursor[e - j] = starts[r]
            for i in range(starts[r], ends[r]):
                total += counts[i]
            e += 1
        width = e - j
        p = position[g]
        rank = math.floor(q * (total - 1)) if is_quantile and total > 0 else 0
        cum = 0
        distinct = 0
        out[p] = math.nan
        while True:
            best = _smallest_run(src, j, width, cursor, ends, keys)
            if best < 0:
                break
            key = keys[cursor[best]]
            cum += _take_key(key, src, j, width, cursor, ends, keys, counts)
            distinct += 1
            if is_quantile and cum > rank:
                out[p] = bucket_value(key)
                break
        if is_quantile:
            valid[p] = total > 0
        else:
            out[p] = distinct
            valid[p] = True
        j = e
