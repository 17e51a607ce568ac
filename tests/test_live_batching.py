"""``Engine.set_batching``: an allocation applied to a running engine (monitor actions,
embeddings) changes its batches from then on, without losing or reordering rows."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pytest
from engine_testing import make_config, random_events, wait_for

from gpu_engine.engine import BatchReport, Engine
from gpu_engine.errors import ConfigError
from gpu_engine.io.sinks import MemorySink
from gpu_engine.monitor.actions import ENGINE_ACTIONS
from gpu_engine.monitor.rules import load_monitor_config
from gpu_engine.monitoring import EngineMonitoring

TUMBLING = {"type": "tumbling", "size": 1000, "keys": ["k"], "allowed_lateness": 3_600_000}


def _engine(**batching: int) -> tuple[Engine, list[int], MemorySink]:
    sizes: list[int] = []
    sink = MemorySink()

    def listener(report: BatchReport) -> None:
        sizes.append(report.rows)

    engine = Engine(make_config(TUMBLING, batching=batching), sinks=[sink], listeners=[listener],
                    clock=lambda: 0.0)  # fmt: skip
    return engine, sizes, sink


def test_rows_buffered_past_a_smaller_max_rows_are_cut_into_batches_of_it() -> None:
    """800 rows wait for a batch of 1,000; the size drops to 100: the next poll cuts eight
    batches of 100 (it cut one of 800 once the delay passed, or kept waiting)."""
    engine, sizes, _ = _engine(max_rows=1000, max_delay=50)
    frame = random_events(np.random.default_rng(0), 800)
    engine.push(frame)
    assert sizes == []
    engine.set_batching(max_rows=100)
    engine.poll(0.0)  # before max_delay: only the full batches
    assert sizes == [100] * 8
    engine.push(frame.iloc[:250])
    engine.poll(1.0)  # past max_delay: the rest, in batches of at most 100
    assert sizes == [100] * 10 + [50]
    assert engine.close()["events"]["valid"] == 1050


def test_a_smaller_max_rows_at_close_still_cuts_batches_of_it() -> None:
    engine, sizes, sink = _engine(max_rows=1000, max_delay=60_000)
    frame = random_events(np.random.default_rng(1), 950)
    engine.push(frame)
    engine.set_batching(max_rows=300)
    summary = engine.close()
    assert sizes == [300, 300, 300, 50]
    assert (
        summary["events"]["valid"] == 950 == pa.compute.sum(sink.result("windows/w")["n"]).as_py()
    )


def test_rows_waiting_in_a_background_engine_go_when_the_delay_is_made_shorter() -> None:
    """The thread waits half the old delay (3 s here) between polls: made shorter, the
    wait is cut short, so the rows already waiting go at the new delay (a monitor's
    shrink_batch_delay on a latency alert); they waited out the old wait before."""
    config = make_config(TUMBLING, batching={"max_rows": 10_000, "max_delay": 6000})
    done: list[float] = []
    engine = Engine(config, background=True, listeners=[lambda r: done.append(time.monotonic())])
    try:
        engine.push(random_events(np.random.default_rng(2), 10))
        engine.flush()  # the first batch compiles the kernels
        engine.push(random_events(np.random.default_rng(3), 10))
        time.sleep(0.3)  # the thread has taken the push and waits its 3 s
        changed = time.monotonic()
        engine.set_batching(max_delay_s=0.01)
        assert wait_for(lambda: len(done) == 2, 10)
        assert done[1] - changed < 1.0
    finally:
        engine.close()


def test_a_push_after_max_rows_was_lowered_cuts_the_full_batches_first() -> None:
    engine, sizes, _ = _engine(max_rows=1000, max_delay=60_000)
    frame = random_events(np.random.default_rng(4), 1100)
    engine.push(frame.iloc[:800])
    engine.set_batching(max_rows=100)
    engine.push(frame.iloc[800:])
    assert sizes == [100] * 11
    assert engine.close()["events"]["valid"] == 1100


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_rows": 0}, "max_rows must be an integer"),
        ({"max_rows": 2.5}, "max_rows must be an integer"),
        ({"max_rows": True}, "max_rows must be an integer"),
        ({"max_delay_s": 0}, "max_delay_s must be a positive number"),
        ({"max_delay_s": float("nan")}, "max_delay_s must be a positive number"),
        ({"max_delay_s": "50ms"}, "max_delay_s must be a positive number"),
    ],
)
def test_settings_that_cannot_work_are_refused(settings: dict, message: str) -> None:
    engine, _, _ = _engine(max_rows=100)
    with pytest.raises(ValueError, match=message):
        engine.set_batching(**settings)
    assert engine.batcher.max_rows == 100 and engine.batcher.max_delay_s == 0.05


def test_the_engine_actions_listed_are_those_an_engine_run_registers(tmp_path) -> None:
    """The list rule files are checked against is what ``attach`` registers, with the
    parameters each action takes (ENGINE_ACTIONS)."""
    import inspect

    monitoring = EngineMonitoring(tmp_path)
    engine, _, _ = _engine(max_rows=100)
    monitoring.attach(engine)
    names = monitoring.monitor.actions.names()
    assert names == sorted(ENGINE_ACTIONS)
    for name in names:
        action = monitoring.monitor.actions._actions[name]
        params = [p for p in inspect.signature(action).parameters if p != "alert"]
        assert tuple(params) == ENGINE_ACTIONS[name]


def test_a_rule_file_naming_an_action_no_run_registers_is_refused(tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - {name: Slow, kind: threshold, expr: 'batch_seconds_p99 > 1',\n"
        "     actions: [scale_workers, {name: run_optimizer, params: {sla: 20ms, budgte: 3}}]}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_monitor_config(rules)
    text = str(error.value)
    assert "rules[0] (Slow): unknown action 'scale_workers'" in text
    assert (
        "action 'run_optimizer' takes no parameter 'budgte' (it takes: budget, sla, price)" in text
    )
    assert "known actions: run_optimizer, shrink_batch_delay" in text
    assert str(rules) in text
    load_monitor_config(rules, check_actions=False)  # a monitor of an embedding's own actions
