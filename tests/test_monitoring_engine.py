"""The engine wired to the monitor: a real Prometheus scrape over HTTP, actions, alert log."""

from __future__ import annotations

import json
import urllib.request

from engine_testing import make_config, random_events, validation_failing_at
from prometheus_client.parser import text_string_to_metric_families

from gpu_engine.monitoring import EngineMonitoring
from gpu_engine.runner import run_pipeline

WINDOW = {"type": "tumbling", "size": 1000, "keys": ["k"]}


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_engine_metrics_are_scraped_over_http(tmp_path, rng) -> None:
    frame = random_events(rng, 3000, span_ms=20_000)
    frame.loc[:99, "e"] = 9  # 100 bad rows
    config = make_config(WINDOW, batching={"max_rows": 500}, workers=2)
    monitoring = EngineMonitoring(tmp_path, metrics_port=0)
    try:
        assert monitoring.server is not None
        batches = iter([(frame, "test", 0)])
        summary = run_pipeline(config, batches, tmp_path, monitoring=monitoring)  # type: ignore[arg-type]
        values = _scrape(monitoring.server.url)
    finally:
        monitoring.stop()
    assert values[("tiktoktoe_events_in_total", ())] == 3000
    assert values[("tiktoktoe_events_total", (("outcome", "quarantined"),))] == 100
    assert values[("tiktoktoe_events_total", (("outcome", "valid"),))] == summary["events"]["valid"]
    assert values[("tiktoktoe_batch_seconds_count", ())] == summary["batches"] == 6
    emitted = values[("tiktoktoe_windows_emitted_total", (("window", "w"),))]
    assert emitted == summary["windows_emitted"] > 0
    assert values[("tiktoktoe_process_cpu_seconds_total", ())] > 0
    per_worker = [values[("tiktoktoe_worker_events_total", (("worker", w),))] for w in "01"]
    assert sum(per_worker) == summary["events"]["valid"] and min(per_worker) > 0
    # event times are from 1970 in this test, so the watermark lags wall time by ~56 years
    assert values[("tiktoktoe_watermark_lag_seconds", ())] > 1e9


def test_actions_reach_the_running_engine(tmp_path, rng) -> None:
    config = make_config(WINDOW, batching={"max_delay": "40ms"})
    monitoring = EngineMonitoring(tmp_path)
    try:
        run_pipeline(config, iter([(random_events(rng, 10), "t", 0)]), tmp_path,
                     monitoring=monitoring)  # type: ignore[arg-type]  # fmt: skip
        outcome = monitoring.monitor.actions.execute("shrink_batch_delay", None)
    finally:
        monitoring.stop()
    assert monitoring.engine is not None
    assert abs(monitoring.engine.batcher.max_delay_s - 0.02) < 1e-12
    assert outcome.status == "ok"
    assert (tmp_path / "actions.jsonl").exists()
    log = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "monitor_started"


def test_run_optimizer_action_applies_batch_size_and_delay(tmp_path, rng) -> None:
    """The optimiser, fitted to this run's batches, retunes the live micro-batcher."""
    frame = random_events(rng, 6000, span_ms=30_000)
    sizes = [100, 400, 1500]  # several batch sizes, so s(b) = a + c*b is identifiable
    batches = []
    start = 0
    for i in range(12):
        n = sizes[i % 3]
        batches.append((frame.iloc[start : start + n], "t", start))
        start += n
    config = make_config(WINDOW, batching={"max_rows": 100})
    monitoring = EngineMonitoring(tmp_path)
    try:
        engine_batches = iter(batches)
        run_pipeline(config, engine_batches, tmp_path, monitoring=monitoring)  # type: ignore[arg-type]
        outcome = monitoring.monitor.actions.execute(
            "run_optimizer", None, {"budget": 100.0, "sla": "10s"}
        )
    finally:
        monitoring.stop()
    assert outcome.status == "ok", outcome.error
    assert monitoring.engine is not None
    batcher = monitoring.engine.batcher
    result = outcome.result or ""
    assert "'feasible': True" in result
    assert "'applied_meets_sla': True" in result  # one size every stage can carry
    assert f"'max_rows': {batcher.max_rows}" in result
    assert batcher.max_rows != 100 or batcher.max_delay_s != 0.05  # something was retuned


def test_a_batch_that_cannot_be_processed_is_dead_lettered_and_counted(tmp_path, rng) -> None:
    """Fault injection: validation breaks on one batch; its rows are dead-lettered, not lost."""
    config = make_config(WINDOW, batching={"max_rows": 100}, workers=1)
    monitoring = EngineMonitoring(tmp_path)
    try:
        with validation_failing_at(2, "disk on fire"):
            frame = random_events(rng, 300, span_ms=3000)
            summary = run_pipeline(config, iter([(frame, "t", 0)]), tmp_path, monitoring=monitoring)  # type: ignore[arg-type]
        values = monitoring.metrics.registry.get_sample_value(
            "tiktoktoe_worker_errors_total", {"worker": "engine", "kind": "dead_letter"}
        )
    finally:
        monitoring.stop()
    events = summary["events"]
    assert events["dead_lettered"] == 100
    assert events["in"] == events["valid"] + events["quarantined"] + events["late"] + 100
    assert values == 1
    import pyarrow.parquet as pq

    dead = pq.read_table(tmp_path / "dead_letter")
    assert dead.num_rows == 100
    assert set(dead.column("_error").to_pylist()) == {"RuntimeError: disk on fire"}
    assert dead.column("_row").to_pylist() == list(range(100, 200))


