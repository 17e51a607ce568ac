"""``np.lexsort`` by a small non-negative integer key and one other key, in about half its time.

Why: window emission sorts sketch entries by (row, bucket), and session windows sort
events by (key id, time), at every batch. ``np.lexsort`` runs a stable sort per key.
The major key here is a dense id below a known bound, so a stable counting sort does
its part in one linear pass, and only the minor key needs a comparison sort. The
result is the same permutation as ``np.lexsort((minor, major))``, ties included, and
the counting sort gives each major key's range of the order for free.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def _stable_by_major(major, by_minor, n_major, order, starts):  # pragma: no cover - compiled
    """Scatter ``by_minor`` (positions in minor-key order) stably by ``major``; ``starts``
    (length ``n_major + 1``) gets each major key's first position in ``order``."""
    for k in range(n_major + 1):
        starts[k] = 0
    for j in range(by_minor.shape[0]):
        starts[major[by_minor[j]] + 1] += 1
    for k in range(n_major):
        starts[k + 1] += starts[k]
    cursor = starts[:n_major].copy()
    for j in range(by_minor.shape[0]):
        i = by_minor[j]
        k = major[i]
        order[cursor[k]] = i
        cursor[k] += 1


def lexsort_by_id(
    minor: np.ndarray, major: np.ndarray, n_major: int
) -> tuple[np.ndarray, np.ndarray]:
    """(``np.lexsort((minor, major))``, the start of each major key's run in it).

    ``major`` holds integers in ``0..n_major-1``; run ``k`` is
    ``order[starts[k]:starts[k + 1]]`` (``starts`` has ``n_major + 1`` items).
    """
    major = np.ascontiguousarray(major, dtype=np.int64)
    if len(major) != len(minor):
        raise ValueError(f"keys of different lengths: {len(minor)} and {len(major)}")
    if len(major) and (int(major.min()) < 0 or int(major.max()) >= n_major):
        raise ValueError(f"major keys outside 0..{n_major - 1}")
    by_minor = np.argsort(minor, kind="stable")
    order = np.empty(len(major), dtype=np.int64)
    starts = np.empty(n_major + 1, dtype=np.int64)
    _stable_by_major(major, by_minor, n_major, order, starts)
    return order, starts


__all__ = ["lexsort_by_id"]
