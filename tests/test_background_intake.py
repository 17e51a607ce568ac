"""``Engine(background=True)``: a push only queues its rows and a thread of the engine
processes them, so a push never waits for a batch; the queue is bounded (backpressure),
kept in push order, and counted in the summary until it is processed."""

from __future__ import annotations

import threading
import time

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

from gpu_engine.engine import BatchReport, Engine
from gpu_engine.errors import EngineError, SchemaError
from gpu_engine.io.sinks import MemorySink

TUMBLING = {"type": "tumbling", "size": 1000, "keys": ["k"]}
LATE_OK = {**TUMBLING, "allowed_lateness": 3_600_000}  # pushes of random times: none late
COMPARED = ["window_start", "window_end", "k", "n", "likes", "x_sum", "x_min", "x_max", "u_sum"]


def _events(n: int, seed: int = 0) -> pd.DataFrame:
    return random_events(np.random.default_rng(seed), n, span_ms=3000)


class _Gate:
    """A batch listener that holds the engine's thread inside a batch until opened."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, report: BatchReport) -> None:
        self.entered.set()
        assert self.opened.wait(120)


def test_pushes_from_many_threads_through_a_small_queue_equal_duckdb() -> None:
    """Eight threads push 1-40 rows at a time into a queue of at most 100 rows, so pushes
    wait for room: every row is windowed once, as DuckDB windows them."""
    window = {**LATE_OK, "aggregations": ALL_AGGS}
    config = make_config(window, batching={"max_rows": 256, "max_delay": 1}, workers=2)
    sink = MemorySink()
    engine = Engine(config, sinks=[sink], background=True, max_queued_rows=100)
    frame = push_from_threads(engine, threads=8, pushes=120)
    summary = engine.close()
    assert summary["events"]["in"] == summary["events"]["valid"] == len(frame)
    assert summary["accounted"] and summary["events"]["queued"] == 0
    assert_frames_match(window_frame(sink), duckdb_windows(frame, window, ALL_AGGS), COMPARED)


def test_a_push_returns_while_its_batch_waits_and_the_summary_counts_it_queued() -> None:
    gate = _Gate()
    config = make_config(TUMBLING, batching={"max_rows": 10})
    engine = Engine(config, sinks=[MemorySink()], listeners=[gate], background=True)
    engine.push(_events(10, seed=1))  # a whole batch: the engine's thread takes it
    assert gate.entered.wait(120)  # ... and is held inside it
    engine.push(_events(25, seed=2))  # returns though the engine is busy
    summary = engine.summary()
    assert summary["events"]["in"] == 35 and summary["events"]["queued"] == 35
    assert summary["events"]["valid"] == 0 and summary["accounted"]
    gate.opened.set()
    # The last 5 rows by the batch timeout, with no further call.
    assert wait_for(lambda: engine.summary()["events"]["queued"] == 0)
    assert wait_for(lambda: engine.summary()["events"]["buffered"] == 0)
    summary = engine.close()
    events = summary["events"]
    assert events["valid"] + events["late"] == 35 and summary["accounted"]


def test_a_full_queue_makes_a_push_wait_for_room_in_the_order_pushes_came() -> None:
    gate = _Gate()
    config = make_config(LATE_OK, batching={"max_rows": 10, "max_delay": 1000})
    sink = MemorySink()
    engine = Engine(config, sinks=[sink], listeners=[gate], background=True, max_queued_rows=15)
    frames = [_events(10, seed=i) for i in range(4)]
    engine.push(frames[0])
    assert gate.entered.wait(120)
    engine.push(frames[1])  # queued: 10 of 15 rows
    waiting = []
    for frame in frames[2:]:  # 10 more would pass 15: each waits, in turn
        waiting.append(in_thread(lambda frame=frame: engine.push(frame)))
        time.sleep(0.2)
    assert all(thread.is_alive() for thread, _ in waiting)
    assert engine.summary()["events"]["queued"] == 20  # the one in flight, one queued
    gate.opened.set()
    for thread, out in waiting:
        thread.join(120)
        assert out == [None]
    summary = engine.close()
    assert summary["events"]["valid"] == 40 and summary["accounted"]
    times = window_frame(sink)  # every row once, whichever order the waiting ones went in
    assert times["n"].sum() == 40
    engine_rows = Engine(config, sinks=[MemorySink()], background=True, max_queued_rows=5)
    engine_rows.push(_events(50, seed=9))  # more than the bound, into an empty queue
    assert engine_rows.close()["events"]["valid"] == 50


def test_rows_are_numbered_and_batched_in_push_order_as_without_the_queue() -> None:
    """Row numbers (the quarantine's ``_source`` and ``_row``), batches and windows are those
    of a plain engine, though the engine's thread takes runs of queued pushes that
    continue one another as one. Rows are numbered on from the last push, whatever its
    source; runs are broken by: the other source (every third push); a gap in the row
    numbers (every eleventh); a ``u`` column of float64 (every seventh: another schema)."""
    rng = np.random.default_rng(3)
    pushes = []
    end = 0
    for i, n in enumerate(rng.integers(1, 30, 80)):
        frame = _events(int(n), seed=i)
        frame.loc[0, "e"] = 9  # not allowed: each push's first row is quarantined
        if i % 7 == 0:
            frame["u"] = frame["u"].astype("float64")
        first = end + (1000 if i % 11 == 0 else 0)
        pushes.append((frame, "ab"[(i // 3) % 2], first))
        end = first + len(frame)
    window = {**LATE_OK, "aggregations": ALL_AGGS}
    config = make_config(window, batching={"max_rows": 64, "max_delay": 60_000})
    results = []
    for background in (False, True):
        sink = MemorySink()
        gate = _Gate()  # holds the engine's thread in the first batch: the rest queue up
        if not background:
            gate.opened.set()
        bound = 100_000 if background else None
        engine = Engine(config, sinks=[sink], listeners=[gate], background=background,
                        poll_every=60.0, max_queued_rows=bound)  # fmt: skip
        for frame, source, first in pushes:
            engine.push(frame, source=source, first_row=first)
        gate.opened.set()
        summary = engine.close()
        quarantine = sink.result("quarantine")
        assert quarantine is not None
        rows = quarantine.select(["_source", "_row"]).to_pylist()
        results.append((summary["batches"], rows, window_frame(sink)))
    assert results[0][:2] == results[1][:2]
    assert_frames_match(results[1][2], results[0][2], COMPARED)


def test_a_failure_in_the_engines_thread_is_raised_by_the_next_call() -> None:
    config = make_config(TUMBLING, batching={"max_rows": 3}, validation={"on_error": "fail"})
    engine = Engine(config, sinks=[MemorySink()], background=True)
    bad = _events(3)
    bad.loc[1, "e"] = 9
    engine.push(bad)
    assert engine._intake is not None
    assert wait_for(lambda: engine._intake is not None and engine._intake.error is not None)
    with pytest.raises(SchemaError, match="row 1"):
        engine.push(_events(3))
    with pytest.raises(SchemaError, match="row 1"):
        engine.close()
    assert engine.summary_data is not None and engine.summary_data["failed"]
    assert wait_for(lambda: engine._intake is not None and not engine._intake.running)


def test_abort_leaves_the_queued_rows_counted_as_queued() -> None:
    gate = _Gate()
    config = make_config(TUMBLING, batching={"max_rows": 10, "max_delay": 60_000})
    sink = MemorySink()
    engine = Engine(config, sinks=[sink], listeners=[gate], background=True)
    engine.push(_events(10))
    assert gate.entered.wait(120)
    engine.push(_events(7))  # not a batch, nor due: queued or buffered when the abort comes
    aborting, out = in_thread(lambda: engine.abort(RuntimeError("stop")))
    time.sleep(0.2)
    gate.opened.set()  # the batch in progress finishes, then the abort
    aborting.join(120)
    summary = out[0]
    assert isinstance(summary, dict) and summary["failed"] and summary["accounted"]
    events = summary["events"]  # the 7 rows were taken before the abort, or not
    assert events["valid"] == 10 and events["queued"] + events["buffered"] == 7
    with pytest.raises(EngineError, match="closed"):
        engine.push(_events(1))


def test_flush_processes_the_queue_in_the_callers_thread() -> None:
    config = make_config(LATE_OK, batching={"max_rows": 1000, "max_delay": 60_000})
    engine = Engine(config, sinks=[MemorySink()], background=True, poll_every=60.0)
    for seed in range(5):
        engine.push(_events(30, seed=seed))
    engine.flush()
    summary = engine.summary()
    assert summary["events"]["valid"] == 150 and summary["events"]["buffered"] == 0
    assert summary["events"]["queued"] == 0 and summary["batches"] == 1
    assert engine.close()["accounted"]


def test_the_batch_timeout_and_idle_watermark_act_with_no_call_after_the_push() -> None:
    window = {**TUMBLING, "idle_timeout": 100, "aggregations": ALL_AGGS}
    config = make_config(window, batching={"max_rows": 100_000, "max_delay": 20})
    sink = MemorySink()
    engine = Engine(config, sinks=[sink], background=True)
    frame = _events(300)
    expected = duckdb_windows(frame, window, ALL_AGGS)
    engine.push(frame)
    assert wait_for(lambda: engine.summary()["windows_emitted"] == len(expected))
    assert_frames_match(window_frame(sink), expected, COMPARED)
    assert engine.close()["accounted"]


def test_a_sink_pushing_from_the_engines_thread_is_refused() -> None:
    """A full queue would wait for the very thread that pushes."""
    refused: list[Exception] = []

    class PushingSink(MemorySink):
        engine: Engine | None = None

        def windows(self, name: str, table: object) -> None:
            super().windows(name, table)  # type: ignore[arg-type]
            assert self.engine is not None
            try:
                self.engine.push(_events(1))
            except EngineError as error:
                refused.append(error)

    sink = PushingSink()
    config = make_config({**TUMBLING, "idle_timeout": 10}, batching={"max_delay": 5})
    engine = Engine(config, sinks=[sink], background=True)
    sink.engine = engine
    engine.push(_events(20))
    assert wait_for(lambda: bool(refused))
    assert "Engine.push() was called from a sink or listener" in str(refused[0])
    assert engine.close()["accounted"]


def test_an_engine_dropped_without_close_does_not_keep_its_thread() -> None:
    engine = Engine(make_config(TUMBLING), sinks=[MemorySink()], background=True)
    intake = engine._intake
    assert intake is not None and intake.running
    del engine
    assert wait_for(lambda: not intake.running)


def test_the_queue_bound_is_checked() -> None:
    with pytest.raises(ValueError, match="max_queued_rows"):
        Engine(make_config(TUMBLING), max_queued_rows=10)  # no queue without background
    for bound in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_queued_rows"):
            Engine(make_config(TUMBLING), background=True, max_queued_rows=bound)  # type: ignore[arg-type]


def test_a_summary_read_from_another_thread_always_adds_up() -> None:
    config = make_config(LATE_OK, batching={"max_rows": 256})
    engine = Engine(config, sinks=[MemorySink()], background=True, max_queued_rows=2000)
    rng = np.random.default_rng(9)

    def pushes() -> None:
        pushed = 0
        for _ in range(150):
            frame = random_events(rng, int(rng.integers(1, 600)), span_ms=3000)
            engine.push(frame)
            pushed += len(frame)
            assert engine.summary()["events"]["in"] == pushed  # queued rows are in at once

    reads, torn = summaries_read_during(engine, pushes)
    assert reads > 100 and torn == []
    assert engine.close()["accounted"]


def test_a_push_waiting_for_room_wakes_the_engines_thread() -> None:
    """The thread waits for a batch of rows or ``poll_every`` (here 10 s); a queue bound
    under a batch left each push that had to wait for room waiting that long."""
    config = make_config(TUMBLING, batching={"max_rows": 40, "max_delay": 20_000})
    engine = Engine(config, sinks=[MemorySink()], background=True, max_queued_rows=5)
    began = time.monotonic()
    for seed in range(3):
        engine.push(_events(4, seed=seed))
    assert time.monotonic() - began < 5.0
    assert engine.close()["events"]["in"] == 12


def test_rows_that_complete_a_batch_are_processed_at_once() -> None:
    """With rows already buffered (or a push of another source, which cuts the batch
    waiting), a push that completes a batch is processed at once, as without the queue;
    the engine's thread slept until ``poll_every`` (here 5 s) when it woke only for a
    batch's worth of queued rows."""
    config = make_config(LATE_OK, batching={"max_rows": 64, "max_delay": 60_000})
    engine = Engine(config, sinks=[MemorySink()], background=True, poll_every=5.0)
    for seed in range(3):  # 150 rows: two whole batches, one of them mostly buffered rows
        engine.push(_events(50, seed=seed))
    assert wait_for(lambda: engine.summary()["batches"] == 2, seconds=2.5)
    engine.push(_events(30, seed=5), source="other")  # the 22 rows waiting are cut
    assert wait_for(lambda: engine.summary()["batches"] == 3, seconds=2.5)
    assert engine.close()["accounted"]


def _batch_sizes_at_times(background: bool) -> list[int]:
    """Batch sizes of pushes of 30 rows at t = 0, 5 and 8 s (the engine's clock), a poll
    at 12 and 40 rows at 13, in batches of 64 rows or 10 s; behind a first batch that
    holds the engine's thread until the three pushes are queued."""
    config = make_config(LATE_OK, batching={"max_rows": 64, "max_delay": 10_000})
    frames = [_events(n, seed=i) for i, n in enumerate([30, 30, 30, 40])]
    now = [0.0]
    gate = _Gate()
    if not background:
        gate.opened.set()
    sizes: list[int] = []
    engine = Engine(config, sinks=[MemorySink()], clock=lambda: now[0],
                    listeners=[gate, lambda report: sizes.append(report.rows)],
                    background=background, poll_every=60.0)  # fmt: skip
    engine.push(_events(64, seed=9))
    assert gate.entered.wait(120)
    for t, frame in zip([0.0, 5.0, 8.0], frames, strict=False):
        now[0] = t
        engine.push(frame)
    gate.opened.set()
    assert wait_for(lambda: engine.summary()["events"]["queued"] == 0)
    now[0] = 12.0
    engine.poll()
    now[0] = 13.0
    engine.push(frames[3])
    engine.close()
    return sizes


def test_batches_do_not_depend_on_when_the_thread_gets_to_the_queue() -> None:
    """Taken as one run, the three pushes' leftover rows were dated t = 0 and cut by the
    poll at 12 (26 rows), where the engine without the queue dates them 8."""
    assert _batch_sizes_at_times(False) == _batch_sizes_at_times(True) == [64, 64, 64, 2]


def test_a_push_waiting_for_room_does_not_make_the_thread_spin(monkeypatch) -> None:
    """A woken push counted as waiting until it had the lock back, and the thread did not
    sleep while one waited: it polled about a thousand times a push."""
    polls = [0]
    real_poll = Engine._poll

    def counted(self: Engine, now: float) -> None:
        polls[0] += 1
        real_poll(self, now)

    monkeypatch.setattr(Engine, "_poll", counted)
    config = make_config(LATE_OK, batching={"max_rows": 64, "max_delay": 60_000})
    engine = Engine(config, sinks=[MemorySink()], background=True, max_queued_rows=1,
                    poll_every=30.0)  # fmt: skip
    frame = _events(1)
    for _ in range(300):
        engine.push(frame)
    assert engine.close()["events"]["in"] == 300
    assert polls[0] < 300


def _sizes_behind_a_held_batch(pushes: list[tuple[float, int]], thread_at: float) -> list[list]:
    """Batch sizes of ``(time, rows)`` pushes behind a first push of 70 rows at t = 0, in
    batches of 64 rows or 10 s: without the queue (polled right before each push and at
    ``thread_at``), and with it (the engine's thread held in the first batch until the
    clock reads ``thread_at``)."""
    return [_held_run(background, pushes, thread_at) for background in (False, True)]


def _held_run(background: bool, pushes: list[tuple[float, int]], thread_at: float) -> list[int]:
    config = make_config(LATE_OK, batching={"max_rows": 64, "max_delay": 10_000})
    now = [0.0]
    gate = _Gate()
    if not background:
        gate.opened.set()
    sizes: list[int] = []
    bound = 10_000 if background else None
    engine = Engine(config, sinks=[MemorySink()], clock=lambda: now[0],
                    listeners=[gate, lambda report: sizes.append(report.rows)],
                    background=background, max_queued_rows=bound)  # fmt: skip
    engine.push(_events(70))
    assert gate.entered.wait(120)
    for i, (t, rows) in enumerate(pushes):
        now[0] = t
        if not background:
            engine.poll()
        engine.push(_events(rows, seed=i + 1))
    now[0] = thread_at
    if not background:
        engine.poll()
    gate.opened.set()
    assert wait_for(lambda: engine.summary()["events"]["queued"] == 0)
    engine.close()
    return sizes


def test_the_thread_polls_no_later_than_a_push_still_queued() -> None:
    """10 rows at t = 9 wait in the queue while the thread is held until t = 12: its poll at
    12 cut the 6 rows buffered since t = 0 (due at 10) before the push of t = 9 joined them."""
    sync, queued = _sizes_behind_a_held_batch([(9.0, 10)], thread_at=12.0)
    assert sync == queued == [64, 16]


def test_a_run_ends_where_the_batch_timeout_would_cut_it_to_the_last_bit() -> None:
    """14.469 - 4.469 >= 10 but 14.469 < 4.469 + 10 in floating point: the run's test and
    the batcher's must be written alike, or the run takes a push the batcher would not."""
    assert 14.469 - 4.469 >= 10.0 and 14.469 < 4.469 + 10.0
    sync, queued = _sizes_behind_a_held_batch([(4.469, 10), (14.469, 10)], thread_at=14.469)
    assert sync == queued
