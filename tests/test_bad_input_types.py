"""Input the engine cannot read as the schema says is quarantined row by row, with the
field and the reason, and never stops a run or goes missing: text that is not UTF-8,
columns of a type no value of which fits the field, decimals (read exactly), dicts of
Python objects. And a run whose ``close`` fails still leaves readable files."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engine_testing import make_config, run_engine

from gpu_engine.engine import Engine
from gpu_engine.errors import InputError, SchemaError
from gpu_engine.io.sinks import MemorySink, ParquetSink
from gpu_engine.io.sources import read_batches

COUNT = {"type": "tumbling", "size": 1000, "keys": ["k"],
         "aggregations": [{"name": "n", "op": "count"},
                          {"name": "x_sum", "op": "sum", "column": "x"},
                          {"name": "u_sum", "op": "sum", "column": "u"}]}  # fmt: skip
FIELDS = ["t", "k", "s", "e", "x", "u"]


def _rows(n: int) -> dict[str, Any]:
    return {
        "t": pa.array(1_000_000 + np.arange(n) * 10, pa.int64()),
        "k": pa.array(np.arange(n) % 3, pa.int64()),
        "e": pa.array(np.zeros(n), pa.int8()),
    }


def _not_utf8(values: list[bytes | None]) -> pa.Array:
    """A string column holding ``values`` as they are (Arrow does not check them)."""
    return pa.array(values, pa.binary()).view(pa.string())


def _counts(sink: MemorySink) -> int:
    windows = sink.result("windows/w")
    return 0 if windows is None else sum(windows.column("n").to_pylist())


@pytest.mark.parametrize("source", ["push", "parquet", "jsonl"])
def test_text_that_is_not_utf8_is_quarantined_in_its_row(source: str, tmp_path: Path) -> None:
    """Arrow's Parquet and JSON readers pass such bytes through: the run crashed in the
    string keys, after some windows had counted the batch and others had not."""
    words = [b"ok", b"caf\xe9", None, "\u00e9t\u00e9".encode(), b"\xff\xfe"]
    table = pa.table({**_rows(5), "s": _not_utf8(words)})
    config = make_config({**COUNT, "keys": ["s"]})
    if source == "push":
        sink, summary = run_engine(config, table)
    else:
        path = tmp_path / f"events.{source}"
        if source == "parquet":
            pq.write_table(table, path)
        else:
            lines = [b'{"t": %d, "k": %d, "e": 0, "s": %s}' % (t, k, b"null" if s is None
                     else b'"' + s + b'"') for t, k, s in zip(table["t"].to_pylist(),
                     table["k"].to_pylist(), words, strict=True)]  # fmt: skip
            path.write_bytes(b"\n".join(lines) + b"\n")
        sink = MemorySink()
        with Engine(config, sinks=[sink]) as engine:
            for batch, name, first in read_batches(path, 100, FIELDS):
                engine.push(batch, source=name, first_row=first)
        summary = engine.close()
    assert summary["events"] == {"in": 5, "valid": 3, "quarantined": 2, "late": 0,
                                 "dead_lettered": 0, "buffered": 0, "queued": 0}  # fmt: skip
    quarantine = sink.result("quarantine")
    assert quarantine is not None
    rows = quarantine.to_pylist()  # readable: the bad text is null there, quoted in _reason
    assert [r["_row"] for r in rows] == [1, 4]
    assert [r["_field"] for r in rows] == ["s", "s"]
    assert [r["_reason"] for r in rows] == [
        "s=b'caf\\xe9' is not UTF-8 text",
        "s=b'\\xff\\xfe' is not UTF-8 text",
    ]
    assert [r["s"] for r in rows] == [None, None]
    windows = sink.result("windows/w")
    assert windows is not None
    counts = zip(windows["s"].to_pylist(), windows["n"].to_pylist(), strict=True)
    assert sorted(counts, key=lambda pair: str(pair[0])) == [
        (None, 1),
        ("ok", 1),
        ("\u00e9t\u00e9", 1),
    ]


@pytest.mark.parametrize(
    "field, column, shown",
    [
        ("x", pa.array([1, None, 3], pa.duration("ms")), "duration[ms]"),
        ("x", pa.array([{"a": 1.0}, None, {"a": 2.0}]), "struct<a: double>"),
        ("u", pa.array([[1], None, [2, 3]]), "list<item: int64>"),
        ("u", pa.array([1, None, 2], pa.time64("us")), "time64[us]"),
        ("x", pa.array([1, None, 2], pa.timestamp("s")), "timestamp[s]"),
        ("t", pa.array([19_000, 19_001, 19_002], pa.date32()), "date32[day]"),
        ("s", pa.array([{"a": "x"}, None, {"a": "y"}]), "struct<a: string>"),
    ],
)
def test_a_column_no_value_of_which_fits_is_quarantined_row_by_row(
    field: str, column: pa.Array, shown: str
) -> None:
    """Before, the run stopped with a SchemaError, even in quarantine mode, and the batch
    was neither windowed, quarantined nor dead-lettered. Now each value fails in its row
    (a null is still a null), naming the column's type."""
    table = pa.table({**_rows(3), field: column})
    sink, summary = run_engine(make_config(COUNT), table)
    bad = [i for i in range(3) if column[i].is_valid]
    events = summary["events"]
    assert (events["quarantined"], events["valid"]) == (len(bad), 3 - len(bad))
    assert summary["accounted"]
    quarantine = sink.result("quarantine")
    assert quarantine is not None
    assert quarantine["_row"].to_pylist() == bad
    assert quarantine["_field"].to_pylist() == [field] * len(bad)
    for reason in quarantine["_reason"].to_pylist():
        assert reason.startswith(f"{field}=") and reason.endswith(f"(its column is {shown})")
    assert _counts(sink) == 3 - len(bad)


