"""Rule semantics found wrong by a review (2026-12-07): keep_firing_for, alerts that
several series share, PromQL escapes and empty matchers, infinite samples, sparse
batches, a noisy steady rate, mutual inhibition, strict JSON, a clock standing still."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpu_engine.monitor import EngineMetrics, Monitor, MonitorConfig, ReplaySource
from gpu_engine.monitor.sampler import Sampler
from gpu_engine.monitor.series import matches, parse_selector


def _prometheus_states(truth: list[bool], for_s: int, keep_s: float) -> list[str]:
    """Prometheus' alerting state machine (rules/alerting.go), one evaluation a second:
    a firing alert keeps firing while ``ts - KeepFiringSince < keep_firing_for``, where
    KeepFiringSince is the first false evaluation (reset by a true one)."""
    state, active_at, false_since, out = "inactive", 0.0, None, []
    for ts, holds in enumerate(truth):
        if holds:
            false_since = None
            if state in ("inactive", "resolved"):
                state, active_at = "pending", ts
            if state == "pending" and ts - active_at >= for_s:
                state = "firing"
        elif state == "pending":
            state = "inactive"
        elif state == "firing":
            false_since = ts if false_since is None else false_since
            if not (keep_s > 0 and ts - false_since < keep_s):
                state = "resolved"
        out.append(state)
    return out


def _monitor_states(truth: list[bool], for_s: int, keep_s: float) -> list[str]:
    rule = {"name": "R", "kind": "threshold", "expr": "m > 0", "for": f"{for_s}s"}
    config = {"rules": [{**rule, "keep_firing_for": f"{round(keep_s * 1000)}ms"}]}
    source = ReplaySource(lambda t: {"m": 1.0 if truth[int(t)] else 0.0})
    mon = Monitor(MonitorConfig.model_validate(config), None, metrics=source, clock=lambda: 0.0)
    states = []
    for t in range(len(truth)):
        mon.tick(float(t))
        states.append(next(iter(mon.alerts.values())).state.value)
    return states


def test_alert_states_equal_prometheus_on_random_conditions() -> None:
    """keep_firing_for was counted from the last true evaluation: a keep_firing_for of
    one interval did nothing, and longer ones resolved an interval early."""
    logging.disable(logging.WARNING)
    try:
        rng = np.random.default_rng(5)
        for _ in range(120):
            truth = [bool(x) for x in rng.random(40) < rng.uniform(0.2, 0.9)]
            for_s = int(rng.integers(0, 5))
            keep_s = float(rng.choice([0, 0.5, 1, 1.5, 2, 2.5, 3, 4]))  # under an interval too
            expected = _prometheus_states(truth, for_s, keep_s)
            assert _monitor_states(truth, for_s, keep_s) == expected, (truth, for_s, keep_s)
        flapping = [True, False] * 6
        assert set(_monitor_states(flapping, 0, 1)) == {"firing"}
    finally:
        logging.disable(logging.NOTSET)


def test_series_that_share_an_alert_step_it_once(make_monitor) -> None:
    """The rule's labels override the series' ``component``: both series are one alert,
    which was stepped twice a tick (pending, then inactive again) and never fired."""
    rule = {"name": "ErrHigh", "kind": "threshold", "expr": "err > 0.5", "for": "3s"}
    mon = make_monitor(
        {"rules": [{**rule, "labels": {"component": "engine"}}]},
        lambda t: {'err{component="a"}': 0.9, 'err{component="b"}': 0.1},
    )
    changes = [c for t in range(20) for c in mon.tick(float(t)).changes]
    (alert,) = mon.alerts.values()
    assert alert.state.value == "firing" and alert.value == 0.9
    assert [c["state"] for c in changes] == ["pending", "firing"]


@pytest.mark.parametrize("value", ["C:\\new", "x\\n", 'q"uote', "line\nbreak", "a\\\\b"])
def test_selector_label_values_unescape_as_promql(value: str) -> None:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    text = f'm{{k="{escaped}"}}'
    (family,) = text_string_to_metric_families(text + " 1\n")
    assert parse_selector(text)[1] == (("k", family.samples[0].labels["k"]),)
    assert family.samples[0].labels["k"] == value


def test_an_empty_matcher_matches_a_series_without_the_label() -> None:
    selector = parse_selector('m{region=""}')
    assert matches(selector, ("m", ()))
    assert not matches(selector, ("m", (("region", "eu"),)))


def test_an_infinite_sample_does_not_break_trend_and_anomaly_rules(make_monitor) -> None:
    """One inf kept CUSUM/EWMA firing for good and a Holt trend at NaN for good."""
    rules = [
        {"name": "Cusum", "kind": "anomaly", "metric": "m", "detector": {"kind": "cusum"}},
        {"name": "Ewma", "kind": "anomaly", "metric": "m", "detector": {"kind": "ewma"}},
        {
            "name": "Holt",
            "kind": "trend",
            "metric": "m",
            "window": "30s",
            "smoothing": "holt",
            "method": "slope",
            "op": ">",
            "threshold": 50,
        },
        {"name": "Above", "kind": "threshold", "expr": "m > 1000"},
    ]
    rng = np.random.default_rng(1)
    noise = rng.normal(100, 5, 400)

    def trace(t: float) -> dict[str, float]:
        if t == 100:
            return {"m": math.inf}
        return {"m": noise[int(t)] + (1000 if t >= 300 else 0)}  # a real shift at 300 s

    mon = make_monitor({"rules": rules}, trace)
    logging.disable(logging.WARNING)
    try:
        states: dict[str, list[str]] = {r["name"]: [] for r in rules}
        for t in range(400):
            mon.tick(float(t))
            for alert in mon.alerts.values():
                states[alert.rule].append(alert.state.value)
    finally:
        logging.disable(logging.NOTSET)
    assert states["Above"][100] == "firing"  # a threshold rule compares the inf
    for name in ("Cusum", "Ewma"):
        assert states[name][150:290].count("firing") < 10, name  # not stuck firing
        assert "firing" in states[name][300:310], name  # and still alive for the shift
    assert "firing" in states["Holt"][300:330]


def test_the_default_rules_fire_when_slow_batches_finish_every_other_interval() -> None:
    """An interval without a batch had no p99 and a quarantine ratio of 0, so ``for``
    restarted every other second and neither rule ever fired."""
    metrics = EngineMetrics(process=False, gpu=False)
    mon = Monitor(MonitorConfig.default(), None, metrics=metrics, clock=lambda: 0.0)
    logging.disable(logging.WARNING)
    try:
        for t in range(30):
            if t % 2:  # a 2-second batch, half its rows quarantined
                metrics.record_batch(1000, 500, 500, 0, 0, 2.0)
            mon.tick(float(t))
    finally:
        logging.disable(logging.NOTSET)
    firing = {a.rule for a in mon.firing()}
    assert {"BatchLatencyHigh", "QuarantineRateHigh"} <= firing


def test_quantiles_and_the_ratio_span_the_range() -> None:
    """Over ``range``: the p99 and ratio of everything that ended within it (an oracle
    of the pooled observations), rates still per interval."""
    metrics = EngineMetrics(process=False, gpu=False)
    durations = [0.004, 0.3, 0.02, 0.7, 0.004]
    for t, seconds in enumerate(durations):
        metrics.record_batch(100, 90 - 10 * t, 10 + 10 * t, 0, 0, seconds)
        sample = metrics.sample(float(t), range_s=3.0)
    values = sample.values
    last3 = durations[-3:]
    assert values[("batch_seconds_mean", ())] == pytest.approx(np.mean(last3))
    assert values[("quarantine_ratio", ())] == pytest.approx((30 + 40 + 50) / 300)
    assert values[("events_in_per_s", ())] == pytest.approx(100)
    # p99 of 0.004, 0.02, 0.7 in buckets: in the bucket (0.5, 0.75], as histogram_quantile
    assert 0.5 < values[("batch_seconds_p99", ())] <= 0.75


def _default_rule_firing(rule: str, ingest_rates: np.ndarray) -> list[float]:
    """When the default ``rule`` fired on a replayed ``events_in_per_s``, one value a second."""
    mon = Monitor(
        MonitorConfig.default(), None,
        metrics=ReplaySource(lambda t: {"events_in_per_s": float(ingest_rates[int(t)])}),
        clock=lambda: 0.0,
    )  # fmt: skip
    fired = []
    logging.disable(logging.WARNING)
    try:
        for t in range(len(ingest_rates)):
            for change in mon.tick(float(t)).changes:
                if change["rule"] == rule and change["state"] == "firing":
                    fired.append(float(t))
    finally:
        logging.disable(logging.NOTSET)
    return fired


def test_a_steady_noisy_rate_does_not_make_throughput_falling_fire() -> None:
    rng = np.random.default_rng(0)
    rates = rng.normal(1000, 100, 600).clip(0)
    assert _default_rule_firing("ThroughputFalling", rates) == []
    steps = np.tile([0.0, 1000.0], 150)  # a batch every other second
    assert _default_rule_firing("ThroughputFalling", steps) == []
    falling = np.concatenate([rates[:100], np.linspace(1000, 300, 30), rates[:60] * 0.3])
    (fired,) = _default_rule_firing("ThroughputFalling", falling)
    assert 100 < fired < 140


def test_settings_that_could_never_work_are_refused() -> None:
    rz = {"kind": "robust_z", "window": 5, "min_samples": 10}
    with pytest.raises(ValueError, match=r"min_samples \(10\) is more than the window"):
        MonitorConfig.model_validate(
            {"rules": [{"name": "A", "kind": "anomaly", "metric": "m", "detector": rz}]}
        )
    with pytest.raises(ValueError, match="not a finite number"):
        MonitorConfig.model_validate(
            {"rules": [{"name": "T", "kind": "threshold", "expr": "m > inf"}]}
        )
    with pytest.raises(ValueError, match="finite"):
        MonitorConfig.model_validate(
            {
                "rules": [
                    {
                        "name": "A",
                        "kind": "anomaly",
                        "metric": "m",
                        "detector": {"kind": "ewma", "sigma": "inf"},
                    }
                ]
            }
        )


def test_two_sources_of_a_rule_that_targets_them_do_not_silence_each_other(make_monitor) -> None:
    rules = [
        {
            "name": name,
            "kind": "threshold",
            "expr": f"{name.lower()} > 0",
            "severity": "critical",
            "labels": {"component": "engine"},
        }
        for name in ("A", "B")
    ]
    mon = make_monitor(
        {"rules": rules, "inhibit": [{"source": "critical", "target": ["critical", "warning"]}]},
        lambda t: {"a": 1.0, "b": 1.0},
    )
    logging.disable(logging.WARNING)
    try:
        mon.tick(0.0)
    finally:
        logging.disable(logging.NOTSET)
    assert sorted(a.rule for a in mon.alerts.values() if not a.inhibited) == ["A", "B"]


def test_alert_records_are_strict_json(tmp_path, make_monitor) -> None:
    mon = make_monitor(
        {"rules": [{"name": "R", "kind": "threshold", "expr": "m > 5"}]},
        lambda t: {"m": math.inf},
        out_dir=tmp_path,
    )
    logging.disable(logging.WARNING)
    try:
        mon.tick(0.0)
        mon.stop()
    finally:
        logging.disable(logging.NOTSET)

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    records = [json.loads(line, parse_constant=refuse) for line in lines]
    assert [r["value"] for r in records if r.get("event") == "state"] == ["+Inf"]


def test_a_clock_standing_still_loses_no_increment() -> None:
    metrics = EngineMetrics(process=False, gpu=False)
    sampler = Sampler(metrics.registry)
    sampler.sample(0.0)
    metrics.record_batch(100, 100, 0, 0, 0, 0.01)
    sampler.sample(0.0)  # no time passed: no rate, and the 100 events stay to be counted
    sample = sampler.sample(1.0)
    assert sample.values[("events_in_per_s", ())] == pytest.approx(100)


def test_the_range_sums_equal_a_recount_over_irregular_ticks() -> None:
    """The range keeps running sums (a tick's cost does not grow with the range): they
    equal the increments of the intervals that ended within the range, recounted."""
    metrics = EngineMetrics(process=False, gpu=False)
    sampler = Sampler(metrics.registry)
    rng = np.random.default_rng(4)
    now, ticks = 0.0, []  # (time, events in during the interval that ended then)
    sampler.sample(now)
    key = ("tiktoktoe_events_in_total", ())
    window = ("tiktoktoe_windows_emitted_total", (("window", "late_one"),))
    for step in range(400):
        events = int(rng.integers(0, 5)) * 100
        if events:
            metrics.record_batch(events, events, 0, 0, 0, 0.01)
        if step == 200:
            metrics.add_windows_emitted("late_one", 3)  # a series that appears mid-run
        now += float(rng.uniform(0.5, 1.5))
        ticks.append((now, events))
        sampler.sample(now, range_s=7.0)
        inside = [n for t, n in ticks if t > now - 7.0 + 1e-9]
        assert sampler.increase_over_range(key) == float(sum(inside))
        if step < 200:
            assert sampler.increase_over_range(window) is None  # not yet a series
        else:  # 3 while the interval it came in is in the range, then 0
            came_in = ticks[200][0] > now - 7.0 + 1e-9
            assert sampler.increase_over_range(window) == (3.0 if came_in else 0.0)


def test_the_default_ingest_anomaly_rule_lets_a_cold_start_be_and_catches_a_spike() -> None:
    """The demo's cold run (12 s of no events while kernels compile, then its rate) fired
    IngestRateAnomaly on the start."""
    rng = np.random.default_rng(3)
    rates = np.concatenate([np.zeros(12), rng.normal(40_000, 2_000, 300)])
    rates[250] = 400_000  # a real spike
    assert _default_rule_firing("IngestRateAnomaly", rates) == [250.0]
