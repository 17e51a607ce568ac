"""Row validation kernels: one pass per column, writing the first failure of each row.

Reason codes are shared with :mod:`gpu_engine.validation`, which turns them into
readable messages for the (few) rows that fail.
"""

from __future__ import annotations

import math

from numba import njit

OK = 0
NULL = 1
NAN = 2
INFINITE = 3
BELOW_MIN = 4
ABOVE_MAX = 5
NOT_ALLOWED = 6
UNPARSEABLE = 7
OUT_OF_RANGE = 8
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


@njit(inline="always")
def _all_plain(values, is_null, has_null, check_range, lo, hi):  # pragma: no cover - compiled
    """True when every present value is finite and (if ranges are checked) in [lo, hi].

    Such a column (its nulls allowed by the caller) fails no rule; anything else
    (NaN, inf, out of range) takes the row-by-row pass, which knows what each
    rule allows.
    """
    if not check_range:
        lo, hi = -math.inf, math.inf
    suspects = 0
    if has_null:
        for i in range(values.shape[0]):
            x = values[i]
            plain = (x >= lo) & (x <= hi) & (x > -math.inf) & (x < math.inf)
            suspects += not (plain | (is_null[i] != 0))
    else:
        for i in range(values.shape[0]):
            x = values[i]
            suspects += not ((x >= lo) & (x <= hi) & (x > -math.inf) & (x < math.inf))
    return suspects == 0


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
    if not has_cast and n_allowed == 0 and (nullable or not has_null):
        if _all_plain(values, is_null, has_null, check_range, lo, hi):
            return 0  # the common clean column: one branch-free (vectorised) pass, no writes
    found = 0
    for i in range(values.shape[0]):
        if reason[i] != OK:
            continue
        code = OK
        if has_cast and cast_failed[i]:
            code = UNPARSEABLE
        elif has_null and is_null[i]:
            if not nullable:
                code = NULL
        else:
            x = values[i]
            code = value_code(x, allow_nan, check_range, lo, hi)
            if code == OK and check_range and not math.isnan(x):
                if n_allowed > 0:
                    hit = False
                    for j in range(n_allowed):
                        if x == allowed[j]:
                            hit = True
                            break
                    if not hit:
                        code = NOT_ALLOWED
        if code != OK:
            reason[i] = code
            failed_field[i] = field
            found += 1
    return found
