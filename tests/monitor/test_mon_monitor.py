"""The Monitor end to end: window series, Parquet samples, alerts.jsonl, actions, thread, CLI."""

from __future__ import annotations

import json
import time

import pandas as pd
import pyarrow as pa
import pytest

from gpu_engine.cli import main
from gpu_engine.monitor import (
    ActionRegistry,
    EngineMetrics,
    Monitor,
    MonitorConfig,
    ReplaySource,
    read_samples,
)


def _window_config() -> MonitorConfig:
    return MonitorConfig.model_validate(
        {
            "rules": [
                {
                    "name": "RegionErrors",
                    "kind": "threshold",
                    "severity": "warning",
                    "expr": 'window:region_errors.error_rate{region="eu"} > 0.05',
                    "annotations": {"summary": "{labels[region]} error rate {value:.0%}"},
                },
                {
                    "name": "AnyRegionErrors",
                    "kind": "threshold",
                    "expr": "window:region_errors.error_rate > 0.05",
                },
            ]
        }
    )


@pytest.mark.parametrize("kind", ["dict", "pandas", "arrow"])
def test_window_outputs_feed_rules(tmp_path, kind: str) -> None:
    cols = {"region": ["eu", "us", "ap"], "error_rate": [0.10, 0.01, 0.07], "n": [100, 200, 300]}
    frame = {"dict": cols, "pandas": pd.DataFrame(cols), "arrow": pa.table(cols)}[kind]
    mon = Monitor(_window_config(), tmp_path, metrics=EngineMetrics(process=False, gpu=False))
    assert mon.observe_window("region_errors", frame) == 6  # 3 regions × (error_rate, n)
    mon.tick(1.0)
    firing = sorted((a.rule, a.labels.get("region")) for a in mon.firing())
    assert firing == [("AnyRegionErrors", "ap"), ("AnyRegionErrors", "eu"), ("RegionErrors", "eu")]
    eu = next(a for a in mon.firing() if a.rule == "RegionErrors")
    assert eu.annotations["summary"] == "eu error rate 10%"
    assert mon.last_sample is not None
    assert mon.last_sample.flat()['window:region_errors.n{region="us"}'] == 200
    # The next emit replaces the previous one: eu recovers.
    mon.observe_window("region_errors", {"region": ["eu"], "error_rate": [0.0], "n": [1]})
    mon.tick(2.0)
    assert sorted(a.labels["region"] for a in mon.firing()) == []


def test_window_explicit_keys_for_integer_ids() -> None:
    mon = Monitor(MonitorConfig(), metrics=ReplaySource(lambda t: {}))
    mon.observe_window(
        "likes", {"content_id": [7, 9], "like_rate": [0.5, 0.25]}, keys=["content_id"]
    )
    mon.tick(0.0)
    assert mon.last_sample is not None
    assert mon.last_sample.flat()['window:likes.like_rate{content_id="9"}'] == 0.25
    with pytest.raises(KeyError, match="nope"):
        mon.observe_window("likes", {"a": [1]}, keys=["nope"])


def test_samples_parquet_and_alerts_jsonl(tmp_path) -> None:
    metrics = EngineMetrics(process=False, gpu=False)
    cfg = MonitorConfig.model_validate(
        {
            "flush_every": 4,
            "range": "1s",  # the ratio of each interval alone
            "rules": [{"name": "Q", "kind": "threshold", "expr": "quarantine_ratio > 0.2"}],
        }
    )
    mon = Monitor(cfg, tmp_path, metrics=metrics)
    for t in range(10):
        quarantined = 500 if 3 <= t < 6 else 0
        metrics.record_batch(1000, 1000 - quarantined, quarantined, 0, 0, 0.01, None, 0.1)
        mon.tick(float(t))
    mon.stop()
    parts = sorted((tmp_path / "metrics").glob("samples-*.parquet"))
    assert len(parts) == 3  # 4 + 4 + 2 samples
    table = read_samples(tmp_path / "metrics")
    assert table.column_names == ["time_s", "name", "labels", "value"]
    df = table.to_pandas()
    ratio = df[df.name == "quarantine_ratio"].set_index("time_s")["value"]
    assert ratio.loc[4.0] == pytest.approx(0.5) and ratio.loc[8.0] == 0.0
    outcomes = df[df.name == "events_per_s"].labels.map(json.loads).map(lambda d: d["outcome"])
    assert set(outcomes) == {"valid", "quarantined", "late", "dead_lettered"}
    lines = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert lines[0]["event"] == "monitor_started" and lines[-1]["event"] == "monitor_stopped"
    states = [(r["time_s"], r["previous"], r["state"]) for r in lines if r.get("event") == "state"]
    assert states == [(3.0, "inactive", "firing"), (6.0, "firing", "resolved")]


