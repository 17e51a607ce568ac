"""Event-time window operators: watermark, lateness, emission and output tables.

An operator receives validated batches (an Arrow table plus event times in
int64 ms) and returns, for each batch, which events were late and which
windows became final. The two kinds differ only in their state:
:class:`PaneWindows` (tumbling and sliding, from panes of gcd(size, slide))
and :class:`SessionWindows` (per-key sessions that merge).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import pyarrow as pa

from gpu_engine.backend import CPU, Backend
from gpu_engine.config.models import FieldSpec, WindowSpec
from gpu_engine.windows.aggregations import AggregationPlan, PreparedBatch
from gpu_engine.windows.keys import KeyEncoder
from gpu_engine.windows.panes import PaneGeometry
from gpu_engine.windows.state import GroupState
from kernels.hashindex import HashIndex
from kernels.sessions import merge_intervals

NEVER = -(2**62)  # "no window emitted yet"
FOREVER = 2**62  # the watermark at the end of a bounded input


class WindowOperator(ABC):
    """Common watermark and output logic of one configured window."""

    def __init__(
        self,
        spec: WindowSpec,
        fields: dict[str, FieldSpec],
        key_types: dict[str, pa.DataType],
        time_type: pa.DataType,
        backend: Backend = CPU,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.plan = AggregationPlan(spec.aggregations, fields)
        self.encoder = KeyEncoder(spec.keys, fields)
        self.key_types = key_types
        self.time_type = time_type
        self.max_event_time = NEVER
        self.watermark = NEVER
        self.batch_watermark = NEVER
        self.emitted_until = NEVER
        self.last_input_at: float | None = None
        self.windows_emitted = 0
        self.late_events = 0

    # -- the batch path ---------------------------------------------------------------
    def process(self, table: pa.Table, times: np.ndarray, now: float) -> np.ndarray:
        """Aggregate a batch; return its late-event mask (late events are not aggregated)."""
        return self.process_prepared(self.prepare(table, times), None, now)

    def prepare(self, table: pa.Table, times: np.ndarray) -> PreparedBatch:
        """The batch as the kernels read it (once per batch, shared by all workers)."""
        if not isinstance(table, pa.Table):  # a batch on the device prepares itself
            return table.prepared(self.encoder, self.plan, times)
        return PreparedBatch(times, self.encoder.encode(table), self.plan.prepare(table))

    def process_prepared(
        self, batch: PreparedBatch, events: np.ndarray | None, now: float
    ) -> np.ndarray:
        """Aggregate events ``events`` of ``batch`` (row numbers; None: all); their late mask."""
        self.last_input_at = now
        self.batch_watermark = self.watermark  # what was final when this batch arrived
        times = batch.times if events is None else batch.times[events]
        late = self._late_mask(times)
        n_late = int(late.sum())
        self.late_events += n_late
        if len(times):
            self.max_event_time = max(self.max_event_time, int(times.max()))
            self.watermark = max(self.watermark, self.max_event_time - self.spec.allowed_lateness)
        if n_late < len(times):
            if events is None:
                events = np.flatnonzero(~late) if n_late else np.arange(len(times))
            elif n_late:
                events = events[~late]
            self._add(batch, events)
        return late

    def poll(self, now: float) -> None:
        """Advance the watermark with processing time once the input has been idle."""
        idle = self.spec.idle_timeout
        if idle is None or self.last_input_at is None or self.max_event_time == NEVER:
            return
        idle_ms = int((now - self.last_input_at) * 1000)
        if idle_ms >= idle:
            self.watermark = max(
                self.watermark, self.max_event_time - self.spec.allowed_lateness + idle_ms
            )

    def emit_ready(self) -> pa.Table | None:
        """Windows whose end the watermark has passed and that were not emitted yet."""
        if self.watermark <= self.emitted_until:
            return None
        table = self._emit(self.watermark)
        self.emitted_until = self.watermark
        if table is None or table.num_rows == 0:
            return None
        table = self.apply_top_k(table)
        self.windows_emitted += table.num_rows
        return table

    def close(self) -> pa.Table | None:
        """End of a bounded input: every open window becomes final."""
        self.watermark = FOREVER
        return self.emit_ready()

    @property
    def state_bytes(self) -> int:
        return self._state_bytes()

    # -- per kind -----------------------------------------------------------------------
    @abstractmethod
    def _late_mask(self, times: np.ndarray) -> np.ndarray:
        """Events all of whose windows end at or before the watermark (as of the batch start).

        Judged by the watermark, not by what was emitted, so results do not depend
        on how often windows are emitted.
        """

    @abstractmethod
    def _add(self, batch: PreparedBatch, events: np.ndarray) -> None: ...

    @abstractmethod
    def _emit(self, watermark: int) -> pa.Table | None: ...

    @abstractmethod
    def _state_bytes(self) -> int: ...

    # -- output -------------------------------------------------------------------------
    def _output(
        self,
        starts: np.ndarray,
        ends: np.ndarray,
        atoms: np.ndarray,
        values: list[pa.Array],
        sort: bool = True,
    ) -> pa.Table:
        columns: dict[str, pa.Array] = {
            "window_start": pa.array(starts, pa.int64()).cast(self.time_type),
            "window_end": pa.array(ends, pa.int64()).cast(self.time_type),
        }
        for name, array in zip(
            self.spec.keys, self.encoder.decode(atoms, self.key_types), strict=True
        ):
            columns[name] = array
        for spec, array in zip(self.spec.aggregations, values, strict=True):
            columns[spec.name] = array
        table = pa.table(columns)
        if not sort:
            return table
        order = [("window_start", "ascending"), *[(k, "ascending") for k in self.spec.keys]]
        return table.sort_by(order)

    def apply_top_k(self, table: pa.Table) -> pa.Table:
        """Only the ``k`` best groups of each window (all rows without ``top_k``)."""
        top = self.spec.top_k
        if top is None:
            return table
        return self.backend.top_k(table, top, self.spec.keys)


class PaneWindows(WindowOperator):
    """Tumbling and sliding windows, aggregated once per pane and combined at emission."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        assert self.spec.size is not None
        self.size = self.spec.size
        self.slide = self.spec.effective_slide
        self.pane = self.spec.pane_ms
        self.geometry = PaneGeometry(self.pane, self.slide, self.size)
        self.panes = self.backend.new_pane_state(
            self.plan, 1 + self.encoder.width, owner=self.spec.name
        )
        self._first_live_pane = NEVER

    def _last_window_end(self, times: np.ndarray) -> np.ndarray:
        return np.floor_divide(times, self.slide) * self.slide + self.size

    def _late_mask(self, times: np.ndarray) -> np.ndarray:
        return self._last_window_end(times) <= self.watermark

    def _add(self, batch: PreparedBatch, events: np.ndarray) -> None:
        self.panes.add_batch(batch, events, self.pane)

    def _emit(self, watermark: int) -> pa.Table | None:
        bounds = self.panes.pane_bounds(self._first_live_pane)
        result = None
        if bounds is not None:
            # Windows k = [k*slide, k*slide + size) that end in (emitted_until, watermark]
            # become final now; only those that contain a live pane can be non-empty.
            first_start, last_start = bounds[0] * self.pane, bounds[1] * self.pane
            k_min = max(
                (self.emitted_until - self.size) // self.slide + 1,
                (first_start - self.size) // self.slide + 1,
            )
            k_max = min((watermark - self.size) // self.slide, last_start // self.slide)
            if k_max >= k_min:
                groups = self.panes.window_groups(
                    self.geometry, k_min, k_max, self._first_live_pane
                )
                if groups is not None:
                    starts = groups.k * self.slide
                    result = self._output(
                        starts, starts + self.size, groups.atoms, groups.values, sort=False
                    )
        # Panes whose last window is now final are dead.
        self._first_live_pane = self._next_live_pane(watermark)
        if len(self.panes):
            self.panes = self.panes.drop_panes_before(self._first_live_pane)
        return result

    def _next_live_pane(self, watermark: int) -> int:
        """First pane some window not yet final may still need."""
        # The earliest window not final is k = (watermark - size) // slide + 1;
        # its first pane is k * slide / pane.
        k = (watermark - self.size) // self.slide + 1
        return max(self._first_live_pane, k * self.slide // self.pane)

    def _state_bytes(self) -> int:
        return self.panes.nbytes


class SessionWindows(WindowOperator):
    """Per-key sessions closed by ``gap`` without events; out-of-order events merge them.

    Session ``i`` is row ``i`` of the state and of the arrays ``kid`` (its key),
    ``starts``, ``ends`` and ``dead`` (merged away or emitted), all with room to
    grow. A batch extends the open sessions it touches in place; only new
    sessions take new rows, and rows of dead sessions are reclaimed in place
    once they are a third of the rows (at half, the rows of 1M users outgrew
    their arrays, which double: 200 MB of session state at 10M events, not 120).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        assert self.spec.gap is not None
        self.gap = self.spec.gap
        self._empty()

    def _empty(self) -> None:
        self.sessions = GroupState(self.plan, 1, capacity=16, rows_as_keys=True)
        self.key_ids = HashIndex(self.encoder.width)  # key atoms -> key id
        self._kid = np.empty(16, dtype=np.int64)
        self._starts = np.empty(16, dtype=np.int64)
        self._ends = np.empty(16, dtype=np.int64)
        self._dead = np.empty(16, dtype=np.bool_)

    @property
    def kid(self) -> np.ndarray:
        return self._kid[: len(self.sessions)]

    @property
    def starts(self) -> np.ndarray:
        return self._starts[: len(self.sessions)]

    @property
    def ends(self) -> np.ndarray:
        return self._ends[: len(self.sessions)]

    @property
    def dead(self) -> np.ndarray:
        return self._dead[: len(self.sessions)]

    def _late_mask(self, times: np.ndarray) -> np.ndarray:
        return times + self.gap <= self.watermark

    def _add(self, batch: PreparedBatch, events: np.ndarray) -> None:
        batch = batch.on_host()  # sessions are merged on the host
        values = batch.values if len(events) == len(batch) else batch.values.subset(events)
        times = batch.times[events]
        kid = self.key_ids.insert(batch.atoms[events])
        n = len(times)
        # Events of the batch, cut into sessions of their own ...
        order = np.lexsort((times, kid))
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
        order = np.lexsort((cand_start, cand_kid))
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
        row_of = np.full(n_merged, FOREVER, dtype=np.int64)
        np.minimum.at(row_of, group_of[:n_open], open_rows)
        created = np.flatnonzero(row_of == FOREVER)
        base = len(self.sessions)
        row_of[created] = np.arange(base, base + len(created))
        self._reserve(base + len(created))
        self.sessions.index.insert(row_of[created])
        dst = row_of[group_of]
        absorbed = np.flatnonzero(dst[:n_open] != open_rows)
        self.sessions.merge_from(self.sessions, open_rows[absorbed], dst[absorbed])
        self.sessions.merge_from(fresh, np.arange(n_new), dst[n_open:])
        starts = np.full(n_merged, FOREVER, dtype=np.int64)
        ends = np.full(n_merged, NEVER, dtype=np.int64)
        np.minimum.at(starts, group_of, cand_start)
        np.maximum.at(ends, group_of, cand_end)
        self._starts[row_of] = starts
        self._ends[row_of] = ends
        self._kid[row_of[group_of]] = cand_kid
        self._dead[row_of[created]] = False
        self._dead[open_rows[absorbed]] = True

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

    def _emit(self, watermark: int) -> pa.Table | None:
        done = ~self.dead & (self.ends <= watermark)
        result = None
        if done.any():
            rows = np.flatnonzero(done)
            closed = self.sessions.take(rows)
            n = len(rows)
            values = self.plan.finalize(closed.agg, n, closed.sketch_results(n))
            atoms = self.key_ids.keys[self.kid[rows]]
            result = self._output(self.starts[rows], self.ends[rows], atoms, values)
            self.dead[rows] = True
        if 3 * int(self.dead.sum()) > len(self.dead):
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
        self.key_ids = HashIndex(self.encoder.width, capacity=max(16, n))
        self._kid[:n] = self.key_ids.insert(atoms) if n else np.empty(0, dtype=np.int64)

    def _state_bytes(self) -> int:
        arrays = (self._kid, self._starts, self._ends, self._dead)
        return self.sessions.nbytes + self.key_ids.nbytes + sum(int(a.nbytes) for a in arrays)


def make_operator(
    spec: WindowSpec,
    fields: dict[str, FieldSpec],
    key_types: dict[str, pa.DataType],
    time_type: pa.DataType,
    backend: Backend = CPU,
) -> WindowOperator:
    kind = SessionWindows if spec.type == "session" else PaneWindows
    return kind(spec, fields, key_types, time_type, backend)
