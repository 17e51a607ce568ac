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

from gpu_engine.arrow_layout import contiguous

_INT64_MAX_DIGITS = "9223372036854775807"
_INT64_MIN_DIGITS = "9223372036854775808"  # of -2**63, without its sign
_INTEGER_TEXT = r"^[+-]?[0-9]+$"
# A second's fraction past its milliseconds: ``:59.123`` kept of ``:59.123456789``.
_SUB_MS_DIGITS = r"(:[0-9]{2}\.[0-9]{3})[0-9]+"
_NUMBER_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_EXACT_FLOAT = 2.0**53  # float64 holds every integer below this
_EXACT_DIGITS = 15  # decimals of up to 15 significant digits survive float64 (DBL_DIG)
_SMALLEST_EXACT = 1e-300  # far above float64's subnormals, where rounding is coarser


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
    another format fails (and is quarantined) instead of being read another way. Text
    from which no format can be guessed (garbage first) fixes none: the next batch's
    non-ISO text is guessed from again.
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
            if self._formats.get(field) is None:  # until one is found: text that is
                self._formats[field] = _likeliest_format(text[failed])  # no date first
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
    failed), and the rows outside int64. Through float64 alone, ``1700000000000.99999``
    rounded up to the next millisecond before it was floored.

    Text of at most 15 significant digits below 2^53 goes through float64, exactly: a
    fraction of such a number is at least 1e-15 of it away from an integer, farther than
    float64's rounding reaches. Longer plain decimals are split at the point (the whole
    part read exactly); longer exponent forms are read one by one, exactly."""
    ms = np.zeros(len(text), dtype=np.int64)
    failed = np.zeros(len(text), dtype=bool)
    present = text.is_valid().to_numpy(zero_copy_only=False)
    floats, _ = text_to_float(text)
    digits = _significant_digits(text)
    with np.errstate(invalid="ignore"):
        short = present & (digits <= _EXACT_DIGITS) & (np.abs(floats) < _EXACT_FLOAT)
        short &= (np.abs(floats) >= _SMALLEST_EXACT) | (digits == 0)  # no underflow
    ms[short] = np.floor(floats[short]).astype(np.int64)
    exponent = pc.match_substring(text, "e", ignore_case=True).fill_null(False)
    exponent_np = exponent.to_numpy(zero_copy_only=False)
    plain = present & ~short & ~exponent_np
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
    for row in np.flatnonzero(present & ~short & exponent_np):  # rare: one by one
        floor = _exact_floor(str(text[int(row)].as_py()))
        if floor is None:
            failed[row] = True
        else:
            ms[row] = floor
    ms[failed] = 0
    return ms, failed


def _significant_digits(text: pa.Array) -> np.ndarray:
    """Digits of each number text's mantissa, less its leading and trailing zeros."""
    mantissa = pc.replace_substring_regex(text, r"[eE].*$|[+.-]", "")
    digits = pc.utf8_trim(mantissa, characters="0")
    return pc.utf8_length(digits).fill_null(0).to_numpy(zero_copy_only=False)


def _exact_floor(number: str) -> int | None:
    """floor(``number``) if it fits int64, else None. An exponent past what ``Decimal``
    holds (19 digits and more) is read from its sign: the number is then 0 or -1 below 1
    in size, and outside int64 above."""
    try:
        value = Decimal(number)
        if not -(2**63) <= value < 2**63:
            return None
        return math.floor(value)
    except ArithmeticError:  # decimal.InvalidOperation, Overflow
        mantissa, _, exponent = number.lower().partition("e")
        if not mantissa.strip("+-.0"):
            return 0
        if exponent.startswith("-"):
            return -1 if mantissa.startswith("-") else 0
        return None


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
