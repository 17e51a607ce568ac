"""Validating a batch against the schema: casting, rule checks, quarantine rows with reasons.

Casting is vectorised with pyarrow/numpy. Every rule writes each row's first failure
through the batch's reason codes from :meth:`gpu_engine.backend.Backend.reason_codes`
(kept on the backend's device for the whole batch, read back once): numeric columns with
the :mod:`kernels.validate` kernel or its CUDA twin, one pass per column; string/bool null
and allowed-set masks (computed with Arrow on the host) and missing columns with
``mark_rows``. Only the rows that fail get a readable message, so the cost of messages
scales with bad rows only. Rows a file source could not read (``LINE_ERROR``, see
:mod:`gpu_engine.io.sources`) fail first, with the source's reason and no ``_field``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpu_engine.arrow_layout import contiguous, contiguous_table
from gpu_engine.backend import CPU, Backend, host_copy
from gpu_engine.backend.reason_codes import ReasonCodes
from gpu_engine.config.models import (
    DEFAULT_MAX_EVENT_TIME_MS,
    DEFAULT_MIN_EVENT_TIME_MS,
    FLOAT_TYPES,
    INTEGER_RANGES,
    INTEGER_TYPES,
    FieldSpec,
    SchemaConfig,
    ValidationConfig,
)
from gpu_engine.errors import SchemaError
from gpu_engine.io.sources import LINE_ERROR
from gpu_engine.parsing import (
    DateFormats,
    datetimes,
    epoch_ms,
    is_bytes,
    is_text,
    shown_repr,
    text_timestamps,
    text_to_bool,
    text_to_float,
    text_to_int64,
    timestamp_ms_rows,
    trimmed,
    utf8_error,
    utf8_text,
    value_of,
)
from kernels import validate as codes

ARROW_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("ms"),
}


def arrow_type(spec: FieldSpec) -> pa.DataType:
    """The Arrow type a field's values are cast to: its type's, a timestamp in its ``tz``."""
    if spec.type == "timestamp" and spec.tz is not None:
        return pa.timestamp("ms", tz=spec.tz)
    return ARROW_TYPES[spec.type]


_EMPTY_U8 = np.empty(0, dtype=np.uint8)
_EMPTY_F8 = np.empty(0, dtype=np.float64)
QUARANTINE_COLUMNS = ("_reason_code", "_field", "_reason", "_source", "_row")
# An input column of one of those names keeps its values in the quarantine under its name
# with this appended (again, until the name is free): see ``_renamed_inputs``.
INPUT_SUFFIX = "_input"


@dataclass
class ValidatedBatch:
    """The outcome of validating one batch."""

    valid: pa.Table  # rows that passed, columns of the schema in schema types
    times: np.ndarray  # event time of each valid row, int64 epoch ms
    quarantine: pa.Table | None  # failing rows, original values plus the reason columns
    n_in: int
    source: str = ""
    first_row: int = 0  # the input row number of the batch's first row
    failed: np.ndarray | None = None  # True where an input row was quarantined

    @property
    def n_quarantined(self) -> int:
        return 0 if self.quarantine is None else self.quarantine.num_rows

    @cached_property
    def _kept_rows(self) -> np.ndarray:
        """The batch row of each valid row (once a batch, for every window's late rows)."""
        assert self.failed is not None
        return np.flatnonzero(~self.failed)

    def traced_rows(self, mask: np.ndarray) -> pa.Table:
        """The valid rows where ``mask`` holds (late rows, say), each with the ``_source``
        and ``_row`` of its input row, as the quarantine's and the dead letters' have."""
        picked = np.flatnonzero(mask)
        rows = self.valid.filter(pa.array(mask))
        input_rows = picked if self.failed is None else self._kept_rows[picked]
        source = pa.repeat(pa.scalar(self.source, pa.string()), len(picked))
        rows = rows.append_column("_source", source)
        return rows.append_column("_row", pa.array(input_rows + self.first_row, pa.int64()))


@dataclass
class Cast:
    array: pa.Array  # target type, null where the input was null or failed to cast
    failed: np.ndarray | None  # True where a non-null input could not be cast


class Validator:
    """Casts batches to the schema and checks every rule of every field."""

    def __init__(
        self, schema: SchemaConfig, config: ValidationConfig, backend: Backend = CPU
    ) -> None:
        self.schema = schema
        self.config = config
        self.backend = backend
        self.field_names = list(schema.fields)
        self.date_formats = DateFormats()  # one format per timestamp field's text

    def validate(self, table: pa.Table, source: str, first_row: int) -> ValidatedBatch:
        """Validate ``table`` whose first row is row ``first_row`` of ``source``."""
        if not isinstance(table, pa.Table):  # a batch on the device validates itself
            host = getattr(table, "host", None)
            if host is None or _line_errors(host) is None:
                return table.validated_by(self, source, first_row)
            table = host  # rows a source could not read: the (rare) batch takes this path
        n = table.num_rows
        reason_codes = self.backend.reason_codes(n)
        unreadable = _line_errors(table)
        if unreadable is not None:  # marked first: their fields are nulls, not the reason
            reason_codes.mark_rows(unreadable, codes.UNPARSEABLE, len(self.field_names))
        columns: dict[str, pa.Array] = {}
        for index, (name, spec) in enumerate(self.schema.fields.items()):
            if name not in table.column_names:
                self.missing_column(name, spec, index, n, source, reason_codes)
                columns[name] = pa.nulls(n, arrow_type(spec))
                continue
            cast = self.cast(table.column(name), spec, name)
            columns[name] = cast.array
            self.check(name, spec, cast, index, reason_codes)
        valid_table = pa.table(columns)
        bad, quarantine = self.failures(
            reason_codes, lambda rows: _taken(table, rows), source, first_row
        )
        if bad is not None:
            valid_table = valid_table.filter(pa.array(~bad))
        time_array = valid_table.column(self.schema.time)
        times = time_array.cast(pa.int64()).to_numpy()
        return ValidatedBatch(valid_table, times, quarantine, n, source, first_row, bad)

    def missing_column(
        self, name: str, spec: FieldSpec, index: int, n: int, source: str,
        reason_codes: ReasonCodes,
    ) -> None:  # fmt: skip
        """Field ``name`` is absent: fine if nullable, else every row fails (the batch,
        in fail mode). The caller stands in a column of nulls."""
        if spec.nullable:
            return
        if self.config.on_error == "fail":
            raise SchemaError(f"{source}: column {name!r} is missing from the input")
        reason_codes.mark_rows(np.ones(n, dtype=np.uint8), codes.MISSING_COLUMN, index)

    def failures(
        self, reason_codes: ReasonCodes, rows_of: Callable[[np.ndarray], pa.Table],
        source: str, first_row: int,
    ) -> tuple[np.ndarray | None, pa.Table | None]:  # fmt: skip
        """``(bad row mask, quarantine table)`` of a checked batch, ``(None, None)`` when
        every row passed; in fail mode, the first failure raised. ``rows_of(rows)`` gives
        those input rows, as they came, on the host."""
        reason, failed_field = reason_codes.to_host()
        bad = reason != 0
        if not bad.any():
            return None, None
        bad_index = np.flatnonzero(bad)
        if self.config.on_error == "fail":
            first = int(bad_index[0])
            message = self.message(rows_of(bad_index[:1]), int(reason[first]),
                                   int(failed_field[first]), 0)  # fmt: skip
            raise SchemaError(f"{source}, row {first_row + first}: {message}")
        rows = rows_of(bad_index)
        return bad, self.quarantine(rows, bad_index, reason, failed_field, source, first_row)

    # -- casting ------------------------------------------------------------------------
    def cast(self, column: pa.ChunkedArray | pa.Array, spec: FieldSpec, name: str) -> Cast:
        """``column`` in the field's type, with the rows that failed to cast: values the
        type cannot hold, text that is not UTF-8, and every value of a column of a type
        that cannot be read as the field's (a struct in a float field, say). Those rows
        are quarantined with their reason like any other bad row (in fail mode, the
        first is raised), so one bad file or push neither stops a run nor is lost."""
        array = contiguous(column)
        if pa.types.is_dictionary(array.type):  # a pandas categorical, say: cast its values
            array = array.dictionary_decode()
        if pa.types.is_decimal(array.type):  # read as its exact text, as a CSV's numbers
            array = pc.cast(array, pa.string())
        not_utf8 = None
        if is_text(array.type) or is_bytes(array.type):  # bytes: text, as a CSV's are
            array, not_utf8 = utf8_text(array)
        try:
            cast = self._cast(array, spec, name)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            cast = None
        if cast is None:  # no value of this column fits: each non-null row fails
            failed = array.is_valid().to_numpy(zero_copy_only=False)
            cast = Cast(pa.nulls(len(array), arrow_type(spec)), failed)
        if not_utf8 is not None:
            cast = Cast(cast.array, not_utf8 if cast.failed is None else cast.failed | not_utf8)
        return cast

    def _cast(self, array: pa.Array, spec: FieldSpec, name: str) -> Cast | None:
        """``array`` in the field's type; None when its type cannot be read as that."""
        target = arrow_type(spec)
        if array.type == target:
            return Cast(array, None)
        kind = spec.type
        if pa.types.is_null(array.type):
            return Cast(pa.nulls(len(array), target), None)
        if kind == "string":
            return Cast(pc.cast(array, pa.string()), None)
        if kind == "timestamp":
            cast = self._cast_timestamp(array, name)
            if cast is None or spec.tz is None:  # no zone asked for: the input's is kept
                return cast
            return Cast(cast.array.cast(target), cast.failed)
        if is_text(array.type):
            return (
                Cast(*text_to_bool(array)) if kind == "bool" else self._parse_numbers(array, kind)
            )
        if pa.types.is_timestamp(array.type) and kind == "int64":
            ms, failed = timestamp_ms_rows(array)
            return Cast(ms.cast(pa.int64()), failed)
        if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
            return (
                Cast(pc.cast(array, pa.bool_()), None)
                if kind == "bool"
                else self._cast_number(array, kind)
            )
        if pa.types.is_boolean(array.type):
            return self._cast_number(array, kind)
        return None

    @staticmethod
    def _cast_number(array: pa.Array, kind: str) -> Cast:
        """A numeric column in numeric field ``kind``.

        Float fields take any number, rounded to the nearest float32 where that is the
        type (as numpy does). Integer fields take the whole numbers that fit, compared
        exactly in the column's own type: through float64, 2**63 would wrap to -2**63
        and a uint64 above the int64 range would turn negative.
        """
        target = ARROW_TYPES[kind]
        if kind in FLOAT_TYPES:
            return Cast(pc.cast(array, target, safe=False), None)
        if pa.types.is_boolean(array.type):
            return Cast(pc.cast(array, target), None)
        dtype = np.dtype(target.to_pandas_dtype())
        info = np.iinfo(dtype)
        is_null = array.is_null().to_numpy(zero_copy_only=False)
        values = array.fill_null(0).to_numpy(zero_copy_only=False)
        if values.dtype.kind == "f":
            # The bounds are powers of two (or small), exact in float32 and float64.
            with np.errstate(invalid="ignore"):
                fits = np.floor(values) == values
                fits &= (values >= float(info.min)) & (values < float(info.max) + 1.0)
        else:
            have = np.iinfo(values.dtype)
            fits = np.ones(len(values), dtype=bool)
            if have.min < info.min:
                fits &= values >= values.dtype.type(info.min)
            if have.max > info.max:
                fits &= values <= values.dtype.type(info.max)
        failed = ~fits & ~is_null
        if not failed.any():
            return Cast(pc.cast(array, target, safe=False), None)
        safe_values = np.where(failed | is_null, 0, values).astype(dtype)
        return Cast(pa.array(safe_values, mask=failed | is_null), failed)

    @staticmethod
    def _parse_numbers(array: pa.Array, kind: str) -> Cast:
        """Text in a numeric field: integers parsed exactly (see ``text_to_int64``),
        floats as float64 (then rounded to float32 where that is the type)."""
        is_null = array.is_null().to_numpy(zero_copy_only=False)
        text = trimmed(array)
        if kind in FLOAT_TYPES:
            floats, failed = text_to_float(text)
            numeric = pa.array(floats, mask=failed | is_null)
            return Cast(numeric.cast(ARROW_TYPES[kind], safe=False), failed)
        values, failed = text_to_int64(text)
        cast = Validator._cast_number(pa.array(values, mask=failed | is_null), kind)
        if cast.failed is not None:
            failed = failed | cast.failed
        return Cast(cast.array, failed if failed.any() else None)

    def _cast_timestamp(self, array: pa.Array, name: str) -> Cast | None:
        """Any column in a timestamp field, in milliseconds.

        A number means epoch milliseconds whatever its physical type (integer, float or
        numeric text), as in an int64 time field; a fractional millisecond is floored,
        as a finer timestamp unit is (so an instant stays in the millisecond holding it).
        Other text is ISO 8601 or the one date/time format of this field
        (:class:`~gpu_engine.parsing.DateFormats`), UTC if it names no zone.
        """
        if pa.types.is_timestamp(array.type):
            return Cast(*timestamp_ms_rows(array))
        if pa.types.is_integer(array.type):
            whole = Validator._cast_number(array, "int64")
            return Cast(whole.array.cast(pa.timestamp("ms")), whole.failed)
        is_null = array.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_floating(array.type):
            ms, failed = epoch_ms(array.fill_null(0).to_numpy(zero_copy_only=False))
            failed &= ~is_null
        elif is_text(array.type):
            dates = partial(self.date_formats.parse, name)
            ms, failed = text_timestamps(array, is_null, dates)
        elif pa.types.is_date(array.type):
            ms, failed = datetimes(array)
        else:  # a bool, a duration, a time of day...: not an instant
            return None
        bad = failed | is_null
        ms = np.where(bad, 0, ms)
        return Cast(pa.array(ms, mask=bad).cast(pa.timestamp("ms")), failed)

    # -- rules --------------------------------------------------------------------------
    def check(
        self,
        name: str,
        spec: FieldSpec,
        cast: Cast,
        index: int,
        reason_codes: ReasonCodes,
    ) -> None:
        """Every rule of field ``name`` (``index``) on its cast column."""
        mode = self.config.mode
        array = cast.array
        # uint8 (a view of the bool mask), as _EMPTY_U8: one kernel specialisation, not two.
        is_null = (
            array.is_null().to_numpy(zero_copy_only=False).view(np.uint8)
            if array.null_count
            else _EMPTY_U8
        )
        failed = cast.failed if cast.failed is not None else _EMPTY_U8
        check_range = mode == "strict"
        if spec.type == "string" or spec.type == "bool":
            if cast.failed is not None and cast.failed.any():  # bool text that is not a bool
                reason_codes.mark_rows(cast.failed, codes.UNPARSEABLE, index)
            nulls = np.asarray(is_null, dtype=bool) if len(is_null) else np.zeros(len(array), bool)
            bad_null = nulls & (not spec.nullable)
            if check_range and spec.allowed is not None:
                hit = pc.is_in(array, value_set=pa.array(spec.allowed).cast(array.type))
                bad_allowed = ~hit.fill_null(True).to_numpy(zero_copy_only=False)
            else:
                bad_allowed = np.zeros(len(array), bool)
            for code, bad in ((codes.NULL, bad_null), (codes.NOT_ALLOWED, bad_allowed)):
                if bad.any():  # a clean mask needs no pass (nor, on a device, an upload)
                    reason_codes.mark_rows(bad, code, index)
            return
        values = array.cast(pa.int64()) if spec.type == "timestamp" else array
        values = values.fill_null(0).to_numpy(zero_copy_only=False)
        self.check_numeric(name, spec, values, is_null, failed, index, reason_codes)

    def check_numeric(
        self, name: str, spec: FieldSpec, values: Any, is_null: Any, failed: Any, index: int,
        reason_codes: ReasonCodes,
    ) -> None:  # fmt: skip
        """The rules of numeric field ``name`` (``index``) on its values (nulls 0), null
        flags and cast failures (empty: none), host or device arrays like ``reason_codes``."""
        mode = self.config.mode
        lo, hi = self._bounds(name, spec)
        allowed = np.asarray(spec.allowed, dtype=np.float64) if spec.allowed else _EMPTY_F8
        if spec.type == "float32":  # compared as the column's type: 0.1 is float32 0.1
            lo, hi = float(np.float32(lo)), float(np.float32(hi))
            allowed = allowed.astype(np.float32).astype(np.float64)
        check_range = mode == "strict" or name == self.schema.time
        reason_codes.check_numeric(
            values, is_null, failed, index, spec.nullable, spec.allow_nan or mode == "off",
            check_range, lo, hi, allowed,
        )  # fmt: skip
        if check_range and _rounded_rules(spec):
            _check_int64_rules(spec, values, is_null, index, reason_codes)

    def _bounds(self, name: str, spec: FieldSpec) -> tuple[float, float]:
        lo = -np.inf if spec.min is None else float(spec.min)
        hi = np.inf if spec.max is None else float(spec.max)
        if name == self.schema.time:
            lo = float(DEFAULT_MIN_EVENT_TIME_MS) if spec.min is None else lo
            hi = float(DEFAULT_MAX_EVENT_TIME_MS) if spec.max is None else hi
        return lo, hi  # floats always: int bounds would compile the kernel once more

    # -- messages -----------------------------------------------------------------------
    def quarantine(
        self,
        rows: pa.Table,
        bad: np.ndarray,
        reason: np.ndarray,
        failed_field: np.ndarray,
        source: str,
        first_row: int,
    ) -> pa.Table:
        """The quarantine table of the failing rows ``rows`` (batch rows ``bad``, as input)."""
        messages = [
            self.message(rows, int(reason[i]), int(failed_field[i]), j) for j, i in enumerate(bad)
        ]
        names = [self._field_name(int(f)) for f in failed_field[bad]]
        rows = _utf8_only(rows)
        if LINE_ERROR in rows.column_names:  # its text is in _reason now
            rows = rows.drop_columns([LINE_ERROR])
        rows = _renamed_inputs(rows)
        extra = {
            "_reason_code": pa.array(reason[bad], pa.int8()),
            "_field": pa.array(names, pa.string()),
            "_reason": pa.array(messages, pa.string()),
            "_source": pa.array([source] * len(bad), pa.string()),
            "_row": pa.array(bad.astype(np.int64) + first_row, pa.int64()),
        }
        for name, array in extra.items():
            rows = rows.append_column(name, array)
        return rows

    def _field_name(self, field_index: int) -> str | None:
        """The field of a reason; None for a row its source could not read."""
        return self.field_names[field_index] if field_index < len(self.field_names) else None

    def message(self, table: pa.Table, code: int, field_index: int, row: int) -> str:
        if field_index == len(self.field_names):  # the source's own reason
            return str(table.column(LINE_ERROR)[row].as_py())
        name = self.field_names[field_index]
        spec = self.schema.fields[name]
        if code == codes.MISSING_COLUMN:
            return f"column {name!r} is missing from the input"
        column = table.column(name)
        raw = value_of(column, row)
        shown = f"{name}={shown_repr(raw)}"
        lo, hi = self._bounds(name, spec)
        if code == codes.NULL:
            return f"{name} is null but the field is not nullable"
        if code == codes.NAN:
            return f"{name} is NaN (set allow_nan: true to accept it)"
        if code == codes.INFINITE:
            return f"{shown} is not finite"
        if code == codes.BELOW_MIN:
            return f"{shown} is below min {_bound(spec, lo if spec.min is None else spec.min)}"
        if code == codes.ABOVE_MAX:
            return f"{shown} is above max {_bound(spec, hi if spec.max is None else spec.max)}"
        if code == codes.NOT_ALLOWED:
            return f"{shown} is not one of {spec.allowed}"
        if code == codes.UNPARSEABLE:
            if isinstance(raw, bytes) and utf8_error(raw) is not None:
                return f"{shown} is not UTF-8 text"
            if not _readable_type(column.type, spec.type):
                return f"{shown} cannot be read as {spec.type} (its column is {column.type})"
            if spec.type in INTEGER_TYPES:
                return f"{shown} is not an integer that fits {spec.type}"
            date_format = self.date_formats.format_of(name) if spec.type == "timestamp" else None
            if date_format is not None:
                return (f"{shown} cannot be read as timestamp (ISO 8601 or this field's"
                        f" format {date_format}, fixed by its first values)")  # fmt: skip
            return f"{shown} cannot be read as {spec.type}"
        return f"{shown} failed validation (code {code})"


def _line_errors(table: pa.Table) -> np.ndarray | None:
    """The rows a file source could not read (``LINE_ERROR`` set), or None if none."""
    if LINE_ERROR not in table.column_names:
        return None
    column = table.column(LINE_ERROR)
    if column.null_count == len(column):
        return None
    return column.is_valid().to_numpy(zero_copy_only=False)


def _utf8_only(rows: pa.Table) -> pa.Table:
    """Quarantined ``rows`` with text that is not UTF-8 null (their reasons quote it),
    so that every sink, and whoever reads the quarantine, can read them."""
    for index, name in enumerate(rows.column_names):
        column = rows.column(index)
        if is_text(column.type):
            text, broken = utf8_text(column.combine_chunks())
            if broken is not None:
                rows = rows.set_column(index, name, text)
    return rows


_EXACT_DOUBLES = 2**53  # past it float64 no longer holds every integer


def _rounded_rules(spec: FieldSpec) -> bool:
    """Whether an int64 or timestamp (epoch ms) field's bounds or allowed values reach
    2^53, past which the kernels' float64 comparisons round (``max: 2**60`` let
    ``2**60 + 1`` through)."""
    if spec.type not in ("int64", "timestamp"):
        return False
    rules = [b for b in (spec.min, spec.max) if b is not None] + list(spec.allowed or [])
    return any(isinstance(v, int | float) and abs(v) >= _EXACT_DOUBLES for v in rules)


def _check_int64_rules(
    spec: FieldSpec, values: Any, is_null: Any, index: int, reason_codes: ReasonCodes
) -> None:
    """The range and allowed-set rules of an int64 field (or a timestamp's epoch ms) in
    int64 arithmetic, after the kernels' float64 pass: rounding there only ever lets a
    value through (a value that passes exactly also passes rounded), so this marks the
    rows it let through wrongly; rows with a reason keep theirs. On the host:
    configurations with such bounds only."""
    v = np.asarray(host_copy(values), dtype=np.int64)
    flags = np.asarray(host_copy(is_null))
    present = np.ones(len(v), bool) if flags.shape[0] == 0 else flags == 0
    low, high = INTEGER_RANGES["int64"]
    if spec.min is not None and low < spec.min <= high:
        reason_codes.mark_rows(present & (v < math.ceil(spec.min)), codes.BELOW_MIN, index)
    if spec.max is not None and low <= spec.max < high:
        reason_codes.mark_rows(present & (v > math.floor(spec.max)), codes.ABOVE_MAX, index)
    if spec.allowed:
        whole = [int(a) for a in spec.allowed if float(a).is_integer() and low <= a <= high]
        listed = np.isin(v, np.array(whole, dtype=np.int64))
        reason_codes.mark_rows(present & ~listed, codes.NOT_ALLOWED, index)


def _renamed_inputs(rows: pa.Table) -> pa.Table:
    """Quarantined ``rows`` with each input column named like one of the
    ``QUARANTINE_COLUMNS`` (a quarantine file read back in, a frame's own ``_reason``)
    renamed: ``INPUT_SUFFIX`` appended, again until the name is none of the rows' nor the
    quarantine's. Its values are kept, the engine's columns have their names, and the
    names depend on the input's columns only, so they are the same batch after batch."""
    names = rows.column_names
    if not set(names) & set(QUARANTINE_COLUMNS):
        return rows
    taken = {*names, *QUARANTINE_COLUMNS}
    renamed = []
    for name in names:
        if name in QUARANTINE_COLUMNS:
            while name in taken:
                name += INPUT_SUFFIX
            taken.add(name)
        renamed.append(name)
    return rows.rename_columns(renamed)


def _readable_type(kind: pa.DataType, field_type: str) -> bool:
    """Column types whose values a field of ``field_type`` may take, so that a failure
    is in the value; of others (a struct, a duration, a time past the ms range...) the
    message names the column's type."""
    if pa.types.is_date(kind):
        return field_type == "timestamp"
    if pa.types.is_boolean(kind):
        return field_type != "timestamp"
    return (
        is_text(kind) or is_bytes(kind) or pa.types.is_integer(kind)
        or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    )  # fmt: skip


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _bound(spec: FieldSpec, value: float) -> str:
    """A bound as configured; a timestamp's (epoch ms) with its date and time beside it,
    as its value is shown as one: ``0 (1970-01-01 00:00:00 UTC)``."""
    text = _num(value)
    if spec.type != "timestamp":
        return text
    try:  # the millisecond that holds it
        moment = datetime(1970, 1, 1) + timedelta(milliseconds=math.floor(value))
    except OverflowError:  # past year 9999: the number alone
        return text
    shown = moment.isoformat(sep=" ", timespec="milliseconds" if moment.microsecond else "seconds")
    return f"{text} ({shown} UTC)"


def _taken(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """Rows ``rows`` of ``table``, as they came. Arrow's take concatenates a chunked
    column's chunks first, which fails for dictionaries that do not combine, and has no
    kernel for view types (``string_view``...): dictionaries are decoded then, and views
    given as their plain twins, the same values (see :func:`gpu_engine.arrow_layout.contiguous`)."""
    try:
        return table.take(pa.array(rows))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return contiguous_table(table).take(pa.array(rows))
