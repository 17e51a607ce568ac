"""Keyed, mergeable group state: a hash index, scalar aggregate state and sketch entries.

Pane rows, window groups and sessions are all a :class:`GroupState`. Rows merge
pairwise, scalar state and sketch entries alike (:meth:`GroupState.merge_from`):
sessions merge so, and a shard's pane rows move so to another shard, the rows
that stay being compacted into a new state (:meth:`GroupState.regroup`). Windows
are combined from pane rows by the generated kernels (``kernels.specialize``).
"""

from __future__ import annotations

from typing import Self

import numpy as np

from gpu_engine.windows.aggregations import AggregationPlan, BatchValues
from kernels.aggregate import QUANTILE, merge_into, update_events
from kernels.hashindex import HashIndex
from kernels.order import lexsort_by_id, order_by_id
from kernels.sketches import (
    combine_sketches,
    count_entries,
    count_event_entries,
    quantiles_from_entries,
)


class SketchEntries:
    """Entries ``(row, aggregation, bucket-or-hash) -> count`` of every sketch of a state."""

    def __init__(self, capacity: int = 1024) -> None:
        self.index = HashIndex(3, capacity)
        self.counts = np.zeros(max(capacity, 16), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + int(self.counts.nbytes)

    def add(self, keys: np.ndarray, counts: np.ndarray | None = None) -> None:
        """Add ``counts`` (default: one each) to entries ``keys``, an ``(n, 3)`` int64 array."""
        if len(keys) == 0:
            return
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        weights = np.ones(len(keys), np.int64) if counts is None else np.asarray(counts, np.int64)
        slots, stored, n = self._room_for(len(keys))
        self.index.set_count(count_entries(slots, stored, n, self.counts, keys, weights))

    def _room_for(self, extra: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The index's raw arrays, with room (and counts) for ``extra`` new entries."""
        self.index.reserve(extra)
        need = len(self.index) + extra
        if need > len(self.counts):
            grown = np.zeros(max(need, 2 * len(self.counts)), dtype=np.int64)
            grown[: len(self.counts)] = self.counts
            self.counts = grown
        return self.index.raw()

    def keep_rows(self, keep: np.ndarray, n_rows: int) -> None:
        """Keep the entries of rows ``keep`` (ascending), renumbered like the rows, in place."""
        if len(self) == 0:
            return
        new_id = np.full(n_rows, -1, dtype=np.int64)
        new_id[keep] = np.arange(len(keep))
        entries = np.flatnonzero(new_id[self.index.keys[:, 0]] >= 0)
        keys = self.index.keys[entries]
        keys[:, 0] = new_id[keys[:, 0]]
        counts = self.counts[entries]
        self.index.keep_rows(entries, keys)
        self.counts[: len(entries)] = counts
        self.counts[len(entries) :] = 0

    def combine(
        self,
        plan: AggregationPlan,
        src: np.ndarray,
        dst: np.ndarray,
        position: np.ndarray,
        n_groups: int,
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Sketch results of groups made of rows (pairs ``src -> dst`` grouped by ``dst``)."""
        results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if not plan.sketch_aggs or n_groups == 0:
            return results
        keys = self.index.keys
        counts = self.counts[: len(self)]
        n_rows = int(src.max()) + 1
        cursor = np.empty(int(np.bincount(dst).max()), dtype=np.int64)
        biggest_row = int(keys[:, 0].max()) + 1 if len(keys) else 0
        involved = np.zeros(max(n_rows, biggest_row), dtype=np.bool_)
        involved[src] = True
        of_involved_rows = involved[keys[:, 0]]
        for a in plan.sketch_aggs:
            mine = np.flatnonzero(of_involved_rows & (keys[:, 1] == a))
            by_row, bounds = lexsort_by_id(keys[mine, 2], keys[mine, 0], n_rows)
            order = mine[by_row]
            starts, ends = bounds[:-1], bounds[1:]
            values = np.empty(n_groups, dtype=np.float64)
            valid = np.empty(n_groups, dtype=np.bool_)
            is_quantile = bool(plan.ops[a] == QUANTILE)
            q = float(plan.specs[a].q) if is_quantile else 0.0  # type: ignore[arg-type]
            combine_sketches(src, dst, position, starts, ends, np.ascontiguousarray(keys[order, 2]),
                             counts[order], is_quantile, q, values, valid, cursor)  # fmt: skip
            results[a] = (values, valid)
        return results

    def add_events(
        self, ids: np.ndarray, values: BatchValues, mine: np.ndarray | None = None
    ) -> None:
        """Entries of one batch's sketch values, event ``i`` belonging to row ``ids[i]``.

        ``mine`` (a mask over the batch) limits them to the events of this state.
        """
        everyone = np.empty(0, dtype=np.bool_)
        for a, event_index, sketch_keys in values.sketch_inputs:
            events = len(event_index) if mine is None else int(np.count_nonzero(mine[event_index]))
            slots, stored, n = self._room_for(events)
            n = count_event_entries(slots, stored, n, self.counts, ids, a, event_index,
                                    sketch_keys, everyone if mine is None else mine)  # fmt: skip
            self.index.set_count(n)


class RowIndex(HashIndex):
    """The index of a state whose group keys are its own row numbers (sessions).

    Key ``(i,)`` is id ``i``: no hash table and no copy of the keys are kept
    (a hash index costs 24 to 72 bytes a row). Keys are inserted densely:
    inserting ``i`` makes ids ``0..i`` exist.
    """

    def __init__(self) -> None:
        super().__init__(1, capacity=16)

    @property
    def keys(self) -> np.ndarray:
        return np.arange(self._n, dtype=np.int64).reshape(-1, 1)

    @property
    def nbytes(self) -> int:
        return 0

    def reserve(self, extra: int) -> None:
        pass

    def raw(self) -> tuple[np.ndarray, np.ndarray, int]:
        raise TypeError("a RowIndex has no hash table")

    def insert(self, keys: np.ndarray) -> np.ndarray:
        ids = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1)
        if len(ids):
            if int(ids.min()) < 0 or int(ids.max()) > self._n + len(ids):
                raise ValueError("row keys must be dense row numbers")
            self._n = max(self._n, int(ids.max()) + 1)
        return ids

    def keep_rows(self, keep: np.ndarray, keys: np.ndarray | None = None) -> None:
        self._n = len(keep)

    def find(self, keys: np.ndarray) -> np.ndarray:
        ids = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1)
        return np.where((ids >= 0) & (ids < self._n), ids, -1)


class GroupState:
    """Aggregates of groups identified by int64 key tuples of a fixed width.

    ``rows_as_keys``: the groups are identified by their row numbers (width 1,
    keys ``0..n-1``), as sessions are; no hash index is kept for them.
    """

    def __init__(
        self, plan: AggregationPlan, width: int, capacity: int = 1024, rows_as_keys: bool = False
    ) -> None:
        self.plan = plan
        self.index = RowIndex() if rows_as_keys else HashIndex(width, capacity)
        self.agg = plan.new_state(capacity)
        self.sketches = SketchEntries()

    def __len__(self) -> int:
        return len(self.index)

    @property
    def keys(self) -> np.ndarray:
        return self.index.keys

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + self.agg.nbytes + self.sketches.nbytes

    def add_events(self, group_keys: np.ndarray, values: BatchValues) -> None:
        """Aggregate one batch of events, event ``i`` into the group ``group_keys[i]``."""
        ids = self.index.insert(group_keys)
        self.agg.reserve(len(self.index))
        plan = self.plan
        update_events(
            ids, plan.ops, plan.col_of, values.mask_of, plan.is_int,
            values.fcols, values.icols, values.masks,
            self.agg.rows, self.agg.ist, self.agg.isum, self.agg.f0, self.agg.f1,
            self.agg.moments,
        )  # fmt: skip
        self.sketches.add_events(ids, values)

    def keep_rows(self, keep: np.ndarray) -> None:
        """Keep only rows ``keep`` (ascending), renumbered ``0..len(keep)-1``, in place."""
        n_old = len(self)
        self.sketches.keep_rows(keep, n_old)
        self.index.keep_rows(keep)
        self.agg.keep_rows(keep, n_old)

    def regroup(self, src_rows: np.ndarray, dst_keys: np.ndarray, width: int) -> Self:
        """A new state whose group ``dst_keys[j]`` merges row ``src_rows[j]`` of this one."""
        # Room to grow: a compacted pane state takes new rows with the next batch.
        out = type(self)(self.plan, width, capacity=max(16, 2 * len(src_rows)))
        out.merge_from(self, src_rows, dst_keys)
        return out

    def take(self, rows: np.ndarray) -> GroupState:
        """A new state of rows ``rows`` only, as rows ``0..len(rows)-1`` (no room to grow)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = GroupState(self.plan, 1, capacity=len(rows), rows_as_keys=True)
        out.index.insert(np.arange(len(rows)))
        out.agg = self.agg.take(rows)
        if len(self.sketches):
            out.merge_sketches(self.sketches, rows, np.arange(len(rows)))
        return out

    def merge_from(self, src: GroupState, src_rows: np.ndarray, dst_keys: np.ndarray) -> None:
        """Merge rows ``src_rows`` of ``src`` into this state's groups ``dst_keys``."""
        src_rows = np.asarray(src_rows, dtype=np.int64)
        dst_ids = self.index.insert(dst_keys)
        self.agg.reserve(len(self.index))
        merge_into(src.agg, self.agg, src_rows, dst_ids)
        if len(src.sketches):
            self.merge_sketches(src.sketches, src_rows, dst_ids)

    def merge_sketches(self, src: SketchEntries, src_rows: np.ndarray, dst_ids: np.ndarray) -> None:
        entry_keys = src.index.keys
        counts = src.counts[: len(src)]
        order = np.argsort(src_rows, kind="stable")
        sorted_src = src_rows[order]
        lo = np.searchsorted(sorted_src, entry_keys[:, 0], side="left")
        hi = np.searchsorted(sorted_src, entry_keys[:, 0], side="right")
        reps = hi - lo
        total = int(reps.sum())
        if total == 0:
            return
        entry_of = np.repeat(np.arange(len(entry_keys)), reps)
        starts = np.repeat(np.cumsum(reps) - reps, reps)
        pos = np.arange(total) - starts + np.repeat(lo, reps)
        new_keys = np.empty((total, 3), dtype=np.int64)
        new_keys[:, 0] = dst_ids[order[pos]]
        new_keys[:, 1:] = entry_keys[entry_of, 1:]
        self.sketches.add(new_keys, counts[entry_of])

    def sketch_results(self, n: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Final quantile / distinct-count values of rows ``0..n-1`` per sketch aggregation."""
        results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        keys = self.sketches.index.keys
        counts = self.sketches.counts[: len(self.sketches)]
        for a in self.plan.sketch_aggs:
            mine = keys[:, 1] == a
            rows, buckets, cnt = keys[mine, 0], keys[mine, 2], counts[mine]
            if self.plan.ops[a] == QUANTILE:
                order = order_by_id(buckets, rows, int(rows.max(initial=-1)) + 1)
                values = np.empty(n, dtype=np.float64)
                valid = np.empty(n, dtype=np.bool_)
                spec_q = self.plan.specs[a].q
                assert spec_q is not None
                quantiles_from_entries(
                    rows[order], buckets[order], cnt[order], spec_q, n, values, valid
                )
            else:
                distinct = np.bincount(rows, minlength=n)[:n]
                values = distinct.astype(np.float64)
                valid = np.ones(n, dtype=np.bool_)  # COUNT(DISTINCT) of nothing is 0
            results[a] = (values, valid)
        return results