def test_replay_recorded_samples_through_new_rules(tmp_path) -> None:
    metrics = EngineMetrics(process=False, gpu=False)
    mon = Monitor(MonitorConfig(), tmp_path, metrics=metrics)
    for t in range(6):
        metrics.set_queue_depth(10 * t)
        mon.tick(float(t))
    mon.stop()
    source = ReplaySource.from_parquet(tmp_path / "metrics")
    cfg = MonitorConfig.model_validate(
        {"rules": [{"name": "B", "kind": "threshold", "expr": "queue_depth >= 30"}]}
    )
    replay = Monitor(cfg, metrics=source)
    fired = [t for t in source.times for c in replay.tick(t).changes if c["state"] == "firing"]
    assert fired == [3.0]


def test_actions_run_when_alert_fires_and_are_logged(tmp_path) -> None:
    calls = []
    actions = ActionRegistry()
    actions.register(
        "scale_workers", lambda alert, delta: calls.append((alert["rule"], delta)) or "ok"
    )
    actions.register("shed_load", lambda alert: 1 / 0)
    cfg = MonitorConfig.model_validate(
        {
            "rules": [
                {
                    "name": "Backlog",
                    "kind": "threshold",
                    "expr": "queue_depth > 10",
                    "for": "2s",
                    "actions": [
                        {"name": "scale_workers", "params": {"delta": 2}},
                        "shed_load",
                        "run_optimizer",
                    ],
                }
            ]
        }
    )
    mon = Monitor(
        cfg, tmp_path, metrics=ReplaySource(lambda t: {"queue_depth": 50}), actions=actions
    )
    for t in range(10):
        mon.tick(float(t))
    assert calls == [("Backlog", 2)]  # once per firing episode, not every tick
    assert [(o.action, o.status, o.time_s) for o in actions.history] == [
        ("scale_workers", "ok", 2.0),
        ("shed_load", "error", 2.0),
        ("run_optimizer", "missing", 2.0),
    ]
    logged = [json.loads(x) for x in (tmp_path / "actions.jsonl").read_text().splitlines()]
    assert [r["status"] for r in logged] == ["ok", "error", "missing"]
    assert "ZeroDivisionError" in logged[1]["error"]


def test_action_registry_refuses_silent_replacement() -> None:
    reg = ActionRegistry()
    reg.register("shed_load", lambda alert: None)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("shed_load", lambda alert: None)
    reg.register("shed_load", lambda alert: "new", replace=True)
    assert reg.execute("shed_load").result == "'new'"


def test_background_thread_ticks_at_the_interval(tmp_path) -> None:
    metrics = EngineMetrics(process=False, gpu=False)
    cfg = MonitorConfig.model_validate({"interval": "50ms"})
    mon = Monitor(cfg, tmp_path, metrics=metrics)
    with mon:
        for _ in range(20):
            metrics.record_batch(100, 100, 0, 0, 0, 0.001, None, None)
            time.sleep(0.02)
    n = read_samples(tmp_path / "metrics").to_pandas().time_s.nunique()
    assert 5 <= n <= 12  # ~0.4 s at 50 ms


def test_cli_list_shows_latest_states(tmp_path, capsys) -> None:
    cfg = MonitorConfig.model_validate(
        {
            "rules": [
                {
                    "name": "Hot",
                    "kind": "threshold",
                    "expr": "x > 1",
                    "severity": "critical",
                    "annotations": {"summary": "x is {value}"},
                }
            ]
        }
    )
    mon = Monitor(cfg, tmp_path, metrics=ReplaySource(lambda t: {"x": 5.0}))
    mon.tick(0.0)
    (alert,) = mon.alerts.values()
    assert main(["alerts", "list", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert alert.id in out and "firing" in out and "x is 5.0" in out
    assert main(["alerts", "list", "--out", str(tmp_path), "--json"]) == 0
    (rec,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rec["alert_id"] == alert.id and rec["state"] == "firing"


def test_cli_ack_unknown_id_is_refused(tmp_path, capsys) -> None:
    # an unknown id is an error (a typo must not pass for an acknowledgement)
    assert main(["alerts", "ack", "Nope-00000000", "--out", str(tmp_path)]) == 2
    assert "no alert 'Nope-00000000'" in capsys.readouterr().err
    assert not (tmp_path / "alerts_acks.jsonl").exists()


def test_acks_from_an_earlier_run_are_not_replayed(tmp_path) -> None:
    (tmp_path / "alerts_acks.jsonl").write_text(json.dumps({"alert_id": "X"}) + "\n")
    cfg = MonitorConfig.model_validate(
        {"rules": [{"name": "X", "kind": "threshold", "expr": "x > 1"}]}
    )
    mon = Monitor(cfg, tmp_path, metrics=ReplaySource(lambda t: {"x": 5.0}))
    mon.tick(0.0)
    assert not any(a.acknowledged for a in mon.alerts.values())
