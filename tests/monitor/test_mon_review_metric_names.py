"""A rule on a metric the engine does not produce is refused, naming the rule and metric.

Why: ``expr: "nonexistent_metric > 1"`` was accepted and the run exited 0; the rule
could never fire, so the alert it was written for would silently never come.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_engine.cli import main
from gpu_engine.errors import ConfigError
from gpu_engine.monitor import (
    EngineMetrics,
    Monitor,
    MonitorConfig,
    ReplaySource,
    load_monitor_config,
)

BAD = 'rules: [{name: X, kind: threshold, expr: "nonexistent_metric > 1"}]\n'


def test_loading_refuses_an_unknown_metric_and_lists_the_known(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BAD)
    with pytest.raises(ConfigError) as info:
        load_monitor_config(path)
    msg = str(info.value)
    assert "rules[0] (X): unknown metric 'nonexistent_metric'" in msg
    assert "events_in_per_s" in msg and "window:<window>.<column>" in msg


def test_a_near_miss_gets_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules: [{name: T, kind: trend, metric: events_in_per_sec, window: 30s,"
                    " op: '<', threshold: -0.3}]\n")  # fmt: skip
    with pytest.raises(ConfigError, match="did you mean 'events_in_per_s'"):
        load_monitor_config(path)


def test_check_rules_and_run_refuse_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BAD)
    assert main(["alerts", "check-rules", str(path)]) == 1
    assert "unknown metric 'nonexistent_metric'" in capsys.readouterr().err
    out = tmp_path / "out"
    rc = main(["run", "--synthetic", "--events", "1000", "--out", str(out), "--no-progress",
               "--monitor-config", str(path)])  # fmt: skip
    assert rc == 2 and not out.exists()  # refused before anything was written
    assert "unknown metric 'nonexistent_metric'" in capsys.readouterr().err


def test_attaching_to_engine_metrics_refuses_it_but_a_trace_may_name_anything() -> None:
    cfg = MonitorConfig.model_validate(
        {"rules": [{"name": "X", "kind": "threshold", "expr": "nonexistent_metric > 1"}]}
    )
    with pytest.raises(ConfigError, match=r"rules\[0\] \(X\): unknown metric"):
        Monitor(cfg, metrics=EngineMetrics(process=False, gpu=False))
    Monitor(cfg, metrics=ReplaySource(lambda t: {"nonexistent_metric": 2.0}))


def test_label_selectors_and_window_series_still_work(tmp_path: Path) -> None:
    text = """
rules:
  - {name: W1, kind: threshold, expr: 'worker_events_per_s{worker="w1"} > 0'}
  - {name: Valid, kind: threshold, expr: 'events_per_s{outcome="valid"} > 0'}
  - {name: Win, kind: threshold, expr: 'window:likes.rate{region="eu"} > 0.5'}
"""
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    cfg = load_monitor_config(path)
    metrics = EngineMetrics(process=False, gpu=False)
    mon = Monitor(cfg, metrics=metrics)
    mon.tick(0.0)
    metrics.record_batch(100, 100, 0, 0, 0, 0.01, worker_rows={"w0": 40, "w1": 60})
    mon.observe_window("likes", {"region": ["eu", "us"], "rate": [0.9, 0.1]})
    mon.tick(1.0)
    firing = sorted((a.rule, a.labels.get("worker"), a.labels.get("region")) for a in mon.firing())
    assert firing == [("Valid", None, None), ("W1", "w1", None), ("Win", None, "eu")]


def test_known_names_are_exactly_what_a_busy_registry_samples() -> None:
    """The list rules are checked against is the sampler's actual output, no more, no less."""
    from gpu_engine.monitor.system import GPU_SERIES  # present only where NVML finds a GPU

    metrics = EngineMetrics(process=True, gpu=False)
    metrics.sample(0.0)
    metrics.record_batch(
        1000, 900, 50, 30, 20, 0.02, stage_seconds={"validate": 0.01},
        event_time_lag_s=0.5, worker_rows={"w0": 1000},
    )  # fmt: skip
    metrics.set_queue_depth(3)
    metrics.set_watermark_lag(1.5)
    metrics.add_windows_emitted("content", 4)
    metrics.record_error("w0", "cast")
    sampled = {name for name, _ in metrics.sample(1.0).values}
    assert sampled == metrics.series_names() - set(GPU_SERIES)