def test_in_fail_mode_such_a_column_stops_the_run_at_its_first_row() -> None:
    table = pa.table({**_rows(3), "x": pa.array([None, 5, 6], pa.duration("s"))})
    config = make_config(COUNT, validation={"on_error": "fail"})
    with pytest.raises(SchemaError, match=r"^push, row 1: x=datetime.timedelta\(seconds=5\)"
                       r" cannot be read as float64 \(its column is duration\[s\]\)$"):  # fmt: skip
        run_engine(config, table)


def test_decimals_are_read_as_their_exact_numbers() -> None:
    """A decimal column is read as its text is (as a CSV's numbers): exactly into integer
    fields (2^60 + 1, past float64's 2^53), correctly rounded into float ones; a decimal
    with a fraction fails an integer field."""
    xs = [Decimal("1.125"), Decimal("-2.5"), None, Decimal("0.1"), Decimal("7")]
    us = [Decimal(2**60 + 1), Decimal(-3), Decimal("1.5"), None, Decimal("4.000")]
    table = pa.table({**_rows(5), "x": pa.array(xs, pa.decimal128(10, 3)),
                      "u": pa.array(us, pa.decimal128(25, 3))})  # fmt: skip
    config = make_config({**COUNT, "keys": []})
    sink, _ = run_engine(config, table)
    quarantine = sink.result("quarantine")
    assert quarantine is not None
    assert quarantine["_row"].to_pylist() == [2]
    assert quarantine["_reason"].to_pylist() == [
        "u=Decimal('1.500') is not an integer that fits int64"
    ]
    windows = sink.result("windows/w")
    assert windows is not None
    assert windows["n"].to_pylist() == [4]
    assert windows["x_sum"].to_pylist() == [
        float(sum(float(x) for x in (xs[0], xs[1], xs[3], xs[4])))
    ]
    assert windows["u_sum"].to_pylist() == [2**60 + 1 - 3 + 4]


def test_a_pushed_dict_of_mixed_python_objects_is_read_as_text() -> None:
    """As a pandas object column is: the values the field cannot read are quarantined
    one by one. Before, the whole push failed without naming the column."""
    columns = {"t": [1_000_000, 1_000_001, 1_000_002, 1_000_003], "e": [0, 0, 0, 0],
               "k": np.array([1, "2", "x", 3.5], dtype=object)}  # fmt: skip
    sink = MemorySink()
    with Engine(make_config(COUNT), sinks=[sink]) as engine:
        engine.push(columns)
    summary = engine.close()
    quarantine = sink.result("quarantine")
    assert quarantine is not None
    assert quarantine["_reason"].to_pylist() == [
        "k='x' is not an integer that fits int64",
        "k='3.5' is not an integer that fits int64",
    ]
    assert summary["events"]["valid"] == 2


