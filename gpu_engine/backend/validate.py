"""Numeric rule checks on the device: host columns in, host reason arrays updated.

The Validator owns ``reason``/``failed_field`` on the host (string, bool and
missing-column rules are evaluated there with Arrow). Each numeric column is
uploaded once; the two reason arrays go up with it and come back only when the
kernel found a failure, so a clean column costs one upload and one 8-byte read.
"""

from __future__ import annotations

import numpy as np

# The device kernel takes signed integers and floats; unsigned and bool columns are
# widened losslessly first (the CPU kernel compares the same values).
_WIDEN = {
    np.dtype(np.bool_): np.int8,
    np.dtype(np.uint8): np.int16,
    np.dtype(np.uint16): np.int32,
    np.dtype(np.uint32): np.int64,
}


def check_numeric_device(
    values: np.ndarray, is_null: np.ndarray, cast_failed: np.ndarray, field: int,
    nullable: bool, allow_nan: bool, check_range: bool, lo: float, hi: float,
    allowed: np.ndarray, reason: np.ndarray, failed_field: np.ndarray,
) -> int:  # fmt: skip
    """The CUDA ``check_numeric`` kernel on host arrays (see ``Backend.check_numeric``)."""
    from kernels.cuda import validate as gpu_validate
    from kernels.cuda._core import as_device, to_host

    values = np.asarray(values)
    widen = _WIDEN.get(values.dtype)
    if widen is not None:
        values = values.astype(widen)
    if values.shape[0] == 0:
        return 0
    d_reason = as_device(reason, np.int8)
    d_failed_field = as_device(failed_field, np.int16)
    found = gpu_validate.check_numeric(
        values, is_null, cast_failed, int(field), nullable, allow_nan, check_range,
        lo, hi, allowed, d_reason, d_failed_field,
    )  # fmt: skip
    if found:
        reason[:] = to_host(d_reason)
        failed_field[:] = to_host(d_failed_field)
    return found


__all__ = ["check_numeric_device"]
