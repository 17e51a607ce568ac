"""Window emission kernels: which pane rows make up which (window, key) groups.

Pane rows are visited sorted by (key, pane); each key's windows are then
sliding ranges over its panes, so groups need no hashing and a combine kernel
reads each group's rows as one contiguous run; a counting sort orders the
groups by window.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always")
def _floor_div(a, b):  # pragma: no cover - compiled
    return a // b  # numba's // floors like Python's for integers


@njit(nogil=True, cache=True)
def window_ranges(
    kid, pane, pane_ms, slide, size, k_min, k_max, g_k, g_lo, g_hi
):  # pragma: no cover - compiled
    """The (window, key) groups of windows ``k_min..k_max`` as runs of sorted rows.

    ``kid`` and ``pane`` describe rows sorted by (key, pane) (see
    :func:`order_by_key_pane`), so the rows of one key inside one window are the
    contiguous run ``g_lo[g]:g_hi[g]``. Window ``k`` covers
    ``[k*slide, k*slide + size)``. Writes each group's window ``g_k``; returns
    the number of groups.
    """
    n = kid.shape[0]
    n_groups = 0
    i = 0
    while i < n:
        key = kid[i]
        j = i
        while j < n and kid[j] == key:
            j += 1
        first = i  # first row of the run whose pane may still be in a window
        start = pane[i] * pane_ms
        k = max(k_min, _floor_div(start - size, slide) + 1)
        last_start = pane[j - 1] * pane_ms
        k_last = min(k_max, _floor_div(last_start, slide))
        end = first
        while k <= k_last:
            w_start = k * slide
            w_end = w_start + size
            while first < j and pane[first] * pane_ms < w_start:
                first += 1
            if first == j:
                break
            p_start = pane[first] * pane_ms
            if p_start >= w_end:  # no pane of this key in window k: jump ahead
                k = max(k + 1, _floor_div(p_start - size, slide) + 1)
                continue
            end = max(end, first)
            while end < j and pane[end] * pane_ms < w_end:
                end += 1
            g_k[n_groups] = k
            g_lo[n_groups] = first
            g_hi[n_groups] = end
            n_groups += 1
            k += 1
        i = j
    return n_groups


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
def order_by_key_pane(
    rows, kid, n_keys, pane, pane_min, n_panes, out, out_kid, out_pane
):  # pragma: no cover - compiled
    """``rows`` ordered by (``kid``, ``pane``): two stable counting-sort passes, O(n).

    Also writes the key and pane of each sorted row, for sequential reads later.
    """
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
        slot = counts[k]
        out[slot] = tmp[i]
        out_kid[slot] = k
        out_pane[slot] = pane[tmp[i]]
        counts[k] += 1


@njit(nogil=True, cache=True)
def gather_rows(source, rows, out):  # pragma: no cover - compiled
    """``out[i] = source[rows[i]]`` for a 2-d state column (numpy's fancy indexing is slower)."""
    for i in range(rows.shape[0]):
        r = rows[i]
        for c in range(source.shape[1]):
            out[i, c] = source[r, c]
