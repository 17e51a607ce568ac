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

Imported only by the backend, only when CUDA is selected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from gpu_engine.arrow_layout import contiguous
from gpu_engine.config.models import FLOAT_TYPES, INTEGER_TYPES, FieldSpec
from gpu_engine.errors import InputError
from gpu_engine.parsing import timestamp_ms
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
from kernels import validate as codes
from kernels.cuda import ingest
from kernels.cuda import sketches as device_sketches
from kernels.cuda._core import (
    as_device,
    copy,
    cuda,
    empty,
    full,
    is_device_array,
    row,
    span,
    to_host,
)
from kernels.cuda.sort import iota

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
        self.await_copies()
        return validate(validator, self, source, first_row)

    def prepared(
        self, encoder: KeyEncoder, plan: AggregationPlan, times: np.ndarray
    ) -> DevicePreparedBatch:
        """The kernel inputs of a window, on the device (this frame is validated)."""
        assert self.time is not None, "only validated frames are prepared"
        n = self.num_rows
        atoms = empty((n, encoder.width), np.int64)
        col = 0
        for key in encoder.keys:
            column = self.columns[key]
            nullable = encoder.nullable[key]
            if isinstance(column, DeviceColumn) and np.dtype(column.values.dtype) == np.int64:
                values, is_null = column.values, column.is_null
            else:  # strings (host dictionary codes), bools: as on the host
                host_values, host_null = encoder.column_atoms(key, self.host_column(key))
                values = as_device(host_values, np.int64)
                is_null = None if host_null is None else as_device(host_null.view(np.uint8))
            ingest.put_atom(values, is_null if nullable else None, atoms, col, nullable)
            col += 2 if nullable else 1
        source = DeviceColumns(self, plan.fields)
        v = plan.prepare_from(source)
        values_on_device = DeviceBatchValues(v.fcols, v.icols, v.masks, v.mask_of,
                                             v.sketch_inputs)  # fmt: skip
        time_column = self.columns[self.time]
        device_times = (
            time_column.values if isinstance(time_column, DeviceColumn) else as_device(times)
        )
        return DevicePreparedBatch(times, atoms, values_on_device, device_times)


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


# -- validation --------------------------------------------------------------------------
def _widen(spec: FieldSpec, column: DeviceColumn) -> tuple[Any, Any] | None:
    """The column in its device kernel type (int64 or float64) and the rows that failed
    to cast, with the host path's rules; None where the device casts do not apply."""
    dtype = np.dtype(column.values.dtype)
    values = column.values
    if dtype.kind == "M":
        if dtype != np.dtype("datetime64[ms]") or spec.type not in ("timestamp", "int64"):
            return None
        values = values.view(np.int64)
        dtype = np.dtype(np.int64)
    if dtype.name not in ingest.SOURCE_DTYPES and dtype.kind != "b":
        return None  # no device cast kernel for it (float16, say): the host casts it
    if spec.type in FLOAT_TYPES:
        exact = 2.0**24 if spec.type == "float32" else 2.0**53  # integers a float holds exactly
        wide = dtype.kind in "iu" and 2 ** (8 * dtype.itemsize) > exact
        if wide and ingest.count_beyond(values, column.is_null, exact):
            # The host rounds them straight to the field's float; the device would round
            # twice (to float64, then float32), so it leaves such a column to the host.
            return None
        return ingest.to_float64(values, column.is_null, round32=spec.type == "float32"), None
    if spec.type == "bool":
        return ingest.to_int64(values, column.is_null, as_bool=True)[0], None
    if dtype == np.uint64 and ingest.count_beyond(values, column.is_null, 2.0**62):
        return None  # compared as floats, 2^63 - 1 and 2^63 look alike: the host checks exactly
    if spec.type == "timestamp":
        return (ingest.to_int64(values, column.is_null)[0], None) if dtype.kind in "iu" else None
    if spec.type in INTEGER_TYPES:
        info = np.iinfo(np.dtype(spec.type))
        return ingest.to_int64(values, column.is_null, float(info.min), float(info.max))
    return None


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


def _missing(spec: FieldSpec, n: int) -> Column:
    """A column of nulls for a field absent from the input."""
    if spec.type == "string":
        return pa.nulls(n, pa.string())
    dtype = np.float64 if spec.type in FLOAT_TYPES else np.int64
    return DeviceColumn(full(n, 0, dtype), full(n, 1, np.uint8))


