"""A sink or listener that raises: the error reaches the caller, and no row is lost.

Before, the error escaped from the middle of a batch: that batch was never counted, the
batches a push had completed after it were never processed, and the sinks after the
failing one missed the output."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from engine_testing import make_config, random_events, wait_for, window_frame

from gpu_engine.engine import BatchReport, Engine
from gpu_engine.io.sinks import CallbackSink, MemorySink

WINDOW = {"type": "tumbling", "size": 2000, "keys": ["k"], "allowed_lateness": 500}


def _events(rows: int = 400) -> pd.DataFrame:
    frame = random_events(np.random.default_rng(3), rows, span_ms=10_000, disorder_ms=1500)
    frame.loc[::40, "e"] = 9  # quarantined rows
    return frame


def _failing_once(kind: str) -> tuple[CallbackSink, dict[str, int]]:
    """A sink whose ``kind`` callback raises the first time it is called."""
    calls = {"n": 0}

    def fail_once(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError(f"{kind} sink broke")

    def ignore(*args: Any) -> None:
        pass

    callbacks = {"on_windows": ignore, "on_quarantine": ignore, "on_late": ignore}
    callbacks[f"on_{kind}"] = fail_once
    return CallbackSink(**callbacks), calls  # type: ignore[arg-type]


def _reference(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    sink = MemorySink()
    engine = Engine(make_config(WINDOW, batching={"max_rows": 100}), sinks=[sink])
    engine.push(frame)
    summary = engine.close()
    return window_frame(sink), summary["events"]


@pytest.mark.parametrize("kind", ["windows", "quarantine", "late"])
def test_a_raising_sink_loses_no_row_and_starves_no_other_sink(kind: str) -> None:
    frame = _events()
    expected_windows, expected_events = _reference(frame)
    failing, calls = _failing_once(kind)
    memory = MemorySink()
    # The failing sink first: the memory sink after it must still get every output.
    engine = Engine(make_config(WINDOW, batching={"max_rows": 100}), sinks=[failing, memory])
    with pytest.raises(RuntimeError, match=f"{kind} sink broke"):
        engine.push(frame)  # four batches in one push; the sink fails in the first
    assert calls["n"] >= 1
    assert engine.summary()["accounted"]
    events = engine.close()["events"]  # the engine goes on after the error
    assert events == expected_events
    pd.testing.assert_frame_equal(window_frame(memory), expected_windows)
    quarantined = memory.result("quarantine")
    assert quarantined is not None and quarantined.num_rows == events["quarantined"]
    assert memory.result("late/w").num_rows == events["late"]


def test_a_raising_listener_loses_no_row() -> None:
    frame = _events()
    expected_windows, expected_events = _reference(frame)
    reports: list[BatchReport] = []

    def listener(report: BatchReport) -> None:
        reports.append(report)
        if len(reports) == 1:
            raise RuntimeError("listener broke")

    memory = MemorySink()
    engine = Engine(
        make_config(WINDOW, batching={"max_rows": 100}), sinks=[memory], listeners=[listener]
    )
    with pytest.raises(RuntimeError, match="listener broke"):
        engine.push(frame)
    assert len(reports) == 4  # every batch of the push was processed and reported
    assert engine.close()["events"] == expected_events
    pd.testing.assert_frame_equal(window_frame(memory), expected_windows)


def test_a_sink_failing_at_close_aborts_the_run_with_a_failed_summary() -> None:
    """The last windows are emitted by ``close``: a sink that fails then must not get a
    clean summary, as it is missing output."""
    failing, _ = _failing_once("windows")
    summaries: list[dict[str, Any]] = []
    failing.on_close = summaries.append
    memory = MemorySink()
    engine = Engine(make_config(WINDOW), sinks=[failing, memory])
    engine.push(_events(50))  # one batch of 50 of the default 65,536: nothing emitted yet
    with pytest.raises(RuntimeError, match="windows sink broke"):
        engine.close()
    (summary,) = summaries
    assert summary["failed"] is True and summary["error"] == "windows sink broke"
    assert summary["events"]["in"] == 50 and summary["accounted"]
    assert memory.summary is not None and memory.summary["failed"] is True
    assert window_frame(memory)["n"].sum() == summary["events"]["valid"]


def test_a_sink_failing_in_the_background_stops_the_run_accounted() -> None:
    """With ``background=True`` the failure is the thread's: later calls raise it, and
    the run's counts still add up."""
    failing, _ = _failing_once("windows")
    memory = MemorySink()
    engine = Engine(
        make_config(WINDOW, batching={"max_rows": 100}), sinks=[failing, memory], background=True
    )
    table = pa.Table.from_pandas(_events(), preserve_index=False)
    raised: list[Exception] = []
    for start in range(0, table.num_rows, 100):
        try:
            engine.push(table.slice(start, 100))
        except RuntimeError as error:
            raised.append(error)
            break
        assert wait_for(lambda: engine.summary()["events"]["queued"] == 0)
    assert [str(e) for e in raised] == ["windows sink broke"]  # from the thread, handed on
    with pytest.raises(RuntimeError, match="windows sink broke"):
        engine.close()
    summary = memory.summary
    assert summary is not None and summary["failed"] is True and summary["accounted"]
    events = summary["events"]
    assert events["in"] == events["valid"] + events["quarantined"] + events["late"]


