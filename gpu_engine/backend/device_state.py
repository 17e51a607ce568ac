"""Pane state on a CUDA device: the :class:`PaneState` of the ``cuda`` backend.

Events are hashed into pane rows and aggregated by the CUDA kernels of
:mod:`kernels.cuda`; the rows stay on the device between batches, and so does
window emission (:mod:`kernels.cuda.windows`): every live pane row is expanded
into the windows that contain it, the ``(k, key atoms)`` groups are hashed into
a fresh device index, the rows merged into a fresh device aggregate state
(atomics; STD/VAR by two-pass moments), finalised, and ordered by window with a
counting sort; only the final columns come back to the host. Compaction of dead
panes is a stream compaction on the device. Batches are uploaded in chunks
through pinned buffers on a copy stream (:mod:`gpu_engine.backend.transfer`).

Sketch aggregations (quantile, count_distinct) keep their entries on the device
too (:class:`DeviceSketchEntries`), combined from the same (pane row -> group)
pairs. Imported only by the backend, only when CUDA is selected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpu_engine.backend.device_sketches import DeviceSketchEntries
from gpu_engine.backend.transfer import DEFAULT_CHUNK_ROWS, Column, PinnedUploader
from gpu_engine.errors import DeviceMemoryError
from gpu_engine.windows.aggregations import AggregationPlan, BatchValues, PreparedBatch
from gpu_engine.windows.panes import PaneGeometry, WindowGroups, wide
from kernels.cuda import sessions as device_sessions
from kernels.cuda import windows as device_windows
from kernels.cuda._core import constant, copy, empty, is_device_array, span, to_host
from kernels.cuda.aggregate import DeviceAggState, merge_rows
from kernels.cuda.aggregate import update_events as device_update_events
from kernels.cuda.hashindex import DeviceHashIndex
from kernels.cuda.sort import iota, lex_order


class DevicePaneState:
    """Keyed aggregate state whose index and scalar state live in device memory."""

    def __init__(
        self,
        plan: AggregationPlan,
        width: int,
        capacity: int = 1024,
        limit: int | None = None,
        owner: str = "",
        uploader: PinnedUploader | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        self.plan = plan
        self.width = width
        self.limit = limit
        self.owner = owner
        self.index = DeviceHashIndex(width, capacity)
        self.agg = DeviceAggState(plan.ops, capacity)
        self.sketches = DeviceSketchEntries()
        self.uploader = uploader if uploader is not None else PinnedUploader(chunk_rows)
        # For finalising groups, on the device once.
        self._is_int = constant(plan.is_int, np.bool_)
        self._dead_before: tuple[int, int, int] | None = None  # (first_live, rows, dead)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + self.agg.nbytes + self.sketches.nbytes

    @property
    def keys(self) -> np.ndarray:
        return to_host(self.index.keys)

    def add_batch(self, batch: PreparedBatch, events: np.ndarray, pane_ms: int) -> None:
        """Aggregate events ``events`` (row numbers) of a prepared batch into their panes."""
        values = batch.values if len(events) == len(batch) else batch.values.subset(events)
        self.add_events(batch.pane_keys(events, pane_ms), values)

    def add_events(self, group_keys: Any, values: BatchValues) -> None:
        """Aggregate one batch on the device, event ``i`` into group ``group_keys[i]``.

        Host columns are uploaded chunk by chunk through pinned buffers (the copy
        of a chunk overlaps the kernels of the one before); device columns pass
        through without a copy.
        """
        n = len(group_keys)
        self._check_room(n)
        if not is_device_array(group_keys):
            group_keys = np.ascontiguousarray(group_keys, dtype=np.int64)
        columns = [
            Column(group_keys, 0),
            Column(values.fcols, 1),
            Column(values.icols, 1),
            Column(values.masks, 1),
        ]
        sketch_ids = empty(n, np.int64) if values.sketch_inputs else None
        for lo, hi, (keys, fcols, icols, masks) in self.uploader.chunks(columns, n):
            ids = self.index.insert(keys)
            self.agg.reserve(self.index.upper_bound(limit=self.agg.capacity))
            device_update_events(
                ids, self.agg.ops_host, self.plan.col_of, values.mask_of, self.plan.is_int,
                fcols, icols, masks, self.agg,
            )  # fmt: skip
            if sketch_ids is not None:
                copy(span(sketch_ids, lo, hi), ids)
        if sketch_ids is not None:
            self.sketches.add_events(sketch_ids, values)

    def _check_room(self, extra: int) -> None:
        """Refuse, with a clear error, to grow past the configured device memory limit with
        ``extra`` more rows (the index's upper bound first: no wait unless it is too big)."""
        per_row = self.agg.bytes_per_row + 8 * (self.width + 2)  # state + index
        rows = self.index.upper_bound() + extra
        if self.limit is not None and rows * per_row > self.limit:  # the bound may overstate
            rows = len(self.index) + extra
        check_room(self.limit, max(self.nbytes, rows * per_row), rows, self.owner, "pane",
                   "a shorter window")  # fmt: skip

    # -- the pane-state interface (see gpu_engine.windows.panes) ----------------------------
    def pane_bounds(self, first_live: int, dropping: int | None = None) -> tuple[int, int] | None:
        """(first, last) pane of the rows at or after ``first_live`` (a device reduction).

        With ``dropping`` (the ``first_live`` of the coming :meth:`drop_panes_before`) the
        same pass counts the rows that call would drop, so it needs no pass and no wait
        for the device of its own.
        """
        keys, count = self.index.counted_keys()
        if keys.shape[0] == 0:
            return None
        stats = device_windows.pane_stats(keys, first_live, dropping, count=count)
        self.index.learn_length(stats.rows)  # the same read: no wait for len() of its own
        self._dead_before = None if dropping is None else (dropping, stats.rows, stats.dead)
        return (stats.first, stats.last) if stats.first <= stats.last else None

    def window_groups(
        self, geometry: PaneGeometry, k_min: int, k_max: int, first_live: int
    ) -> WindowGroups | None:
        """Groups of windows ``k_min..k_max`` from the rows of panes ``>= first_live``."""
        if len(self) == 0 or k_max < k_min:
            return None
        plan = self.plan
        src, group_keys = device_windows.window_pairs(
            self.index.keys, first_live, geometry.last_pane(k_max),
            geometry.pane, geometry.slide, geometry.size, k_min, k_max,
        )  # fmt: skip
        n_pairs = int(src.shape[0])
        if n_pairs == 0:
            return None
        groups = DeviceHashIndex(self.width, capacity=n_pairs)
        dst = groups.insert(group_keys)
        n_groups = len(groups)
        agg = DeviceAggState(self.agg.ops_host, n_groups)
        merge_rows(src, dst, self.agg, agg, n_rows=n_groups)
        position = _window_positions(groups.keys, k_min, k_max, n_groups)
        out_f, out_i, valid = device_windows.finalize_groups(agg, self._is_int, position, n_groups)
        ordered_keys = device_windows.scatter_rows(groups.keys, position)
        sketches: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if plan.sketch_aggs:
            sketches = self.sketches.combine(plan, src, dst, position, n_groups, len(self))
        # Read back after every kernel is queued: one wait for the device, not one a read.
        ordered = to_host(ordered_keys)
        values = plan.columns_from(to_host(out_f), to_host(out_i), to_host(valid), sketches)
        return WindowGroups(
            np.ascontiguousarray(ordered[:, 0]), np.ascontiguousarray(ordered[:, 1:]), values
        )

    def drop_panes_before(self, first_live: int) -> DevicePaneState:
        """This state without the rows of dead panes, once they are the majority (amortised)."""
        n = len(self)
        if n == 0:
            return self
        if self._dead_before is not None and self._dead_before[:2] == (first_live, n):
            dead = self._dead_before[2]  # counted by pane_bounds; no pane row since
        else:
            dead = device_windows.pane_stats(self.index.keys, first_live).dead
        if dead <= n - dead:
            return self
        live_keys, old_ids = device_windows.compact_live(self.index.keys, first_live)
        n_live = int(live_keys.shape[0])
        out = DevicePaneState(
            self.plan, self.width, max(16, 2 * n_live), limit=self.limit, owner=self.owner,
            uploader=self.uploader,
        )  # fmt: skip
        if n_live:
            new_ids = out.index.insert(live_keys)
            out.agg.reserve(n_live)
            device_windows.move_rows(old_ids, new_ids, self.agg, out.agg)
            if len(self.sketches):
                out.sketches = self.sketches.renumbered(old_ids, new_ids, n)
        return out


def check_room(
    limit: int | None, need: int, rows: int, owner: str, kind: str, shorter: str
) -> None:
    """Raise a :class:`DeviceMemoryError` naming window ``owner`` when ``need`` bytes of its
    ``kind`` state pass the configured device memory limit."""
    if limit is not None and need > limit:
        raise DeviceMemoryError(
            f"window {owner!r}: its {kind} state needs about {need / 2**20:,.1f} MiB of "
            f"device memory for {rows:,} rows, above device_memory_limit "
            f"({limit / 2**20:,.1f} MiB); raise the limit, or use fewer keys, {shorter} "
            "or less allowed_lateness"
        )


def _window_positions(group_keys: Any, k_min: int, k_max: int, n_groups: int) -> Any:
    """Each group's place in window order (device): a counting sort by window, or a radix
    sort of the window numbers where their span is too wide for a histogram."""
    if not wide(k_max - k_min + 1, n_groups):
        return device_windows.counting_order(group_keys, 0, k_min, k_max - k_min + 1)
    window_k, _ = device_sessions.split_keys(group_keys)
    order = lex_order(window_k, ranges=[(k_min, k_max)])
    return device_windows.scatter_rows(iota(n_groups), order)