def test_missing_values_and_odd_objects_in_a_mixed_column_are_read_as_text() -> None:
    """The text of a mixed column compared each value with itself (``v != v``, for NaN):
    pandas' NA, an array and a signalling Decimal raised from inside pandas and numpy,
    naming no column, and the push counted nothing. Now NA, NaT, None and NaN are nulls
    and anything else its text, quarantined where the field cannot read it."""
    values = ["1", pd.NA, 2, np.array([1, 2]), Decimal("sNaN"), pd.NaT, None, float("nan")]
    n = len(values)
    frame = pd.DataFrame({"t": 1_000_000 + np.arange(n), "e": np.zeros(n, np.int8),
                          "k": pd.Series(values, dtype=object)})  # fmt: skip
    sink, summary = run_engine(make_config(COUNT), frame)
    assert summary["events"]["in"] == n and summary["accounted"]
    quarantine = sink.result("quarantine")
    null = "k is null but the field is not nullable"
    assert quarantine["_row"].to_pylist() == [1, 3, 4, 5, 6, 7]
    assert quarantine["_reason"].to_pylist() == [
        null, "k='[1 2]' is not an integer that fits int64",
        "k='sNaN' is not an integer that fits int64", null, null, null,
    ]  # fmt: skip
    assert summary["events"]["valid"] == 2


@pytest.mark.parametrize(
    "column, message",
    [
        (np.zeros((4, 2)), "cannot read pushed column 'k' of shape (4, 2)"),
        (np.zeros(4, np.complex128), "cannot read pushed column 'k' ("),
    ],
)
def test_a_pushed_column_that_cannot_be_read_is_named(column: Any, message: str) -> None:
    engine = Engine(make_config(COUNT), sinks=[MemorySink()])
    with pytest.raises(InputError) as error:
        engine.push({"t": np.arange(4), "k": column})
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("background", [False, True])
def test_a_pandas_frame_arrow_cannot_read_is_an_input_error(background: bool) -> None:
    """A sparse column made Arrow raise a bare TypeError out of ``push``."""
    frame = pd.DataFrame({"t": np.arange(3), "k": pd.arrays.SparseArray([0, 0, 1])})
    engine = Engine(make_config(COUNT), sinks=[MemorySink()], background=background)
    with pytest.raises(InputError, match=r"pandas frame: Sparse pandas data \(column k\)"):
        engine.push(frame)
    assert engine.close()["events"]["in"] == 0


def test_a_close_that_fails_still_leaves_readable_files_and_a_failed_summary(
    tmp_path: Path,
) -> None:
    """``close`` processes the rows still waiting for a batch; a failure there (here a bad
    row in fail mode) left every Parquet file without its footer, and no summary."""
    config = make_config(COUNT, validation={"on_error": "fail"}, batching={"max_rows": 1000})
    engine = Engine(config, sinks=[ParquetSink(tmp_path)])
    engine.push(pd.DataFrame({"t": [1_000_000, 1_003_000], "k": [1, 2], "e": [0, 0]}))
    engine.flush()  # processed: the first window is emitted once the second event passes it
    engine.push(pd.DataFrame({"t": [1_004_000], "k": [1], "e": [9]}))  # not allowed
    with pytest.raises(SchemaError, match=r"^push, row 2: e=9 is not one of"):
        engine.close()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed"] is True and "e=9" in summary["error"]
    assert summary["events"]["valid"] == 2 and summary["events"]["in"] == 3
    assert pq.read_table(tmp_path / "windows" / "w")["n"].to_pylist() == [1]