def test_an_output_error_goes_with_the_calls_own_error_and_no_further() -> None:
    """A listener failed on batch 1 and batch 2 of the same push failed validation
    (``on_error: fail``): the push raised the validation error, and the listener's
    error, left pending, was raised by the next call that had nothing to do with it."""
    from gpu_engine.errors import EngineError

    def listener(report: BatchReport) -> None:
        raise RuntimeError("listener broke")

    config = make_config(
        WINDOW, batching={"max_rows": 100}, validation={"mode": "strict", "on_error": "fail"}
    )
    engine = Engine(config, sinks=[MemorySink()], listeners=[listener])
    frame = _events(200)
    frame["e"] = 1
    frame.loc[150, "e"] = 9  # batch 2 fails
    with pytest.raises(EngineError) as raised:
        engine.push(frame)
    assert any("listener broke" in note for note in raised.value.__notes__)
    with pytest.raises(EngineError, match="closed"):  # fail mode ended the run, no more
        engine.poll()
    summary = engine.summary_data
    assert summary is not None and summary["failed"] and summary["accounted"]
    assert summary["events"]["buffered"] == 100  # the failed batch and the one after it


def test_a_sink_whose_own_close_raises_leaves_every_sink_a_failed_summary_last() -> None:
    """The run then failed: a sink closed before the failing one is closed again, so
    the last summary every sink gets says so (``CallbackSink`` documents the second
    call)."""
    summaries: list[dict[str, Any]] = []

    class BrokenClose(MemorySink):
        def close(self, summary: dict[str, Any]) -> None:
            raise OSError("disk full")

    good = CallbackSink(lambda name, frame: None, on_close=summaries.append)
    engine = Engine(make_config(WINDOW), sinks=[good, BrokenClose()])
    engine.push(_events(50))
    with pytest.raises(OSError, match="disk full"):
        engine.close()
    assert [s.get("failed", False) for s in summaries] == [False, True]
    assert summaries[-1]["error"] == "disk full" and summaries[-1]["events"]["in"] == 50


def test_an_output_error_says_which_sink_and_window_raised_it() -> None:
    def broken(name: str, table: Any) -> None:
        raise RuntimeError("disk on fire")

    def listener(report: BatchReport) -> None:
        raise ValueError("bad listener")

    engine = Engine(make_config(WINDOW, batching={"max_rows": 100}),
                    sinks=[CallbackSink(broken)], listeners=[listener])  # fmt: skip
    with pytest.raises(RuntimeError, match="disk on fire") as raised:
        engine.push(_events())
        engine.close()
    notes = getattr(raised.value, "__notes__", [])
    assert notes == ["(raised by CallbackSink.windows('w'))"], notes


def test_a_listener_method_is_named_a_listener_and_a_reraised_error_noted_once() -> None:
    class Quota:
        error = RuntimeError("over quota")  # the same object raised every time

        def on_batch(self, report: BatchReport) -> None:
            raise self.error

    engine = Engine(make_config(WINDOW, batching={"max_rows": 100}),
                    sinks=[MemorySink()], listeners=[Quota().on_batch])  # fmt: skip
    for _ in range(3):
        with pytest.raises(RuntimeError, match="over quota") as raised:
            engine.push(_events())
    assert raised.value.__notes__ == ["(raised by listener Quota.on_batch)"]
