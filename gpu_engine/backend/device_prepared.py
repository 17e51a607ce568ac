"""A validated device frame as a window's kernel inputs: key atoms, value columns, masks and
sketch inputs on the device, read by the device pane and session states without an upload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpu_engine.arrow_layout import contiguous
from gpu_engine.backend.device_frame import DeviceColumn, DeviceFrame
from gpu_engine.config.models import FieldSpec
from gpu_engine.windows.aggregations import (
    AggregationPlan,
    BatchValues,
    PreparedBatch,
    host_sketch_keys,
    numbers,
    value_in,
    wanted_as,
)
from gpu_engine.windows.keys import KeyEncoder
from kernels.cuda import ingest
from kernels.cuda import sketches as device_sketches
from kernels.cuda._core import (
    as_device,
    copy,
    empty,
    full,
    row,
    to_host,
)
from kernels.cuda.sort import iota


@dataclass
class DeviceBatchValues(BatchValues):
    """:class:`BatchValues` whose arrays live on the device."""

    def subset(self, rows: np.ndarray) -> DeviceBatchValues:
        device_rows = as_device(rows, np.int64)
        new_index = ingest.renumber(device_rows, int(self.fcols.shape[1]))  # (k, n), k >= 0
        # Events outside ``rows`` keep their sketch keys with index -1 (skipped when the
        # entries are inserted): no compaction, whose count the host would wait for.
        sketches = [(a, ingest.take(new_index, event_index, missing=-1), keys)
                    for a, event_index, keys in self.sketch_inputs]  # fmt: skip
        icols = ingest.take(self.icols, device_rows) if self.icols.size else self.icols
        return DeviceBatchValues(
            ingest.take(self.fcols, device_rows), icols, ingest.take(self.masks, device_rows),
            self.mask_of, sketches,
        )  # fmt: skip


@dataclass
class DevicePreparedBatch(PreparedBatch):
    """A prepared batch on the device; ``times`` (host) also has a device copy."""

    device_times: Any = None

    def pane_keys(self, events: np.ndarray, pane_ms: int) -> Any:
        rows = None if len(events) == len(self) else as_device(events, np.int64)
        return ingest.pane_keys(self.device_times, self.atoms, rows, pane_ms)

    def host_atoms(self) -> np.ndarray:
        return to_host(self.atoms)


class DeviceColumns:
    """A validated :class:`DeviceFrame` as the :class:`ColumnSource` of the aggregation plan."""

    def __init__(self, frame: DeviceFrame, fields: dict[str, FieldSpec]) -> None:
        self.frame = frame
        self.fields = fields
        self.num_rows = frame.num_rows
        self._valid: dict[str, Any] = {}
        self._every_row: Any = None  # rows_of(None), made once

    def _device(self, name: str) -> DeviceColumn:
        column = self.frame.columns[name]
        if isinstance(column, DeviceColumn):
            return column
        # A host column (cast on the host); strings are never value columns.
        values = np.asarray(numbers(column))
        wide = np.float64 if values.dtype.kind == "f" else np.int64
        is_null = None
        if column.null_count:
            is_null = as_device(column.is_null().to_numpy(zero_copy_only=False).view(np.uint8))
        return DeviceColumn(as_device(values, wide), is_null)

    def value_rows(self, names: list[str], needs_int: bool) -> tuple[Any, Any]:
        n = self.num_rows
        fcols = empty((len(names), n), np.float64)
        # Integer sums read icols only for integer columns; float columns' rows stay 0.
        icols = full((len(names), n) if needs_int else (0, 0), 0, np.int64)
        for c, name in enumerate(names):
            values = self._device(name).values
            is_int = np.dtype(values.dtype) == np.int64
            if is_int:
                ingest.to_float64(values, out=row(fcols, c))
            else:
                copy(row(fcols, c), values)
            if needs_int and is_int:
                copy(row(icols, c), values)
        return fcols, icols

    def valid_mask(self, name: str) -> Any:
        if name not in self._valid:
            column = self.frame.columns[name]
            if isinstance(column, DeviceColumn):
                is_null = column.is_null
                valid = None if is_null is None else ingest.not_flags(is_null)
            else:
                host = column.is_valid().to_numpy(zero_copy_only=False)
                valid = as_device(host.view(np.uint8)) if column.null_count else None
            self._valid[name] = valid
        return self._valid[name]

    def isin(self, name: str, wanted: list[Any]) -> Any:
        column = self.frame.columns[name]
        arrow_type = self.frame.arrow_types[name]
        if not isinstance(column, DeviceColumn):
            return as_device(np.asarray(value_in(column, wanted, arrow_type), dtype=np.uint8))
        wanted_values = wanted_as(wanted, arrow_type)  # the host path's cast (and errors)
        wanted_np = wanted_values.to_numpy(zero_copy_only=False).astype(column.values.dtype)
        hit = ingest.isin(column.values, wanted_np)
        return hit if column.is_null is None else ingest.both(hit, column.is_null, negate_b=True)

    def both(self, a: Any, b: Any) -> Any:
        return ingest.both(a, b)

    def not_nan(self, name: str) -> Any:
        return ingest.not_flags(self.isin(name, [math.nan]))  # isin: any NaN is NaN

    def rows_of(self, mask: Any) -> Any:
        """An event index aligned with the rows: row ``i``, or -1 where ``mask`` is unset.

        Why not the compacted rows: their number is only known once the device has counted
        them, and the host would wait for it; the sketch entries skip the -1 rows instead.
        """
        if mask is None:
            if self._every_row is None:
                self._every_row = iota(self.num_rows)
            return self._every_row
        return ingest.index_where(mask)

    def sketch_keys(self, name: str, index: Any, is_quantile: bool) -> Any:
        column = self.frame.columns[name]
        every_row = index is self._every_row  # no gather needed
        if not isinstance(column, DeviceColumn):  # cast on the host (strings, text, ...)
            host = contiguous(column)
            keys = as_device(host_sketch_keys(host, is_quantile))
            return keys if every_row else ingest.take(keys, index)
        values = column.values if every_row else ingest.take(column.values, index)
        if is_quantile:
            is_float = np.dtype(values.dtype).kind == "f"
            return device_sketches.bucket_keys(values if is_float else ingest.to_float64(values))
        if np.dtype(values.dtype).kind == "f":
            return device_sketches.hash_int64(ingest.canonical(values).view(np.int64))
        return device_sketches.hash_int64(values)

    def stack_masks(self, masks: list[Any]) -> Any:
        out = empty((len(masks), self.num_rows), np.uint8)
        for m, mask in enumerate(masks):
            copy(row(out, m), mask)
        return out


def prepare_frame(
    frame: DeviceFrame, encoder: KeyEncoder, plan: AggregationPlan, times: np.ndarray
) -> DevicePreparedBatch:
    """The kernel inputs of a window, on the device (``frame`` is validated)."""
    assert frame.time is not None, "only validated frames are prepared"
    n = frame.num_rows
    atoms = empty((n, encoder.width), np.int64)
    col = 0
    for key in encoder.keys:
        column = frame.columns[key]
        nullable = encoder.nullable[key]
        if isinstance(column, DeviceColumn) and np.dtype(column.values.dtype) == np.int64:
            values, is_null = column.values, column.is_null
        else:  # strings (host dictionary codes), bools: as on the host
            host_values, host_null = encoder.column_atoms(key, frame.host_column(key))
            values = as_device(host_values, np.int64)
            is_null = None if host_null is None else as_device(host_null.view(np.uint8))
        ingest.put_atom(values, is_null if nullable else None, atoms, col, nullable)
        col += 2 if nullable else 1
    source = DeviceColumns(frame, plan.fields)
    v = plan.prepare_from(source)
    values_on_device = DeviceBatchValues(v.fcols, v.icols, v.masks, v.mask_of,
                                         v.sketch_inputs)  # fmt: skip
    time_column = frame.columns[frame.time]
    device_times = time_column.values if isinstance(time_column, DeviceColumn) else as_device(times)
    return DevicePreparedBatch(times, atoms, values_on_device, device_times)
