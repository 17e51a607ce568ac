"""Pane state on a CUDA device: the :class:`PaneState` of the ``cuda`` backend.

Events are hashed into pane rows and aggregated by the CUDA kernels of
:mod:`kernels.cuda`; the rows stay on the device between batches. Emission
reads a host view (one copy of the live rows per emission) and reuses the CPU
emission kernels; sketch entries are kept on the host. Imported only by the
backend, only when CUDA is selected.
"""

from __future__ import annotations

import numpy as np

from gpu_engine.errors import DeviceMemoryError
from gpu_engine.windows.aggregations import AggregationPlan, BatchValues
from gpu_engine.windows.panes import PaneGeometry, PaneState, WindowGroups
from gpu_engine.windows.state import SketchEntries
from kernels.cuda._core import to_host
from kernels.cuda.aggregate import DeviceAggState
from kernels.cuda.aggregate import update_events as device_update_events
from kernels.cuda.hashindex import DeviceHashIndex


class DevicePaneState:
    """Keyed aggregate state whose index and scalar state live in device memory."""

    def __init__(
        self,
        plan: AggregationPlan,
        width: int,
        capacity: int = 1024,
        limit: int | None = None,
        owner: str = "",
    ) -> None:
        self.plan = plan
        self.width = width
        self.limit = limit
        self.owner = owner
        self.index = DeviceHashIndex(width, capacity)
        self.agg = DeviceAggState(plan.ops, capacity)
        self.sketches = SketchEntries()

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        agg = self.agg
        device = sum(int(getattr(agg, n).nbytes) for n in ("rows", "ist", "isum", "f0", "f1"))
        return self.index.nbytes + device + self.sketches.nbytes

    @property
    def keys(self) -> np.ndarray:
        return to_host(self.index.keys)

    def add_events(self, group_keys: np.ndarray, values: BatchValues) -> None:
        """Aggregate one batch on the device, event ``i`` into group ``group_keys[i]``."""
        plan = self.plan
        self._check_room(len(self.index) + len(group_keys))
        ids = self.index.insert(np.ascontiguousarray(group_keys, dtype=np.int64))
        n_rows = len(self.index)
        self.agg.reserve(n_rows)
        device_update_events(
            ids, plan.ops, plan.col_of, values.mask_of, plan.is_int,
            values.fcols, values.icols, values.masks, self.agg, n_rows=n_rows,
        )  # fmt: skip
        if values.sketch_inputs:
            self.sketches.add_events(to_host(ids), values)

    def _check_room(self, rows: int) -> None:
        """Refuse, with a clear error, to grow past the configured device memory limit."""
        if self.limit is None:
            return
        per_row = 8 * (1 + 4 * len(self.plan.ops)) + 8 * (self.width + 2)  # state + index
        need = max(self.nbytes, rows * per_row)
        if need > self.limit:
            raise DeviceMemoryError(
                f"window {self.owner!r}: its pane state needs about {need / 2**20:,.1f} MiB of "
                f"device memory for {rows:,} rows, above device_memory_limit "
                f"({self.limit / 2**20:,.1f} MiB); raise the limit, or use fewer keys, a "
                "shorter window or less allowed_lateness"
            )

    # -- the pane-state interface (see gpu_engine.windows.panes) ----------------------------
    def pane_bounds(self, first_live: int) -> tuple[int, int] | None:
        return self._host_view().pane_bounds(first_live) if len(self) else None

    def window_groups(
        self, geometry: PaneGeometry, k_min: int, k_max: int, first_live: int
    ) -> WindowGroups | None:
        return self._host_view().window_groups(geometry, k_min, k_max, first_live)

    def drop_panes_before(self, first_live: int) -> DevicePaneState:
        host = self._host_view()
        compacted = host.drop_panes_before(first_live)
        return self if compacted is host else self._replaced_by(compacted)

    def _host_view(self) -> PaneState:
        """The live rows copied to host arrays, for emission on the CPU kernels."""
        n = len(self.index)
        host = PaneState(self.plan, self.width, capacity=max(16, n))
        if n:
            host.index.insert(self.keys)  # unique keys in id order: host id == device id
        host.agg = self.agg.to_host(n)
        host.sketches = self.sketches
        return host

    def _replaced_by(self, host: PaneState) -> DevicePaneState:
        """A device state holding ``host``'s groups (after a compaction on the host)."""
        out = DevicePaneState(
            self.plan, self.width, max(16, len(host)), limit=self.limit, owner=self.owner
        )
        if len(host):
            out.index.insert(host.keys)
            out.agg = DeviceAggState.from_host(host.agg, len(host))
        out.sketches = host.sketches
        return out
