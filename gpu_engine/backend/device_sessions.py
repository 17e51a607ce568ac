"""Session state on a CUDA device: the :class:`SessionState` of the ``cuda`` backend.

Sessions are rows of device arrays (key id, start, end, dead flag), of a
:class:`DeviceAggState` and of :class:`DeviceSketchEntries`; key atoms are
interned into key ids by a :class:`DeviceHashIndex`. A batch is merged by the
kernels of :mod:`kernels.cuda.sessions`, as the host state merges it: its events
are sorted by (key id, time) with the stable radix sort of
:mod:`kernels.cuda.sort`, cut into sessions, and merged with the open sessions of
their keys (candidates sorted by (key id, start), merged by interval). A merged
session lives on in its first open row; other open rows it absorbed are merged
into that row and die; one without an open row takes a new row. The events are
then aggregated straight into the rows of their merged sessions (no batch
state in between: the same values, sums added in another order).

Emission marks the rows the watermark closed, finalises them on the device with
the pane windows' finalisation, combines their sketch entries, and brings back
only their columns, bounds and key atoms. Dead rows are dropped by stream
compaction once they are a third of the rows. Per batch the host reads back
counts only (scan totals, key and sketch index sizes, the sort's column ranges).
Imported only by the backend, only when CUDA is selected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpu_engine.backend.device_sketches import DeviceSketchEntries
from gpu_engine.backend.device_state import check_room
from gpu_engine.windows.aggregations import AggregationPlan, PreparedBatch
from gpu_engine.windows.sessions import ClosedSessions, open_sessions_of, worth_compacting
from kernels.cuda import sessions
from kernels.cuda._core import as_device, constant, copy, empty, full, span, to_host
from kernels.cuda.aggregate import DeviceAggState, merge_rows, update_events
from kernels.cuda.hashindex import DeviceHashIndex
from kernels.cuda.ingest import not_flags, select, take
from kernels.cuda.sort import iota, lex_order
from kernels.cuda.windows import finalize_groups, move_rows, scatter_rows


class DeviceSessionState:
    """Per-key sessions of one session window, merged and emitted on the device."""

    def __init__(
        self,
        plan: AggregationPlan,
        width: int,
        gap: int,
        capacity: int = 1024,
        limit: int | None = None,
        owner: str = "",
    ) -> None:
        self.plan = plan
        self.width = width
        self.gap = gap
        self.limit = limit
        self.owner = owner
        self.key_ids = DeviceHashIndex(max(width, 1), capacity)  # a zero atom without keys
        self.agg = DeviceAggState(plan.ops, capacity)
        self.sketches = DeviceSketchEntries()
        self._n = 0
        self._n_dead = 0
        self._alloc(capacity)
        self._is_int = constant(plan.is_int, np.bool_)

    def _alloc(self, capacity: int) -> None:
        capacity = max(capacity, 16)
        self._kid = empty(capacity, np.int64)
        self._starts = empty(capacity, np.int64)
        self._ends = empty(capacity, np.int64)
        self._dead = full(capacity, 0, np.uint8)

    def __len__(self) -> int:
        return self._n

    @property
    def key_atoms(self) -> np.ndarray:
        """As :attr:`SessionState.key_atoms`, on the host (a copy: read rarely)."""
        return to_host(self.key_ids.keys)

    @property
    def nbytes(self) -> int:
        arrays = (self._kid, self._starts, self._ends, self._dead)
        return (self.key_ids.nbytes + self.agg.nbytes + self.sketches.nbytes
                + sum(int(a.nbytes) for a in arrays))  # fmt: skip

    def _reserve(self, n_rows: int) -> None:
        """Room for rows ``0..n_rows-1`` in the per-session arrays (grown by half)."""
        capacity = int(self._kid.shape[0])
        if n_rows <= capacity:
            return
        old = (self._kid, self._starts, self._ends, self._dead)
        self._alloc(max(n_rows, capacity + capacity // 2))
        if self._n:
            for new, array in zip((self._kid, self._starts, self._ends, self._dead), old,
                                  strict=True):  # fmt: skip
                copy(span(new, 0, self._n), span(array, 0, self._n))

    def _check_room(self, rows: int) -> None:
        per_row = self.agg.bytes_per_row + 25 + 8 * (max(self.width, 1) + 2)
        check_room(self.limit, max(self.nbytes, rows * per_row), rows, self.owner, "session",
                   "a shorter gap")  # fmt: skip

    def add_batch(self, batch: PreparedBatch, events: np.ndarray) -> None:
        """Merge events ``events`` (row numbers) of a prepared batch into the sessions."""
        n_events = len(events)
        self._check_room(self._n + n_events)
        values = batch.values if n_events == len(batch) else batch.values.subset(events)
        # (time, atoms...) rows: the pane keys of 1 ms panes, on the device either way.
        times, atoms = sessions.split_keys(as_device(batch.pane_keys(events, 1)))
        kid = self.key_ids.insert(atoms)
        # Key ids lie below the index's bound and times within the batch's (host) times, so
        # the sort needs no read of the columns' ranges.
        event_times = batch.times if n_events == len(batch) else batch.times[events]
        ranges = None
        if n_events:
            ranges = [(0, max(self.key_ids.upper_bound() - 1, 0)),
                      (int(event_times.min()), int(event_times.max()))]  # fmt: skip
        # The batch's events, cut into sessions of their own ...
        order = lex_order(kid, times, ranges=ranges)
        session_of, s_kid, s_start, s_end = sessions.cut(
            take(kid, order), take(times, order), self.gap
        )
        # ... then merged with the open sessions of the same keys (only those). Key ids are
        # flagged in an array sized by the index's bound: no read of its length.
        n_rows = self._n
        rows = sessions.open_rows(span(self._kid, 0, n_rows), span(self._dead, 0, n_rows), s_kid,
                                  self.key_ids.upper_bound())  # fmt: skip
        c_kid, c_start, c_end = sessions.candidates(
            rows, self._kid, self._starts, self._ends, s_kid, s_start, s_end
        )
        c_order = lex_order(c_kid, c_start)
        merged, n_groups = sessions.merge_intervals(
            take(c_kid, c_order), take(c_start, c_order), take(c_end, c_order)
        )
        group_of = scatter_rows(merged, c_order)
        row_of, g_kid, g_start, g_end, n_created = sessions.place_groups(
            group_of, n_groups, rows, c_kid, c_start, c_end, n_rows
        )
        self._reserve(n_rows + n_created)
        self._n = n_rows + n_created
        self.agg.reserve(self._n)
        sessions.write_rows(row_of, g_kid, g_start, g_end, self._kid, self._starts, self._ends,
                            self._dead)  # fmt: skip
        src, dst = sessions.absorbed(group_of, rows, row_of, self._dead)
        self._n_dead += int(src.shape[0])
        merge_rows(src, dst, self.agg, self.agg, n_rows=self._n)
        self.sketches.merge_rows(src, dst, self._n)
        ids = sessions.event_rows(order, session_of, group_of, row_of, int(rows.shape[0]))
        update_events(
            ids, self.agg.ops_host, self.plan.col_of, values.mask_of, self.plan.is_int,
            values.fcols, values.icols, values.masks, self.agg,
        )  # fmt: skip
        self.sketches.add_events(ids, values)

    def open_sessions(self, atoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row of ``atoms``, start, end) of the open sessions of those keys, on the host.

        Asked only for batches with events that may be late, so the copy of the
        session bounds (25 bytes a session) is not on the path of in-order streams.
        """
        n = self._n
        if n == 0:
            nothing = np.empty(0, dtype=np.int64)
            return nothing, nothing, nothing
        keys = atoms if self.width else np.zeros((len(atoms), 1), dtype=np.int64)
        found = to_host(self.key_ids.find(as_device(keys)))
        kid, dead, starts, ends = (
            to_host(span(a, 0, n)) for a in (self._kid, self._dead, self._starts, self._ends)
        )
        return open_sessions_of(found, kid, dead.astype(np.bool_), starts, ends)

    def emit(self, watermark: int) -> ClosedSessions | None:
        """The sessions whose end the watermark passed (then dropped), or None."""
        n_rows = self._n
        if n_rows == 0:
            return None
        rows = sessions.close(span(self._dead, 0, n_rows), span(self._ends, 0, n_rows), watermark)
        n = int(rows.shape[0])
        self._n_dead += n
        result = self._closed(rows, n) if n else None
        if worth_compacting(self._n_dead, n_rows):
            self._compact()
        return result

    def _closed(self, rows: Any, n: int) -> ClosedSessions:
        """Final columns, bounds and key atoms (host) of session rows ``rows`` (device)."""
        plan = self.plan
        position = iota(n)
        closed = DeviceAggState(self.agg.ops_host, n)
        move_rows(rows, position, self.agg, closed)
        out_f, out_i, valid = finalize_groups(closed, self._is_int, position, n)
        # Keys up to the index's bound (no read of its length): rows are taken by key id.
        device_atoms = sessions.take_rows(self.key_ids.counted_keys()[0], take(self._kid, rows))
        starts, ends = take(self._starts, rows), take(self._ends, rows)
        sketches: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if plan.sketch_aggs:
            sketches = self.sketches.combine(plan, rows, position, position, n, self._n)
        # Read back after every kernel is queued: one wait for the device, not one a read.
        values = plan.columns_from(to_host(out_f), to_host(out_i), to_host(valid), sketches)
        atoms = to_host(device_atoms)
        return ClosedSessions(
            to_host(starts), to_host(ends), np.ascontiguousarray(atoms[:, : self.width]), values,
        )  # fmt: skip

    def _compact(self) -> None:
        """Drop dead sessions and keys without an open session (a stream compaction)."""
        n_rows = self._n
        keep = select(not_flags(span(self._dead, 0, n_rows)))
        n = int(keep.shape[0])
        position = iota(n)
        atoms = sessions.take_rows(self.key_ids.counted_keys()[0], take(self._kid, keep))
        starts, ends = take(self._starts, keep), take(self._ends, keep)
        agg = DeviceAggState(self.agg.ops_host, max(16, 2 * n))
        move_rows(keep, position, self.agg, agg)
        self.agg = agg
        if len(self.sketches):
            self.sketches = self.sketches.renumbered(keep, position, n_rows)
        self.key_ids = DeviceHashIndex(max(self.width, 1), max(16, n))
        self._alloc(2 * n)
        if n:
            copy(span(self._kid, 0, n), self.key_ids.insert(atoms))
            copy(span(self._starts, 0, n), starts)
            copy(span(self._ends, 0, n), ends)
        self._n = n
        self._n_dead = 0
