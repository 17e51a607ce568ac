"""Validation of a device frame: the CPU path's rules and reason codes, on the device
(:meth:`gpu_engine.validation.Validator.validate`'s twin). Columns the device casts do
not cover take the host path, column by column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from gpu_engine.backend.device_frame import _NO_FLAGS, Column, DeviceColumn, DeviceFrame
from gpu_engine.config.models import FLOAT_TYPES, INTEGER_TYPES, FieldSpec
from kernels import validate as codes
from kernels.cuda import ingest
from kernels.cuda._core import (
    full,
    to_host,
)


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


def _missing(spec: FieldSpec, n: int) -> Column:
    """A column of nulls for a field absent from the input."""
    if spec.type == "string":
        return pa.nulls(n, pa.string())
    dtype = np.float64 if spec.type in FLOAT_TYPES else np.int64
    return DeviceColumn(full(n, 0, dtype), full(n, 1, np.uint8))


def validate_frame(validator: Any, frame: DeviceFrame, source: str, first_row: int) -> Any:
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
