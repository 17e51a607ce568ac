"""Reason codes of one batch, kept where the backend computes them.

:meth:`gpu_engine.backend.Backend.reason_codes` gives the Validator one of these per
batch; every rule (numeric checks, the null and allowed-set rules of string/bool
fields, missing columns) writes the first failure of each row through it, and
``to_host()`` hands ``(reason, failed_field)`` back once at the end.

* :class:`HostReasonCodes` (CPU): numpy arrays updated in place, no copies.
* :class:`DeviceReasonCodes` (CUDA): ``reason``/``failed_field`` are allocated on the
  device (never uploaded) and downloaded once, by ``to_host()``, and only when some
  row failed; the numeric columns and the string/bool masks go up per column.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

# The device kernel takes signed integers and floats; unsigned and bool columns are
# widened losslessly first (the CPU kernel compares the same values).
_WIDEN = {
    np.dtype(np.bool_): np.int8,
    np.dtype(np.uint8): np.int16,
    np.dtype(np.uint16): np.int32,
    np.dtype(np.uint32): np.int64,
}


class ReasonCodes(Protocol):
    """The first failure (reason code, field index) of every row of one batch."""

    def check_numeric(
        self, values: np.ndarray, is_null: np.ndarray, cast_failed: np.ndarray, field: int,
        nullable: bool, allow_nan: bool, check_range: bool, lo: float, hi: float,
        allowed: np.ndarray,
    ) -> int:  # fmt: skip
        """Check one numeric column (:func:`kernels.validate.check_numeric`); failures found."""
        ...

    def mark_rows(self, bad: np.ndarray, code: int, field: int) -> int:
        """Give ``code``/``field`` to rows flagged in ``bad`` that have no reason yet."""
        ...

    def to_host(self) -> tuple[np.ndarray, np.ndarray]:
        """``(reason int8, failed_field int16)`` on the host."""
        ...


def mark_rows_host(
    bad: np.ndarray, code: int, field: int, reason: np.ndarray, failed_field: np.ndarray
) -> int:
    """Host twin of :func:`kernels.cuda.validate.mark_rows` (first failure wins)."""
    fresh = np.asarray(bad, dtype=bool) & (reason == 0)
    reason[fresh] = code
    failed_field[fresh] = field
    return int(np.count_nonzero(fresh))


class HostReasonCodes:
    """Reason codes in host arrays (wrapped, not copied)."""

    def __init__(self, reason: np.ndarray, failed_field: np.ndarray) -> None:
        self.reason = reason
        self.failed_field = failed_field

    @classmethod
    def empty(cls, n: int) -> HostReasonCodes:
        return cls(np.zeros(n, dtype=np.int8), np.full(n, -1, dtype=np.int16))

    def check_numeric(
        self, values: np.ndarray, is_null: np.ndarray, cast_failed: np.ndarray, field: int,
        nullable: bool, allow_nan: bool, check_range: bool, lo: float, hi: float,
        allowed: np.ndarray,
    ) -> int:  # fmt: skip
        from kernels.validate import check_numeric

        found = check_numeric(
            values, is_null, cast_failed, field, nullable, allow_nan, check_range,
            lo, hi, allowed, self.reason, self.failed_field,
        )  # fmt: skip
        return int(found)

    def mark_rows(self, bad: np.ndarray, code: int, field: int) -> int:
        return mark_rows_host(bad, code, field, self.reason, self.failed_field)

    def to_host(self) -> tuple[np.ndarray, np.ndarray]:
        return self.reason, self.failed_field


class DeviceReasonCodes:
    """Reason codes in device arrays, updated by the kernels of :mod:`kernels.cuda.validate`."""

    def __init__(self, n: int, reason: Any, failed_field: Any, clean: bool) -> None:
        self.n = n
        self.reason = reason  # device int8
        self.failed_field = failed_field  # device int16
        self.clean = clean  # known to hold no failure (nothing to download)

    @classmethod
    def empty(cls, n: int) -> DeviceReasonCodes:
        """All rows OK, allocated and filled on the device (nothing uploaded)."""
        from kernels.cuda._core import full

        return cls(n, full(n, 0, np.int8), full(n, -1, np.int16), clean=True)

    @classmethod
    def upload(cls, reason: np.ndarray, failed_field: np.ndarray) -> DeviceReasonCodes:
        """Copies of host arrays (for the per-column ``Backend`` methods)."""
        from kernels.cuda._core import as_device

        n = reason.shape[0]
        return cls(n, as_device(reason, np.int8), as_device(failed_field, np.int16), False)

    def check_numeric(
        self, values: np.ndarray, is_null: np.ndarray, cast_failed: np.ndarray, field: int,
        nullable: bool, allow_nan: bool, check_range: bool, lo: float, hi: float,
        allowed: np.ndarray,
    ) -> int:  # fmt: skip
        from kernels.cuda import validate as gpu_validate
        from kernels.cuda._core import is_device_array

        if not is_device_array(values):  # device columns come widened (kernels.cuda.ingest)
            values = np.asarray(values)
            widen = _WIDEN.get(values.dtype)
            if widen is not None:
                values = values.astype(widen)
        if values.shape[0] == 0:
            return 0
        found = gpu_validate.check_numeric(
            values, is_null, cast_failed, int(field), nullable, allow_nan, check_range,
            lo, hi, allowed, self.reason, self.failed_field,
        )  # fmt: skip
        self.clean = self.clean and found == 0
        return found

    def mark_rows(self, bad: np.ndarray, code: int, field: int) -> int:
        from kernels.cuda import validate as gpu_validate

        if bad.shape[0] == 0:
            return 0
        found = gpu_validate.mark_rows(bad, code, field, self.reason, self.failed_field)
        self.clean = self.clean and found == 0
        return found

    def to_host(self) -> tuple[np.ndarray, np.ndarray]:
        if self.clean:  # nothing failed: the host arrays are known without a download
            return np.zeros(self.n, dtype=np.int8), np.full(self.n, -1, dtype=np.int16)
        from kernels.cuda._core import to_host

        return to_host(self.reason), to_host(self.failed_field)


def check_numeric_device(
    values: np.ndarray, is_null: np.ndarray, cast_failed: np.ndarray, field: int,
    nullable: bool, allow_nan: bool, check_range: bool, lo: float, hi: float,
    allowed: np.ndarray, reason: np.ndarray, failed_field: np.ndarray,
) -> int:  # fmt: skip
    """The CUDA ``check_numeric`` kernel on host arrays (see ``Backend.check_numeric``)."""
    if np.asarray(values).shape[0] == 0:
        return 0
    device = DeviceReasonCodes.upload(reason, failed_field)
    found = device.check_numeric(
        values, is_null, cast_failed, field, nullable, allow_nan, check_range, lo, hi, allowed
    )
    if found:
        reason[:], failed_field[:] = device.to_host()
    return found


def mark_rows_device(
    bad: np.ndarray, code: int, field: int, reason: np.ndarray, failed_field: np.ndarray
) -> int:
    """The CUDA ``mark_rows`` kernel on host arrays (see ``Backend.mark_rows``)."""
    if np.asarray(bad).shape[0] == 0:
        return 0
    device = DeviceReasonCodes.upload(reason, failed_field)
    found = device.mark_rows(bad, code, field)
    if found:
        reason[:], failed_field[:] = device.to_host()
    return found


__all__ = [
    "DeviceReasonCodes",
    "HostReasonCodes",
    "ReasonCodes",
    "check_numeric_device",
    "mark_rows_device",
    "mark_rows_host",
]
