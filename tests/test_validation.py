"""Validation rules, reasons and quarantine, including hostile input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from engine_testing import make_config, run_engine

from gpu_engine.config import parse_config
from gpu_engine.errors import SchemaError

TUMBLING = {"type": "tumbling", "size": 1000, "keys": ["k"]}


def _one_row(**overrides) -> dict:
    row = {"t": 1_000_000, "k": 1, "s": "a", "e": 1, "x": 5.0, "u": 3}
    row.update(overrides)
    return row


def _quarantine_of(rows: list[dict], **top) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    sink, summary = run_engine(make_config(TUMBLING, **top), frame)
    assert summary["accounted"]
    table = sink.result("quarantine")
    return table.to_pandas() if table is not None else pd.DataFrame()


@pytest.mark.parametrize(
    ("override", "field", "reason"),
    [
        ({"e": 9}, "e", "e=9 is not one of [0, 1, 2, 3, 4]"),
        ({"t": -5}, "t", "t=-5 is below min 0"),
        ({"t": 10**15}, "t", "t=1000000000000000 is above max 4102444800000"),
        ({"k": None}, "k", "k is null but the field is not nullable"),
        ({"x": float("inf")}, "x", "x=inf is not finite"),
        ({"e": 300}, "e", "e=300 is not an integer that fits int8"),
        ({"k": 2.5}, "k", "k=2.5 is not an integer that fits int64"),
    ],
)
def test_each_rule_quarantines_with_a_readable_reason(override, field, reason) -> None:
    quarantine = _quarantine_of([_one_row(), _one_row(**override)])
    assert len(quarantine) == 1
    assert quarantine["_field"][0] == field
    assert quarantine["_reason"][0] == reason
    assert quarantine["_row"][0] == 1
    assert quarantine["_source"][0] == "push"


def test_pandas_nan_is_a_null() -> None:
    # pandas spells "missing" as NaN; it arrives as a null, which the nullable x accepts.
    assert _quarantine_of([_one_row(x=float("nan"))]).empty


def test_nan_is_invalid_unless_allowed() -> None:
    fields = {"t": {"type": "int64"}, "x": {"type": "float32", "min": 0}}
    window = {"name": "w", "type": "tumbling", "size": 1000,
              "aggregations": [{"name": "m", "op": "max", "column": "x"}]}  # fmt: skip
    table = pa.table({"t": [1, 2, 3], "x": pa.array([1.0, float("nan"), -1.0], pa.float32())})
    config = parse_config({"schema": {"time": "t", "fields": fields}, "windows": [window]})
    sink, summary = run_engine(config, table)
    reasons = sorted(sink.result("quarantine").column("_reason").to_pylist())
    assert reasons == ["x is NaN (set allow_nan: true to accept it)", "x=-1.0 is below min 0"]
    fields["x"]["allow_nan"] = True
    config = parse_config({"schema": {"time": "t", "fields": fields}, "windows": [window]})
    _, summary = run_engine(config, table)
    assert summary["events"]["quarantined"] == 1


def test_strings_in_numeric_columns_quarantine_only_their_rows() -> None:
    frame = pd.DataFrame(
        {"t": ["1000000", "1000001", "soon", "1000003"], "k": ["1", "x", "2", "3"],
         "e": ["1", "2", "3", "4"], "x": ["1.5", "2", "abc", "nan"]}
    )  # fmt: skip
    quarantine = _quarantine_of(frame.to_dict("records"))
    # Row 2 fails on t (the first field), so its bad x is not the reason shown;
    # the text "nan" parses to NaN, which a float field refuses unless allow_nan.
    assert sorted(zip(quarantine["_row"], quarantine["_reason"], strict=True)) == [
        (1, "k='x' is not an integer that fits int64"),
        (2, "t='soon' is not an integer that fits int64"),
        (3, "x is NaN (set allow_nan: true to accept it)"),
    ]


def test_missing_column_quarantines_the_batch_or_fails() -> None:
    frame = pd.DataFrame({"t": [1_000_000], "k": [1], "x": [1.0], "u": [1], "s": ["a"]})
    quarantine = _quarantine_of(frame.to_dict("records"))
    assert quarantine["_reason"].tolist() == ["column 'e' is missing from the input"]
    config = make_config(TUMBLING, validation={"on_error": "fail"})
    with pytest.raises(SchemaError, match="column 'e' is missing"):
        run_engine(config, frame)


def test_on_error_fail_names_source_row_and_value() -> None:
    config = make_config(TUMBLING, validation={"on_error": "fail"})
    frame = pd.DataFrame([_one_row(), _one_row(e=7, x=-1.0)])
    # The first failing field in schema order is reported: e comes before x.
    with pytest.raises(SchemaError, match=r"^push, row 1: e=7 is not one of \[0, 1, 2, 3, 4\]$"):
        run_engine(config, frame)


def test_drop_counts_bad_rows_without_writing_them() -> None:
    frame = pd.DataFrame([_one_row(), _one_row(e=9)])
    sink, summary = run_engine(make_config(TUMBLING, validation={"on_error": "drop"}), frame)
    assert summary["events"]["quarantined"] == 1
    assert sink.result("quarantine") is None
    assert summary["quarantine_written"] is False


def test_lenient_mode_skips_range_rules() -> None:
    frame = pd.DataFrame([_one_row(), _one_row(e=9)])
    _, summary = run_engine(make_config(TUMBLING, validation={"mode": "lenient"}), frame)
    assert summary["events"]["quarantined"] == 0


def test_random_bad_rows_all_quarantined(rng) -> None:
    n = 2000
    frame = pd.DataFrame(
        {"t": rng.integers(1_000_000, 1_010_000, n), "k": rng.integers(0, 5, n),
         "s": rng.choice(["a", "b"], n), "e": rng.integers(-2, 7, n),
         "x": rng.normal(0, 1, n), "u": rng.integers(0, 9, n)}
    )  # fmt: skip
    frame.loc[rng.random(n) < 0.05, "x"] = np.inf
    expected_bad = ~frame["e"].between(0, 4) | np.isinf(frame["x"])
    quarantine = _quarantine_of(frame.to_dict("records"))
    assert sorted(quarantine["_row"]) == sorted(np.flatnonzero(expected_bad))