def test_quarantined_pushes_whose_columns_clash_in_type_come_back_as_one_table() -> None:
    """Quarantined rows keep their input types: a list column, then a struct one, made
    ``MemorySink.result("quarantine")`` raise; the clashing column is now its values' text."""
    sink = MemorySink()
    with Engine(make_config(COUNT), sinks=[sink]) as engine:
        engine.push(pa.table({**_rows(1), "x": pa.array([[1.0, 2.0]])}))
        engine.flush()
        engine.push(pa.table({**_rows(1), "x": pa.array([{"a": 3.0}])}))
    quarantine = sink.result("quarantine")
    assert quarantine is not None
    assert quarantine["x"].to_pylist() == ["[1.0, 2.0]", "{'a': 3.0}"]
    assert quarantine["_field"].to_pylist() == ["x", "x"]


def test_a_time_past_the_ms_range_fails_its_row_only() -> None:
    """2^62 s overflows int64 ms: Arrow's cast failed the whole column, so the valid
    row beside it was quarantined too."""
    seconds = pa.array([1_000, 2**62, None], pa.timestamp("s"))
    table = pa.table({**_rows(3), "t": pa.array([1_000_000, 1_000_001, 1_000_002]),
                      "u": seconds})  # fmt: skip
    sink, _summary = run_engine(make_config(COUNT), table)
    quarantine = sink.result("quarantine")
    assert quarantine is not None and quarantine["_row"].to_pylist() == [1]
    assert quarantine["_reason"].to_pylist() == [
        f"u={2**62} cannot be read as int64 (its column is timestamp[s])"
    ]
    windows = sink.result("windows/w")
    assert windows is not None
    assert sum(u for u in windows["u_sum"].to_pylist() if u is not None) == 1_000_000  # 1000 s


def test_values_python_cannot_hold_are_shown_and_quarantined() -> None:
    """A list of times past year 9999 and an int past int64 in an object column: the
    message (and a dead letter) read such values through Python, and raised."""
    times = pa.array([[1], [2**62]], pa.list_(pa.timestamp("s")))
    sink, summary = run_engine(make_config(COUNT), pa.table({**_rows(2), "x": times}))
    quarantine = sink.result("quarantine")
    assert quarantine is not None and summary["events"]["quarantined"] == 2
    assert str(2**62) in quarantine["_reason"][1].as_py()
    engine = Engine(make_config(COUNT), sinks=[sink := MemorySink()])
    engine.push(pd.DataFrame({"t": [1_000_000, 1_000_001], "k": [1, 2], "e": [0, 0],
                              "u": np.array([5, 2**70], dtype=object)}))  # fmt: skip
    engine.close()
    quarantine = sink.result("quarantine")
    assert quarantine is not None
    assert quarantine["_reason"].to_pylist() == [f"u='{2**70}' is not an integer that fits int64"]


def test_binary_columns_are_read_as_text_in_any_field() -> None:
    """Older Parquet writers (Impala, Hive) store text as plain binary."""
    table = pa.table({**_rows(3), "u": pa.array([b"12", b" 7 ", b"x"], pa.binary())})
    sink, _summary = run_engine(make_config(COUNT), table)
    quarantine = sink.result("quarantine")
    assert quarantine is not None
    assert quarantine["_reason"].to_pylist() == ["u=b'x' is not an integer that fits int64"]
    windows = sink.result("windows/w")
    assert windows is not None
    assert sum(u for u in windows["u_sum"].to_pylist() if u is not None) == 19


class _FailingSink(MemorySink):
    def close(self, summary: dict[str, Any]) -> None:
        raise OSError("disk full")


def test_a_sink_that_fails_to_close_leaves_the_others_closed(tmp_path: Path) -> None:
    """The summary was set before the sinks closed, so the abort that followed a failed
    ``close`` did nothing: the next sink's Parquet files had no footer, no summary.json."""
    out = tmp_path
    engine = Engine(make_config(COUNT), sinks=[_FailingSink(), ParquetSink(out)])
    engine.push(pa.table(_rows(3)))
    with pytest.raises(OSError, match="disk full"):
        engine.close()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] is True and summary["error"] == "disk full"
    assert pq.read_table(out / "windows" / "w")["n"].to_pylist() == [1, 1, 1]


