"""The push API without a caller that polls: a background thread applies the batch
timeout and the idle watermark (``Engine(poll_every=...)``), and pushes from several
threads at once lose or double nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from engine_testing import (
    ALL_AGGS,
    assert_frames_match,
    duckdb_windows,
    in_thread,
    make_config,
    push_from_threads,
    random_events,
    summaries_read_during,
    wait_for,
    window_frame,
)

from gpu_engine.engine import Engine
from gpu_engine.errors import EngineError, SchemaError
from gpu_engine.io.sinks import MemorySink

TUMBLING = {"type": "tumbling", "size": 1000, "keys": ["k"]}
COMPARED = ["window_start", "window_end", "k", "n", "likes", "x_sum", "x_min", "x_max", "u_sum"]


def _events(n: int, seed: int = 0) -> pd.DataFrame:
    return random_events(np.random.default_rng(seed), n, span_ms=3000)


def test_the_batch_timeout_fires_with_no_call_after_the_push() -> None:
    config = make_config(TUMBLING, batching={"max_rows": 1000, "max_delay": 50})
    polled = Engine(config, sinks=[MemorySink()], poll_every=0.01)
    unpolled = Engine(config, sinks=[MemorySink()])
    for engine in (polled, unpolled):
        engine.push(_events(10))
    assert wait_for(lambda: polled.summary()["events"]["valid"] == 10)
    assert polled.summary()["events"]["buffered"] == 0
    assert polled.summary()["latency_ms"]["p50"] >= 50  # cut by the timeout, not at once
    assert unpolled.summary()["events"]["buffered"] == 10  # nothing polls it
    for engine in (polled, unpolled):
        assert engine.close()["accounted"]


def test_the_idle_watermark_emits_windows_with_no_call_after_the_push() -> None:
    window = {**TUMBLING, "idle_timeout": 100, "aggregations": ALL_AGGS}
    sink = MemorySink()
    engine = Engine(make_config(window, batching={"max_delay": 20}), sinks=[sink], poll_every=0.01)
    frame = _events(300)
    expected = duckdb_windows(frame, window, ALL_AGGS)
    engine.push(frame)
    # Event time spans 3 s; after 100 ms idle, the watermark follows processing time.
    assert wait_for(lambda: engine.summary()["windows_emitted"] == len(expected))
    emitted = window_frame(sink)
    engine.close()
    assert_frames_match(emitted, expected, COMPARED)
    assert len(window_frame(sink)) == len(emitted)  # every window was out before close


def test_pushes_from_many_threads_at_once_are_each_counted_once() -> None:
    """Eight threads push 1-40 rows at a time while the poller cuts batches: the windows
    equal DuckDB's over every row pushed, and the summary accounts for each."""
    window = {**TUMBLING, "allowed_lateness": 3_600_000, "aggregations": ALL_AGGS}
    config = make_config(window, batching={"max_rows": 256, "max_delay": 1}, workers=2)
    sink = MemorySink()
    engine = Engine(config, sinks=[sink], poll_every=0.001)
    frame = push_from_threads(engine, threads=8, pushes=120)
    summary = engine.close()
    assert summary["events"]["in"] == summary["events"]["valid"] == len(frame)
    assert summary["accounted"] and summary["batches"] > 1
    assert_frames_match(window_frame(sink), duckdb_windows(frame, window, ALL_AGGS), COMPARED)


def test_a_failure_in_the_background_is_raised_by_the_next_call() -> None:
    config = make_config(TUMBLING, batching={"max_delay": 10}, validation={"on_error": "fail"})
    sink = MemorySink()
    engine = Engine(config, sinks=[sink], poll_every=0.005)
    bad = _events(3)
    bad.loc[1, "e"] = 9  # not an allowed value
    engine.push(bad)
    assert engine._poller is not None
    assert wait_for(lambda: engine._poller is not None and engine._poller.error is not None)
    with pytest.raises(SchemaError, match="row 1"):
        engine.push(_events(3))
    with pytest.raises(SchemaError, match="row 1"):
        engine.close()
    assert engine.summary_data is not None and engine.summary_data["failed"]
    assert wait_for(lambda: engine._poller is not None and not engine._poller.running)


def test_close_stops_the_poller_and_a_closed_engine_refuses_pushes() -> None:
    engine = Engine(make_config(TUMBLING), sinks=[MemorySink()], poll_every=0.005)
    assert engine._poller is not None and engine._poller.running
    engine.push(_events(5))
    assert engine.close()["events"]["valid"] == 5
    assert wait_for(lambda: engine._poller is not None and not engine._poller.running)
    with pytest.raises(EngineError, match="closed"):
        engine.push(_events(5))


