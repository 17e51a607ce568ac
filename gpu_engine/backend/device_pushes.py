"""Pushed device columns (a cuDF DataFrame, a dict of CuPy, Numba or torch CUDA arrays) as
a :class:`~gpu_engine.backend.device_frame.DeviceFrame`, read where they are through
``__cuda_array_interface__`` (no copy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gpu_engine.backend.device_frame import Column, DeviceColumn, DeviceFrame
from gpu_engine.errors import InputError
from kernels.cuda._core import (
    cuda,
    is_device_array,
)


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
