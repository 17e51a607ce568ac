"""Row validation on the device: the CUDA twin of :mod:`kernels.validate`.

One thread per row (grid-stride), the same reason codes and the same rule
order as the CPU kernel, so a row fails with the same first reason on either
backend.

API (device arrays in, device arrays updated in place; host arrays are copied):

``check_numeric(values, is_null, cast_failed, field, nullable, allow_nan, check_range,
lo, hi, allowed, reason, failed_field) -> int``
    ``values``: 1-D int8/int16/int32/int64/float32/float64 (nulls filled with 0);
    ``is_null``/``cast_failed``: uint8 or bool, length n, or empty (none);
    ``allowed``: float64, empty when any value is allowed;
    ``reason``: int8 (0 = OK), ``failed_field``: int16, both length n, updated for
    rows whose ``reason`` is still 0. Returns the number of rows that failed here, or,
    given a device counter ``found=``, adds it there without waiting and returns None.

``mark_rows(bad, code, field, reason, failed_field) -> int``
    Rules evaluated elsewhere (string/bool columns: null and allowed-set checks
    done by cuDF): rows with ``bad[i] != 0`` and ``reason[i] == 0`` get ``code``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types

from kernels.cuda._core import (
    arr,
    as_device,
    constant,
    cuda,
    device_function,
    full,
    is_device_array,
    kernel,
    launch_reduce,
    register,
    to_host,
)
from kernels.validate import OK, row_reason

_row_reason = device_function(row_reason)

VALUE_DTYPES = ("float64", "float32", "int64", "int32", "int16", "int8")


def _check_sig(dt: np.dtype) -> Any:
    b, f8, i8 = types.boolean, types.float64, types.int64
    return types.void(
        arr(dt), arr("uint8"), arr("uint8"), i8, b, b, b, f8, f8, arr("float64"),
        arr("int8"), arr("int16"), arr("int64"),
    )  # fmt: skip


@register("validate.check_numeric", VALUE_DTYPES, _check_sig)
def _check_numeric(
    values, is_null, cast_failed, field, nullable, allow_nan, check_range, lo, hi,
    allowed, reason, failed_field, found,
):  # pragma: no cover - compiled  # fmt: skip
    failed = 0
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        if reason[i] != OK:
            continue
        code = _row_reason(i, values, is_null, cast_failed, nullable, allow_nan, check_range,
                           lo, hi, allowed)  # the CPU's own rules  # fmt: skip
        if code != OK:
            reason[i] = code
            failed_field[i] = field
            failed += 1
    if failed:
        cuda.atomic.add(found, 0, failed)


def _mark_sig(dt: np.dtype) -> Any:
    return types.void(arr("uint8"), types.int8, types.int16, arr("int8"), arr("int16"),
                      arr("int64"))  # fmt: skip


@register("validate.mark_rows", ("uint8",), _mark_sig)
def _mark_rows(bad, code, field, reason, failed_field, found):  # pragma: no cover - compiled
    marked = 0
    for i in range(cuda.grid(1), bad.shape[0], cuda.gridsize(1)):
        if bad[i] != 0 and reason[i] == OK:
            reason[i] = code
            failed_field[i] = field
            marked += 1
    if marked:
        cuda.atomic.add(found, 0, marked)


def _flags(array: Any) -> Any:
    """uint8 view of a bool/uint8 flag array (empty stays empty: one shared constant, not
    an allocation per column, since most columns come without null or cast flags)."""
    if is_device_array(array):
        dtype = np.dtype(array.dtype)
        return array.view(np.uint8) if dtype == np.bool_ else array
    host = np.asarray(array)
    host = host.view(np.uint8) if host.dtype == np.bool_ else host.astype(np.uint8, copy=False)
    return constant(host) if host.size == 0 else as_device(host)


def check_numeric(
    values: Any, is_null: Any, cast_failed: Any, field: int, nullable: bool, allow_nan: bool,
    check_range: bool, lo: float, hi: float, allowed: Any, reason: Any, failed_field: Any,
    found: Any = None,
) -> int | None:  # fmt: skip
    """Check one numeric column on the device (see the module docstring).

    ``found``: a device int64 counter to add the failures to, without waiting for the
    kernel (returns None); without it the count is read back and returned.
    """
    values = as_device(values)
    counter = full(1, 0, np.int64) if found is None else found
    blocks, threads = launch_reduce(values.shape[0])
    kernel("validate.check_numeric", values.dtype)[blocks, threads](
        values, _flags(is_null), _flags(cast_failed), np.int64(field), bool(nullable),
        bool(allow_nan), bool(check_range), float(lo), float(hi),
        constant(allowed, np.float64), reason, failed_field, counter,
    )  # fmt: skip
    return None if found is not None else int(to_host(counter)[0])


def mark_rows(
    bad: Any, code: int, field: int, reason: Any, failed_field: Any, found: Any = None
) -> int | None:
    """Give ``code`` to rows flagged in ``bad`` that have no reason yet; their count
    (or, with a device counter ``found``, added to it and None, as ``check_numeric``)."""
    bad = _flags(bad)
    counter = full(1, 0, np.int64) if found is None else found
    blocks, threads = launch_reduce(bad.shape[0])
    kernel("validate.mark_rows", "uint8")[blocks, threads](
        bad, np.int8(code), np.int16(field), reason, failed_field, counter
    )
    return None if found is not None else int(to_host(counter)[0])


__all__ = ["VALUE_DTYPES", "check_numeric", "mark_rows"]
