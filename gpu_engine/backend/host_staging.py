"""Host frames staged on the device: fixed-width columns uploaded once (through pinned
buffers on the copy stream, see :mod:`gpu_engine.backend.transfer`), the rest kept on
the host, as a :class:`~gpu_engine.backend.device_frame.DeviceFrame`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from gpu_engine.arrow_layout import contiguous
from gpu_engine.backend.device_frame import Column, DeviceColumn, DeviceFrame
from gpu_engine.config.models import FieldSpec
from gpu_engine.parsing import timestamp_ms


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
