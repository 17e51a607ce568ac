"""Batches that arrive on the device: casting, row selection and kernel inputs, in place.

A batch pushed as device columns (cuDF, CuPy, Numba, torch CUDA arrays) is
validated, filtered and turned into kernel inputs without leaving the device.
Columns are widened once to the two shapes the kernels read, int64 (integers,
booleans, epoch-ms timestamps) and float64, with the CPU path's cast rules:
an integer cast fails when the value (compared as float64) is outside the
schema type's range or, from a float, not a whole number; a float32 field is
rounded through float32 first. Nulls become 0 with an is-null flag.

API (device arrays in and out):

``to_int64(values, is_null, lo, hi, as_bool) -> (out, failed)`` and
``to_float64(values, is_null, round32) -> out``: widened columns (``failed``:
uint8, 1 where a non-null value does not fit).
``count_beyond(values, is_null, limit) -> int``: non-null values with ``|v| > limit``.
``select(flags) -> index``: the rows whose uint8 flag is 1, ascending (compaction).
``take(values, rows, missing=0)``: rows ``rows`` of a 1-D array (``missing`` where a row
is -1), or columns of a 2-D ``(k, n)`` one.
``pane_keys(times, atoms, rows, pane) -> keys``: ``(pane, atoms...)`` of rows ``rows``.
``put_atom(values, is_null, out, col, nullable)``: one key column into an atom matrix.
``isin(values, wanted) -> flags``; ``both(a, b) -> flags``; ``not_flags(a) -> flags``.
``renumber(rows, n) -> new_index``: ``new_index[rows[j]] = j``, -1 elsewhere.
``canonical(values) -> out``: float64 ``values + 0.0``, NaNs made one (equal values hash alike).
``index_where(flags) -> index``: ``i`` where flag ``i`` is set, -1 elsewhere (an event
index aligned with the rows: no compaction, so no count to wait for).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import types

from kernels.cuda._core import (
    arr,
    as_device,
    constant,
    cuda,
    empty,
    empty_many,
    full,
    kernel,
    launch,
    launch_reduce,
    register,
    to_host,
)
from kernels.cuda.scan import flag_offsets

SOURCE_DTYPES = (
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64",
)  # fmt: skip
_TWO_63 = 9.223372036854775808e18  # no float at or above it fits int64
_U1, _I1, _F1 = arr("uint8"), arr("int64"), arr("float64")
_i8, _f8, _b = types.int64, types.float64, types.boolean


def _to_int64_sig(dt: np.dtype) -> Any:
    return types.void(arr(dt), _U1, _f8, _f8, _b, _b, _I1, _U1)


@register("ingest.to_int64", SOURCE_DTYPES, _to_int64_sig)
def _to_int64(values, is_null, lo, hi, is_float, as_bool, out, failed):  # pragma: no cover
    has_nulls = is_null.shape[0] > 0
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        failed[i] = 0
        out[i] = 0
        if has_nulls and is_null[i] != 0:
            continue
        f = float(values[i])
        if as_bool:
            out[i] = 1 if f != 0.0 else 0
            continue
        ok = f >= lo and f <= hi
        if is_float:  # 2^63 itself passes ``f <= hi`` for int64 (float(2^63 - 1) is 2^63)
            ok = ok and math.isfinite(f) and math.floor(f) == f and f < _TWO_63
        if ok:
            out[i] = np.int64(f) if is_float else np.int64(values[i])
        else:
            failed[i] = 1


def _to_float64_sig(dt: np.dtype) -> Any:
    return types.void(arr(dt), _U1, _b, _F1)


@register("ingest.to_float64", SOURCE_DTYPES, _to_float64_sig)
def _to_float64(values, is_null, round32, out):  # pragma: no cover - compiled
    has_nulls = is_null.shape[0] > 0
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        if has_nulls and is_null[i] != 0:
            out[i] = 0.0
        elif round32:
            out[i] = float(np.float32(values[i]))
        else:
            out[i] = float(values[i])


def _beyond_sig(dt: np.dtype) -> Any:
    return types.void(arr(dt), _U1, _f8, _I1)


@register("ingest.count_beyond", SOURCE_DTYPES, _beyond_sig)
def _count_beyond(values, is_null, limit, found):  # pragma: no cover - compiled
    has_nulls = is_null.shape[0] > 0
    beyond = 0
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        if not (has_nulls and is_null[i] != 0) and abs(float(values[i])) > limit:
            beyond += 1
    if beyond:
        cuda.atomic.add(found, 0, beyond)


@register("ingest.scatter_index", ("uint8",), lambda dt: types.void(_U1, _I1, _I1))
def _scatter_index(flags, offsets, out):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), flags.shape[0], cuda.gridsize(1)):
        if flags[i] != 0:
            out[offsets[i]] = i


TAKE_DTYPES = ("int64", "float64", "uint8")


def _take_sig(dt: np.dtype) -> Any:
    return types.void(arr(dt), _I1, arr(dt), arr(dt).dtype)


@register("ingest.take", SOURCE_DTYPES, _take_sig)
def _take(values, rows, out, missing):  # pragma: no cover - compiled
    for j in range(cuda.grid(1), rows.shape[0], cuda.gridsize(1)):
        r = rows[j]
        out[j] = values[r] if r >= 0 else missing


@register("ingest.take_columns", TAKE_DTYPES, lambda dt: types.void(arr(dt, 2), _I1, arr(dt, 2)))
def _take_columns(values, rows, out):  # pragma: no cover - compiled
    k = values.shape[0]
    for j in range(cuda.grid(1), rows.shape[0], cuda.gridsize(1)):
        r = rows[j]
        for c in range(k):
            out[c, j] = values[c, r]


def _pane_keys_sig(dt: np.dtype) -> Any:
    return types.void(_I1, arr("int64", 2), _I1, _i8, arr("int64", 2))


@register("ingest.pane_keys", ("int64",), _pane_keys_sig)
def _pane_keys(times, atoms, rows, pane, out):  # pragma: no cover - compiled
    all_rows = rows.shape[0] == 0
    width = atoms.shape[1]
    for j in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        r = j if all_rows else rows[j]
        out[j, 0] = times[r] // pane  # floor division, as numpy's floor_divide
        for c in range(width):
            out[j, 1 + c] = atoms[r, c]


def _put_atom_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _U1, arr("int64", 2), _i8, _b)


@register("ingest.put_atom", ("int64",), _put_atom_sig)
def _put_atom(values, is_null, out, col, nullable):  # pragma: no cover - compiled
    has_nulls = is_null.shape[0] > 0
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        null = has_nulls and is_null[i] != 0
        out[i, col] = 0 if null else values[i]
        if nullable:
            out[i, col + 1] = 1 if null else 0


@register("ingest.isin", ("int64", "float64"), lambda dt: types.void(arr(dt), arr(dt), _U1))
def _isin(values, wanted, out):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        v = values[i]
        hit = 0
        for w in range(wanted.shape[0]):
            if v == wanted[w] or (v != v and wanted[w] != wanted[w]):  # any NaN is NaN
                hit = 1
                break
        out[i] = hit


@register("ingest.both", ("uint8",), lambda dt: types.void(_U1, _U1, _U1, _b))
def _both(a, b, out, negate_b):  # pragma: no cover - compiled
    every = a.shape[0] == 0  # no first operand: every row (not_flags)
    for i in range(cuda.grid(1), b.shape[0], cuda.gridsize(1)):
        first = every or a[i] != 0
        second = (b[i] == 0) if negate_b else (b[i] != 0)
        out[i] = 1 if (first and second) else 0


@register("ingest.renumber", ("int64",), lambda dt: types.void(_I1, _I1))
def _renumber(rows, new_index):  # pragma: no cover - compiled
    for j in range(cuda.grid(1), rows.shape[0], cuda.gridsize(1)):
        new_index[rows[j]] = j


@register("ingest.canonical", ("float64",), lambda dt: types.void(_F1, _F1))
def _canonical(values, out):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        v = values[i]
        out[i] = math.nan if v != v else v + 0.0


@register("ingest.index_where", ("uint8",), lambda dt: types.void(_U1, _I1))
def _index_where(flags, out):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), flags.shape[0], cuda.gridsize(1)):
        out[i] = i if flags[i] != 0 else -1


_NONE_U8 = np.empty(0, dtype=np.uint8)
_NONE_I8 = np.empty(0, dtype=np.int64)


def _flags_or_none(is_null: Any) -> Any:
    return constant(_NONE_U8) if is_null is None else as_device(is_null, np.uint8)


def _numeric(values: Any) -> Any:
    """A device array of ``values``, booleans as uint8 (kernels read numbers)."""
    values = as_device(values)
    return values.view(np.uint8) if np.dtype(values.dtype) == np.bool_ else values


def _run(name: str, dtype: Any, n: int, *args: Any, grid: Callable[[int], Any] = launch) -> None:
    """Launch ``name`` over ``n`` items (none: no launch); ``grid=launch_reduce`` for a
    kernel whose threads fold their items into a counter."""
    if n:
        kernel(name, dtype)[grid(n)](*args)


def to_int64(
    values: Any, is_null: Any = None, lo: float = -math.inf, hi: float = math.inf,
    as_bool: bool = False,
) -> tuple[Any, Any]:  # fmt: skip
    """``values`` as int64 (nulls 0) and uint8 flags of the non-null values that do not fit."""
    values = _numeric(values)
    n = int(values.shape[0])
    out, failed = empty_many((n, np.int64), (n, np.uint8))  # one allocation: they live together
    is_float = np.dtype(values.dtype).kind == "f"
    _run("ingest.to_int64", values.dtype, n, values, _flags_or_none(is_null), float(lo),
         float(hi), is_float, bool(as_bool), out, failed)  # fmt: skip
    return out, failed


def to_float64(values: Any, is_null: Any = None, round32: bool = False, out: Any = None) -> Any:
    """``values`` as float64 (nulls 0; ``round32``: through float32, as a float32 field),
    written into ``out`` when given (e.g. a row of the batch's value columns)."""
    values = _numeric(values)
    n = int(values.shape[0])
    out = empty(n, np.float64) if out is None else out
    _run("ingest.to_float64", values.dtype, n, values, _flags_or_none(is_null), bool(round32), out)
    return out


def count_beyond(values: Any, is_null: Any, limit: float) -> int:
    """How many non-null ``values`` lie outside ``[-limit, limit]`` (waits for the count)."""
    values = _numeric(values)
    found = full(1, 0, np.int64)
    _run("ingest.count_beyond", values.dtype, int(values.shape[0]), values,
         _flags_or_none(is_null), float(limit), found, grid=launch_reduce)  # fmt: skip
    return int(to_host(found)[0])


def select(flags: Any) -> Any:
    """Ascending row numbers whose uint8 flag is set (a stream compaction)."""
    flags = as_device(flags, np.uint8)
    n = int(flags.shape[0])
    offsets, total = flag_offsets(flags)
    out = empty(total, np.int64)
    if total:
        _run("ingest.scatter_index", "uint8", n, flags, offsets, out)
    return out


def take(values: Any, rows: Any, missing: int = 0) -> Any:
    """Rows ``rows`` of a 1-D array (``missing`` where ``rows[j]`` is -1, as
    :func:`index_where` gives), or those columns of a ``(k, n)`` array."""
    rows = as_device(rows, np.int64)
    m = int(rows.shape[0])
    if values.ndim == 2:
        out = empty((values.shape[0], m), values.dtype)
        if values.shape[0]:
            _run("ingest.take_columns", values.dtype, m, values, rows, out)
        return out
    dtype = np.dtype(values.dtype)
    if dtype == np.bool_ or dtype.kind in "mM":  # taken as their bits
        bits = np.uint8 if dtype == np.bool_ else np.int64
        return take(values.view(bits), rows, missing).view(dtype)
    out = empty(m, values.dtype)
    _run("ingest.take", values.dtype, m, values, rows, out, missing)
    return out


def pane_keys(times: Any, atoms: Any, rows: Any, pane: int) -> Any:
    """``(pane, atoms...)`` int64 rows of events ``rows`` (None: every event)."""
    n = int(times.shape[0]) if rows is None else int(rows.shape[0])
    out = empty((n, 1 + atoms.shape[1]), np.int64)
    index = constant(_NONE_I8) if rows is None else as_device(rows, np.int64)
    _run("ingest.pane_keys", "int64", n, times, atoms, index, int(pane), out)
    return out


def put_atom(values: Any, is_null: Any, out: Any, col: int, nullable: bool) -> None:
    """Key column ``values`` into column ``col`` of ``out`` (and its is-null atom after it)."""
    _run("ingest.put_atom", "int64", int(values.shape[0]), values, _flags_or_none(is_null),
         out, int(col), bool(nullable))  # fmt: skip


def isin(values: Any, wanted: np.ndarray) -> Any:
    """uint8 flags of the values found in ``wanted`` (host array of the same dtype)."""
    out = empty(int(values.shape[0]), np.uint8)
    _run("ingest.isin", values.dtype, int(values.shape[0]), values,
         as_device(wanted, values.dtype), out)  # fmt: skip
    return out


def both(a: Any, b: Any, negate_b: bool = False) -> Any:
    """``a & b`` (or ``a & ~b``) of uint8 flags."""
    out = empty(int(b.shape[0]), np.uint8)
    _run("ingest.both", "uint8", int(b.shape[0]), a, b, out, bool(negate_b))
    return out


def not_flags(a: Any) -> Any:
    """``~a`` of uint8 flags (one launch: no array of ones to fill first)."""
    return both(constant(_NONE_U8), a, negate_b=True)


def renumber(rows: Any, n: int) -> Any:
    """``new_index`` of length ``n``: ``new_index[rows[j]] = j``, -1 for rows not listed."""
    out = full(n, -1, np.int64)
    _run("ingest.renumber", "int64", int(rows.shape[0]), as_device(rows, np.int64), out)
    return out


def index_where(flags: Any) -> Any:
    """``i`` where uint8 flag ``i`` is set, -1 elsewhere.

    Why: unlike :func:`select`, its length is known before it runs, so the host never waits
    for a count; consumers skip the -1 rows (sketch entries do, through the insert's skip).
    """
    flags = as_device(flags, np.uint8)
    out = empty(int(flags.shape[0]), np.int64)
    _run("ingest.index_where", "uint8", int(flags.shape[0]), flags, out)
    return out


def canonical(values: Any) -> Any:
    """float64 ``values + 0.0``, every NaN the one NaN: -0.0 and 0.0, and NaNs of any
    sign or payload, hash alike (as on the CPU)."""
    out = empty(int(values.shape[0]), np.float64)
    _run("ingest.canonical", "float64", int(values.shape[0]), values, out)
    return out


__all__ = [
    "SOURCE_DTYPES", "both", "canonical", "count_beyond", "index_where", "isin", "not_flags",
    "pane_keys", "put_atom", "renumber", "select", "take", "to_float64", "to_int64",
]  # fmt: skip
