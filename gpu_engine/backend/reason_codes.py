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
    ) -> int | None:  # fmt: skip
        """Check one numeric column (:func:`kernels.validate.check_numeric`); the failures
        found, or None where they are counted on the device (see ``failures``)."""
        ...

    def mark_rows(self, bad: np.ndarray, code: int, field: int) -> int | None:
        """Give ``code``/``field`` to rows flagged in ``bad`` that have no reason yet."""
        ...

    def failures(self) -> int:
        """Rows given a reason so far."""
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

    def failures(self) -> int:
        return int(np.count_nonzero(self.reason))

    def to_host(self) -> tuple[np.ndarray, np.ndarray]:
        return self.reason, self.failed_field


class DeviceReasonCodes:
    """Reason codes in device arrays, updated by the kernels of :mod:`kernels.cuda.validate`.

    The kernels add the failures they find to a device counter instead of returning
    them, so a batch's rules are queued back to back without a wait per column; the
    counter is read once, by :meth:`failures` or ``to_host()``.
    """

    def __init__(self, n: int, reason: Any, failed_field: Any) -> None:
        from kernels.cuda._core import full

        self.n = n
        self.reason = reason  # device int8
        self.failed_field = failed_field  # device int16
        self.found = full(1, 0, np.int64)  # rows failed so far (device)

    @classmethod
    def empty(cls, n: int) -> DeviceReasonCodes:
        """All rows OK, allocated and filled on the device (nothing uploaded)."""
        from kernels.cuda._core import full

        return cls(n, full(n, 0, np.int8), full(n, -1, np.int16))

    @classmethod
    def upload(cls, reason: np.ndarray, failed_field: np.ndarray) -> DeviceReasonCodes:
        """Copies of host arrays, rows with a reason counted as failures (as the host's
        are); tests start from rows that failed already so."""
        from kernels.cuda._core import as_device, full

        uploaded = cls(
            reason.shape[0], as_device(reason, np.int8), as_device(failed_field, np.int16)
        )
        uploaded.found = full(1, int(np.count_nonzero(reason)), np.int64)
        return uploaded

    def check_numeric(
        self, values: np.ndarray, is_null: np.ndarray, cast_failed: np.ndarray, field: int,
        nullable: bool, allow_nan: bool, check_range: bool, lo: float, hi: float,
        allowed: np.ndarray,
    ) -> None:  # fmt: skip
        from kernels.cuda import validate as gpu_validate
        from kernels.cuda._core import is_device_array

        if not is_device_array(values):  # device columns come widened (kernels.cuda.ingest)
            values = np.asarray(values)
            widen = _WIDEN.get(values.dtype)
            if widen is not None:
                values = values.astype(widen)
        if values.shape[0] == 0:
            return
        gpu_validate.check_numeric(
            values, is_null, cast_failed, int(field), nullable, allow_nan, check_range,
            lo, hi, allowed, self.reason, self.failed_field, found=self.found,
        )  # fmt: skip

    def mark_rows(self, bad: np.ndarray, code: int, field: int) -> None:
        from kernels.cuda import validate as gpu_validate

        if bad.shape[0] == 0:
            return
        gpu_validate.mark_rows(bad, code, field, self.reason, self.failed_field, self.found)

    def failures(self) -> int:
        """Rows given a reason so far (waits for the kernels)."""
        from kernels.cuda._core import to_host

        return int(to_host(self.found)[0])

    def to_host(self) -> tuple[np.ndarray, np.ndarray]:
        if self.failures() == 0:  # nothing failed: the host arrays are known without a copy
            return np.zeros(self.n, dtype=np.int8), np.full(self.n, -1, dtype=np.int16)
        from kernels.cuda._core import to_host

        return to_host(self.reason), to_host(self.failed_field)


__all__ = [
    "DeviceReasonCodes",
    "HostReasonCodes",
    "ReasonCodes",
    "mark_rows_host",
]
