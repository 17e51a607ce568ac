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
from gpu_engine.windows.sessions import late_events

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
        times = batch.times if events is None else batch.times[events]
        late = self._late_mask(batch, events, times)
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

    def busy_until(self, now: float) -> None:
        """The engine finished a batch at ``now``: idle time counts from here.

        Time spent aggregating, emitting and writing is not input idleness, or a
        slow sink would advance the watermark and make on-time events late.
        """
        self.last_input_at = now

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
        """Windows whose end the watermark has reached (watermark >= end) and that were not
        emitted yet."""
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
    def _late_mask(
        self, batch: PreparedBatch, events: np.ndarray | None, times: np.ndarray
    ) -> np.ndarray:
        """Events ``events`` (None: all) whose windows all end by the watermark (at batch start).

        Judged by the watermark, not by what was emitted, so results do not depend
        on how often windows are emitted.
        """

    @abstractmethod
    def _add(self, batch: PreparedBatch, events: np.ndarray) -> None: ...

    @abstractmethod
    def _emit(self, watermark: int) -> pa.Table | None: ...

    @abstractmethod
    def _state_bytes(self) -> int: ...

    def forget_dead_keys(self) -> None:
        """Let the key encoder forget the strings of keys the state holds no more, once its
        dictionaries have doubled (amortised: device state copies its keys to the host for
        it). String keys that churn would otherwise grow it with the stream. The engine
        calls it after each emission (a shard's owner does, for all its shards at once)."""
        if self.encoder.crowded():
            self.encoder.forget_unused([self.key_atoms()])

    @abstractmethod
    def key_atoms(self) -> np.ndarray:
        """``(n, width)`` atoms (on the host) of at least every key the state holds."""

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

    def _late_mask(
        self, batch: PreparedBatch, events: np.ndarray | None, times: np.ndarray
    ) -> np.ndarray:
        return self._last_window_end(times) <= self.watermark

    def _add(self, batch: PreparedBatch, events: np.ndarray) -> None:
        self.panes.add_batch(batch, events, self.pane)

    def _emit(self, watermark: int) -> pa.Table | None:
        next_live = self._next_live_pane(watermark)  # panes before it are dead after this
        bounds = self.panes.pane_bounds(self._first_live_pane, dropping=next_live)
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
        self._first_live_pane = next_live
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

    def key_atoms(self) -> np.ndarray:
        return self.panes.keys[:, 1:]


class SessionWindows(WindowOperator):
    """Per-key sessions closed by ``gap`` without events; out-of-order events merge them.

    The sessions live in the backend's session state (``SessionState`` on the
    host, ``DeviceSessionState`` on CUDA): it cuts a batch into sessions, merges
    them with the open ones and hands back those the watermark closed.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        assert self.spec.gap is not None
        self.gap = self.spec.gap
        self.sessions = self.backend.new_session_state(
            self.plan, self.encoder.width, self.gap, owner=self.spec.name
        )

    def _late_mask(
        self, batch: PreparedBatch, events: np.ndarray | None, times: np.ndarray
    ) -> np.ndarray:
        late = times + self.gap <= self.watermark
        if not late.any():  # the common case: no atoms to fetch, nothing to merge
            return late
        atoms = batch.host_atoms()
        atoms = atoms if events is None else atoms[events]
        return late_events(late, atoms, times, self.gap, self.watermark,
                           self.sessions.open_sessions)  # fmt: skip

    def _add(self, batch: PreparedBatch, events: np.ndarray) -> None:
        self.sessions.add_batch(batch, events)

    def _emit(self, watermark: int) -> pa.Table | None:
        closed = self.sessions.emit(watermark)
        if closed is None:
            return None
        return self._output(closed.starts, closed.ends, closed.atoms, closed.values)

    def _state_bytes(self) -> int:
        return int(self.sessions.nbytes)

    def key_atoms(self) -> np.ndarray:
        return self.sessions.key_atoms  # keys of open sessions, and some of closed ones


def make_operator(
    spec: WindowSpec,
    fields: dict[str, FieldSpec],
    key_types: dict[str, pa.DataType],
    time_type: pa.DataType,
    backend: Backend = CPU,
) -> WindowOperator:
    kind = SessionWindows if spec.type == "session" else PaneWindows
    return kind(spec, fields, key_types, time_type, backend)
