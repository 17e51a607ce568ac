"""Numbers at the input edge: exact integers, int64 limits, epoch ms in timestamp fields,
lossy casts that round, and booleans from text. Each value is checked against what
Python, numpy, pandas or pyarrow make of the same input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from gpu_engine.config import parse_config
from gpu_engine.config.models import FieldSpec, SchemaConfig, ValidationConfig
from gpu_engine.engine import Engine
from gpu_engine.io.sinks import MemorySink
from gpu_engine.io.sources import read_batches
from gpu_engine.validation import Validator
from kernels import validate as codes

T0 = 1_700_000_000_000
BIG = 2**53  # float64 rounds the odd integers above this


def _config(
    fields: dict[str, Any],
    time: str = "t",
    keys: list[str] | None = None,
    aggregations: list[dict[str, Any]] | None = None,
) -> Any:
    return parse_config(
        {
            "schema": {"time": time, "fields": fields},
            "windows": [
                {
                    "name": "w",
                    "type": "tumbling",
                    "size": 60_000,
                    "keys": keys or [],
                    "aggregations": aggregations or [{"name": "n", "op": "count"}],
                }
            ],
            "backend": "cpu",
        }
    )


def _run_file(path: Path, config: Any) -> tuple[MemorySink, dict[str, Any]]:
    sink = MemorySink()
    with Engine(config, sinks=[sink]) as engine:
        for table, source, first_row in read_batches(path, 64, list(config.event_schema.fields)):
            engine.push(table, source=source, first_row=first_row)
    assert sink.summary is not None and sink.summary["accounted"]
    return sink, sink.summary


def _run(frames: list[pa.Table], config: Any) -> tuple[MemorySink, dict[str, Any]]:
    sink = MemorySink()
    with Engine(config, sinks=[sink]) as engine:
        for frame in frames:
            engine.push(frame)
    assert sink.summary is not None and sink.summary["accounted"]
    return sink, sink.summary


def _cast(values: pa.Array, kind: str) -> tuple[list[Any], list[bool]]:
    """``values`` cast to field type ``kind``: (values, failed) per row."""
    schema = SchemaConfig.model_validate({"time": "t", "fields": {"t": {"type": "int64"}}})
    cast = Validator(schema, ValidationConfig()).cast(values, FieldSpec(type=kind), "c")
    failed = cast.failed if cast.failed is not None else np.zeros(len(values), bool)
    return cast.array.to_pylist(), [bool(f) for f in failed]


def _reasons(sink: MemorySink) -> list[str]:
    quarantine = sink.result("quarantine")
    return [] if quarantine is None else quarantine.column("_reason").to_pylist()


# -- 1. integers are parsed exactly ------------------------------------------------------
def test_integer_text_is_parsed_exactly_not_through_float64() -> None:
    text = [
        "9007199254740993",
        "-9007199254740995",
        "9223372036854775807",
        "-9223372036854775808",
        "+7",
        " 12 ",
        "007",
        "5.0",
        "1e3",
        "1.5e1",
    ]
    values, failed = _cast(pa.array(text), "int64")
    assert values == [int(float(t)) if "e" in t or "." in t else int(t) for t in text]
    assert values[0] == BIG + 1 and float(text[0]) == BIG  # float64 would have said 2**53
    assert not any(failed)


def test_non_integer_or_inexact_text_fails_in_an_integer_field() -> None:
    text = [
        "2.5",
        "abc",
        "9223372036854775808",
        "-9223372036854775809",
        "1" + "0" * 25,
        "9007199254740993.5",
        "2.0000000000000001",
        "nan",
        "inf",
    ]
    values, failed = _cast(pa.array([*text, None]), "int64")
    assert failed == [True] * len(text) + [False]  # float64 would round the last three up
    assert values == [None] * (len(text) + 1)


def test_integer_text_with_a_zero_fraction_is_the_integer_exactly() -> None:
    """A decimal's text ("4.000"), or a CSV writer's: through float64, 2^53 + 1 was
    inexact and refused, and 2^62 + 1 too."""
    text = ["9007199254740993.0", "4611686018427387905.000", "-7.", "+12.00", "0.0"]
    values, failed = _cast(pa.array(text), "int64")
    assert values == [2**53 + 1, 2**62 + 1, -7, 12, 0] and not any(failed)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", "-mixed.jsonl", "-float.jsonl"])
def test_big_integer_keys_from_text_files_match_pandas(tmp_path, suffix) -> None:
    rng = np.random.default_rng(7)
    n = 400
    users = np.array([BIG + 1, BIG + 2, BIG + 3, 2**62 + 1, 2**63 - 1], dtype=np.int64)
    frame = pd.DataFrame(
        {"t": T0 + np.sort(rng.integers(0, 300_000, n)), "user": rng.choice(users, n)}
    )
    path = tmp_path / f"events{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        lines = [json.dumps({"t": int(t), "user": int(u)}) for t, u in frame.itertuples(False)]
        if suffix == "-mixed.jsonl":  # a text value: the file is read line by line, as text
            lines.append(json.dumps({"t": "late", "user": 1}))
        if suffix == "-float.jsonl":  # one user written 5.0: Arrow read the column as float64
            t, _ = frame.iloc[0]
            lines[0] = json.dumps({"t": int(t), "user": 5.0})
            frame.loc[0, "user"] = 5
        path.write_text("\n".join(lines) + "\n")
    config = _config({"t": {"type": "int64"}, "user": {"type": "int64", "min": 0}}, keys=["user"])
    sink, summary = _run_file(path, config)
    assert summary["events"]["valid"] == n
    result = sink.result("windows/w").to_pandas()
    got = {
        (int(s), int(u)): int(c)
        for s, u, c in result[["window_start", "user", "n"]].itertuples(False)
    }
    expected = frame.assign(start=frame["t"] // 60_000 * 60_000).groupby(["start", "user"]).size()
    assert got == {(int(s), int(u)): int(c) for (s, u), c in expected.items()}


# -- 2. values at the int64 limits -------------------------------------------------------
def test_int64_limits_from_csv_text(tmp_path) -> None:
    path = tmp_path / "limits.csv"
    path.write_text(f"t,user\n{T0},9223372036854775807\n{T0},9223372036854775808\n{T0},5\n")
    config = _config({"t": {"type": "int64"}, "user": {"type": "int64", "min": 0}}, keys=["user"])
    sink, summary = _run_file(path, config)
    assert summary["events"]["valid"] == 2
    assert sorted(sink.result("windows/w").column("user").to_pylist()) == [5, 2**63 - 1]
    assert _reasons(sink) == ["user='9223372036854775808' is not an integer that fits int64"]
    assert sink.result("quarantine").column("_row").to_pylist() == [1]


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (pa.array([2**63 + 5, 2**64 - 1, 2**63 - 1, 0], pa.uint64()), "int64"),
        (pa.array([2.0**63, -(2.0**63), 2.0**62, 9.3e18, 1.5], pa.float64()), "int64"),
        (pa.array([2.0**31, -(2.0**31), 2.0**31 - 1], pa.float32()), "int32"),
        (pa.array([-129, -128, 127, 128, None], pa.int64()), "int8"),
        (pa.array([127, 128, 255], pa.uint8()), "int8"),
        (pa.array([-1, 0, 2**32 - 1, 2**32], pa.int64()), "uint32"),
    ],
)
def test_numeric_columns_fit_integer_fields_exactly(values, kind) -> None:
    info = np.iinfo(np.dtype(kind))
    python = values.to_pylist()
    expected_fit = [
        v is None or (float(v).is_integer() and info.min <= int(v) <= info.max) for v in python
    ]
    got, failed = _cast(values, kind)
    assert failed == [not f for f in expected_fit]
    assert got == [
        int(v) if f and v is not None else None for v, f in zip(python, expected_fit, strict=True)
    ]


def test_uint64_and_float_keys_beyond_int64_are_quarantined_with_the_reason() -> None:
    config = _config({"t": {"type": "int64"}, "k": {"type": "int64", "min": 0}}, keys=["k"])
    keys = pa.array([2**63 + 5, 2**64 - 1, 7], pa.uint64())
    sink, summary = _run([pa.table({"t": [T0] * 3, "k": keys})], config)
    assert summary["events"]["quarantined"] == 2
    assert _reasons(sink) == [
        "k=9223372036854775813 is not an integer that fits int64",
        "k=18446744073709551615 is not an integer that fits int64",
    ]
    assert sink.result("windows/w").column("k").to_pylist() == [7]
    sink, _ = _run([pa.table({"t": [T0, T0], "k": pa.array([2.0**63, 2.0**62])})], config)
    assert _reasons(sink) == ["k=9.223372036854776e+18 is not an integer that fits int64"]
    assert sink.result("windows/w").column("k").to_pylist() == [2**62]


# -- 3. a number in a timestamp field is epoch ms, whatever its type ----------------------
def test_epoch_ms_of_any_physical_type_in_a_timestamp_field() -> None:
    ms = np.array([T0, T0 + 123, T0 + 59_999], dtype=np.int64)
    expected = pd.to_datetime(ms, unit="ms").as_unit("ms").tolist()
    floats = ms.astype(np.float64) + np.array([0.0, 0.9, 0.25])  # floored, not rounded
    columns = [
        pa.array(ms),
        pa.array(ms.astype(np.uint64)),
        pa.array(floats),
        pa.array(floats).cast(pa.string()),
        pa.array([str(v) for v in ms]),
        pa.array([f" {v:.12e} " for v in ms.astype(np.float64)]),
    ]
    for column in columns:
        values, failed = _cast(column, "timestamp")
        assert values == expected, column.type
        assert not any(failed)
    text = pa.array(["2023-11-14T22:13:20.123Z", "1e12", "abc", "1e400", None])
    values, failed = _cast(text, "timestamp")
    assert values[:2] == [pd.Timestamp("2023-11-14 22:13:20.123"), pd.Timestamp(10**12, unit="ms")]
    assert failed == [False, False, True, True, False]
    values, failed = _cast(pa.array([np.nan, np.inf, 2.0**64, -1.5]), "timestamp")
    assert failed == [True, True, True, False]
    assert values[3] == pd.Timestamp(-2, unit="ms")  # floored: -1.5 ms is in [-2, -1)
    for unit, per_ms in (("us", 1_000), ("ns", 1_000_000)):  # finer units floor alike
        ticks = pa.array([-per_ms // 2, -1_000 * per_ms - per_ms // 2, per_ms // 2, None],
                         pa.timestamp(unit))  # fmt: skip
        values, failed = _cast(ticks, "timestamp")
        assert values[:3] == [pd.Timestamp(v, unit="ms") for v in (-1, -1001, 0)], unit
        assert values[3] is None or pd.isna(values[3])


def test_nexmark_times_as_float_parquet_or_epoch_text_give_the_int64_windows(tmp_path) -> None:
    rng = np.random.default_rng(3)
    n = 500
    ms = T0 + np.sort(rng.integers(0, 600_000, n))
    auction = rng.integers(0, 20, n)
    config = _config(
        {"date_time": {"type": "timestamp", "required": True}, "auction": {"type": "int64"}},
        time="date_time",
        keys=["auction"],
    )
    outcomes = []
    for column in (pa.array(ms), pa.array(ms.astype(np.float64))):
        sink, summary = _run([pa.table({"date_time": column, "auction": auction})], config)
        outcomes.append(
            sink.result("windows/w").sort_by(
                [("window_start", "ascending"), ("auction", "ascending")]
            )
        )
    path = tmp_path / "bids.csv"
    pd.DataFrame({"auction": auction, "date_time": ms}).to_csv(path, index=False)
    sink, summary = _run_file(path, config)
    assert summary["events"]["valid"] == n
    outcomes.append(
        sink.result("windows/w").sort_by([("window_start", "ascending"), ("auction", "ascending")])
    )
    frame = pd.DataFrame({"start": ms // 60_000 * 60_000, "auction": auction})
    expected = frame.groupby(["start", "auction"]).size().reset_index(name="n")
    for table in outcomes:
        starts = pc.cast(table.column("window_start"), pa.int64()).to_pylist()
        assert starts == expected["start"].tolist()
        assert table.column("auction").to_pylist() == expected["auction"].tolist()
        assert table.column("n").to_pylist() == expected["n"].tolist()


# -- 7. lossy but representable casts round instead of failing -----------------------------
def test_integers_into_float32_round_like_numpy() -> None:
    ints = np.array([16_777_217, BIG + 1, -(2**62) - 1, 3], dtype=np.int64)
    values, failed = _cast(pa.array(ints), "float32")
    assert values == ints.astype(np.float32).tolist() and not any(failed)
    config = _config(
        {"t": {"type": "int64"}, "lat": {"type": "float32", "min": 0}},
        aggregations=[{"name": "top", "op": "max", "column": "lat"}],
    )
    sink, summary = _run([pa.table({"t": [T0, T0], "lat": pa.array([16_777_217, 1])})], config)
    assert summary["events"]["valid"] == 2
    assert sink.result("windows/w").column("top").to_pylist() == [float(np.float32(16_777_217))]


def test_timestamp_ns_into_the_int64_time_field_truncates_to_ms() -> None:
    ns = np.array([T0 * 10**6 + 123_456_789, T0 * 10**6 + 999_999, T0 * 10**6], dtype=np.int64)
    column = pa.array(ns, pa.timestamp("ns"))
    values, failed = _cast(column, "int64")
    assert values == (ns // 10**6).tolist() and not any(failed)
    # the timestamp field casts the same column the same way
    stamps, _ = _cast(column, "timestamp")
    assert [int(s.value // 10**6) for s in pd.to_datetime(stamps)] == values
    config = _config({"t": {"type": "int64"}})
    _, summary = _run([pa.table({"t": column})], config)
    assert summary["events"]["valid"] == 3 and summary["events"]["dead_lettered"] == 0


# -- 8. booleans from text ---------------------------------------------------------------
def test_bool_fields_read_true_false_and_0_1_from_csv(tmp_path) -> None:
    cells = ["true", "FALSE", " True ", "1", "0", "yes", "2", "", "false"]
    meaning = {"true": True, "false": False, "1": True, "0": False}
    path = tmp_path / "likes.csv"
    path.write_text("t,k,liked\n" + "".join(f"{T0 + i},1,{c}\n" for i, c in enumerate(cells)))
    config = _config(
        {
            "t": {"type": "int64"},
            "k": {"type": "int64"},
            "liked": {"type": "bool", "nullable": True},
        },
        keys=["k"],
        aggregations=[
            {"name": "n", "op": "count"},
            {"name": "likes", "op": "count", "where": {"liked": True}},
        ],
    )
    sink, summary = _run_file(path, config)
    parsed = [meaning.get(c.strip().lower()) for c in cells]
    bad = [i for i, c in enumerate(cells) if c and parsed[i] is None]
    assert summary["events"]["quarantined"] == len(bad) == 2
    quarantine = sink.result("quarantine")
    assert quarantine.column("_row").to_pylist() == bad
    assert _reasons(sink) == [
        "liked='yes' cannot be read as bool",
        "liked='2' cannot be read as bool",
    ]
    windows = sink.result("windows/w")
    assert windows.column("n").to_pylist() == [len(cells) - len(bad)]
    assert windows.column("likes").to_pylist() == [sum(p is True for p in parsed)]


def test_date_text_takes_one_format_per_field_fixed_by_its_first_values() -> None:
    """format="mixed" read 01/02 month-first and 13/02 day-first in one column."""
    schema = SchemaConfig.model_validate({"time": "ts", "fields": {"ts": {"type": "timestamp"}}})
    spec = schema.fields["ts"]

    def cast(validator: Validator, values: list[str | None]) -> tuple[list[Any], list[bool]]:
        result = validator.cast(pa.array(values), spec, "ts")
        failed = result.failed if result.failed is not None else np.zeros(len(values), bool)
        return result.array.to_pylist(), [bool(f) for f in failed]

    day_first = Validator(schema, ValidationConfig())
    values, failed = cast(day_first, ["01/02/2023 00:00", "13/02/2023 00:00", "02/01/2023 00:00",
                                      "2023-03-04T05:06:07Z", None])  # fmt: skip
    assert values[:4] == [pd.Timestamp(s) for s in ("2023-02-01", "2023-02-13", "2023-01-02",
                                                    "2023-03-04 05:06:07")]  # fmt: skip
    assert failed == [False] * 5 and values[4] is None
    values, failed = cast(day_first, ["03/04/2023 00:00", "Apr 5 2023"])  # a later batch
    assert values[0] == pd.Timestamp("2023-04-03") and failed == [False, True]
    quarantined = day_first.quarantine(
        pa.table({"ts": ["Apr 5 2023"]}),
        np.array([0]),
        np.array([codes.UNPARSEABLE]),
        np.array([0]),
        "f",
        0,
    )
    assert "format %d/%m/%Y %H:%M" in quarantined.column("_reason")[0].as_py()
    month_first = Validator(schema, ValidationConfig())  # ambiguous only: month-first
    values, _ = cast(month_first, ["01/02/2023 00:00", "02/01/2023 00:00"])
    assert values == [pd.Timestamp("2023-01-02"), pd.Timestamp("2023-02-01")]
