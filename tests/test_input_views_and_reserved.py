"""Inputs that broke the outputs or the types of the rows they came with.

* An input column named like one of the quarantine's own (``_reason``, ``_source``...; a
  quarantine file read back and pushed, say) was written beside the engine's column of
  that name: the quarantine's Parquet could not be read, nor its parts concatenated. It
  is kept under its name with ``_input`` appended.
* A column of one of Arrow's view types (``string_view``: Polars' ``CompatLevel.newest()``)
  had its whole batch dead-lettered when one row failed: Arrow's ``take`` has no kernel
  for views.
* A ``.json`` file (one array of objects) was read as text, every column a string, where
  the same rows as JSON lines keep their JSON types.

Results are compared with pandas, pyarrow or Python's json module.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engine_testing import validation_failing_at

from gpu_engine.config import parse_config
from gpu_engine.config.models import EngineConfig
from gpu_engine.engine import Engine
from gpu_engine.io.frames import to_arrow
from gpu_engine.io.sinks import MemorySink, ParquetSink
from gpu_engine.io.sources import read_batches
from gpu_engine.validation import QUARANTINE_COLUMNS, Validator

T0 = 1_700_000_000_000


def _config(max_rows: int = 2) -> EngineConfig:
    return parse_config(
        {
            "schema": {
                "time": "t",
                "fields": {
                    "t": {"type": "int64", "required": True},
                    "k": {"type": "int64", "min": 0},
                },
            },
            "windows": [
                {
                    "name": "w",
                    "type": "tumbling",
                    "size": 1000,
                    "keys": ["k"],
                    "aggregations": [{"name": "n", "op": "count"}],
                }
            ],
            "batching": {"max_rows": max_rows},
            "backend": "cpu",
        }
    )


def _bad_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The oracle's quarantine of ``_config``: the rows whose ``k`` is below 0."""
    return frame[frame["k"] < 0].reset_index(drop=True)


# -- 1. input columns named like the quarantine's ----------------------------------------
def test_a_pushed_reason_and_source_are_kept_beside_the_engines() -> None:
    frame = pd.DataFrame({"t": [1, 2, 3, 4], "k": [-1, 1, -1, 1]})
    frame["_reason"] = ["mine0", "mine1", "mine2", "mine3"]
    frame["_source"] = [1.5, 2.5, 3.5, 4.5]
    sink = MemorySink()
    with Engine(_config(), sinks=[sink]) as engine:
        engine.push(frame)
    assert len(sink.tables["quarantine"]) == 2  # one part a batch: they must concatenate
    got = sink.result("quarantine", frame="pandas")
    assert list(got.columns) == ["t", "k", "_reason_input", "_source_input", *QUARANTINE_COLUMNS]
    expected = _bad_rows(frame)
    assert got["_reason_input"].tolist() == expected["_reason"].tolist()
    assert got["_source_input"].tolist() == expected["_source"].tolist()
    assert got["_source"].tolist() == ["push", "push"]
    assert got["_row"].tolist() == [0, 2]
    assert got["_reason"].tolist() == ["k=-1 is below min 0"] * 2
    windows = sink.result("windows/w", frame="pandas")
    assert windows["n"].sum() == 2


