"""How a run ends under load and failure: a bounded flush, a failure that ends the run
with every row accounted for, errors raised again without growing, summaries read from a
sink (found by a review of the embedding API, 2026-12-07)."""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

import numpy as np
import pytest
from engine_testing import in_thread, make_config, random_events, wait_for

from gpu_engine.engine import BatchReport, Engine
from gpu_engine.errors import EngineError, InputError, SchemaError
from gpu_engine.io.sinks import CallbackSink, MemorySink

WINDOW = {"type": "tumbling", "size": 1000, "keys": ["k"], "allowed_lateness": 3_600_000}


def _adds_up(summary: dict[str, Any]) -> bool:
    events = summary["events"]
    outcomes = ("valid", "quarantined", "late", "dead_lettered", "buffered", "queued")
    return summary["accounted"] and events["in"] == sum(events[k] for k in outcomes)


def test_flush_returns_while_pushes_go_on() -> None:
    """``flush`` took every push queued while it ran, and pushers under backpressure
    refilled the queue as it took them: it returned only when they stopped."""
    config = make_config(WINDOW, batching={"max_rows": 100, "max_delay": 5})
    engine = Engine(config, sinks=[MemorySink()], background=True, max_queued_rows=200,
                    listeners=[lambda report: time.sleep(0.01)])  # fmt: skip
    stop = threading.Event()
    part = random_events(np.random.default_rng(3), 20, span_ms=3000)

    def push_until_stopped() -> None:
        while not stop.is_set():
            try:
                engine.push(part)
            except EngineError:
                return
            time.sleep(0.0002)

    pushers = [threading.Thread(target=push_until_stopped, daemon=True) for _ in range(3)]
    for pusher in pushers:
        pusher.start()
    time.sleep(0.3)
    flushing, _ = in_thread(engine.flush)
    flushing.join(20)
    returned_while_pushing = not flushing.is_alive()
    closing, _ = in_thread(engine.close)  # refuses the pushers from now on
    closing.join(20)
    stop.set()
    for pusher in pushers:
        pusher.join(20)
    assert returned_while_pushing and not closing.is_alive()
    assert engine.summary_data is not None and _adds_up(engine.summary_data)


@pytest.mark.parametrize("mode", ["background", "poll_every"])
def test_a_thread_failure_is_raised_again_as_a_new_exception(mode: str) -> None:
    """Every call raised the one exception object: its traceback grew by each call's
    frames (1,008 after 200 pushes), holding every refused push's rows."""
    config = make_config(WINDOW, batching={"max_rows": 100, "max_delay": 10},
                         validation={"on_error": "fail"})  # fmt: skip
    kwargs: dict[str, Any] = {"background": True} if mode == "background" else {"poll_every": 0.005}
    engine = Engine(config, sinks=[MemorySink()], **kwargs)
    bad = random_events(np.random.default_rng(1), 3)
    bad.loc[1, "e"] = 9
    engine.push(bad)
    thread = engine._intake if mode == "background" else engine._poller
    assert thread is not None and wait_for(lambda: thread.error is not None)
    depths, raised = [], []
    for _ in range(30):
        with pytest.raises(SchemaError, match="row 1") as error:
            engine.push(random_events(np.random.default_rng(2), 3))
        raised.append(error.value)
        depths.append(len(traceback.extract_tb(error.value.__traceback__)))
    assert len(set(depths)) == 1 and len({id(e) for e in raised}) == 30
    assert all(e.__cause__ is thread.error for e in raised)
    with pytest.raises(SchemaError, match="row 1"):
        engine.close()