def test_rows_left_waiting_because_nothing_polls_raise_batch_overdue(tmp_path, rng) -> None:
    """An embedder that pushes and never polls leaves rows in the batcher: the queue depth
    and the overdue seconds are read when sampled (no batch reports them, as stuck rows
    make none), and the built-in BatchOverdue fires; a poll clears it."""
    from gpu_engine.engine import Engine

    now = {"t": 0.0}  # the engine's clock; the monitor ticks at the same times
    config = make_config(WINDOW, batching={"max_rows": 1000, "max_delay": "50ms"})
    monitoring = EngineMonitoring(tmp_path)
    engine = Engine(config, sinks=[monitoring], listeners=[monitoring.on_batch],
                    clock=lambda: now["t"])  # fmt: skip
    monitoring.attach(engine)
    try:
        engine.push(random_events(rng, 40))
        firing = []
        for second in range(1, 9):
            now["t"] = float(second)
            monitoring.monitor.tick(now=float(second))
            firing.append([a.rule for a in monitoring.monitor.firing()])
        sample = monitoring.monitor.last_sample
        assert sample is not None
        assert sample.values[("queue_depth", ())] == 40
        assert abs(sample.values[("batch_overdue_seconds", ())] - (8 - 0.05)) < 1e-9
        assert "BatchOverdue" not in firing[4] and "BatchOverdue" in firing[7]  # for: 5s
        engine.poll()
        monitoring.monitor.tick(now=9.0)
        assert monitoring.monitor.last_sample.values[("batch_overdue_seconds", ())] == 0
        engine.push(random_events(rng, 5))
        engine.abort(RuntimeError("stopped"))  # its 5 rows will wait for ever: not overdue
        now["t"] = 30.0
        monitoring.monitor.tick(now=30.0)
        values = monitoring.monitor.last_sample.values
        assert values[("batch_overdue_seconds", ())] == values[("queue_depth", ())] == 0
    finally:
        engine.close()
        monitoring.stop()


def test_the_queue_depth_counts_rows_queued_by_background_pushes(tmp_path, rng) -> None:
    """With ``background=True``, rows wait in the engine's queue before the batcher: they
    are in the queue depth too."""
    import threading

    from gpu_engine.engine import Engine

    entered, opened = threading.Event(), threading.Event()

    def hold(report: object) -> None:
        entered.set()
        opened.wait(120)

    config = make_config(WINDOW, batching={"max_rows": 10, "max_delay": "50ms"})
    monitoring = EngineMonitoring(tmp_path)
    engine = Engine(config, sinks=[monitoring], background=True,
                    listeners=[monitoring.on_batch, hold])  # fmt: skip
    monitoring.attach(engine)
    try:
        engine.push(random_events(rng, 10))  # a batch: its listener holds the thread
        assert entered.wait(120)
        engine.push(random_events(rng, 25))
        monitoring.monitor.tick(now=1.0)
        sample = monitoring.monitor.last_sample
        assert sample is not None and sample.values[("queue_depth", ())] == 25
    finally:
        opened.set()
        assert engine.close()["accounted"]
        monitoring.stop()


def test_a_window_keyed_by_integers_gives_one_series_per_key(tmp_path, rng) -> None:
    """The monitor told keys from values by type, so an integer key (``k``, a content id)
    was a value: every key's rows set one series ``window:w.n``, the last row's, and a
    rule saw one key's count instead of each key's."""
    from gpu_engine.monitor import MonitorConfig

    frame = random_events(rng, 3000, span_ms=2_000)
    rules = MonitorConfig.model_validate({"rules": [
        {"name": "Busy", "kind": "threshold", "expr": "window:w.n > 0", "severity": "info"},
    ]})  # fmt: skip
    monitoring = EngineMonitoring(tmp_path, rules)
    try:
        run_pipeline(make_config(WINDOW), iter([(frame, "test", 0)]), tmp_path,
                     monitoring=monitoring)  # type: ignore[arg-type]  # fmt: skip
    finally:
        monitoring.stop()
    sample = monitoring.monitor.last_sample
    assert sample is not None
    series = {labels: v for (name, labels), v in sample.values.items() if name == "window:w.n"}
    last_window = frame["t"].max() // 1000 * 1000
    expected = frame[frame["t"] // 1000 * 1000 == last_window].groupby("k").size()
    assert {dict(labels)["k"]: v for labels, v in series.items()} == {
        str(k): float(n) for k, n in expected.items()
    }
    names = {name for name, _ in sample.values if name.startswith("window:w.")}
    assert "window:w.k" not in names and "window:w.window_start" not in names


def test_worker_rows_are_the_valid_rows_however_many_workers(rng) -> None:
    """The per-worker rows of a batch report count the valid rows each shard took. With
    one worker they counted every input row, quarantined ones included, so the
    per-worker metric changed meaning with the worker count."""
    from gpu_engine.engine import Engine
    from gpu_engine.io.sinks import MemorySink

    frame = random_events(rng, 4000)
    frame["e"] = frame["e"].where(rng.random(4000) > 0.1, 9)  # not allowed: quarantined
    for workers in (1, 2):
        reports: list = []
        config = make_config({"type": "tumbling", "size": 1000, "keys": ["k"]},
                             workers=workers, batching={"max_rows": 1000})  # fmt: skip
        engine = Engine(config, sinks=[MemorySink()], listeners=[reports.append])
        engine.push(frame)
        engine.close()
        assert sum(r.quarantined for r in reports) > 100
        for report in reports:
            assert len(report.worker_rows) == workers
            assert sum(report.worker_rows.values()) == report.valid + report.late
