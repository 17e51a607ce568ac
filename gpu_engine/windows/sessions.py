"""Session state on the host: the sessions of one session window, merged as batches arrive.

The operator (:class:`~gpu_engine.windows.operator.SessionWindows`) keeps the
watermark and lateness; the state keeps the sessions. The CUDA backend has a
device twin with the same interface
(:class:`~gpu_engine.backend.device_sessions.DeviceSessionState`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gpu_engine.windows.aggregations import AggregationPlan, PreparedBatch
from gpu_engine.windows.state import GroupState
from kernels.hashindex import HashIndex
from kernels.order import order_by_id
from kernels.sessions import merge_intervals

_INT64_MAX = np.iinfo(np.int64).max  # also: a merged session without an open row yet
_INT64_MIN = np.iinfo(np.int64).min


def late_events(
    late: np.ndarray,
    atoms: np.ndarray,
    times: np.ndarray,
    gap: int,
    watermark: int,
    open_sessions: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Late mask of a batch's events: those whose merged session ends by the watermark.

    ``late`` marks the events whose own session ``[t, t + gap)`` ended by then (some
    must). Such a session may be over while the one it falls into is still open, so,
    as Flink does, lateness is judged after merging: with the batch's other events of
    its key and with the open sessions that ``open_sessions(key atoms)`` returns as
    (key row, start, end). Open sessions end after the watermark (those that do not
    were emitted when it passed them). Updates and returns ``late``.
    """
    keys = HashIndex.from_keys(atoms[late])  # only the keys of events that may be late
    kid = keys.find(atoms)
    related = np.flatnonzero(kid >= 0)
    owner, open_start, open_end = open_sessions(keys.keys)
    cand_kid = np.concatenate([kid[related], owner])
    start = np.concatenate([times[related], open_start])
    end = np.concatenate([times[related] + gap, open_end])
    order = order_by_id(start, cand_kid, len(keys))
    group = np.empty(len(order), dtype=np.int64)
    n_groups = merge_intervals(
        np.ascontiguousarray(cand_kid[order]).reshape(-1, 1), start[order], end[order], group
    )
    group_end = np.full(n_groups, _INT64_MIN, dtype=np.int64)
    np.maximum.at(group_end, group, end[order])
    merged_end = np.empty(len(order), dtype=np.int64)
    merged_end[order] = group_end[group]
    late[related] = merged_end[: len(related)] <= watermark
    return late