def validate(validator: Any, frame: DeviceFrame, source: str, first_row: int) -> Any:
    """The device twin of ``Validator.validate``: same rules, reasons and messages."""
    from gpu_engine.validation import Cast, ValidatedBatch

    schema, config = validator.schema, validator.config
    n = frame.num_rows
    reason_codes = validator.backend.reason_codes(n)
    columns: dict[str, Column] = {}
    for index, (name, spec) in enumerate(schema.fields.items()):
        column = frame.columns.get(name)
        if column is None:
            validator.missing_column(name, spec, index, n, source, reason_codes)
            columns[name] = _missing(spec, n)
            continue
        widened = _widen(spec, column) if isinstance(column, DeviceColumn) else None
        if widened is None:  # the host path, for this column only
            host = column.to_arrow() if isinstance(column, DeviceColumn) else column
            cast: Cast = validator.cast(host, spec, name)
            validator.check(name, spec, cast, index, reason_codes)
            columns[name] = cast.array
            continue
        values, failed = widened
        assert isinstance(column, DeviceColumn)
        is_null = column.is_null
        columns[name] = DeviceColumn(values, is_null)
        if spec.type == "bool":
            if is_null is not None and not spec.nullable:
                reason_codes.mark_rows(is_null, codes.NULL, index)
            if config.mode == "strict" and spec.allowed is not None:
                bad = ingest.not_flags(ingest.isin(values, np.asarray(spec.allowed, np.int64)))
                if is_null is not None:
                    bad = ingest.both(bad, is_null, negate_b=True)
                reason_codes.mark_rows(bad, codes.NOT_ALLOWED, index)
            continue
        validator.check_numeric(
            name, spec, values, _NO_FLAGS if is_null is None else is_null,
            _NO_FLAGS if failed is None else failed, index, reason_codes,
        )  # fmt: skip
    valid = DeviceFrame(columns, n, _output_types(schema, frame), schema.time)
    time_column = valid.columns[schema.time]
    # A device time column is read back with the reason codes, before the quarantine's and
    # the take's kernels are queued (one wait, not two); a host one once its failed (null)
    # rows are gone.
    times = to_host(time_column.values) if isinstance(time_column, DeviceColumn) else None
    bad, quarantine = validator.failures(reason_codes, frame.host_rows, source, first_row)
    if bad is not None:
        keep = np.flatnonzero(~bad)
        valid = valid.take(keep)
        times = None if times is None else times[keep]
    if times is None:
        host_time = valid.columns[schema.time]
        assert not isinstance(host_time, DeviceColumn)
        times = host_time.cast(pa.int64()).to_numpy()
    return ValidatedBatch(valid, times, quarantine, n, source, first_row, bad)


def _output_types(schema: Any, frame: DeviceFrame) -> dict[str, pa.DataType]:
    """The Arrow type of every validated column, as the host path casts it: the schema's
    (a timestamp in its field's ``tz``), else with a host timestamp column's time zone
    kept (``Validator._cast_timestamp``)."""
    from gpu_engine.validation import arrow_type

    types = {name: arrow_type(spec) for name, spec in schema.fields.items()}
    if frame.host is not None:
        for name, spec in schema.fields.items():
            if spec.type != "timestamp" or spec.tz is not None:
                continue
            if name not in frame.host.column_names:
                continue
            source = frame.host.schema.field(name).type
            if pa.types.is_timestamp(source) and source.tz:
                types[name] = pa.timestamp("ms", tz=source.tz)
    return types


# -- host frames -------------------------------------------------------------------------
class HostFrameStager:
    """Host batches onto the device: the numeric, boolean and timestamp columns of the
    schema's numeric fields are uploaded once, at their own width (values and null
    flags, through :class:`~gpu_engine.backend.transfer.PinnedStager`; timestamps only
    into timestamp and int64 fields, see :func:`_fixed_width`); everything else stays a
    host column of the :class:`DeviceFrame`, cast by the host path."""

    def __init__(self, fields: dict[str, FieldSpec]) -> None:
        from gpu_engine.backend.transfer import PinnedStager

        self.numeric = {name: spec.type for name, spec in fields.items() if spec.type != "string"}
        self.stager = PinnedStager()

    def __call__(self, table: pa.Table) -> DeviceFrame:
        names: list[str] = []
        arrays: list[np.ndarray] = []
        has_nulls: list[bool] = []
        columns: dict[str, Column] = {}
        for name in table.column_names:
            array = contiguous(table.column(name))
            field_type = self.numeric.get(name)
            values = None if field_type is None else _fixed_width(array, field_type)
            columns[name] = array
            if values is None:
                continue
            names.append(name)
            arrays.append(values)
            has_nulls.append(bool(array.null_count))
            if array.null_count:
                arrays.append(array.is_null().to_numpy(zero_copy_only=False).view(np.uint8))
        uploaded, copies = self.stager.upload(arrays)
        device = iter(uploaded)
        for name, nulls in zip(names, has_nulls, strict=True):
            values_d = next(device)
            columns[name] = DeviceColumn(values_d, next(device) if nulls else None)
        frame = DeviceFrame(columns, table.num_rows, host=table)
        frame.copies = copies
        return frame


