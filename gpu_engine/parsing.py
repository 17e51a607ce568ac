"""Text and numbers read as a schema's types: exact integers, floats, epoch ms, bools.

Text comes from CSV and JSON files (every column is read as text there) and from
pushed object columns; numbers from any source. Integer text is parsed exactly
(never through float64, which rounds above 2**53), a number in a timestamp field is
epoch milliseconds whatever its physical type, and each function returns the rows
that failed, for the validator to quarantine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_INT64_MAX_DIGITS = "9223372036854775807"
_INT64_MIN_DIGITS = "9223372036854775808"  # of -2**63, without its sign
_INTEGER_TEXT = r"^[+-]?[0-9]+$"
# A second's fraction past its milliseconds: ``:59.123`` kept of ``:59.123456789``.
_SUB_MS_DIGITS = r"(:[0-9]{2}\.[0-9]{3})[0-9]+"
_NUMBER_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_EXACT_FLOAT = 2.0**53  # float64 holds every integer below this
_EXACT_DIGITS = 15  # decimals of up to 15 significant digits survive float64 (DBL_DIG)


def is_text(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def is_bytes(kind: pa.DataType) -> bool:
    return (
        pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind)
    )


def utf8_text(array: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """Text or binary ``array`` as UTF-8 text, and the non-null rows whose bytes are not
    UTF-8 (null in the text; None when there are none).

    Arrow's Parquet and JSON readers, and Arrow input pushed, pass such bytes through in
    string columns unchecked: a string key, a sink or ``to_pylist`` would fail on them
    later, far from the row. The check is one pass of Arrow's validation; only a batch
    that fails it is gone through row by row.
    """
    try:
        text = array if pa.types.is_string(array.type) else pc.cast(array, pa.string())
        if not _ascii_only(text):  # ASCII is UTF-8: a scan 60x cheaper than validating
            text.validate(full=True)
        return text, None
    except pa.ArrowInvalid:
        pass
    raw = as_bytes(array)
    if pa.types.is_binary_view(raw.type):  # if_else takes no views
        raw = pc.cast(raw, pa.large_binary())
    broken = np.zeros(len(raw), dtype=bool)
    for i, value in enumerate(raw.to_pylist()):
        broken[i] = value is not None and utf8_error(value) is not None
    kept = pc.if_else(pa.array(broken), pa.scalar(None, raw.type), raw)
    return pc.cast(kept, pa.string()), broken


def utf8_error(value: bytes) -> str | None:
    """Why ``value`` is not UTF-8 (the decoder's reason), or None when it is."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as error:
        return str(error.reason)
    return None


def _ascii_only(text: pa.Array) -> bool:
    """Whether the bytes of a string array are all below 0x80."""
    offsets_buffer, data = text.buffers()[1:3]
    if data is None or offsets_buffer is None or not len(text):
        return True
    offsets = np.frombuffer(offsets_buffer, np.int32, len(text) + 1 + text.offset)[text.offset :]
    chars = np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
    return not len(chars) or int(chars.max()) < 0x80


def as_bytes(array: pa.Array) -> pa.Array:
    """The bytes of a text or binary array, unchecked (a view: no copy)."""
    kind = array.type
    if pa.types.is_string(kind):
        return array.view(pa.binary())
    if pa.types.is_large_string(kind):
        return array.view(pa.large_binary())
    if pa.types.is_string_view(kind):
        return array.view(pa.binary_view())
    return array


def value_of(column: pa.Array | pa.ChunkedArray, row: int) -> Any:
    """Row ``row`` of ``column`` as Python for a message: the bytes of text that is not
    UTF-8, the ticks of a time past the range of Python's ``datetime``, and Arrow's own
    text of anything else Python cannot hold (such a time in a list, say)."""
    try:
        return column[row].as_py()
    except UnicodeDecodeError:
        return as_bytes(_one(column, row))[0].as_py()
    except (ValueError, OverflowError):
        one = _one(column, row)
        if pa.types.is_temporal(one.type):
            return pc.cast(one, pa.int64())[0].as_py()
        return _ArrowText(one.to_string(indent=0, window=5).replace("\n", " "))


class _ArrowText(str):
    """Arrow's text of a value, shown as it is (not quoted) by ``repr``."""

    def __repr__(self) -> str:
        return str(self)


def _one(column: pa.Array | pa.ChunkedArray, row: int) -> pa.Array:
    return contiguous(column.slice(row, 1))


def contiguous(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``column`` as one array. A dictionary column whose chunks each bring their own
    dictionary (Parquet's row groups, Arrow tables concatenated) may not combine, when
    the dictionaries together outgrow the index type: its values are decoded first (in
    a list or struct column too). A run-end encoded column is decoded, and a column of
    view types (:func:`without_views`) is cast to their plain twins: Arrow's kernels that
    pick rows (``take``, ``filter``) take neither."""
    if isinstance(column, pa.ChunkedArray):
        try:
            column = column.combine_chunks()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            decoded = without_dictionaries(column.type)
            if decoded == column.type:
                raise
            column = column.cast(decoded).combine_chunks()
    if pa.types.is_run_end_encoded(column.type):
        column = pc.run_end_decode(column)
    return viewless(column)


_LIST_VIEW_IDS = frozenset(kind.id for kind in (pa.list_view(pa.null()),
                                                 pa.large_list_view(pa.null())))  # fmt: skip
_VIEW_IDS = _LIST_VIEW_IDS | {pa.string_view().id, pa.binary_view().id}
_DICTIONARY_ID = pa.dictionary(pa.int8(), pa.null()).id


def has_views(kind: pa.DataType, ids: frozenset[int] = _VIEW_IDS) -> bool:
    """Whether ``kind`` is, or holds, a view type (``string_view``, ``binary_view``,
    ``list_view``, ``large_list_view``: Polars' ``CompatLevel.newest()`` gives them;
    ``ids``: those of some of them). Looked through without recursion: JSON nested a
    thousand levels is read as lists."""
    kinds = [kind]
    while kinds:
        kind = kinds.pop()
        if kind.id in ids:
            return True
        if kind.num_fields:  # lists, structs, maps, unions
            kinds.extend(kind.field(i).type for i in range(kind.num_fields))
        elif kind.id == _DICTIONARY_ID:
            kinds.append(kind.value_type)
    return False


def without_views(kind: pa.DataType, large: bool = False) -> pa.DataType:
    """``kind`` with each view type in it replaced by the plain type of the same values,
    which Arrow's ``take`` and ``filter`` take (they have no kernels for
    ``string_view`` and ``binary_view``, alone or in a list, struct or map): ``string``,
    ``binary``, ``list`` and ``large_list``; with ``large``, ``large_string``,
    ``large_binary`` and ``large_list``, whose offsets hold more than 2 GiB."""

    def plain(k: pa.DataType) -> pa.DataType | None:
        if not has_views(k):
            return k
        if pa.types.is_string_view(k):
            return pa.large_string() if large else pa.string()
        if pa.types.is_binary_view(k):
            return pa.large_binary() if large else pa.binary()
        if pa.types.is_dictionary(k):
            return pa.dictionary(k.index_type, without_views(k.value_type, large), k.ordered)
        wide = large or pa.types.is_large_list_view(k)
        if (
            pa.types.is_list_view(k)
            or pa.types.is_large_list_view(k)
            or (large and pa.types.is_list(k))
        ):
            field = k.value_field.with_type(without_views(k.value_type, large))
            return pa.large_list(field) if wide else pa.list_(field)
        return None  # a list, struct or map: the views in it (a union: kept as it is)

    return _rebuilt(kind, plain)


def viewless(column: Any) -> Any:
    """``column`` (an array or a chunked array) with its view types replaced by their
    plain twins (:func:`without_views`), the same values; the large twins where the
    plain ones' 32-bit offsets cannot hold the data. A column without views, or one that
    cannot be so given (a list view in a map, say), is returned as it is."""
    kind = column.type
    if not has_views(kind):
        return column
    for large in (False, True):
        try:
            if isinstance(column, pa.ChunkedArray):
                chunks = [_viewless_array(chunk, large) for chunk in column.chunks]
                return pa.chunked_array(chunks, type=without_views(kind, large))
            return _viewless_array(column, large)
        except pa.ArrowException:
            continue
        except RecursionError:  # a view under a thousand levels of lists
            break
    return column


def _viewless_array(array: pa.Array, large: bool) -> pa.Array:
    """One array of :func:`viewless` (raises where it cannot be given). Lists that hold
    a list view, and list views, are built here: Arrow's cast of a list view to a list
    gives an offsets buffer one entry short, and under a struct wrong values."""
    kind = array.type
    target = without_views(kind, large)
    if not has_views(kind, _LIST_VIEW_IDS):
        cast = array.cast(target)  # string and binary views, wherever they are
        cast.validate()
        return cast
    if pa.types.is_struct(kind):
        children = [_viewless_array(child, large) for child in array.flatten()]
        mask = array.is_null() if array.null_count else None
        return pa.StructArray.from_arrays(children, fields=list(target), mask=mask)
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)
            or pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind)):  # fmt: skip
        raise pa.ArrowNotImplementedError(f"{kind}: not given without its list views")
    values = _viewless_array(pc.list_flatten(array), large)  # in order, null lists skipped
    lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(array) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    mask = array.is_null() if array.null_count else None
    if pa.types.is_list(target):  # past 2^31 values pa.array raises: large lists then
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, target, mask=mask)
    return pa.LargeListArray.from_arrays(pa.array(offsets), values, target, mask=mask)


_PLAIN_SCHEMA: list[pa.Schema] = []  # the last schema found without views (pushes repeat it)


def viewless_table(table: pa.Table) -> pa.Table:
    """``table`` with its view columns cast (:func:`viewless`); ``table`` itself when it
    has none (told from the last such schema, else the schema's text: a push's hot path)."""
    schema = table.schema
    if _PLAIN_SCHEMA and schema.equals(_PLAIN_SCHEMA[0]):  # a fiftieth of the look's time
        return table
    text = schema.to_string(show_field_metadata=False, show_schema_metadata=False)
    if "view" not in text or not any(has_views(kind) for kind in schema.types):
        _PLAIN_SCHEMA[:] = [schema]
        return table
    columns = [viewless(column) for column in table.columns]
    fields = [f.with_type(c.type) for f, c in zip(schema, columns, strict=True)]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=schema.metadata))


def without_dictionaries(kind: pa.DataType) -> pa.DataType:
    """``kind`` with each dictionary type in it replaced by its value type."""
    return _rebuilt(
        kind, lambda k: without_dictionaries(k.value_type) if pa.types.is_dictionary(k) else None
    )


def _rebuilt(
    kind: pa.DataType, replace: Callable[[pa.DataType], pa.DataType | None]
) -> pa.DataType:
    """``kind`` as ``replace`` gives it, or, where that is None, with the types in it (a
    list's, a struct's fields, a map's key and item) rebuilt so: the one walk through
    nested types of :func:`without_dictionaries` and :func:`without_views`."""
    new = replace(kind)
    if new is not None:
        return new

    def inner(field: pa.Field) -> pa.Field:
        return field.with_type(_rebuilt(field.type, replace))

    if pa.types.is_list(kind):
        return pa.list_(inner(kind.value_field))
    if pa.types.is_large_list(kind):
        return pa.large_list(inner(kind.value_field))
    if pa.types.is_fixed_size_list(kind):
        return pa.list_(inner(kind.value_field), kind.list_size)
    if pa.types.is_struct(kind):
        return pa.struct([inner(f) for f in kind])
    if pa.types.is_map(kind):
        return pa.map_(inner(kind.key_field), inner(kind.item_field), kind.keys_sorted)
    return kind


def contiguous_table(table: pa.Table) -> pa.Table:
    """``table`` with one chunk a column (see :func:`contiguous`)."""
    try:
        combined = table.combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        combined = None
    if combined is not None and not any(
        pa.types.is_run_end_encoded(kind) or has_views(kind) for kind in table.schema.types
    ):
        return combined
    # Column by column: dictionaries that do not combine, run-end encoded and view
    # columns (which combine as they are, and Arrow's take does not take).
    columns = [contiguous(column) for column in table.columns]
    fields = [f.with_type(c.type) for f, c in zip(table.schema, columns, strict=True)]
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return pa.Table.from_arrays(columns, schema=schema)  # names (even twice) kept


def shown_repr(value: object) -> str:
    """A value's repr for a reason or a dead letter; a list nested past Python's depth
    (JSON that Arrow read as lists) has none, and must not stop the row being written."""
    try:
        return repr(value)
    except RecursionError:
        return f"<a {type(value).__name__} nested too deeply to show>"


def trimmed(array: pa.Array) -> pa.Array:
    return pc.utf8_trim_whitespace(pc.cast(array, pa.string()))


def only_rows(array: pa.Array, rows: np.ndarray) -> pa.Array:
    """``array`` with every row outside ``rows`` null (to parse a subset in place)."""
    return pc.if_else(pa.array(rows), array, pa.scalar(None, array.type))


def timestamp_ms(array: pa.Array) -> pa.Array:
    """A timestamp column in ms (its time zone kept), finer digits floored: an instant
    belongs to the millisecond that holds it, before 1970 too (Arrow's cast truncates
    toward zero, which put -0.5 ms in the millisecond [0, 1))."""
    target = pa.timestamp("ms", tz=array.type.tz)
    if array.type.unit in ("s", "ms"):
        return pc.cast(array, target)
    per_ms = 1_000 if array.type.unit == "us" else 1_000_000
    ticks = array.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    is_null = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None
    return pa.array(np.floor_divide(ticks, per_ms), mask=is_null).cast(target)


def timestamp_ms_rows(array: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """:func:`timestamp_ms`, and the rows in seconds past the int64 range of milliseconds
    (null in the result; None when there are none): Arrow's cast fails the whole column
    for one such value."""
    if array.type.unit != "s":
        return timestamp_ms(array), None
    seconds = array.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    limit = np.iinfo(np.int64).max // 1000
    failed = (seconds > limit) | (seconds < -limit)
    if not failed.any():
        return timestamp_ms(array), None
    return timestamp_ms(pc.if_else(pa.array(failed), pa.scalar(None, array.type), array)), failed


def _cast_integer_text(text: pa.Array) -> pa.Array:
    """Arrow's cast of text to int64, refusing (``ArrowInvalid``) what only it reads:
    hexadecimal ("0x10" as 16), which the CSV path and every other reader quarantine.
    The text's bytes are looked through for an x first (a millisecond for a million
    values; the string kernel took five times the cast)."""
    ints = pc.cast(text, pa.int64())
    if _may_hold_x(text) and pc.any(pc.match_substring(text, "x", ignore_case=True)).as_py():
        raise pa.ArrowInvalid("hexadecimal integer text")
    return ints


def _may_hold_x(text: pa.Array) -> bool:
    """Whether the text's data bytes hold an x or X (of any row; True when unsure)."""
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        return True
    data = text.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    return bool(np.any((raw | 0x20) == ord("x")))


def text_to_int64(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Trimmed text as int64 values (0 where null or failed) and the rows that failed.

    Integer text is parsed exactly by Arrow (float64 would round above 2**53), after
    its digits are checked to fit int64. Other numeric text (``"5.0"``, ``"1e3"``)
    counts when float64 reads it exactly and it is whole: at most 15 significant
    digits and below 2**53 (``"2.0000000000000001"`` is not taken for 2).
    """
    is_null = text.is_null().to_numpy(zero_copy_only=False)
    try:  # the common case: every value is integer text that fits
        ints = _cast_integer_text(text)
        return ints.fill_null(0).to_numpy(zero_copy_only=False), np.zeros(len(text), bool)
    except pa.ArrowInvalid:
        pass
    unsigned = pc.replace_substring_regex(text, r"^\+", "")
    # A zero fraction ("4.000", a decimal's text) is still the integer, exactly.
    unsigned = pc.replace_substring_regex(unsigned, r"^(-?[0-9]+)\.0*$", r"\1")
    integral = pc.match_substring_regex(unsigned, r"^-?[0-9]+$").fill_null(False)
    digits = pc.replace_substring_regex(unsigned, r"^-?0*", "")
    length = pc.binary_length(digits)
    limit = pc.if_else(pc.starts_with(unsigned, "-"), _INT64_MIN_DIGITS, _INT64_MAX_DIGITS)
    short = pc.less(length, len(_INT64_MAX_DIGITS))
    at_limit = pc.and_(pc.equal(length, len(_INT64_MAX_DIGITS)), pc.less_equal(digits, limit))
    fits = pc.and_(integral, pc.or_(short, at_limit)).fill_null(False)
    ints = pc.cast(pc.if_else(fits, unsigned, pa.scalar(None, pa.string())), pa.int64())
    values = ints.fill_null(0).to_numpy(zero_copy_only=False).copy()
    fits_np = fits.to_numpy(zero_copy_only=False)
    failed = ~fits_np & ~is_null
    other = failed & ~integral.to_numpy(zero_copy_only=False)
    if other.any():
        other_text = only_rows(text, other)
        floats, float_failed = text_to_float(other_text)
        mantissa = pc.replace_substring_regex(other_text, r"[eE].*$", "")
        digits = pc.replace_substring_regex(mantissa, r"[^0-9]", "")
        significant = pc.replace_substring_regex(digits, r"^0+|0+$", "")
        short = pc.less_equal(pc.binary_length(significant), _EXACT_DIGITS).fill_null(False)
        with np.errstate(invalid="ignore"):
            whole = ~float_failed & (np.floor(floats) == floats)
            whole &= (np.abs(floats) < _EXACT_FLOAT) & short.to_numpy(zero_copy_only=False)
        take = other & whole
        values[take] = floats[take].astype(np.int64)
        failed &= ~take
    return values, failed


def text_to_float(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Text as float64 values and the non-null rows that are not numbers ("nan" is one)."""
    is_null = text.is_null().to_numpy(zero_copy_only=False)
    try:  # the common case: Arrow reads every value (exactly as pandas would)
        values = pc.cast(text, pa.float64()).fill_null(np.nan).to_numpy()
        return values, np.zeros(len(text), bool)
    except pa.ArrowInvalid:
        pass
    import pandas as pd  # only text input needs it; keeps start-up fast

    series = pd.Series(text.to_pandas(), dtype=object)
    values = np.asarray(pd.to_numeric(series, errors="coerce"), dtype=np.float64)
    spelled_nan = series.str.strip().str.lower().isin(["nan"]).to_numpy()
    return values, np.isnan(values) & ~is_null & ~spelled_nan


def epoch_ms(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float epoch milliseconds as int64, floored (as finer timestamp units are); the
    values that are not finite or outside int64 failed (returned as 0)."""
    with np.errstate(invalid="ignore"):
        ms = np.floor(values)
        fits = (ms >= -(2.0**63)) & (ms < 2.0**63)
    return np.where(fits, ms, 0).astype(np.int64), ~fits


def datetimes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Date/time values that are not text (dates, say) as epoch ms, and the failures."""
    import pandas as pd  # only such input needs it; keeps start-up fast

    return _epoch_ms_of(pd.to_datetime(array.to_pandas(), errors="coerce", utc=True), array)


def _epoch_ms_of(parsed: Any, array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    is_null = array.is_null().to_numpy(zero_copy_only=False)
    failed = parsed.isna().to_numpy() & ~is_null
    ms = parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ms]").view(np.int64)
    return np.where(failed | is_null, 0, ms), failed


class DateFormats:
    """The format of each timestamp field's date/time text, fixed by its first values.

    Parsing each value in whatever format fits it (pandas' ``format="mixed"``) read
    01/02/2023 month-first and 13/02/2023 day-first in one column. Now ISO 8601 is read
    as such, and other text takes one format per field: of the formats guessed from its
    first values (month- or day-first), the one that reads the most of them. A value in
    another format fails (and is quarantined) instead of being read another way.
    """

    def __init__(self) -> None:
        self._formats: dict[str, str | None] = {}

    def parse(self, field: str, array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Text ``array`` of ``field`` as epoch ms, and the rows that failed.

        Digits of a second past the millisecond are dropped first (floored, as a
        fraction of a second only ever adds): pandas gives a column one resolution,
        nanoseconds once any value has such digits, and nanoseconds end in 2262, so a
        neighbour's digits made a year-3024 typo fail the whole batch, and a valid
        1600-01-01 unreadable."""
        import pandas as pd  # only text input needs it; keeps start-up fast

        array = pc.replace_substring_regex(array, _SUB_MS_DIGITS, r"\1")
        text = pd.Series(array.to_pandas(), dtype=object)
        ms, failed = _epoch_ms_of(
            pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601"), array
        )
        if failed.any():
            if field not in self._formats:
                self._formats[field] = _likeliest_format(text[failed])
            chosen = self._formats[field]
            if chosen is not None:  # each parse in its own resolution, met in epoch ms
                again = pd.to_datetime(text[failed], errors="coerce", utc=True, format=chosen)
                rest = only_rows(array, failed)
                values, still = _epoch_ms_of(again.reindex(text.index), rest)
                ms = np.where(failed, values, ms)
                failed = failed & still
        return ms, failed

    def format_of(self, field: str) -> str | None:
        """The format fixed for ``field``'s text that is not ISO 8601 (None: none yet)."""
        return self._formats.get(field)


def _likeliest_format(text: Any) -> str | None:
    """Of the formats pandas guesses for the first values (month-first and day-first),
    the one that reads the most of the first thousand; None when it guesses none."""
    import warnings

    import pandas as pd
    from pandas.tseries.api import guess_datetime_format

    sample = text.iloc[:1000]
    candidates: list[str] = []
    with warnings.catch_warnings():  # pandas warns when a guess disagrees with dayfirst
        warnings.simplefilter("ignore")
        for value in sample.iloc[:20]:
            for dayfirst in (False, True):
                guess = guess_datetime_format(str(value), dayfirst=dayfirst)
                if guess is not None and guess not in candidates:
                    candidates.append(guess)
    if not candidates:
        return None
    read = [pd.to_datetime(sample, errors="coerce", format=f).notna().sum() for f in candidates]
    return candidates[int(np.argmax(read))]  # ties: the first (month-first, as pandas)


def text_timestamps(
    array: pa.Array, is_null: np.ndarray, dates: Callable[[pa.Array], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Text in a timestamp field as epoch ms: numbers are epoch ms (integers exactly,
    decimals floored), anything else a date/time read by ``dates``; and the rows that
    failed."""
    text = trimmed(array)
    try:  # the common case: every value is epoch ms as integer text
        return _cast_integer_text(text).fill_null(0).to_numpy(), np.zeros(len(text), bool)
    except pa.ArrowInvalid:
        pass
    integral = pc.match_substring_regex(text, _INTEGER_TEXT).fill_null(False)
    numeric = pc.match_substring_regex(text, _NUMBER_TEXT).fill_null(False)
    integral_np = integral.to_numpy(zero_copy_only=False)
    numeric_np = numeric.to_numpy(zero_copy_only=False)
    ms = np.zeros(len(array), dtype=np.int64)
    failed = np.zeros(len(array), dtype=bool)
    decimal = numeric_np & ~integral_np
    other = ~numeric_np & ~is_null
    if integral_np.any():
        values, bad = text_to_int64(only_rows(text, integral_np))
        ms[integral_np] = values[integral_np]
        failed |= bad & integral_np
    if decimal.any():
        values, bad = floored_number_text(only_rows(text, decimal))
        ms[decimal] = values[decimal]
        failed |= bad & decimal
    if other.any():
        values, bad = dates(only_rows(array, other))
        ms[other] = values[other]
        failed |= bad & other
    return ms, failed


def floored_number_text(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Number text (trimmed, ``_NUMBER_TEXT``) floored exactly to int64 (0 where null or
    failed), and the rows outside int64. Through float64, ``1700000000000.99999`` rounded
    up to the next millisecond before it was floored."""
    ms = np.zeros(len(text), dtype=np.int64)
    failed = np.zeros(len(text), dtype=bool)
    exponent = pc.match_substring(text, "e", ignore_case=True).fill_null(False)
    exponent_np = exponent.to_numpy(zero_copy_only=False)
    plain = text.is_valid().to_numpy(zero_copy_only=False) & ~exponent_np
    if plain.any():  # whole digits exactly; a negative with a fraction one lower
        rows = only_rows(text, plain)
        whole = pc.replace_substring_regex(rows, r"\..*$", "")
        whole = pc.replace_substring_regex(whole, r"^([+-]?)$", r"\10")  # "-.5": "-0"
        fraction = pc.replace_substring_regex(rows, r"^[^.]*\.?", "")
        negative = pc.starts_with(rows, "-")
        cut = pc.and_(negative, pc.match_substring_regex(fraction, "[1-9]"))
        cut_np = cut.fill_null(False).to_numpy(zero_copy_only=False)
        values, bad = text_to_int64(whole)
        bad |= cut_np & (values == np.iinfo(np.int64).min)
        ms[plain] = (values - cut_np)[plain]
        failed |= bad & plain
    for row in np.flatnonzero(exponent_np):  # rare: read exactly, one by one
        value = Decimal(text[int(row)].as_py())
        if -(2**63) <= value < 2**63:
            ms[row] = math.floor(value)
        else:
            failed[row] = True
    ms[failed] = 0
    return ms, failed


def text_to_bool(array: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """Text in a bool field: true/false (any case) or 1/0, spaces around ignored; any
    other text fails its row (it would otherwise be a silent guess)."""
    text = pc.utf8_lower(trimmed(array))
    true = pc.is_in(text, value_set=pa.array(["true", "1"]))
    false = pc.is_in(text, value_set=pa.array(["false", "0"]))
    values = pc.if_else(true, True, pc.if_else(false, False, pa.scalar(None, pa.bool_())))
    is_null = array.is_null().to_numpy(zero_copy_only=False)
    failed = values.is_null().to_numpy(zero_copy_only=False) & ~is_null
    return values, failed if failed.any() else None
