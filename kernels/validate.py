"""Row validation kernels: one pass per column, writing the first failure of each row.

Reason codes are shared with :mod:`gpu_engine.validation`, which turns them into
readable messages for the (few) rows that fail.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

OK = 0
NULL = 1
NAN = 2
INFINITE = 3
BELOW_MIN = 4
ABOVE_MAX = 5
NOT_ALLOWED = 6
UNPARSEABLE = 7
MISSING_COLUMN = 9


@njit(inline="always")
def value_code(x, allow_nan, check_range, lo, hi):  # pragma: no cover - compiled
    """Reason code of one present value, before the allowed-set check; shared with CUDA."""
    if math.isnan(x):
        return OK if allow_nan else NAN
    if math.isinf(x):
        if not allow_nan:
            return INFINITE
    if check_range:
        if x < lo:
            return BELOW_MIN
        if x > hi:
            return ABOVE_MAX
    return OK


def row_reason(
    i, values, is_null, cast_failed, nullable, allow_nan, check_range, lo, hi, allowed
):  # pragma: no cover - compiled
    """Reason code of row ``i`` of a numeric column, the rules in order.

    Plain Python, compiled into both the CPU kernel below and the CUDA kernel
    (``kernels.cuda.validate``), so the two cannot drift apart.
    """
    if cast_failed.shape[0] > 0 and cast_failed[i] != 0:
        return UNPARSEABLE
    if is_null.shape[0] > 0 and is_null[i] != 0:
        return OK if nullable else NULL
    x = values[i]
    code = value_code(x, allow_nan, check_range, lo, hi)
    if code == OK and check_range and not math.isnan(x) and allowed.shape[0] > 0:
        for j in range(allowed.shape[0]):
            if x == allowed[j]:
                return OK
        return NOT_ALLOWED
    return code


_row_reason = njit(inline="always")(row_reason)


@njit(inline="always")
def _all_plain(values, is_null, has_null, lo, hi, whole):  # pragma: no cover - compiled
    """True when every present value is finite, in [lo, hi] and (if ``whole``) an integer.

    Such a column (its nulls allowed by the caller) fails no rule; anything else
    (NaN, inf, out of range) takes the row-by-row pass, which knows what each
    rule allows.
    """
    suspects = 0
    if has_null:
        for i in range(values.shape[0]):
            x = values[i]
            plain = (x >= lo) & (x <= hi) & (x > -math.inf) & (x < math.inf)
            plain &= (not whole) | (x == math.floor(x))
            suspects += not (plain | (is_null[i] != 0))
    else:
        for i in range(values.shape[0]):
            x = values[i]
            plain = (x >= lo) & (x <= hi) & (x > -math.inf) & (x < math.inf)
            plain &= (not whole) | (x == math.floor(x))
            suspects += not plain
    return suspects == 0


@njit(inline="always")
def _dense_integers(allowed):  # pragma: no cover - compiled
    """(True, min, max) when ``allowed`` is every integer from min to max (an enum)."""
    if allowed.shape[0] == 0:
        return False, 0.0, 0.0
    low, high = allowed.min(), allowed.max()
    if high - low + 1 != allowed.shape[0]:
        return False, 0.0, 0.0
    seen = np.zeros(allowed.shape[0], dtype=np.bool_)
    for a in allowed:
        if a != math.floor(a) or seen[int(a - low)]:
            return False, 0.0, 0.0
        seen[int(a - low)] = True
    return True, low, high


@njit(nogil=True, cache=True)
def check_numeric(
    values, is_null, cast_failed, field, nullable, allow_nan, check_range, lo, hi,
    allowed, reason, failed_field,
):  # pragma: no cover - compiled  # fmt: skip
    """Check one numeric column; rows that already failed keep their first reason.

    ``is_null``/``cast_failed`` may be empty (no nulls / nothing failed to cast).
    ``allowed`` is empty when any value is allowed. Returns the failures found.
    """
    has_null = is_null.shape[0] > 0
    has_cast = cast_failed.shape[0] > 0
    n_allowed = allowed.shape[0]
    if not has_cast and (nullable or not has_null):
        # The common clean column: one branch-free (vectorised) pass, no writes. Two call
        # sites (each inlined copy costs about a second of compiling per dtype): any value
        # in bounds, or (enum-like allowed sets) whole values in bounds.
        if not check_range or n_allowed == 0:
            plain_lo = lo if check_range else -math.inf
            plain_hi = hi if check_range else math.inf
            if _all_plain(values, is_null, has_null, plain_lo, plain_hi, False):
                return 0
        else:
            enum, low, high = _dense_integers(allowed)
            if enum and _all_plain(values, is_null, has_null, max(lo, low), min(hi, high), True):
                return 0
    found = 0
    for i in range(values.shape[0]):
        if reason[i] != OK:
            continue
        code = _row_reason(i, values, is_null, cast_failed, nullable, allow_nan, check_range,
                           lo, hi, allowed)  # fmt: skip
        if code != OK:
            reason[i] = code
            failed_field[i] = field
            found += 1
    return found
