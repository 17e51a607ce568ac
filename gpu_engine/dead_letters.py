"""Batches that could not be processed, as rows a person can read: where each came from,
the error, and its values as text."""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np
import pyarrow as pa

from gpu_engine.arrow_layout import contiguous
from gpu_engine.batching import Batch
from gpu_engine.parsing import as_bytes, is_text, shown_repr, utf8_text, value_of


def dead_letter_table(batch: Batch, exc: BaseException) -> pa.Table:
    """``_source``, ``_row``, ``_error`` and ``_values`` of each row of ``batch``."""
    rows = batch.table.num_rows
    error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return pa.table(
        {
            "_source": pa.array([batch.source] * rows, pa.string()),
            "_row": pa.array(np.arange(rows, dtype=np.int64) + batch.first_row),
            "_error": pa.array([error] * rows, pa.string()),
            "_values": pa.array(_dead_values(batch.table), pa.string()),
        }
    )


def _dead_values(table: Any) -> list[str]:
    """Each dead-lettered row's values as text; a device batch's read back first (it has
    no Arrow columns), and where even that fails, the reason in every row's place."""
    if not isinstance(table, pa.Table):
        try:
            table = table.to_arrow()
        except Exception as exc:  # the rows are still counted and written, without values
            return [f"<not readable from the device: {type(exc).__name__}: {exc}>"] * int(
                table.num_rows
            )
    return [shown_repr(row) for row in _rows_as_python(table)]


def _rows_as_python(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of a dead-lettered batch; text that is not UTF-8 as its bytes (that may
    be why the batch failed, and the rows must still be written)."""
    columns = {}
    for name in table.column_names:
        column = contiguous(table.column(name))
        if is_text(column.type) and utf8_text(column)[1] is not None:
            column = as_bytes(column)
        columns[name] = column
    readable = pa.table(columns)
    try:
        return readable.to_pylist()
    except (ValueError, OverflowError):  # a time past year 9999 in a list, say
        names = readable.column_names
        return [
            {name: value_of(readable.column(name), row) for name in names}
            for row in range(readable.num_rows)
        ]
