"""``np.lexsort`` by a dense integer id and one other integer key, several times faster.

Why: window emission sorts sketch entries by (row, bucket or hash), and session windows
sort events by (key id, time), at every batch. ``np.lexsort`` runs a stable comparison
sort over all items for each key. Here the major key is a dense id below a known bound,
so a stable counting sort groups the items by id in one linear pass, and only each id's
run (usually a handful of items) needs sorting by the minor key: in Numba, by insertion
for short runs and by merge sort for longer ones, and by NumPy's stable sort for the few
runs of thousands. The result is the same permutation as ``np.lexsort((minor, major))``,
ties included, and the counting sort gives each id's range of the order for free.
"""

from __future__ import annotations

import numpy as np
from numba import njit

INSERTION_MAX = 32  # runs up to this long are insertion-sorted (quadratic, but no set-up)
SPARSE_IDS = 16  # ids per item past which a comparison sort beats passing over every id
MERGE_MAX = 4096  # longer runs go to NumPy's stable sort, faster on long runs than Numba's


@njit(nogil=True, cache=True)
def _group_and_sort_runs(
    major, minor, n_major, order, starts, run_keys, long_runs
):  # pragma: no cover
    """Counting-sort positions by ``major`` into ``order`` (``starts``: each id's first
    position, ``n_major + 1`` items), with their minor keys alongside in ``run_keys``;
    sort the runs of up to ``MERGE_MAX`` items by minor key, stably (insertion up to
    ``INSERTION_MAX``, else merge sort), and list the longer runs' ids in ``long_runs``.
    Returns how many long runs there are."""
    for k in range(n_major + 1):
        starts[k] = 0
    for i in range(major.shape[0]):
        starts[major[i] + 1] += 1
    for k in range(n_major):
        starts[k + 1] += starts[k]
    cursor = starts[:n_major].copy()
    for i in range(major.shape[0]):
        c = cursor[major[i]]
        order[c] = i
        run_keys[c] = minor[i]
        cursor[major[i]] = c + 1
    n_long = 0
    for k in range(n_major):
        lo = starts[k]
        hi = starts[k + 1]
        if hi - lo > MERGE_MAX:
            long_runs[n_long] = k
            n_long += 1
            continue
        if hi - lo > INSERTION_MAX:  # a stable merge sort, without a Python call per run
            by_key = np.argsort(run_keys[lo:hi], kind="mergesort")
            items = order[lo:hi].copy()
            for j in range(hi - lo):
                order[lo + j] = items[by_key[j]]
            continue
        for a in range(lo + 1, hi):  # strict '>' keeps equal keys in input order
            item = order[a]
            key = run_keys[a]
            b = a - 1
            while b >= lo and run_keys[b] > key:
                order[b + 1] = order[b]
                run_keys[b + 1] = run_keys[b]
                b -= 1
            order[b + 1] = item
            run_keys[b + 1] = key
    return n_long


def lexsort_by_id(
    minor: np.ndarray, major: np.ndarray, n_major: int
) -> tuple[np.ndarray, np.ndarray]:
    """(``np.lexsort((minor, major))``, the start of each major key's run in it).

    ``major`` holds integers in ``0..n_major-1`` and ``minor`` integers; run ``k`` is
    ``order[starts[k]:starts[k + 1]]`` (``starts`` has ``n_major + 1`` items).
    """
    major = np.ascontiguousarray(major, dtype=np.int64)
    minor = np.ascontiguousarray(minor)
    if len(major) != len(minor):
        raise ValueError(f"keys of different lengths: {len(minor)} and {len(major)}")
    if minor.dtype.kind not in "iu":
        raise TypeError(f"minor keys must be integers, not {minor.dtype}")
    if len(major) and (int(major.min()) < 0 or int(major.max()) >= n_major):
        raise ValueError(f"major keys outside 0..{n_major - 1}")
    order = np.empty(len(major), dtype=np.int64)
    starts = np.empty(n_major + 1, dtype=np.int64)
    run_keys = np.empty(len(major), dtype=minor.dtype)
    long_runs = np.empty(len(major) // (MERGE_MAX + 1) + 1, dtype=np.int64)
    n_long = _group_and_sort_runs(major, minor, n_major, order, starts, run_keys, long_runs)
    for k in long_runs[:n_long]:
        lo, hi = starts[k], starts[k + 1]
        order[lo:hi] = order[lo:hi][np.argsort(run_keys[lo:hi], kind="stable")]
    return order, starts


def order_by_id(minor: np.ndarray, major: np.ndarray, n_major: int) -> np.ndarray:
    """``np.lexsort((minor, major))``, without the runs' starts: by :func:`lexsort_by_id`,
    unless the items are few beside the ids (``n_major > SPARSE_IDS * len(major)``). Its
    counting sort passes over every id, which on a small batch over many keys is nearly
    all the work: 100 items over 1M ids took 8.4 ms, and ``np.lexsort`` 4 us."""
    if n_major > SPARSE_IDS * len(major):
        return np.lexsort((minor, major))
    return lexsort_by_id(minor, major, n_major)[0]


__all__ = ["INSERTION_MAX", "MERGE_MAX", "SPARSE_IDS", "lexsort_by_id", "order_by_id"]