def test_a_push_taken_by_a_failing_thread_stays_counted_as_queued() -> None:
    """The thread took a queued push, then failed cutting the (bad) batch before it: the
    push, which had returned normally, was counted nowhere."""
    config = make_config(WINDOW, batching={"max_rows": 100, "max_delay": 1},
                         validation={"on_error": "fail"})  # fmt: skip
    gate = threading.Event()
    engine = Engine(config, sinks=[MemorySink()], background=True,
                    listeners=[lambda report: gate.wait(5)])  # fmt: skip
    rng = np.random.default_rng(1)
    engine.push(random_events(rng, 100))  # a full batch: the thread waits in its listener
    bad = random_events(rng, 3)
    bad.loc[1, "e"] = 9
    engine.push(bad)
    time.sleep(0.02)  # past max_delay: the next push cuts the bad batch before it is added
    engine.push(random_events(rng, 5))
    gate.set()
    assert engine._intake is not None and wait_for(lambda: engine._intake.error is not None)
    with pytest.raises(SchemaError):
        engine.close()
    summary = engine.summary_data
    assert summary is not None and summary["failed"] and _adds_up(summary)
    events = summary["events"]
    assert (events["in"], events["valid"], events["buffered"], events["queued"]) == (108, 100, 3, 5)


def test_a_failing_batch_ends_a_plain_run_with_its_rows_counted() -> None:
    """With ``on_error: fail`` a push of 4 batches whose first fails raised, as it should,
    but the 3 batches after it were taken from the batcher and never counted, and the
    engine went on taking pushes; close() then said nothing failed."""
    config = make_config(WINDOW, batching={"max_rows": 50}, validation={"on_error": "fail"})
    engine = Engine(config, sinks=[MemorySink()])
    frame = random_events(np.random.default_rng(7), 200, span_ms=3000)
    frame.loc[3, "e"] = 9
    with pytest.raises(SchemaError):
        engine.push(frame)
    summary = engine.summary_data
    assert summary is not None and summary["failed"] and _adds_up(summary)
    assert summary["events"]["buffered"] == 200
    with pytest.raises(EngineError, match="closed"):
        engine.push(frame)
    assert engine.close() is summary


def test_an_interrupt_in_a_sink_ends_the_run_with_its_rows_counted() -> None:
    """Ctrl-C landing in a callback: not an error to hand on, it stops the run; 250 of
    300 rows were lost."""
    calls = {"n": 0}

    def interrupted(name: str, frame: Any) -> None:
        calls["n"] += 1
        raise KeyboardInterrupt

    window = {**WINDOW, "allowed_lateness": 0}
    engine = Engine(make_config(window, batching={"max_rows": 50}),
                    sinks=[CallbackSink(interrupted)])  # fmt: skip
    frame = random_events(np.random.default_rng(5), 300, span_ms=10_000)
    frame["t"] = np.sort(frame["t"].to_numpy())
    with pytest.raises(KeyboardInterrupt):
        engine.push(frame)
    assert calls["n"] == 1
    summary = engine.summary_data
    assert summary is not None and summary["failed"] and _adds_up(summary)


def test_a_summary_read_from_a_sink_or_listener_adds_up() -> None:
    """Read on the engine's own thread mid-push, the live counts had the push's rows in
    and most of their outcomes not yet."""
    seen: list[bool] = []
    engine: Engine

    def check(*args: Any) -> None:
        seen.append(_adds_up(engine.summary()))

    def listener(report: BatchReport) -> None:
        check()

    engine = Engine(make_config(WINDOW, batching={"max_rows": 50}),
                    sinks=[CallbackSink(check)], listeners=[listener])  # fmt: skip
    engine.push(random_events(np.random.default_rng(4), 400, span_ms=5000))
    engine.close()
    assert len(seen) > 8 and all(seen)


def test_a_push_from_a_listener_is_refused_by_its_own_name() -> None:
    """It said ``Engine.push_now()``, a private name."""
    frame = random_events(np.random.default_rng(4), 40, span_ms=5000)
    engine = Engine(make_config(WINDOW, batching={"max_rows": 10}),
                    listeners=[lambda report: engine.push(frame)])  # fmt: skip
    with pytest.raises(EngineError, match=r"Engine\.push\(\) was called from a sink"):
        engine.push(frame)


