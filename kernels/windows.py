"""Window emission kernels: which pane rows make up which (window, key) groups.

Pane rows are visited sorted by (key, pane); each key's windows are then a
sliding range over its panes, so groups get dense ids without any hashing,
and a counting sort orders them by window.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always")
def _floor_div(a, b):  # pragma: no cover - compiled
    return a // b  # numba's // floors like Python's for integers


@njit(nogil=True, cache=True)
def window_pairs(
    order, kid, pane, pane_ms, slide, size, k_min, k_max, src, dst, dst_k, dst_row
):  # pragma: no cover - compiled
    """Pairs (pane row -> window group) for windows ``k_min..k_max``.

    ``order`` lists the rows to visit sorted by (``kid``, ``pane``). Window
    ``k`` covers ``[k*slide, k*slide + size)``. Writes ``src[j]`` (row) and
    ``dst[j]`` (group) for every pair, and per group its window ``dst_k`` and
    a row ``dst_row`` carrying its key; returns (pairs, groups).
    """
    n = order.shape[0]
    n_pairs = 0
    n_groups = 0
    i = 0
    while i < n:
        key = kid[order[i]]
        j = i
        while j < n and kid[order[j]] == key:
            j += 1
        first = i  # first row of the run whose pane may still be in a window
        start = pane[order[i]] * pane_ms
        k = max(k_min, _floor_div(start - size, slide) + 1)
        last_start = pane[order[j - 1]] * pane_ms
        k_last = min(k_max, _floor_div(last_start, slide))
        while k <= k_last:
            w_start = k * slide
            w_end = w_start + size
            while first < j and pane[order[first]] * pane_ms < w_start:
                first += 1
            if first == j:
                break
            p_start = pane[order[first]] * pane_ms
            if p_start >= w_end:  # no pane of this key in window k: jump ahead
                k = max(k + 1, _floor_div(p_start - size, slide) + 1)
                continue
            e = first
            while e < j and pane[order[e]] * pane_ms < w_end:
                src[n_pairs] = order[e]
                dst[n_pairs] = n_groups
                n_pairs += 1
                e += 1
            dst_k[n_groups] = k
            dst_row[n_groups] = order[first]
            n_groups += 1
            k += 1
        i = j
    return n_pairs, n_groups


@njit(nogil=True, cache=True)
def order_by_window(dst_k, n_groups, k_min, k_max, new_id):  # pragma: no cover - compiled
    """Counting sort of groups by window (stable): ``new_id[g]`` is group g's position."""
    span = k_max - k_min + 1
    counts = np.zeros(span + 1, dtype=np.int64)
    for g in range(n_groups):
        counts[dst_k[g] - k_min + 1] += 1
    for s in range(span):
        counts[s + 1] += counts[s]
    for g in range(n_groups):
        slot = dst_k[g] - k_min
        new_id[g] = counts[slot]
        counts[slot] += 1


@njit(nogil=True, cache=True)
def order_by_key_pane(rows, kid, n_keys, pane, pane_min, n_panes, out):  # pragma: no cover
    """``rows`` ordered by (``kid``, ``pane``): two stable counting-sort passes, O(n)."""
    n = rows.shape[0]
    tmp = np.empty(n, dtype=np.int64)
    counts = np.zeros(n_panes + 1, dtype=np.int64)
    for i in range(n):
        counts[pane[rows[i]] - pane_min + 1] += 1
    for p in range(n_panes):
        counts[p + 1] += counts[p]
    for i in range(n):
        slot = pane[rows[i]] - pane_min
        tmp[counts[slot]] = rows[i]
        counts[slot] += 1
    counts = np.zeros(n_keys + 1, dtype=np.int64)
    for i in range(n):
        counts[kid[tmp[i]] + 1] += 1
    for k in range(n_keys):
        counts[k + 1] += counts[k]
    for i in range(n):
        k = kid[tmp[i]]
        out[counts[k]] = tmp[i]
        counts[k] += 1
