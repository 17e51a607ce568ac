"""Accepting any frame at the edge: pandas, Arrow, dicts of arrays, cuDF, Arrow streams."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from gpu_engine.errors import InputError


def to_arrow(frame: Any) -> pa.Table:
    """A pyarrow Table of ``frame`` (zero-copy where the source allows it)."""
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame])
    if isinstance(frame, Mapping):
        try:
            return pa.table({str(k): _column(v) for k, v in frame.items()})
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            raise InputError(f"cannot read dict of columns: {exc}") from exc
    module = type(frame).__module__
    if module.startswith("cudf"):
        return frame.to_arrow()
    if module.startswith("pandas"):
        return pa.Table.from_pandas(frame, preserve_index=False)
    if hasattr(frame, "__arrow_c_stream__"):
        return pa.table(frame)
    raise InputError(
        f"cannot read a {type(frame).__name__}: push a pandas or cuDF DataFrame, a pyarrow "
        "Table or RecordBatch, or a dict of numpy arrays"
    )


def _column(values: Any) -> pa.Array:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    if isinstance(values, np.ma.MaskedArray):
        return pa.array(values.data, mask=np.ma.getmaskarray(values))
    array = np.asarray(values)
    if array.dtype == object:
        return pa.array(array, from_pandas=True)  # None and NaN are nulls, as in pandas
    return pa.array(array)
