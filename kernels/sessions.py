"""Session window kernels: cutting sorted events into sessions and merging sessions."""

from __future__ import annotations

from numba import njit


@njit(inline="always")
def _same_key(atoms, i, j):  # pragma: no cover - compiled
    for c in range(atoms.shape[1]):
        if atoms[i, c] != atoms[j, c]:
            return False
    return True


@njit(nogil=True, cache=True)
def merge_intervals(atoms, start, end, out):  # pragma: no cover - compiled
    """Group ids for intervals sorted by (key, start): overlapping or touching ones merge.

    Two sessions ``[s1, e1)`` and ``[s2, e2)`` of one key merge when
    ``s2 <= e1`` (Flink's ``TimeWindow.intersects``). Returns the group count.
    """
    n = start.shape[0]
    g = -1
    running_end = 0
    for i in range(n):
        if i == 0 or not _same_key(atoms, i, i - 1) or start[i] > running_end:
            g += 1
            running_end = end[i]
        elif end[i] > running_end:
            running_end = end[i]
        out[i] = g
    return g + 1
