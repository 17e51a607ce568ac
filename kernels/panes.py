"""Pane ingest in one kernel: pane number, hash-index lookup and aggregate update per event.

The events of a batch (or of one worker's share of it, given as row numbers)
go straight from the batch's columns into the pane state; nothing is copied
per worker and no (pane, key) matrix is built.

``ingest_panes`` compiles in ``kernels.aggregate.update_row``, ``fold_moments`` and
``kernels.hashindex.find_or_add``: its disk-cache entry is stamped with every source of
``kernels/`` (:mod:`kernels.cache_stamp`), so an edit of those renews it (Numba alone
renews it only when this file changes; a variance fix once seemed not to work here).
"""

from __future__ import annotations

from numba import njit

from kernels.aggregate import fold_moments, update_row
from kernels.hashindex import find_or_add


@njit(nogil=True, cache=True)
def ingest_panes(
    events, times, pane_ms, atoms, slots, stored, n, ids,
    ops, col_of, mask_of, is_int, fcols, icols, masks, rows, ist, isum, f0, f1, moments,
):  # pragma: no cover - compiled  # fmt: skip
    """Aggregate events ``events`` into pane rows keyed ``(time // pane_ms, *atoms[i])``.

    The index (``slots``, ``stored``, ``n`` keys) and the state must have room
    for ``len(events)`` new rows. Writes each event's row to ``ids[i]``;
    returns the new number of rows.
    """
    # Two passes: independent lookups first keep many cache misses in flight
    # (fusing them with the dependent updates measured 30% slower).
    for j in range(events.shape[0]):
        i = events[j]
        ids[i], n = find_or_add(slots, stored, n, times[i] // pane_ms, atoms, i)
    for j in range(events.shape[0]):
        i = events[j]
        update_row(ids[i], i, ops, col_of, mask_of, is_int, fcols, icols, masks,
                   rows, ist, isum, f0, f1, moments)  # fmt: skip
    fold_moments(events, ids, ops, col_of, mask_of, fcols, masks, ist, isum, f0, f1, moments)
    return n