def test_a_quarantine_read_back_and_pushed_again_keeps_every_column(tmp_path: Path) -> None:
    """The quarantine's Parquet is readable (pandas refused it: "Multiple matches for
    FieldRef.Name(_reason)"), and pushed back in, twice, its columns are renamed the same
    way in every batch, ``_input`` once more where the name is already taken."""
    frame = pd.DataFrame(
        {"t": np.arange(6, dtype=np.int64), "k": [-1, 1, -2, -3, 1, -4], "note": list("abcdef")}
    )
    current = frame
    for round_ in range(1, 3):
        out = tmp_path / f"round{round_}"
        with Engine(_config(), sinks=[ParquetSink(out)]) as engine:
            engine.push(current)
        read = pd.read_parquet(out / "quarantine")
        assert len(set(read.columns)) == len(read.columns)
        read = read.sort_values("t").reset_index(drop=True)
        expected = _bad_rows(frame)
        pd.testing.assert_frame_equal(read[["t", "k", "note"]], expected[["t", "k", "note"]])
        assert read["_reason"].tolist() == [f"k={k} is below min 0" for k in expected["k"]]
        assert read["_row"].tolist() == list(np.flatnonzero(current["k"] < 0))
        if round_ == 2:  # the first round's reasons, rows and sources, renamed
            first = current.sort_values("t").reset_index(drop=True)
            for name in QUARANTINE_COLUMNS:
                assert read[f"{name}_input"].tolist() == first[name].tolist()
        current = read
    assert [c for c in current.columns if c.startswith("_reason")] == [
        "_reason_code_input",
        "_reason_input",
        "_reason_code",
        "_reason",
    ]
    # A third time, ``_reason_input`` is an input column of its own: ``_reason`` becomes
    # ``_reason_input_input`` (and so on for every collision), still nothing lost.
    sink = MemorySink()
    with Engine(_config(), sinks=[sink]) as engine:
        engine.push(current)
    third = sink.result("quarantine", frame="pandas").sort_values("t").reset_index(drop=True)
    assert len(set(third.columns)) == len(third.columns)
    assert third["_reason_input_input"].tolist() == current["_reason"].tolist()
    assert third["_reason_input"].tolist() == current["_reason_input"].tolist()
    assert third["_row_input_input"].tolist() == current["_row"].tolist()


def test_a_dead_lettered_push_with_such_columns_keeps_them_in_its_values() -> None:
    """The dead letter's columns are the engine's alone: the row's own ``_source`` and
    ``_error`` are in ``_values`` (Python's ast reads them back)."""
    frame = pd.DataFrame({"t": [1, 2], "k": [1, 2], "_source": ["a", "b"], "_error": [7, 8]})
    sink = MemorySink()
    with validation_failing_at(1, "disk on fire"), Engine(_config(), sinks=[sink]) as engine:
        engine.push(frame)
    dead = sink.result("dead_letter")
    assert dead.column_names == ["_source", "_row", "_error", "_values"]
    assert dead.column("_source").to_pylist() == ["push", "push"]
    values = [ast.literal_eval(v) for v in dead.column("_values").to_pylist()]
    assert values == frame.to_dict(orient="records")


# -- 2. Arrow's view types ---------------------------------------------------------------
VIEW_FIELDS = {
    "schema": {
        "time": "ts",
        "fields": {
            "ts": {"type": "int64"},
            "cat": {"type": "string"},
            "v": {"type": "float64", "min": 0},
        },
    },
    "windows": [
        {
            "name": "w",
            "type": "tumbling",
            "size": 1000,
            "keys": ["cat"],
            "aggregations": [{"name": "n", "op": "count"}],
        }
    ],
    "backend": "cpu",
}


def _polars_views() -> pa.Table:
    frame = pl.DataFrame(
        {"ts": [T0, T0 + 1, T0 + 2], "cat": ["a", "b", "a"], "v": [1.0, -1.0, 3.0]}
    )
    table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
    assert table.schema.field("cat").type == pa.string_view()
    return table


def _windows_oracle(table: pa.Table) -> list[tuple[str, int]]:
    good = table.to_pandas()
    good = good[good["v"] >= 0]
    return sorted(good.groupby("cat").size().items())


def _run_views(tables: list[pa.Table]) -> MemorySink:
    sink = MemorySink()
    with Engine(parse_config(VIEW_FIELDS), sinks=[sink]) as engine:
        for table in tables:
            engine.push(table)
    return sink


def test_the_validator_takes_the_bad_rows_of_a_string_view_column() -> None:
    config = parse_config(VIEW_FIELDS)
    table = _polars_views()
    checked = Validator(config.event_schema, config.validation).validate(table, "push", 0)
    assert checked.n_quarantined == 1 and checked.valid.num_rows == 2
    assert checked.quarantine is not None
    assert checked.quarantine.select(["ts", "cat", "v"]).to_pylist() == [table.to_pylist()[1]]


