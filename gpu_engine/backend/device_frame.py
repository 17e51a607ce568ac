"""Batches on the device, from validation to window state.

A cuDF DataFrame, or a dict of device arrays (CuPy, Numba, torch CUDA tensors),
pushed to an engine on the ``cuda`` backend becomes a :class:`DeviceFrame`: its
numeric, boolean and timestamp columns are read where they are (through
``__cuda_array_interface__``, no copy). Host batches become one too
(:class:`HostFrameStager`: those columns uploaded once). The columns are widened
once on the device to int64 or float64 with the CPU path's cast rules
(:mod:`kernels.cuda.ingest`), validated by the same reason-code kernels,
filtered, keyed and turned into the kernel inputs that the device pane and
session states read without an upload.

What still crosses to the host, and why:

* the event times of the valid rows (8 bytes a row): the watermark, lateness
  and batch reports are host bookkeeping;
* reason codes, only when some row failed, and the failing or late rows
  themselves (for the quarantine and late sinks, which are host tables);
* string columns (cuDF strings are copied once; their dictionary codes live on
  the host) and any column the device casts do not cover (e.g. text to be
  parsed as numbers): they take the host path, column by column;
* sharding over several CUDA workers reads a host copy of the key atoms
  (:meth:`DevicePreparedBatch.host_atoms`), to place keys as on the CPU.

Here: the frame and its columns. Validation on the device is in
:mod:`device_validation`, a window's kernel inputs in :mod:`device_prepared`, host
frames' uploads in :mod:`host_staging`, pushed device columns in :mod:`device_pushes`.
Imported only by the backend, only when CUDA is selected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from gpu_engine.windows.aggregations import (
    AggregationPlan,
)
from gpu_engine.windows.keys import KeyEncoder
from kernels.cuda import ingest
from kernels.cuda._core import (
    as_device,
    copy,
    cuda,
    empty,
    full,
    span,
    to_host,
)

_NO_FLAGS = np.empty(0, dtype=np.uint8)


@dataclass
class DeviceColumn:
    """One column in device memory: values (1-D) and is-null flags (uint8; None: no nulls)."""

    values: Any
    is_null: Any = None

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def slice(self, lo: int, hi: int) -> DeviceColumn:
        is_null = None if self.is_null is None else span(self.is_null, lo, hi)
        return DeviceColumn(span(self.values, lo, hi), is_null)

    def take(self, rows: Any) -> DeviceColumn:
        is_null = None if self.is_null is None else ingest.take(self.is_null, rows)
        return DeviceColumn(ingest.take(self.values, rows), is_null)

    def to_arrow(self, arrow_type: pa.DataType | None = None) -> pa.Array:
        """A host Arrow copy (in ``arrow_type`` when given)."""
        mask = None if self.is_null is None else to_host(self.is_null).astype(bool)
        array = pa.array(to_host(self.values), mask=mask)
        return array if arrow_type is None else array.cast(arrow_type)


Column: TypeAlias = "DeviceColumn | pa.Array"


class DeviceFrame:
    """The columns of one batch, on the device (host Arrow for the columns kept there).

    Stands where the engine has an Arrow table for host input (``num_rows``,
    ``filter``), and knows how to validate and prepare itself.
    """

    def __init__(
        self,
        columns: dict[str, Column],
        num_rows: int,
        arrow_types: dict[str, pa.DataType] | None = None,
        time: str | None = None,
        host: pa.Table | None = None,
        owns: bool = False,
    ) -> None:
        self.columns = columns
        self.num_rows = num_rows
        self.arrow_types = arrow_types or {}  # the schema types of validated columns
        self.time = time
        self.host = host  # the host table this frame was uploaded from, if any
        self.owns = owns  # its device memory is the engine's, not the caller's
        self.copies: Any = None  # its upload's CopiesDone, waited for before it is read

    def await_copies(self) -> None:
        """Make the default stream wait for this frame's upload (staged ahead of its turn)."""
        if self.copies is not None:
            self.copies.wait()
            self.copies = None

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def slice(self, lo: int, hi: int) -> DeviceFrame:
        """Rows ``lo..hi-1`` (views, no copy)."""
        columns = {
            name: c.slice(lo, hi) if isinstance(c, DeviceColumn) else c.slice(lo, hi - lo)
            for name, c in self.columns.items()
        }
        host = None if self.host is None else self.host.slice(lo, hi - lo)
        return DeviceFrame(columns, hi - lo, self.arrow_types, self.time, host, self.owns)

    @property
    def layout(self) -> tuple[tuple[str, str], ...]:
        """Column names, places and types: frames of one layout can be concatenated (null
        flags or none: a cuDF column has them only in chunks that hold a null)."""
        return tuple(
            (name, f"device {np.dtype(c.values.dtype).str}")
            if isinstance(c, DeviceColumn) else (name, f"host {c.type}")
            for name, c in self.columns.items()
        )  # fmt: skip

    @property
    def arrow_schema(self) -> pa.Schema:
        """The schema of :meth:`to_arrow`, without the copy."""
        return pa.schema([
            (name, pa.from_numpy_dtype(c.values.dtype) if isinstance(c, DeviceColumn) else c.type)
            for name, c in self.columns.items()
        ])  # fmt: skip

    def to_arrow(self) -> pa.Table:
        """A host copy, as the CPU backend reads the same push: where frames of two
        layouts meet in one batch (a device push, then a host one), they are batched as
        the CPU backend batches them, since the batch's bounds decide which rows are late."""
        self.await_copies()
        return pa.table({
            name: c.to_arrow() if isinstance(c, DeviceColumn) else c
            for name, c in self.columns.items()
        })  # fmt: skip

    @classmethod
    def concat(cls, parts: list[DeviceFrame]) -> DeviceFrame:
        """The rows of ``parts`` (one layout) in one frame, copied on the device; null flags
        of 0 where a part has none for a column that another part has them for."""
        if len(parts) == 1 and parts[0].owns:
            return parts[0]
        n = sum(p.num_rows for p in parts)
        columns: dict[str, Column] = {}
        for name, first in parts[0].columns.items():
            pieces = [p.columns[name] for p in parts]
            if not isinstance(first, DeviceColumn):
                columns[name] = pa.concat_arrays(pieces)
                continue
            values = _stacked([c.values for c in pieces], n, first.values.dtype)
            is_null = None
            if any(c.is_null is not None for c in pieces):
                flags = [full(len(c), 0, np.uint8) if c.is_null is None else c.is_null
                         for c in pieces]  # fmt: skip
                is_null = _stacked(flags, n, np.uint8)
            columns[name] = DeviceColumn(values, is_null)
        hosts = [p.host for p in parts]
        host = None if any(h is None for h in hosts) else pa.concat_tables(hosts)
        return cls(columns, n, parts[0].arrow_types, parts[0].time, host, owns=True)

    def owned(self) -> DeviceFrame:
        """This frame in the engine's own device memory (a copy if it is the caller's),
        copied before this returns: the copies are queued on the default stream, and the
        caller may overwrite its buffers from a stream that does not wait for that one
        (a torch side stream, a non-blocking CuPy stream) once its push returns."""
        if self.owns:
            return self
        copied = DeviceFrame.concat([self])
        cuda.default_stream().synchronize()
        return copied

    def take(self, rows: np.ndarray) -> DeviceFrame:
        """Rows ``rows`` (host row numbers, uploaded once; gathered on the device)."""
        device_rows = as_device(rows, np.int64)
        host_rows = pa.array(rows)
        columns = {
            name: c.take(device_rows) if isinstance(c, DeviceColumn) else c.take(host_rows)
            for name, c in self.columns.items()
        }
        return DeviceFrame(columns, len(rows), self.arrow_types, self.time)

    def host_rows(self, rows: np.ndarray) -> pa.Table:
        """Rows ``rows`` as a host Arrow table (only those rows are copied)."""
        if self.host is not None:  # as they came, types and all
            return self.host.take(pa.array(rows, pa.int64()))
        part = self.take(np.asarray(rows, dtype=np.int64))
        return pa.table({
            name: c.to_arrow(self.arrow_types.get(name)) if isinstance(c, DeviceColumn) else c
            for name, c in part.columns.items()
        })  # fmt: skip

    def filter(self, mask: pa.Array) -> pa.Table:
        """The rows where ``mask`` is true, on the host (late rows for the sinks)."""
        return self.host_rows(np.flatnonzero(mask.to_numpy(zero_copy_only=False)))

    def host_column(self, name: str) -> pa.Array:
        column = self.columns[name]
        if isinstance(column, DeviceColumn):
            return column.to_arrow(self.arrow_types.get(name))
        return column

    def validated_by(self, validator: Any, source: str, first_row: int) -> Any:
        """:meth:`gpu_engine.validation.Validator.validate` of this frame, on the device."""
        from gpu_engine.backend.device_validation import validate_frame

        self.await_copies()
        return validate_frame(validator, self, source, first_row)

    def prepared(self, encoder: KeyEncoder, plan: AggregationPlan, times: np.ndarray) -> Any:
        """The kernel inputs of a window, on the device (this frame is validated)."""
        from gpu_engine.backend.device_prepared import prepare_frame

        return prepare_frame(self, encoder, plan, times)


def _stacked(arrays: list[Any], n: int, dtype: Any) -> Any:
    """One device array of ``n`` items holding ``arrays`` one after another (device copies)."""
    out = empty(n, dtype)
    at = 0
    for array in arrays:
        size = int(array.shape[0])
        if size:
            copy(span(out, at, at + size), array)
        at += size
    return out
