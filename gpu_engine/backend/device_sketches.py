"""Sketch entries of a device pane or session state: the CUDA twin of :class:`SketchEntries`.

Entries ``(row, aggregation, bucket-or-hash) -> count`` stay in device memory (a
width-3 :class:`DeviceHashIndex` and an int64 count per id, added atomically);
window emission combines them on the device (:mod:`kernels.cuda.sketch_state`)
and brings back one int64 and one flag per (sketch aggregation, group). The
quantile's bucket is turned into its representative on the host by the CPU
kernel itself, so results equal the CPU backend's to the bit (a device ``exp``
may round differently). Imported only by the backend, only when CUDA is selected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpu_engine.windows.aggregations import AggregationPlan, BatchValues
from kernels.aggregate import QUANTILE
from kernels.cuda import sketch_state
from kernels.cuda._core import copy, empty_many, full, span, to_host
from kernels.cuda.hashindex import DeviceHashIndex
from kernels.cuda.sketches import add_counts, sketch_entries
from kernels.sketches import quantiles_from_entries


class DeviceSketchEntries:
    """Entries ``(row, aggregation, bucket-or-hash) -> count`` of every sketch, on the device."""

    def __init__(self, capacity: int = 1024) -> None:
        self.index = DeviceHashIndex(3, capacity)
        self.counts = full(max(capacity, 16), 0, np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + int(self.counts.nbytes)

    def add(self, keys: Any, weights: Any = None, skip: Any = None) -> None:
        """Count entry keys ``(n, 3)`` once each, or ``weights[i]`` times; ``skip`` as in insert."""
        n = int(keys.shape[0])
        if n == 0:
            return
        ids = self.index.insert(keys, skip)
        size = self.index.upper_bound(limit=int(self.counts.shape[0]))
        if size > self.counts.shape[0]:
            grown = full(max(size, 2 * self.counts.shape[0]), 0, np.int64)
            copy(span(grown, 0, self.counts.shape[0]), self.counts)
            self.counts = grown
        if weights is None:
            add_counts(ids, self.counts)
        else:
            sketch_state.add_weights(ids, weights, self.counts)

    def add_events(self, ids: Any, values: BatchValues) -> None:
        """Entries of one batch's sketch values, event ``i`` belonging to device row ``ids[i]``.

        The entries of every sketch aggregation go into one insert: one hash insert (two
        launches and a read) per batch instead of one per aggregation. An event index may
        hold -1 (a masked or dropped event, see ``DeviceColumns.rows_of``): its entry is
        skipped by the insert, so no step had to compact the index and wait for its count.
        """
        sizes = [int(keys.shape[0]) for _, _, keys in values.sketch_inputs]
        total = sum(sizes)
        entries, skip = empty_many(((total, 3), np.int64), (total, np.int8))
        at = 0
        for (a, event_index, sketch_keys), size in zip(values.sketch_inputs, sizes, strict=True):
            sketch_entries(ids, a, sketch_keys, event_index, out=span(entries, at, at + size),
                           skip=span(skip, at, at + size))  # fmt: skip
            at += size
        self.add(entries, skip=skip)

    def renumbered(self, old_ids: Any, new_ids: Any, n_old: int) -> DeviceSketchEntries:
        """The entries of rows ``old_ids`` (device) with their rows renamed ``new_ids``."""
        out = DeviceSketchEntries(capacity=len(self))
        moved, skip = sketch_state.renumber(self.index.keys, old_ids, new_ids, n_old)
        out.add(moved, span(self.counts, 0, len(self)), skip)
        return out

    def merge_rows(self, src: Any, dst: Any, n_rows: int) -> None:
        """Add the entries of rows ``src[j]`` to rows ``dst[j]`` (device), in place.

        The entries of ``src`` stay (those rows are dead until compaction); a row
        is never both a source and a destination, so the counts read and the
        counts written are different entries.
        """
        if len(self) == 0 or int(src.shape[0]) == 0:
            return
        moved, skip = sketch_state.renumber(self.index.keys, src, dst, n_rows)
        self.add(moved, span(self.counts, 0, len(self)), skip)

    def combine(
        self, plan: AggregationPlan, src: Any, dst: Any, position: Any, n_groups: int, n_rows: int
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Sketch results of the groups (host), from device pairs ``src -> dst`` of rows
        ``0..n_rows-1``; group ``g`` at ``position[g]``, as :meth:`SketchEntries.combine`."""
        aggs = plan.sketch_aggs
        is_quantile = np.array([plan.ops[a] == QUANTILE for a in aggs], dtype=np.bool_)
        q = np.array([plan.specs[a].q if quantile else 0.0 for a, quantile in
                      zip(aggs, is_quantile, strict=True)], dtype=np.float64)  # fmt: skip
        slot_of = np.full(len(plan.ops), -1, dtype=np.int64)
        slot_of[aggs] = np.arange(len(aggs))
        result, valid = sketch_state.combine(
            self.index.keys, span(self.counts, 0, len(self)), n_rows, src, dst, position, n_groups,
            slot_of, is_quantile, q,
        )  # fmt: skip
        result, valid = to_host(result), to_host(valid)
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for slot, a in enumerate(aggs):
            if is_quantile[slot]:
                # Each group's bucket as a one-bucket sketch: its representative, on the host.
                groups = np.flatnonzero(valid[slot])
                values = np.empty(n_groups, dtype=np.float64)
                quantiles_from_entries(groups, result[slot, groups], np.ones(len(groups), np.int64),
                                       0.0, n_groups, values, valid[slot])  # fmt: skip
            else:
                values = result[slot].astype(np.float64)
            out[a] = (values, valid[slot])
        return out


__all__ = ["DeviceSketchEntries"]