def open_sessions_of(
    found: np.ndarray, kid: np.ndarray, dead: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(key row, start, end) of the open sessions whose key id is ``found[row]`` (-1: none)."""
    n_keys = int(max(found.max(initial=-1), kid.max(initial=-1))) + 1
    row_of_kid = np.full(n_keys, -1, dtype=np.int64)
    hit = np.flatnonzero(found >= 0)
    row_of_kid[found[hit]] = hit
    rows = np.flatnonzero(~dead & (row_of_kid[kid] >= 0))
    return row_of_kid[kid[rows]], starts[rows], ends[rows]


@dataclass
class ClosedSessions:
    """Sessions that became final: bounds, key atoms and output columns (host)."""

    starts: np.ndarray
    ends: np.ndarray
    atoms: np.ndarray
    values: list[pa.Array]


def worth_compacting(dead: int, rows: int) -> bool:
    """Whether a session state's dead rows (merged away or emitted) are reclaimed now:
    once they are a third of its rows (see :class:`SessionState`); on both backends."""
    return 3 * dead > rows


class SessionState:
    """Per-key sessions closed by ``gap`` without events; out-of-order events merge them.

    Session ``i`` is row ``i`` of the state and of the arrays ``kid`` (its key),
    ``starts``, ``ends`` and ``dead`` (merged away or emitted), all with room to
    grow. A batch extends the open sessions it touches in place; only new
    sessions take new rows, and rows of dead sessions are reclaimed in place
    once they are a third of the rows (at half, the rows of 1M users outgrew
    their arrays, which double: 200 MB of session state at 10M events, not 120).
    """

    def __init__(self, plan: AggregationPlan, width: int, gap: int) -> None:
        self.plan = plan
        self.width = width
        self.gap = gap
        self.sessions = GroupState(plan, 1, capacity=16, rows_as_keys=True)
        self.key_ids = HashIndex(width)  # key atoms -> key id
        self._kid = np.empty(16, dtype=np.int64)
        self._starts = np.empty(16, dtype=np.int64)
        self._ends = np.empty(16, dtype=np.int64)
        self._dead = np.empty(16, dtype=np.bool_)

    def __len__(self) -> int:
        return len(self.sessions)

    @property
    def kid(self) -> np.ndarray:
        return self._kid[: len(self)]

    @property
    def starts(self) -> np.ndarray:
        return self._starts[: len(self)]

    @property
    def ends(self) -> np.ndarray:
        return self._ends[: len(self)]

    @property
    def dead(self) -> np.ndarray:
        return self._dead[: len(self)]

    @property
    def key_atoms(self) -> np.ndarray:
        """Atoms of every key with an open session (and of some closed since the last
        compaction)."""
        return self.key_ids.keys

    @property
    def nbytes(self) -> int:
        arrays = (self._kid, self._starts, self._ends, self._dead)
        return self.sessions.nbytes + self.key_ids.nbytes + sum(int(a.nbytes) for a in arrays)

    def add_batch(self, batch: PreparedBatch, events: np.ndarray) -> None:
        """Merge events ``events`` (row numbers) of a prepared batch into the sessions."""
        values = batch.values if len(events) == len(batch) else batch.values.subset(events)
        times = batch.times[events]
        kid = self.key_ids.insert(batch.atoms[events])
        n = len(times)
        # Events of the batch, cut into sessions of their own ...
        order = order_by_id(times, kid, len(self.key_ids))
        sorted_kid = np.ascontiguousarray(kid[order])
        sorted_times = times[order]
        ids = np.empty(n, dtype=np.int64)
        n_new = merge_intervals(
            sorted_kid.reshape(-1, 1), sorted_times, sorted_times + self.gap, ids
        )
        first = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]
        last = np.r_[first[1:] - 1, n - 1]
        fresh = GroupState(self.plan, 1, capacity=max(16, n_new), rows_as_keys=True)
        fresh.index.insert(np.arange(n_new))  # row i is batch session i
        event_ids = np.empty(n, dtype=np.int64)
        event_ids[order] = ids
        fresh.add_events(event_ids.reshape(-1, 1), values)
        # ... then merged with the open sessions of the same keys (only those).
        touched = np.zeros(len(self.key_ids), dtype=np.bool_)
        touched[sorted_kid[first]] = True
        open_rows = np.flatnonzero(~self.dead & touched[self.kid])
        cand_kid = np.concatenate([self.kid[open_rows], sorted_kid[first]])
        cand_start = np.concatenate([self.starts[open_rows], sorted_times[first]])
        cand_end = np.concatenate([self.ends[open_rows], sorted_times[last] + self.gap])
        order = order_by_id(cand_start, cand_kid, len(self.key_ids))
        merged = np.empty(len(order), dtype=np.int64)
        n_merged = merge_intervals(
            np.ascontiguousarray(cand_kid[order]).reshape(-1, 1),
            cand_start[order],
            cand_end[order],
            merged,
        )
        group_of = np.empty(len(order), dtype=np.int64)
        group_of[order] = merged
        # A merged session lives on in the first open row it contains (merging
        # into it in the same order as into an empty row: the same results);
        # one without an open row takes a new row. Other open rows it absorbed die.
        n_open = len(open_rows)
        row_of = np.full(n_merged, _INT64_MAX, dtype=np.int64)
        np.minimum.at(row_of, group_of[:n_open], open_rows)
        created = np.flatnonzero(row_of == _INT64_MAX)
        base = len(self.sessions)
        row_of[created] = np.arange(base, base + len(created))
        self._reserve(base + len(created))
        self.sessions.index.insert(row_of[created])
        dst = row_of[group_of]
        absorbed = np.flatnonzero(dst[:n_open] != open_rows)
        self.sessions.merge_from(self.sessions, open_rows[absorbed], dst[absorbed])
        self.sessions.merge_from(fresh, np.arange(n_new), dst[n_open:])
        starts = np.full(n_merged, _INT64_MAX, dtype=np.int64)
        ends = np.full(n_merged, _INT64_MIN, dtype=np.int64)
        np.minimum.at(starts, group_of, cand_start)
        np.maximum.at(ends, group_of, cand_end)
        self._starts[row_of] = starts
        self._ends[row_of] = ends
        self._kid[row_of[group_of]] = cand_kid
        self._dead[row_of[created]] = False
        self._dead[open_rows[absorbed]] = True

    def open_sessions(self, atoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row of ``atoms``, start, end) of the open sessions of those keys."""
        found = self.key_ids.find(atoms) if len(self.key_ids) else np.full(len(atoms), -1)
        return open_sessions_of(found, self.kid, self.dead, self.starts, self.ends)

    def _reserve(self, n_rows: int) -> None:
        """Room for rows ``0..n_rows-1`` in the per-session arrays (grown by half)."""
        if n_rows <= len(self._kid):
            return
        size = max(n_rows, len(self._kid) + len(self._kid) // 2)
        n = len(self.sessions)
        for name in ("_kid", "_starts", "_ends", "_dead"):
            old = getattr(self, name)
            grown = np.empty(size, dtype=old.dtype)
            grown[:n] = old[:n]
            setattr(self, name, grown)

    def emit(self, watermark: int) -> ClosedSessions | None:
        """The sessions whose end the watermark passed (then dropped), or None."""
        done = ~self.dead & (self.ends <= watermark)
        result = None
        if done.any():
            rows = np.flatnonzero(done)
            closed = self.sessions.take(rows)
            n = len(rows)
            values = self.plan.finalize(closed.agg, n, closed.sketch_results(n))
            atoms = self.key_ids.keys[self.kid[rows]]
            result = ClosedSessions(self.starts[rows], self.ends[rows], atoms, values)
            self.dead[rows] = True
        if worth_compacting(int(self.dead.sum()), len(self.dead)):
            self._compact()
        return result

    def _compact(self) -> None:
        """Drop dead sessions and keys without an open session (amortised, rows in place)."""
        keep = np.flatnonzero(~self.dead)
        atoms = self.key_ids.keys[self.kid[keep]]
        n = len(keep)
        for name in ("_kid", "_starts", "_ends", "_dead"):
            array = getattr(self, name)
            array[:n] = array[keep]
        self.sessions.keep_rows(keep)
        self.key_ids = HashIndex(self.width, capacity=max(16, n))
        self._kid[:n] = self.key_ids.insert(atoms) if n else np.empty(0, dtype=np.int64)