def test_a_pushed_frame_has_no_views_past_the_edge() -> None:
    """The CUDA backend takes a batch's bad rows from the table as pushed (its ``host``),
    not through the validator's ``take``: views are given as plain types where a push
    comes in, the same values (pyarrow's ``to_pylist`` the oracle)."""
    views = _polars_views().append_column(
        "l", pa.array([["x"], None, ["y", None]], pa.list_view(pa.string_view()))
    )
    table = to_arrow(views)
    assert table.schema.types[1:] == [pa.string(), pa.float64(), pa.list_(pa.string())]
    assert table.to_pylist() == views.to_pylist()
    assert table.take(pa.array([1])).to_pylist() == [views.to_pylist()[1]]
    plain = pa.table({"a": [1, 2], "page_view": ["x", "y"]})  # "view" in a name only
    assert to_arrow(plain) is plain


def test_a_polars_frame_with_views_and_a_bad_row_quarantines_only_that_row() -> None:
    table = _polars_views()
    sink = _run_views([table])
    assert sink.summary is not None
    events = sink.summary["events"]
    assert (events["valid"], events["quarantined"], events["dead_lettered"]) == (2, 1, 0)
    quarantine = sink.result("quarantine")
    assert quarantine.select(["ts", "cat", "v"]).to_pylist() == [table.to_pylist()[1]]
    windows = sink.result("windows/w").to_pandas()
    assert sorted(zip(windows["cat"], windows["n"], strict=True)) == _windows_oracle(table)


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        (pa.binary_view(), [b"x", None, b"\x00\xff"]),
        (pa.list_view(pa.int64()), [[1], [2, 3], None]),
        (pa.large_list_view(pa.string()), [["a"], None, ["b", "c"]]),
        (pa.list_(pa.string_view()), [["a"], ["b", None], []]),
        (pa.large_list(pa.binary_view()), [[b"a"], [b"b"], None]),
        (pa.struct([("s", pa.string_view())]), [{"s": "a"}, {"s": None}, None]),
        (pa.map_(pa.string_view(), pa.int64()), [[("a", 1)], None, [("b", 2)]]),
        (pa.struct([("l", pa.list_view(pa.string_view()))]), [None, {"l": ["x", None]}, {"l": []}]),
        (pa.list_(pa.list_view(pa.binary_view())), [[[b"a"]], [None, [b"b", b"c"]], None]),
        (pa.list_(pa.string_view(), 2), [["a", "b"], ["c", None], None]),
        (pa.dictionary(pa.int32(), pa.string_view()), ["a", "b", "a"]),
    ],
    ids=str,
)
def test_an_extra_column_of_a_view_type_keeps_its_values_in_the_quarantine(
    kind: pa.DataType, values: list[Any]
) -> None:
    plain = _polars_views()
    base = plain.set_column(1, "cat", plain.column("cat").cast(pa.string()))  # the extra's alone
    if pa.types.is_dictionary(kind):  # pyarrow builds no such array from Python values
        extra = pa.array(values, kind.value_type).dictionary_encode()
    else:
        extra = pa.array(values, kind)
    table = base.append_column("extra", extra)
    sink = _run_views([table])
    assert sink.summary is not None
    events = sink.summary["events"]
    assert (events["valid"], events["quarantined"], events["dead_lettered"]) == (2, 1, 0)
    quarantine = sink.result("quarantine")
    assert quarantine.column("extra").to_pylist() == [values[1]]
    assert quarantine.select(["ts", "cat", "v"]).to_pylist() == [base.to_pylist()[1]]


def test_a_parquet_file_of_views_quarantines_only_its_bad_row(tmp_path: Path) -> None:
    """Arrow writes the view types' schema into the file and reads them back as views."""
    table = _polars_views()
    path = tmp_path / "views.parquet"
    pq.write_table(table, path)
    config = parse_config(VIEW_FIELDS)
    batches = list(read_batches(path, 100, list(config.event_schema.fields)))
    assert batches[0][0].schema.field("cat").type == pa.string_view()
    sink = MemorySink()
    with Engine(config, sinks=[sink]) as engine:
        for batch, source, first in batches:
            engine.push(batch, source=source, first_row=first)
    assert sink.summary is not None
    assert sink.summary["events"]["quarantined"] == 1
    assert sink.summary["events"]["dead_lettered"] == 0
    quarantine = sink.result("quarantine")
    assert quarantine.column("_row").to_pylist() == [1]
    assert quarantine.column("_source").to_pylist() == [str(path)]
    windows = sink.result("windows/w").to_pandas()
    assert sorted(zip(windows["cat"], windows["n"], strict=True)) == _windows_oracle(table)


