"""Splitting a batch's events between workers without copying the events."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def _counting_split(shard, n_shards, out, starts):  # pragma: no cover - compiled
    counts = np.zeros(n_shards + 1, dtype=np.int64)
    for i in range(shard.shape[0]):
        counts[shard[i] + 1] += 1
    for s in range(n_shards):
        counts[s + 1] += counts[s]
    # Not ``starts[:] = counts``: its shape check compiles numba's str formatting (4 s).
    for s in range(n_shards + 1):
        starts[s] = counts[s]
    for i in range(shard.shape[0]):
        s = shard[i]
        out[counts[s]] = i
        counts[s] += 1


def split_by_shard(shard: np.ndarray, n_shards: int) -> list[np.ndarray]:
    """Row numbers of each shard's events, ascending (a stable counting sort)."""
    shard = np.ascontiguousarray(shard, dtype=np.int64)
    out = np.empty(len(shard), dtype=np.int64)
    starts = np.empty(n_shards + 1, dtype=np.int64)
    _counting_split(shard, n_shards, out, starts)
    return [out[starts[s] : starts[s + 1]] for s in range(n_shards)]