def _fixed_width(array: pa.Array, field_type: str) -> np.ndarray | None:
    """The values of a numeric, boolean or timestamp column of a ``field_type`` field as
    numpy (zero copy where Arrow allows); None where the column stays on the host.

    Timestamps are epoch ms, as the host path casts them (``Validator.cast``): finer
    units floored (:func:`~gpu_engine.parsing.timestamp_ms`), and only for timestamp and
    int64 fields. A timestamp column in any other field, or in seconds past the int64
    range of milliseconds, stays on the host, whose cast refuses it (a ``SchemaError``
    naming the column) instead of reading it as a plain integer or wrapping it."""
    kind = array.type
    if pa.types.is_boolean(kind):
        return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False))
    if pa.types.is_timestamp(kind):
        if field_type not in ("timestamp", "int64"):
            return None
        try:
            array = timestamp_ms(array).cast(pa.int64())
        except pa.ArrowInvalid:  # out of the ms range: the host path raises its error
            return None
    elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind)) or pa.types.is_float16(kind):
        return None
    dtype = np.dtype(array.type.to_pandas_dtype())
    data = array.buffers()[1]
    if data is None:
        return None
    return np.frombuffer(data, dtype=dtype, count=len(array) + array.offset)[array.offset :]


# -- the edge ----------------------------------------------------------------------------
def device_frame(frame: Any) -> DeviceFrame | None:
    """``frame`` as a :class:`DeviceFrame` when its columns are on a device, else None.

    Takes a cuDF DataFrame, or a mapping whose values include device arrays
    (other values are host columns). Device arrays are viewed, not copied.
    """
    if type(frame).__module__.startswith("cudf") and hasattr(frame, "columns"):
        columns = {str(name): _cudf_column(frame[name]) for name in frame.columns}
    elif isinstance(frame, Mapping) and any(
        isinstance(v, DeviceColumn) or is_device_array(v) or _is_cudf(v) for v in frame.values()
    ):
        columns = {str(name): _column(str(name), v) for name, v in frame.items()}
    else:
        return None
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{name}: {len(c)}" for name, c in columns.items())
        raise InputError(f"columns of a pushed frame must have one length ({sizes})")
    return DeviceFrame(columns, lengths.pop() if lengths else 0)


def _is_cudf(values: Any) -> bool:
    return type(values).__module__.startswith("cudf")


def _column(name: str, values: Any) -> Column:
    if isinstance(values, DeviceColumn):  # values with null flags, as the caller built them
        column = DeviceColumn(_view(values.values), _view(values.is_null))
        _check_1d(name, column.values)
        flags = column.is_null
        if flags is not None and np.dtype(flags.dtype) == np.bool_:
            column.is_null = flags.view(np.uint8)  # same bytes: no copy
        return column if _kernels_read(column) else column.to_arrow()
    if _is_cudf(values):
        return _cudf_column(values)
    if is_device_array(values):
        column = DeviceColumn(_view(values))
        _check_1d(name, column.values)
        return column if _kernels_read(column) else column.to_arrow()
    from gpu_engine.io.frames import column_to_arrow

    return column_to_arrow(values)


def _check_1d(name: str, values: Any) -> None:
    if values.ndim != 1:
        raise InputError(f"column {name!r} must be 1-D, not of shape {values.shape}")


def _kernels_read(column: DeviceColumn) -> bool:
    """Whether the device kernels can read the column where it lies: contiguous values,
    and null flags of one byte. Others (a strided view such as ``matrix[:, 1]``, flags of
    int32) are copied to the host, as the CPU backend reads them, and uploaded from there."""
    parts = [column.values] if column.is_null is None else [column.values, column.is_null]
    if any(not part.is_c_contiguous() for part in parts):
        return False
    return column.is_null is None or np.dtype(column.is_null.dtype) == np.uint8


def _view(values: Any) -> Any:
    """A Numba view of a device array (CuPy, torch...): no copy, its owner kept alive."""
    if values is not None and hasattr(values, "__cuda_array_interface__"):
        return cuda.as_cuda_array(values)
    return values


def _cudf_column(series: Any) -> Column:
    """A cuDF Series: numeric and datetime columns viewed on the device, others copied."""
    kind = series.dtype.kind
    if kind == "M":
        series = series.astype("datetime64[ms]").astype("int64")
        kind = "i"
    if kind not in "biuf":
        return series.to_arrow()
    if not series.null_count:
        return DeviceColumn(cuda.as_cuda_array(series.to_cupy(copy=False)))
    is_null = series.isna().to_cupy().view("uint8")
    values = series.to_cupy(na_value=False if kind == "b" else 0)  # a filled copy
    return DeviceColumn(cuda.as_cuda_array(values), cuda.as_cuda_array(is_null))


__all__ = [
    "DeviceBatchValues", "DeviceColumn", "DeviceColumns", "DeviceFrame", "DevicePreparedBatch",
    "device_frame", "validate",
]  # fmt: skip