# -- 3. a JSON array file keeps JSON's types ---------------------------------------------
JSON_FIELDS = {
    "schema": {
        "time": "t",
        "fields": {
            "t": {"type": "int64"},
            "k": {"type": "int64"},
            "s": {"type": "string"},
            "b": {"type": "bool"},
            "v": {"type": "float64", "max": 2000},
        },
    },
    "windows": [
        {
            "name": "w",
            "type": "tumbling",
            "size": 1000,
            "keys": ["k"],
            "aggregations": [
                {"name": "n", "op": "count"},
                {"name": "v_sum", "op": "sum", "column": "v"},
            ],
        }
    ],
    "backend": "cpu",
}
PYTHON_TO_ARROW = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}


def _json_rows(n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(3)
    return [
        {
            "t": T0 + 7 * i,
            "k": int(rng.integers(0, 3)),
            "s": str(rng.choice(["a", "é", 'x"y'])),
            "b": bool(rng.integers(0, 2)),
            "v": round(float(rng.uniform(0, 2500)), 3),
        }
        for i in range(n)
    ]


def _run_json(path: Path) -> MemorySink:
    config = parse_config(JSON_FIELDS)
    sink = MemorySink()
    with Engine(config, sinks=[sink]) as engine:
        for table, source, first in read_batches(path, 64, list(config.event_schema.fields)):
            engine.push(table, source=source, first_row=first)
    return sink


@pytest.mark.parametrize("indent", [None, 2])
def test_a_json_array_has_the_types_and_results_of_the_same_json_lines(
    tmp_path: Path, indent: int | None
) -> None:
    rows = _json_rows(300)
    array, lines = tmp_path / "rows.json", tmp_path / "rows.jsonl"
    array.write_text(json.dumps(rows, indent=indent))
    lines.write_text("".join(json.dumps(row) + "\n" for row in rows))
    oracle = json.loads(array.read_text())  # Python's json module: the types of each value
    names = list(rows[0])
    for path in (array, lines):
        tables = [t for t, _, _ in read_batches(path, 1000, names)]
        (table,) = tables
        for name in names:
            assert table.schema.field(name).type == PYTHON_TO_ARROW[type(oracle[0][name])]
        assert table.select(names).to_pylist() == oracle
    from_array, from_lines = _run_json(array), _run_json(lines)
    quarantine = from_array.result("quarantine")
    assert quarantine.schema.field("v").type == pa.float64()  # it was string ['2000.5']
    expected_bad = [row for row in oracle if row["v"] > 2000]
    assert quarantine.select(names).to_pylist() == expected_bad
    assert quarantine.drop_columns(["_source"]).equals(
        from_lines.result("quarantine").drop_columns(["_source"])
    )
    assert from_array.result("windows/w").equals(from_lines.result("windows/w"))


def test_a_json_array_of_mixed_types_is_read_as_text_as_json_lines_are(tmp_path: Path) -> None:
    """Arrow cannot type a column of a number and a text: both files are read as text,
    and the validator reads each value (the text ``"7"`` in an int64 field too)."""
    rows = [
        {"t": T0, "k": 1, "s": "a", "b": True, "v": 1.0},
        {"t": T0 + 1, "k": "7", "s": "b", "b": False, "v": 2.0},
    ]
    array, lines = tmp_path / "mixed.json", tmp_path / "mixed.jsonl"
    array.write_text(json.dumps(rows))
    lines.write_text("\n".join(json.dumps(row) for row in rows))
    names = list(rows[0])
    read = {}
    for path in (array, lines):
        (table,) = [t for t, _, _ in read_batches(path, 100, names)]
        read[path.suffix] = table
        assert all(table.schema.field(n).type == pa.string() for n in names)
    assert read[".json"].equals(read[".jsonl"])
    windows = _run_json(array).result("windows/w").to_pandas()
    assert sorted(zip(windows["k"], windows["n"], strict=True)) == [(1, 1), (7, 1)]
