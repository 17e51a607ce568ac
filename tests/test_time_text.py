"""Event times given as text land in the millisecond that holds them, each value on its own.

Oracles: Python's ``decimal`` for number text (exact floors), and pandas parsing each
date/time value by itself (one value, one resolution), floored to the millisecond.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from gpu_engine.config import parse_config
from gpu_engine.engine import Engine
from gpu_engine.io.sinks import MemorySink
from gpu_engine.parsing import DateFormats, floored_number_text

EDGES = ["1700000000000.99999", "-1700000000000.0001", "123.999999999999999", ".5", "-.5",
         "-0.0", "+3.", "1.7e12", "-1e-3", "1e30", "-9223372036854775808.5",
         "9223372036854775807.9", "-9223372036854775808.0", "5.000"]  # fmt: skip


# Exponents past what Decimal holds: a huge one dead-lettered its whole batch.
HUGE = {"1e9999999999999999999": None, "1e-9999999999999999999": 0,
        "-1e-9999999999999999999": -1, "0e99999999999999999999": 0, "-1e-400": -1,
        "1e-400": 0, "-2.5e-320": -1}  # fmt: skip


def _exact_floor(text: str) -> int | None:
    if text in HUGE:
        return HUGE[text]
    value = math.floor(Decimal(text))
    return value if -(2**63) <= value < 2**63 else None


def test_number_text_is_floored_exactly() -> None:
    """Through float64, ``1700000000000.99999`` became ...001 and ``-1700000000000.0001``
    ...000: the float rounded before the floor."""
    rng = np.random.default_rng(5)
    whole = rng.integers(-(10**15), 10**15, 2000)
    digits = rng.integers(0, 10**9, 2000)
    places = rng.integers(1, 10, 2000)
    random = [f"{w}.{str(d).zfill(9)[:p]}" for w, d, p in zip(whole, digits, places, strict=True)]
    mantissas = rng.normal(0, 1e3, 500)
    decimals = rng.integers(0, 8, 500)
    powers = rng.integers(-20, 16, 500)
    exponents = [f"{m:.{d}f}e{p}" for m, d, p in zip(mantissas, decimals, powers, strict=True)]
    texts = EDGES + list(HUGE) + random + exponents
    ms, failed = floored_number_text(pa.array([*texts, None]))
    expected = [_exact_floor(t) for t in texts]
    assert [None if f else int(m) for m, f in zip(ms[:-1], failed[:-1], strict=True)] == expected
    assert ms[-1] == 0 and not failed[-1]


def _each_alone(text: str) -> int:
    """Python's own reading of one ISO value (1 to 9999), in exact integer arithmetic."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    "texts",
    [
        [
            "2024-05-01T00:00:00.123456789Z",
            "3024-05-01T00:00:00Z",
            "1600-01-01T00:00:00Z",
            "0202-01-01T00:00:00Z",
            None,
            "2024-05-01T00:00:00.5+05:30",
        ],
        [
            "1969-12-31T23:59:59.9999999Z",
            "2500-01-01T00:00:00.000000001Z",
            "1677-09-21T00:12:43.145224191Z",
            "2262-04-11T23:47:16.854775808Z",
        ],
    ],
    ids=["typo-beside-nanoseconds", "past-the-nanosecond-range"],
)
def test_date_text_is_read_value_by_value(texts: list) -> None:
    """pandas gave the column nanoseconds once one value had such digits: a year outside
    1677-2262 then failed to parse, or, through the fallback format, failed the batch."""
    ms, failed = DateFormats().parse("t", pa.array(texts))
    for text, value, bad in zip(texts, ms, failed, strict=True):
        assert not bad, text
        assert value == (0 if text is None else _each_alone(_sub_ms_dropped(text))), text


def _sub_ms_dropped(text: str) -> str:
    head, dot, rest = text.partition(".")
    if not dot:
        return text
    digits = len(rest) - len(rest.lstrip("0123456789"))
    return f"{head}.{rest[: min(digits, 3)]}{rest[digits:]}"


def test_a_typo_in_a_year_quarantines_its_row_only() -> None:
    """1,000 times with nanosecond digits and one typo (3024): every row was dead-lettered,
    the run's exit 0."""
    fields = {"t": {"type": "timestamp"}, "k": {"type": "int64"}}
    window = {"name": "w", "type": "tumbling", "size": "1s",
              "aggregations": [{"name": "n", "op": "count"}]}  # fmt: skip
    config = parse_config({"schema": {"time": "t", "fields": fields}, "windows": [window]})
    base = pd.Timestamp("2024-05-01T00:00:00Z")
    texts = [(base + pd.Timedelta(nanoseconds=int(i) * 1_000_003)).isoformat() for i in range(1000)]
    texts[400] = "3024-05-01T00:00:00Z"
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    engine.push(pa.table({"t": texts, "k": [0] * 1000}))
    summary = engine.close()
    assert summary["events"]["dead_lettered"] == 0
    assert summary["events"]["quarantined"] == 1 and summary["events"]["valid"] == 999
    quarantine = sink.result("quarantine")
    assert quarantine.column("_row").to_pylist() == [400]
    assert "above max" in quarantine.column("_reason")[0].as_py()


def test_a_timestamp_bound_is_shown_as_a_time_too() -> None:
    """The value was shown as a date and the bound as epoch ms only."""
    fields = {"t": {"type": "timestamp"}, "k": {"type": "int64"}}
    window = {"name": "w", "type": "tumbling", "size": "1s",
              "aggregations": [{"name": "n", "op": "count"}]}  # fmt: skip
    config = parse_config({"schema": {"time": "t", "fields": fields}, "windows": [window]})
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    times = pa.array([-1, 5_000_000_000_000, 10], pa.timestamp("ms"))
    engine.push(pa.table({"t": times, "k": [0, 0, 0]}))
    engine.close()
    reasons = sink.result("quarantine").column("_reason").to_pylist()
    assert reasons[0].endswith("is below min 0 (1970-01-01 00:00:00 UTC)")
    assert reasons[1].endswith("is above max 4102444800000 (2100-01-01 00:00:00 UTC)")


def test_garbage_first_does_not_fix_a_fields_format_for_good() -> None:
    """The first non-ISO text of a field being garbage fixed "no format" for the run:
    every later day-first date failed."""
    dates = DateFormats()
    _, failed = dates.parse("t", pa.array(["not a date", "2024-01-01T00:00:00Z"]))
    assert failed.tolist() == [True, False]
    ms, failed = dates.parse("t", pa.array(["13/02/2023 10:00:00", "14/02/2023 11:30:00"]))
    assert not failed.any()
    assert ms.tolist() == [_each_alone("2023-02-13T10:00:00"), _each_alone("2023-02-14T11:30:00")]