def test_an_interrupt_in_a_listener_after_a_batch_is_counted_strands_only_the_rest() -> None:
    """The batch's outcomes were counted before its listener ran: counting its rows as
    buffered too made 250 of 200."""
    calls = {"n": 0}

    def listener(report: BatchReport) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    engine = Engine(make_config(WINDOW, batching={"max_rows": 50}), sinks=[MemorySink()],
                    listeners=[listener])  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        engine.push(random_events(np.random.default_rng(5), 200, span_ms=3000))
    summary = engine.summary_data
    assert summary is not None and _adds_up(summary) and summary["events"]["buffered"] == 100


def test_a_run_ended_by_the_callers_flush_refuses_later_pushes() -> None:
    """With ``background=True`` a ``flush`` that failed ended the run but left the queue
    open: the next push returned, uncounted by the sinks, and the one after hung."""
    config = make_config(WINDOW, batching={"max_rows": 100, "max_delay": 60_000},
                         validation={"on_error": "fail"})  # fmt: skip
    sink = MemorySink()
    engine = Engine(config, sinks=[sink], background=True, max_queued_rows=20)
    bad = random_events(np.random.default_rng(1), 10)
    bad.loc[1, "e"] = 9
    engine.push(bad)
    with pytest.raises(SchemaError):
        engine.flush()
    for _ in range(3):
        with pytest.raises(EngineError, match="closed"):
            engine.push(random_events(np.random.default_rng(2), 10))
    assert sink.summary is not None and sink.summary["failed"] and _adds_up(sink.summary)
    assert sink.summary["events"]["in"] == 10


@pytest.mark.parametrize("mode", ["background", "poll_every"])
def test_a_with_block_raises_a_failure_of_the_engines_thread(mode: str) -> None:
    """The thread now ends the run itself, and ``__exit__`` skipped a closed engine."""
    config = make_config(WINDOW, batching={"max_rows": 100, "max_delay": 5},
                         validation={"on_error": "fail"})  # fmt: skip
    kwargs: dict[str, Any] = {"background": True} if mode == "background" else {"poll_every": 0.005}
    bad = random_events(np.random.default_rng(1), 3)
    bad.loc[1, "e"] = 9
    with pytest.raises(SchemaError), Engine(config, sinks=[MemorySink()], **kwargs) as engine:
        engine.push(bad)
        thread = engine._intake if mode == "background" else engine._poller
        assert thread is not None and wait_for(lambda: thread.error is not None)


class _Quota(Exception):
    """An exception that formats its own message (a rebuild through __init__ doubled it)."""

    def __init__(self, used: int) -> None:
        super().__init__(f"quota exceeded: {used} rows")
        self.used = used


def test_a_thread_failure_raised_again_keeps_its_message_and_its_own_notes() -> None:
    config = make_config(WINDOW, batching={"max_rows": 100, "max_delay": 5})

    def listener(report: BatchReport) -> None:
        raise _Quota(10)

    engine = Engine(config, sinks=[MemorySink()], background=True, listeners=[listener])
    engine.push(random_events(np.random.default_rng(1), 3))
    assert engine._intake is not None and wait_for(lambda: engine._intake.error is not None)
    for request in range(3):
        with pytest.raises(_Quota) as raised:
            engine.push(random_events(np.random.default_rng(2), 3))
        assert str(raised.value) == "quota exceeded: 10 rows" and raised.value.used == 10
        raised.value.add_note(f"handled by request {request}")
        origin = ["(raised by listener listener)"]  # which output raised it (_hand_on)
        assert raised.value.__notes__ == [*origin, f"handled by request {request}"]
    assert engine._intake.error.__notes__ == origin
    with pytest.raises(_Quota):
        engine.close()


def test_dict_keys_that_are_one_name_as_text_are_refused() -> None:
    engine = Engine(make_config(WINDOW), sinks=[MemorySink()])
    frame = random_events(np.random.default_rng(1), 3)
    columns = {name: frame[name].to_numpy() for name in frame.columns}
    with pytest.raises(InputError, match=r"names column\(s\) \['1'\] more than once"):
        engine.push({**columns, 1: np.zeros(3), "1": np.ones(3)})
    assert engine.close()["events"]["in"] == 0
