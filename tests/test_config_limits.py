"""Configuration mistakes that used to pass the checks and fail (or mislead) in the run.

Why: each of these loaded, then stopped the first batch with a message naming no path,
ran out of memory, wrote a broken quarantine file, or was silently ignored.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from engine_testing import BASE_FIELDS

from gpu_engine.config import parse_config
from gpu_engine.config.models import (
    INTEGER_RANGES,
    MAX_WINDOWS_PER_EVENT,
    RESERVED_FIELD_NAMES,
    value_problem,
)
from gpu_engine.errors import ConfigError
from gpu_engine.validation import ARROW_TYPES, QUARANTINE_COLUMNS


def _config(window: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "schema": {"time": "t", "fields": {**BASE_FIELDS, **fields}},
        "windows": [
            {
                "name": "w",
                "type": "tumbling",
                "size": "10s",
                "keys": ["k"],
                "aggregations": [{"name": "n", "op": "count"}],
                **(window or {}),
            }
        ],
    }


def _likes(where: dict[str, Any]) -> dict[str, Any]:
    return {"aggregations": [{"name": "n", "op": "count"}, {"name": "m", "op": "count",
                                                             "where": where}]}  # fmt: skip


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"e": 257}, r"aggregations\[1\]\.where\.e: 257 does not fit int8 \(-128 to 127\)"),
        ({"e": [1, -129]}, r"where\.e: -129 does not fit int8"),
        ({"e": "1"}, r"where\.e: '1' is not of type int8"),
        ({"e": True}, r"where\.e: true is not of type int8"),
        ({"e": 1.5}, r"where\.e: 1\.5 is not a whole number"),
        ({"k": 2**63}, r"where\.k: \d+ does not fit int64"),
        ({"s": 3}, r"where\.s: 3 is not of type string"),
        ({"x": "a"}, r"where\.x: 'a' is not of type float64"),
    ],
)
def test_where_value_the_column_cannot_hold_is_refused_at_load(where, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_config(_likes(where)))


def test_where_values_within_the_type_load() -> None:
    config = parse_config(_config(_likes({"e": [-128, 127, 2.0], "x": 1e300, "s": "a"})))
    assert config.windows[0].aggregations[1].where == {"e": [-128, 127, 2.0], "x": 1e300, "s": "a"}


def test_allowed_value_outside_the_type_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"fields\.e: allowed value 300 does not fit int8"):
        parse_config(_config(e={"type": "int8", "allowed": [0, 1, 300]}))
    with pytest.raises(ConfigError, match=r"allowed value 1 is not of type bool \(true or false\)"):
        parse_config(_config(b={"type": "bool", "allowed": [1]}))


@pytest.mark.parametrize("field_type", sorted(INTEGER_RANGES))
def test_value_check_agrees_with_the_engines_cast(field_type) -> None:
    """What the load accepts, the engine's cast (``pa.array(...).cast``) takes, and the
    first value past each end of the range it refuses."""
    lo, hi = INTEGER_RANGES[field_type]
    arrow_type = ARROW_TYPES[field_type]
    for value in (lo, hi):
        assert value_problem(field_type, value) is None
        pa.array([value]).cast(arrow_type)
    for value in (lo - 1, hi + 1):
        assert value_problem(field_type, value) is not None
        with pytest.raises((pa.ArrowInvalid, OverflowError)):
            pa.array([value]).cast(arrow_type)


def test_sliding_window_with_too_many_windows_per_event_is_refused() -> None:
    ok = {"type": "sliding", "size": MAX_WINDOWS_PER_EVENT, "slide": 1}
    assert parse_config(_config(ok)).windows[0].pane_ms == 1
    with pytest.raises(ConfigError) as info:
        parse_config(_config({"type": "sliding", "size": "1h", "slide": "1ms"}))
    text = str(info.value)
    assert "windows[0]: size 1h / slide 1ms puts each event in 3,600,000 windows" in text
    assert "at most 1,000" in text and "use a larger slide" in text


def test_top_k_on_a_session_window_is_refused() -> None:
    session = {"type": "session", "size": None, "gap": "30s", "top_k": {"by": "n", "k": 3}}
    with pytest.raises(ConfigError, match=r"windows\[0\]: top_k applies to tumbling and sliding"):
        parse_config(_config(session))
    del session["top_k"]
    assert parse_config(_config(session)).windows[0].top_k is None


def test_reserved_names_are_the_quarantine_columns() -> None:
    assert set(QUARANTINE_COLUMNS) == RESERVED_FIELD_NAMES


@pytest.mark.parametrize("name", sorted(RESERVED_FIELD_NAMES))
def test_field_named_like_a_quarantine_column_is_refused(name) -> None:
    with pytest.raises(ConfigError, match=rf"schema\.fields: field name\(s\) \['{name}'\] are"):
        parse_config(_config(**{name: {"type": "int64"}}))


def test_output_column_clashes_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"key\(s\) \['window_start'\] clash"):
        parse_config(_config({"keys": ["window_start"]}, window_start={"type": "int64"}))
    for name in ("window_end", "k"):
        with pytest.raises(ConfigError, match=rf"aggregation name\(s\) \['{name}'\] clash"):
            parse_config(_config({"aggregations": [{"name": name, "op": "count"}]}))


@pytest.mark.parametrize("size", ["-1s", " -250ms", -1000])
def test_negative_duration_says_negative(size) -> None:
    with pytest.raises(ConfigError, match=r"windows\[0\]\.size: duration .* is negative"):
        parse_config(_config({"size": size}))


def test_time_field_bounds_leave_the_window_arithmetic_headroom() -> None:
    """A widened time range up to 2^61 ms runs (its events windowed, none late); past it
    time + size and the watermark's sentinels (±2^62) would overflow, so it is refused."""
    import numpy as np
    from engine_testing import make_config, random_events, run_engine, window_frame

    limit = 2**61
    with pytest.raises(ConfigError, match=r"'t': max \S+ is beyond ±2\^61 ms"):
        parse_config(_config(t={"type": "int64", "required": True, "max": 2 * limit}))
    fields = {**BASE_FIELDS, "t": {"type": "int64", "required": True, "min": -limit, "max": limit}}
    config = make_config({"type": "tumbling", "size": 1000, "keys": ["k"]},
                         schema={"time": "t", "fields": fields})  # fmt: skip
    frame = random_events(np.random.default_rng(0), 300)
    frame["t"] = np.sort(np.r_[np.arange(150) - limit, limit - 1000 + np.arange(150)])
    sink, summary = run_engine(config, frame)
    assert summary["events"]["late"] == 0 and summary["events"]["valid"] == 300
    assert window_frame(sink)["n"].sum() == 300
