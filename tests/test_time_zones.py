"""``tz`` on a timestamp field: its window bounds, ``min``/``max`` and validated rows come
out as instants in that zone, whatever zone (or none) each batch's instants came in."""

from __future__ import annotations

import glob

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engine_testing import BASE_FIELDS, NEW_YORK, duckdb_windows, make_config, time_zone_case

from gpu_engine.config import parse_config
from gpu_engine.engine import Engine
from gpu_engine.errors import ConfigError
from gpu_engine.io.sinks import ParquetSink

WINDOWS = [
    {"type": "tumbling", "size": 1000},
    {"type": "sliding", "size": 2000, "slide": 500},
    {"type": "session", "gap": 300},
]
ZONED = pa.timestamp("ms", tz=NEW_YORK)


def expected_windows(frame: pd.DataFrame, window: dict) -> pd.DataFrame:
    """DuckDB's windows over the epoch-ms times, with min/max of ``seen`` per window."""
    rows = frame.rename(columns={"t_ms": "t"})
    aggs = [{"name": "n", "op": "count"}, {"name": "x_sum", "op": "sum", "column": "x"},
            {"name": "first_seen", "op": "min", "column": "seen_ms"},
            {"name": "last_seen", "op": "max", "column": "seen_ms"}]  # fmt: skip
    return duckdb_windows(rows, {**window, "keys": ["k"]}, aggs)


def as_epoch_ms(column: pd.Series) -> list:
    return [None if pd.isna(v) else int(pd.Timestamp(v).value // 1_000_000) for v in column]


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: w["type"])
def test_windows_come_out_in_the_fields_zone(window: dict) -> None:
    sink, frame = time_zone_case(window, "cpu")
    table = sink.result("windows/w")
    for name in ("window_start", "window_end", "first_seen", "last_seen"):
        assert table.schema.field(name).type == ZONED, name
    got = table.to_pandas().sort_values(["window_start", "k"]).reset_index(drop=True)
    expected = expected_windows(frame, window)
    assert len(got) == len(expected)
    for name in ("window_start", "window_end", "first_seen", "last_seen"):
        assert as_epoch_ms(got[name]) == [None if pd.isna(v) else int(v) for v in expected[name]]
    assert got["n"].tolist() == expected["n"].tolist()
    late = sink.result("late/w")  # validated rows, in the field's zone too
    assert late.schema.field("t").type == ZONED
    assert as_epoch_ms(late.column("t").to_pandas()) == [0]


def test_an_engine_writes_zoned_parquet(tmp_path) -> None:
    fields = {**BASE_FIELDS, "t": {"type": "timestamp", "tz": "Asia/Kolkata"}}
    config = make_config({"type": "tumbling", "size": 1000, "keys": ["k"],
                          "aggregations": [{"name": "n", "op": "count"}]},
                         schema={"time": "t", "fields": fields})  # fmt: skip
    with Engine(config, sinks=[ParquetSink(tmp_path)]) as engine:
        engine.push(pd.DataFrame({"t": pd.to_datetime([0, 1500], unit="ms"), "k": [1, 1],
                                  "s": "a", "e": 0, "x": 1.0, "u": 1}))  # fmt: skip
    table = pq.read_table(glob.glob(str(tmp_path / "windows" / "w" / "*.parquet"))[0])
    assert table.schema.field("window_start").type == pa.timestamp("ms", tz="Asia/Kolkata")
    assert as_epoch_ms(table.column("window_start").to_pandas()) == [0, 1000]


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"type": "int64", "tz": "UTC"}, "tz applies to timestamp fields only"),
        ({"type": "timestamp", "tz": "Mars/Olympus"}, "'Mars/Olympus' is not a time zone"),
        ({"type": "timestamp", "tz": "+0530"}, "'\\+0530' is not a time zone Python"),
        ({"type": "timestamp", "tz": " "}, "tz must name a time zone"),
    ],
)
def test_a_bad_tz_is_refused_naming_the_field(field: dict, message: str) -> None:
    fields = {**BASE_FIELDS, "seen": field}
    with pytest.raises(ConfigError, match=message) as error:
        parse_config({"schema": {"time": "t", "fields": fields},
                      "windows": [{"name": "w", "type": "tumbling", "size": 1000,
                                   "aggregations": [{"name": "n", "op": "count"}]}]})  # fmt: skip
    assert "seen" in str(error.value)