def test_quarantined_times_in_two_zones_past_pythons_datetime_come_back_as_text() -> None:
    """The text fallback read them through Python, whose ``datetime`` stops at 9999."""
    config = make_config({**COUNT, "keys": []})
    sink = MemorySink()
    with Engine(config, sinks=[sink]) as engine:
        for zone in ("UTC", "Europe/Paris"):
            stamps = pa.array([2**61], pa.timestamp("ms", tz=zone))
            engine.push(pa.table({**_rows(1), "t": stamps}))
            engine.flush()
    quarantine = sink.result("quarantine")
    assert quarantine is not None and quarantine.num_rows == 2
    assert quarantine["_reason"].to_pylist() == [f"t={2**61} is above max 4102444800000"] * 2


@pytest.mark.parametrize(
    "frame",
    [pd.DataFrame(index=range(5)), pa.table({"x": pa.nulls(5)}).drop_columns(["x"])],
    ids=["pandas", "arrow"],
)
def test_rows_without_columns_are_refused_and_the_engine_goes_on(frame: Any) -> None:
    """A pandas frame's rows vanished (``in`` 0); an Arrow table's broke the quarantine at
    close, every row unaccounted for."""
    sink = MemorySink()
    engine = Engine(make_config(COUNT), sinks=[sink])
    with pytest.raises(InputError, match="the pushed frame has 5 rows but no columns"):
        engine.push(frame)
    engine.push(pa.table(_rows(3)))
    summary = engine.close()
    assert summary["events"]["in"] == 3 and summary["accounted"]
    Engine(make_config(COUNT)).push(pd.DataFrame(index=range(0)))  # no rows: still fine


def test_hexadecimal_text_is_not_read_as_an_integer() -> None:
    """Arrow's cast reads "0x10" as 16; the CSV path (and every other reader) quarantines
    it. Pushed, Parquet and JSON text went through Arrow's cast when every value of the
    column passed it, in integer fields and in the time field."""
    table = pa.table({
        "t": pa.array(["1000000", "1000001", "0x10", "1000003"]),
        "k": pa.array(["16", "0x10", "2", "0X1f"]),
        "e": pa.array(np.zeros(4), pa.int8()),
    })  # fmt: skip
    sink, summary = run_engine(make_config(COUNT), table)
    quarantine = sink.result("quarantine")
    assert quarantine["_row"].to_pylist() == [1, 2, 3]
    reasons = quarantine["_reason"].to_pylist()
    assert reasons[0] == "k='0x10' is not an integer that fits int64"
    assert reasons[1].startswith("t='0x10' ")
    assert reasons[2] == "k='0X1f' is not an integer that fits int64"
    assert summary["events"]["valid"] == 1


def test_a_run_end_encoded_column_is_read_as_its_values() -> None:
    """Arrow's take has no kernel for run-end encoded arrays: every row of such a push was
    dead-lettered."""
    n = 6
    table = pa.table({**_rows(n), "k": pa.RunEndEncodedArray.from_arrays([2, 6], [7, 8])})
    sink, summary = run_engine(make_config(COUNT), table)
    assert summary["events"]["valid"] == n and summary["events"]["dead_lettered"] == 0
    windows = sink.result("windows/w").to_pandas()
    assert windows.groupby("k")["n"].sum().to_dict() == {7: 2, 8: 4}
    # with a row to quarantine, the valid rows are taken out of the batch (Arrow's take)
    text = pa.RunEndEncodedArray.from_arrays([2, 5, 6], ["7", "x8", "9"])
    sink, summary = run_engine(make_config(COUNT), pa.table({**_rows(n), "k": text}))
    assert summary["events"]["valid"] == 3 and summary["events"]["quarantined"] == 3
    assert summary["events"]["dead_lettered"] == 0


def test_a_pandas_column_arrow_has_no_type_for_is_refused_naming_it() -> None:
    frame = pd.DataFrame({"t": [1_000_000], "k": np.array([1 + 2j]), "e": [0]})
    with pytest.raises(InputError, match=r"cannot read pushed column 'k' \(complex128\)"):
        Engine(make_config(COUNT)).push(frame)
