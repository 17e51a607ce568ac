"""Pane state of tumbling and sliding windows, and how windows are made from it.

A pane row is keyed ``(pane, key atoms...)``. :class:`PaneState` is the CPU
implementation; the CUDA backend has a twin with the same three methods
(``pane_bounds``, ``window_groups``, ``drop_panes_before``) whose rows stay in
device memory, so the operator never knows where the state lives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gpu_engine.windows.aggregations import PreparedBatch
from gpu_engine.windows.state import GroupState
from kernels.hashindex import group_ids
from kernels.panes import ingest_panes
from kernels.specialize import combine_finalize_for
from kernels.windows import (
    gather_rows,
    order_by_key_pane,
    order_by_window,
    window_ranges,
)

_UNUSED = np.zeros((1, 1))  # a state column the generated combine kernel does not read


@dataclass(frozen=True)
class PaneGeometry:
    """Window ``k`` covers ``[k*slide, k*slide + size)`` and is made of panes of ``pane`` ms."""

    pane: int
    slide: int
    size: int

    def last_pane(self, k: int) -> int:
        """The last pane of window ``k``."""
        return (k * self.slide + self.size - 1) // self.pane


@dataclass
class WindowGroups:
    """The (window, key) groups of some closed windows, ordered by window."""

    k: np.ndarray  # window index of each group, non-decreasing
    atoms: np.ndarray  # (n_groups, width) key atoms of each group
    values: list[pa.Array]  # aggregation columns, in config order


class PaneState(GroupState):
    """Pane rows on the CPU: windows are combined from them with the generated kernels."""

    def add_batch(self, batch: PreparedBatch, events: np.ndarray, pane_ms: int) -> None:
        """Aggregate events ``events`` (row numbers of ``batch``) into their pane rows."""
        if len(events) == 0:
            return
        self.index.reserve(len(events))
        self.agg.reserve(len(self.index) + len(events))
        slots, stored, n = self.index.raw()
        ids = np.empty(len(batch), dtype=np.int64)
        plan, values, agg = self.plan, batch.values, self.agg
        n = ingest_panes(
            events, batch.times, pane_ms, batch.atoms, slots, stored, n, ids,
            plan.ops, plan.col_of, values.mask_of, plan.is_int, values.fcols, values.icols,
            values.masks, agg.rows, agg.ist, agg.isum, agg.f0, agg.f1, agg.moments,
        )  # fmt: skip
        self.index.set_count(n)
        if values.sketch_inputs:
            mine = None
            if len(events) < len(batch):
                mine = np.zeros(len(batch), dtype=np.bool_)
                mine[events] = True
            self.sketches.add_events(ids, values, mine)

    def pane_bounds(self, first_live: int, dropping: int | None = None) -> tuple[int, int] | None:
        """(first, last) pane of the rows at or after ``first_live``; None when there are none.

        ``dropping`` announces the ``first_live`` of the coming :meth:`drop_panes_before`,
        which the device state counts in the same pass; here the panes are on the host.
        """
        if len(self) == 0:
            return None
        panes = self.keys[:, 0]
        live = panes[panes >= first_live]
        if len(live) == 0:
            return None
        return int(live.min()), int(live.max())

    def window_groups(
        self, geometry: PaneGeometry, k_min: int, k_max: int, first_live: int
    ) -> WindowGroups | None:
        """Groups of windows ``k_min..k_max`` from the rows of panes ``>= first_live``."""
        keys = self.keys
        panes = keys[:, 0]
        last_pane = geometry.last_pane(k_max)
        live = np.flatnonzero((panes >= first_live) & (panes <= last_pane))
        if len(live) == 0:
            return None
        kid = (
            group_ids(keys[live, 1:])[0]
            if keys.shape[1] > 1
            else np.zeros(len(live), dtype=np.int64)
        )
        kid_of_row = np.zeros(len(keys), dtype=np.int64)
        kid_of_row[live] = kid
        pane_min = int(panes[live].min())
        n_panes = int(panes[live].max()) - pane_min + 1
        pane_names = None
        if wide(n_panes, len(live)):  # sort by the panes' ranks, not their numbers
            pane_names, rank = np.unique(panes[live], return_inverse=True)
            panes = np.zeros(len(keys), dtype=np.int64)
            panes[live] = rank
            pane_min, n_panes = 0, len(pane_names)
        order = np.empty(len(live), dtype=np.int64)
        sorted_kid = np.empty(len(live), dtype=np.int64)
        sorted_pane = np.empty(len(live), dtype=np.int64)
        order_by_key_pane(live, kid_of_row, int(kid.max()) + 1, panes, pane_min, n_panes,
                          order, sorted_kid, sorted_pane)  # fmt: skip
        if pane_names is not None:
            sorted_pane = pane_names[sorted_pane]
        bound = len(live) * -(-geometry.size // geometry.slide)  # windows per pane
        g_k = np.empty(bound, dtype=np.int64)
        g_lo = np.empty(bound, dtype=np.int64)
        g_hi = np.empty(bound, dtype=np.int64)
        n_groups = window_ranges(
            sorted_kid, sorted_pane, geometry.pane, geometry.slide, geometry.size, k_min, k_max,
            g_k, g_lo, g_hi,
        )  # fmt: skip
        if n_groups == 0:
            return None
        g_k, g_lo, g_hi = g_k[:n_groups], g_lo[:n_groups], g_hi[:n_groups]
        position = np.empty(n_groups, dtype=np.int64)
        if wide(k_max - k_min + 1, n_groups):
            position[np.argsort(g_k, kind="stable")] = np.arange(n_groups)
        else:
            order_by_window(g_k, n_groups, k_min, k_max, position)
        by_window = np.empty(n_groups, dtype=np.int64)
        by_window[position] = np.arange(n_groups)
        values = self._combine(order, g_lo, g_hi, position)
        atoms = keys[order[g_lo[by_window]], 1:]
        return WindowGroups(g_k[by_window], atoms, values)

    def _combine(
        self,
        order: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        position: np.ndarray,
    ) -> list[pa.Array]:
        """Aggregation columns of the groups made of rows ``order[lo[g]:hi[g]]``.

        The rows are first gathered in ``order`` (each row once, though it takes
        part in several windows), so the combine kernel reads them sequentially;
        the groups, combined in key order, are written in window order (group
        ``g`` at ``position[g]``).
        """
        plan, state = self.plan, self.agg
        n_aggs, n_groups = len(plan.ops), len(lo)
        ist, isum, f0, f1 = (
            _gathered(getattr(state, name), order) if name in plan.combine_reads else _UNUSED
            for name in ("ist", "isum", "f0", "f1")
        )
        out_f = np.empty((n_aggs, n_groups), dtype=np.float64)
        out_i = np.empty((n_aggs, n_groups), dtype=np.int64)
        valid = np.empty((n_aggs, n_groups), dtype=np.bool_)
        kernel = combine_finalize_for(tuple(plan.ops.tolist()), tuple(plan.is_int.tolist()))
        kernel(lo, hi, position, ist, isum, f0, f1, out_f, out_i, valid)
        sketches = {}
        if plan.sketch_aggs:
            # Sketches merge pairs (pane row -> group), grouped by group.
            lengths = hi - lo
            dst = np.repeat(np.arange(n_groups), lengths)
            src = order[np.arange(len(dst)) - np.repeat(np.cumsum(lengths) - lengths - lo, lengths)]
            sketches = self.sketches.combine(plan, src, dst, position, n_groups)
        return plan.columns_from(out_f, out_i, valid, sketches)

    def drop_panes_before(self, first_live: int) -> PaneState:
        """This state without the rows of dead panes, once they are the majority (amortised).

        Compaction is in place: the arrays keep their capacity, so a steady stream
        stops allocating once the state has reached its working size.
        """
        panes = self.keys[:, 0]
        alive = np.flatnonzero(panes >= first_live)
        if 2 * len(alive) < len(panes):
            self.keep_rows(alive)
        return self


def wide(span: int, items: int) -> bool:
    """Whether a counting sort of ``items`` over ``span`` bins would be mostly empty bins.

    Live panes are usually a few windows wide, but one event with a far-off clock
    closes every window up to it at once: a histogram over that span (years of
    panes) would not fit in memory, so such sorts go by comparison instead.
    """
    return span > 4 * items + 65_536


def _gathered(column: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.empty((len(rows), column.shape[1]), dtype=column.dtype)
    gather_rows(column, rows, out)
    return out