def test_an_engine_dropped_without_close_does_not_keep_its_poller() -> None:
    engine = Engine(make_config(TUMBLING), sinks=[MemorySink()], poll_every=0.005)
    poller = engine._poller
    assert poller is not None
    del engine
    assert wait_for(lambda: not poller.running)


@pytest.mark.parametrize("every", [0, -1.0, float("nan"), float("inf"), "10ms", True])
def test_poll_every_must_be_a_positive_number_of_seconds(every: object) -> None:
    with pytest.raises((TypeError, ValueError), match="poll_every"):
        Engine(make_config(TUMBLING), poll_every=every)  # type: ignore[arg-type]


def _finishes(call: Callable[[], object], seconds: float = 120.0) -> list[object]:
    """``call``'s result or exception, from a daemon thread: [] if it did not return in
    ``seconds`` (a deadlock)."""
    thread, out = in_thread(call)
    thread.join(seconds)
    return out


def _row(t: int) -> pd.DataFrame:
    return pd.DataFrame({"t": [t], "k": [1], "s": ["a"], "e": [0], "x": [1.0], "u": [1]})


def test_a_sink_that_calls_the_engine_mid_batch_is_refused_not_deadlocked() -> None:
    """A sink calling ``close()`` while its push holds the lock (and the poller waits for
    it) hung the push; from the poller's thread it closed the engine on a batch not yet
    counted. It is refused, naming the call, and the engine closes afterwards whole."""

    class ClosingSink(MemorySink):
        engine: Engine | None = None
        refused: ClassVar[list[Exception]] = []

        def late(self, name: str, table: object) -> None:
            super().late(name, table)  # type: ignore[arg-type]
            time.sleep(0.1)  # the poller is waiting for the lock by now
            assert self.engine is not None
            try:
                self.engine.close()
            except EngineError as error:
                self.refused.append(error)

    config = make_config(TUMBLING, batching={"max_rows": 2, "max_delay": 1000})
    sink = ClosingSink()
    engine = Engine(config, sinks=[sink], poll_every=0.01)
    sink.engine = engine
    engine.push(pd.concat([_row(10_000), _row(10_001)]))
    assert _finishes(lambda: engine.push(pd.concat([_row(0), _row(1)]))) == [None]  # late
    assert len(sink.refused) == 1
    assert "Engine.close() was called from a sink or listener" in str(sink.refused[0])
    summary = engine.close()
    assert summary["accounted"] and summary["events"]["late"] == 2


def test_a_monitor_action_reading_the_engine_does_not_deadlock_a_push(tmp_path) -> None:
    """The monitor's thread runs ``run_optimizer`` (which reads ``batch_metrics``) holding
    the monitor's lock while a push emits a window the monitor watches: reading the engine
    took its lock, and each side waited for the other."""
    from gpu_engine.monitor import MonitorConfig
    from gpu_engine.monitoring import EngineMonitoring

    class SlowSink(MemorySink):
        def windows(self, name: str, table: object) -> None:
            super().windows(name, table)  # type: ignore[arg-type]
            time.sleep(0.1)

    rules = MonitorConfig.model_validate({"interval": "20ms", "rules": [
        {"name": "Opt", "kind": "threshold", "expr": "window:w.n > 0",
         "actions": [{"name": "run_optimizer"}]}]})  # fmt: skip
    monitoring = EngineMonitoring(tmp_path, rules)
    window = {"type": "tumbling", "size": 1000, "aggregations": [{"name": "n", "op": "count"}]}
    config = make_config(window, batching={"max_rows": 2, "max_delay": 1000})
    engine = Engine(config, sinks=[SlowSink(), monitoring], listeners=[monitoring.on_batch])
    monitoring.attach(engine)
    monitoring.start()
    try:
        frame = pd.concat([_row(i * 1000) for i in range(12)], ignore_index=True)
        assert _finishes(lambda: engine.push(frame)) == [None]
        assert engine.close()["accounted"]
    finally:
        monitoring.stop()


def test_a_summary_read_from_another_thread_always_adds_up() -> None:
    """Mid-batch, the rows in are counted before their outcomes: a health check reading
    ``summary()`` from its own thread saw ``accounted: False`` nearly every time."""
    window = {**TUMBLING, "allowed_lateness": 3_600_000}
    engine = Engine(make_config(window, batching={"max_rows": 256}), sinks=[MemorySink()])
    rng = np.random.default_rng(9)

    def pushes() -> None:
        for _ in range(150):
            engine.push(random_events(rng, int(rng.integers(1, 600)), span_ms=3000))

    reads, torn = summaries_read_during(engine, pushes)
    assert reads > 100 and torn == []
    assert engine.close()["accounted"]
