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

from gpu_engine.windows.state import GroupState
from kernels.hashindex import group_ids
from kernels.specialize import combine_finalize_for
from kernels.windows import order_by_key_pane, order_by_window, window_pairs


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

    def pane_bounds(self, first_live: int) -> tuple[int, int] | None:
        """(first, last) pane of the rows at or after ``first_live``; None when there are none."""
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
        order = np.empty(len(live), dtype=np.int64)
        order_by_key_pane(live, kid_of_row, int(kid.max()) + 1, panes, pane_min,
                          int(panes[live].max()) - pane_min + 1, order)  # fmt: skip
        bound = len(live) * -(-geometry.size // geometry.slide)  # windows per pane
        src = np.empty(bound, dtype=np.int64)
        dst = np.empty(bound, dtype=np.int64)
        dst_k = np.empty(bound, dtype=np.int64)
        dst_row = np.empty(bound, dtype=np.int64)
        n_pairs, n_groups = window_pairs(
            order, kid_of_row, panes, geometry.pane, geometry.slide, geometry.size, k_min, k_max,
            src, dst, dst_k, dst_row,
        )  # fmt: skip
        if n_groups == 0:
            return None
        position = np.empty(n_groups, dtype=np.int64)
        order_by_window(dst_k, n_groups, k_min, k_max, position)
        values = self._combine(src[:n_pairs], dst[:n_pairs], position, n_groups)
        k = np.empty(n_groups, dtype=np.int64)
        k[position] = dst_k[:n_groups]
        atoms = np.empty((n_groups, keys.shape[1] - 1), dtype=np.int64)
        atoms[position] = keys[dst_row[:n_groups], 1:]
        return WindowGroups(k, atoms, values)

    def _combine(
        self, src: np.ndarray, dst: np.ndarray, position: np.ndarray, n_groups: int
    ) -> list[pa.Array]:
        """Aggregation columns of the groups made of rows (pairs ``src -> dst``)."""
        plan, state = self.plan, self.agg
        n_aggs = len(plan.ops)
        out_f = np.empty((n_aggs, n_groups), dtype=np.float64)
        out_i = np.empty((n_aggs, n_groups), dtype=np.int64)
        valid = np.empty((n_aggs, n_groups), dtype=np.bool_)
        kernel = combine_finalize_for(tuple(plan.ops.tolist()), tuple(plan.is_int.tolist()))
        kernel(src, dst, position, state.ist, state.isum, state.f0, state.f1, out_f, out_i, valid)
        sketches = self.sketches.combine(plan, src, dst, position, n_groups)
        return plan.columns_from(out_f, out_i, valid, sketches)

    def drop_panes_before(self, first_live: int) -> PaneState:
        """This state without the rows of dead panes, once they are the majority (amortised)."""
        panes = self.keys[:, 0]
        dead = int((panes < first_live).sum())
        if dead <= len(panes) - dead:
            return self
        alive = np.flatnonzero(panes >= first_live)
        return self.regroup(alive, self.keys[alive], self.keys.shape[1])

    def regroup(self, src_rows: np.ndarray, dst_keys: np.ndarray, width: int) -> PaneState:
        out = PaneState(self.plan, width, capacity=max(16, 2 * len(src_rows)))
        out.merge_from(self, src_rows, dst_keys)
        return out
