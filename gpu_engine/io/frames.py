"""Frames at the edge: any frame in (pandas, Arrow, dicts of arrays, cuDF, Arrow streams),
results out as Arrow, pandas or cuDF."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from gpu_engine.arrow_layout import contiguous, viewless_table
from gpu_engine.backend import host_copy
from gpu_engine.errors import ConfigError, InputError

ResultFrame = Literal["arrow", "pandas", "cudf", "auto"]


def to_arrow(frame: Any) -> pa.Table:
    """A pyarrow Table of ``frame``: Arrow input as it is (its buffers are immutable),
    other frames in buffers of their own. Arrow would share the memory of numpy arrays
    and pandas columns, which the caller may refill or edit once its push has returned,
    while the engine still holds the rows (waiting for a batch, or queued).

    A frame that names a column twice is refused: which of the two is meant is unknown,
    and Arrow could not join its rows to a batch's later. Columns of Arrow's view types
    (Polars' ``CompatLevel.newest()``) are cast to their plain twins, the same values
    (:func:`~gpu_engine.arrow_layout.viewless_table`): Arrow cannot pick rows of them (a
    quarantined row, on either backend)."""
    if isinstance(frame, pa.Table):  # the common case first: a push is a hot path
        table = frame
    else:
        if not isinstance(frame, pa.RecordBatch | Mapping):  # pandas, cuDF
            _refuse_repeated_names(getattr(frame, "columns", ()))  # before pandas refuses
        table = _as_arrow(frame)
    _refuse_repeated_names(table.schema.names)  # Arrow tables, batches, streams (fast)
    if not table.num_columns:
        _refuse_rows_without_columns(frame, table)
    return viewless_table(table)


def _refuse_rows_without_columns(frame: Any, table: pa.Table) -> None:
    """Rows with no column at all carry no field to validate, and no Arrow table can
    hold them beside a batch's (a pandas frame's became 0 rows, silently; an Arrow one
    broke the quarantine at close)."""
    shape = getattr(frame, "shape", None)
    rows = table.num_rows or (int(shape[0]) if shape else 0)
    if rows:
        raise InputError(f"the pushed frame has {rows} rows but no columns")


def _refuse_repeated_names(columns: Any) -> None:
    names = list(columns)
    if len(set(names)) == len(names):
        return
    twice = sorted({str(name) for name in names if names.count(name) > 1})
    raise InputError(
        f"the pushed frame names column(s) {twice} more than once: which is meant is unknown"
    )


def _as_arrow(frame: Any) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame])
    if isinstance(frame, Mapping):
        _refuse_repeated_names(str(k) for k in frame)  # {1: ..., "1": ...} would be one
        columns = {str(k): _pushed_column(str(k), v) for k, v in frame.items()}
        try:
            return pa.table(columns)
        except (pa.ArrowInvalid, ValueError) as exc:
            raise InputError(f"cannot read dict of columns: {exc}") from exc
    module = type(frame).__module__
    if module.startswith("cudf"):
        return frame.to_arrow()
    if module.startswith("pandas"):
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            table = _mixed_pandas(frame)
        except TypeError as exc:  # "Sparse pandas data (column a) not supported"
            raise InputError(f"cannot read the pushed pandas frame: {exc}") from None
        return _detached(table)
    if hasattr(frame, "__arrow_c_stream__"):
        return pa.table(frame)
    raise InputError(
        f"cannot read a {type(frame).__name__}: push a pandas or cuDF DataFrame, a pyarrow "
        "Table or RecordBatch, or a dict of numpy or device (CuPy, Numba, torch) arrays"
    )


def _detached(table: pa.Table) -> pa.Table:
    """``table`` with every column copied: Arrow takes numeric columns from numpy, the
    codes of a categorical and the storage of an extension type (a period) without a
    copy, and pandas edits them in place. Concatenation copies only the rows a column
    holds."""
    columns = [_copied(column) for column in table.columns]
    if all(c.type == f.type for c, f in zip(columns, table.schema, strict=True)):
        return pa.Table.from_arrays(columns, schema=table.schema)
    return pa.Table.from_arrays(columns, names=table.column_names)  # a column decoded


def _copied(column: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if not column.num_chunks:
        return column
    try:
        return pa.concat_arrays(column.chunks)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # dictionaries that do not
        return contiguous(column)  # combine: decoded (so copied) by contiguous


def _mixed_pandas(frame: Any) -> pa.Table:
    """A pandas frame whose object columns mix types (``[1, "x"]``), their values as text.

    The validator then casts each value by the schema, as it does a CSV's, so the
    rows it cannot read are quarantined one by one instead of the push failing.
    """
    columns = {}
    for name in frame.columns:
        values = frame[name]
        try:
            columns[str(name)] = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            if values.dtype != object:
                raise InputError(f"cannot read pushed column {name!r} ({values.dtype})") from None
            columns[str(name)] = _object_text(values)
    return pa.table(columns)


def _object_text(values: Any) -> pa.Array:
    """Python objects of mixed types as their text (None, pandas' NA and NaT, NaN null).
    Nothing else is compared: ``v != v`` raised for NA, an array, a signalling Decimal."""
    return pa.array([None if _is_missing(v) else str(v) for v in values], pa.string())


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


_UNREADABLE = (
    pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError, OverflowError
)  # fmt: skip


def _pushed_column(name: str, values: Any) -> pa.Array:
    """One column of a pushed dict as Arrow: Python objects of mixed types as text (as
    in a pandas frame, so that the validator quarantines the values it cannot read),
    else an error that names the column."""
    try:
        return column_to_arrow(values)
    except _UNREADABLE as exc:
        array = np.asarray(values, dtype=object) if isinstance(values, list) else values
        if isinstance(array, np.ndarray) and array.dtype == object and array.ndim == 1:
            return _object_text(array)
        shape = getattr(array, "shape", None)
        what = f"of shape {shape}" if shape is not None and len(shape) != 1 else f"({exc})"
        raise InputError(f"cannot read pushed column {name!r} {what}") from None


# Columns that copy themselves to Arrow with their nulls: a cuDF Series, or the CUDA
# backend's DeviceColumn (matched by module, so the CPU backend never imports it).
_ARROW_COLUMNS = ("cudf", "gpu_engine.backend.device_frame")


def column_to_arrow(values: Any) -> pa.Array:
    """One pushed column as Arrow (device arrays copied to the host)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    if type(values).__module__.startswith(_ARROW_COLUMNS):  # nulls kept, copied once
        return values.to_arrow()
    # CuPy, Numba or torch CUDA arrays are copied to the host once, here, on the CPU
    # backend; on the CUDA backend the engine keeps them on the device (device_pushes).
    copied = host_copy(values)
    # Arrow takes a numeric array's memory as it is: the caller's, unless copied above.
    own = copied is not values
    if isinstance(copied, np.ma.MaskedArray):
        return pa.array(np.array(copied.data, copy=not own), mask=np.ma.getmaskarray(copied))
    array = np.asarray(copied)
    if array.dtype == object:
        return pa.array(array, from_pandas=True)  # None and NaN are nulls, as in pandas
    return pa.array(array if own else array.copy())


def to_pandas(table: pa.Table) -> Any:
    """``table`` as pandas, with integer columns that hold nulls as nullable integers
    (``Int64``...): Arrow's default makes them float64, which rounds past 2^53 (an exact
    ``sum``, ``min`` or ``max``). Integer columns without nulls stay numpy integers.
    (pandas is imported here, not at start-up.)"""
    import pandas as pd

    nullable = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(),
                pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
                pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
                pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype()}  # fmt: skip
    frame = table.to_pandas()
    for name in table.column_names:
        column = table.column(name)
        if column.type in nullable and column.null_count:
            frame[name] = column.to_pandas(types_mapper=nullable.get)
    return frame


def from_arrow(table: pa.Table, frame: ResultFrame) -> Any:
    """``table`` as the result frame asked for; ``auto`` is cuDF when installed, else Arrow.

    cuDF frames are built on the device from the Arrow columns (one host-to-device copy).
    """
    if frame == "arrow":
        return table
    if frame == "pandas":
        return to_pandas(table)
    if frame not in ("cudf", "auto"):
        raise ConfigError(f"unknown result frame {frame!r}; use arrow, pandas, cudf or auto")
    try:
        import cudf
    except ImportError as exc:
        if frame == "auto":
            return table
        raise ConfigError(
            f"results as cuDF frames need cuDF, which cannot be imported here ({exc}); "
            "pip install 'tiktoktoe[cuda]', or ask for arrow, pandas or auto"
        ) from exc
    return cudf.DataFrame.from_arrow(table)
