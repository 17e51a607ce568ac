"""Results as Arrow, pandas or cuDF frames (``MemorySink.result`` and ``CallbackSink``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from engine_testing import make_config, random_events, validation_failing_at

from gpu_engine.engine import Engine
from gpu_engine.errors import ConfigError
from gpu_engine.io.sinks import CallbackSink, MemorySink

WINDOW = {"type": "tumbling", "size": 2000, "keys": ["k"], "allowed_lateness": 500}
HAS_CUDF = importlib.util.find_spec("cudf") is not None


def _run(*sinks) -> None:  # type: ignore[no-untyped-def]
    frame = random_events(np.random.default_rng(3), 400, span_ms=10_000, disorder_ms=1500)
    frame.loc[::50, "e"] = 9  # some rows for the quarantine
    engine = Engine(make_config(WINDOW, batching={"max_rows": 100}), sinks=list(sinks))
    for start in range(0, len(frame), 100):
        engine.push(frame.iloc[start : start + 100])
    engine.close()


def test_memory_sink_gives_pandas_frames_equal_to_its_arrow_tables() -> None:
    sink = MemorySink()
    _run(sink)
    for kind in ("windows/w", "quarantine", "late/w"):
        table = sink.result(kind)
        assert isinstance(table, pa.Table) and table.num_rows > 0, kind
        frame = sink.result(kind, frame="pandas")
        assert isinstance(frame, pd.DataFrame)
        pd.testing.assert_frame_equal(frame, table.to_pandas(), check_dtype=False)
        for name in table.column_names:  # integers with nulls: nullable, not float64
            column = table.column(name)
            if pa.types.is_integer(column.type) and column.null_count:
                assert isinstance(frame[name].dtype, pd.api.extensions.ExtensionDtype), name


def test_pandas_frames_keep_integers_past_2_to_the_53_where_a_column_has_nulls() -> None:
    """Arrow's ``to_pandas`` makes an integer column holding a null float64, which
    rounded an exact ``min`` of 2^62 + 1 (a window where ``where`` matched nothing holds
    the null)."""
    aggs = [{"name": "u_min", "op": "min", "column": "u", "where": {"e": 4}},
            {"name": "u_max", "op": "max", "column": "u"}]  # fmt: skip
    frame = random_events(np.random.default_rng(1), 3, n_keys=1, span_ms=10, null_share=0.0)
    frame["t"] = [1_000_000, 1_000_001, 1_002_000]
    frame["e"] = pd.array([4, 0, 0], dtype="int8")
    frame["u"] = pd.array([2**62 + 1, 2**62 + 3, 2**62 + 5], dtype="Int64")
    sink = MemorySink()
    with Engine(make_config({"type": "tumbling", "size": 1000, "aggregations": aggs}),
                sinks=[sink]) as engine:  # fmt: skip
        engine.push(frame)
    got = sink.result("windows/w", frame="pandas")
    assert str(got["u_min"].dtype) == "Int64" and got["u_max"].dtype == np.int64
    assert got["u_min"].tolist() == [2**62 + 1, pd.NA]
    assert got["u_max"].tolist() == [2**62 + 3, 2**62 + 5]


def test_callback_sink_delivers_the_frame_asked_for() -> None:
    seen: dict[str, list] = {"windows": [], "quarantine": [], "late": []}
    sink = CallbackSink(
        lambda name, f: seen["windows"].append(f),
        on_quarantine=seen["quarantine"].append,
        on_late=lambda name, f: seen["late"].append(f),
        frame="pandas",
    )
    memory = MemorySink()
    _run(sink, memory)
    for kind, frames in seen.items():
        assert frames and all(isinstance(f, pd.DataFrame) for f in frames), kind
    got = pd.concat(seen["windows"], ignore_index=True)
    pd.testing.assert_frame_equal(got, memory.result("windows/w", frame="pandas"))


@pytest.mark.skipif(HAS_CUDF, reason="cuDF is installed here")
def test_cudf_frames_without_cudf() -> None:
    with pytest.raises(ConfigError, match=r"results as cuDF frames need cuDF"):
        CallbackSink(lambda name, f: None, frame="cudf")
    sink = MemorySink()
    _run(sink)
    with pytest.raises(ConfigError, match=r"need cuDF"):
        sink.result("windows/w", frame="cudf")
    assert isinstance(sink.result("windows/w", frame="auto"), pa.Table)  # falls back to Arrow


def test_unknown_frame_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown result frame 'polars'"):
        CallbackSink(lambda name, f: None, frame="polars")  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDF, reason="needs cuDF (and so a GPU)")
def test_cudf_frames_equal_arrow() -> None:  # pragma: no cover - needs cuDF
    import cudf

    sink = MemorySink()
    _run(sink)
    for frame in ("cudf", "auto"):
        got = sink.result("windows/w", frame=frame)
        assert isinstance(got, cudf.DataFrame)
        pd.testing.assert_frame_equal(got.to_pandas(), sink.result("windows/w", frame="pandas"))


def test_callback_sink_hands_on_dead_letters_and_the_summary() -> None:
    """A batch that cannot be processed is dead-lettered: an embedder with only a
    ``CallbackSink`` must see its rows (they were counted but dropped before)."""
    seen: dict[str, list] = {"dead": [], "summary": []}
    sink = CallbackSink(
        lambda name, f: None,
        on_dead_letter=seen["dead"].append,
        on_close=seen["summary"].append,
        frame="pandas",
    )
    with validation_failing_at(2, "disk on fire"):
        _run(sink)
    (dead,) = seen["dead"]
    assert isinstance(dead, pd.DataFrame)
    assert dead["_row"].tolist() == list(range(100, 200))
    assert set(dead["_error"]) == {"RuntimeError: disk on fire"}
    (summary,) = seen["summary"]
    assert summary["events"]["dead_lettered"] == 100 and summary["events"]["in"] == 400


def test_callback_sink_gets_the_failed_summary_of_an_aborted_run() -> None:
    summaries: list[dict] = []
    engine = Engine(
        make_config(WINDOW), sinks=[CallbackSink(lambda n, f: None, on_close=summaries.append)]
    )
    engine.push(random_events(np.random.default_rng(4), 50, span_ms=1000))
    engine.abort(RuntimeError("host shutting down"))
    (summary,) = summaries
    assert summary["failed"] is True and summary["error"] == "host shutting down"
    assert summary["events"]["in"] == 50
