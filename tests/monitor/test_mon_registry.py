"""EngineMetrics and the sampler: rates, quantiles, aliases, process and NVML collectors."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

from gpu_engine.monitor import EngineMetrics
from gpu_engine.monitor.sampler import histogram_quantile


def test_rates_and_aliases_over_the_interval() -> None:
    m = EngineMetrics(process=False, gpu=False)
    m.sample(10.0)  # primes the counters
    for i in range(20):
        m.record_batch(500, 480, 10, 7, 3, 0.01, {"decode": 0.002}, 0.2, worker=f"w{i % 2}")
    m.record_error("w1", "decode")
    m.add_windows_emitted("by_region", 6)
    m.set_queue_depth(4)
    m.set_watermark_lag(1.5)
    snap = m.snapshot(12.0, fresh=True)  # a 2 s interval
    assert snap["events_in_per_s"] == pytest.approx(20 * 500 / 2)
    assert snap["events_valid_per_s"] == pytest.approx(20 * 480 / 2)
    assert snap['events_per_s{outcome="late"}'] == pytest.approx(20 * 7 / 2)
    assert snap["events_dead_lettered_per_s"] == pytest.approx(20 * 3 / 2)
    assert snap["quarantine_ratio"] == pytest.approx(10 / 500)
    assert snap['worker_events_per_s{worker="w0"}'] == pytest.approx(10 * 500 / 2)
    assert snap['worker_errors_per_s{kind="decode",worker="w1"}'] == pytest.approx(0.5)
    assert snap["errors_per_s"] == pytest.approx(0.5)
    assert snap['windows_emitted_per_s{window="by_region"}'] == pytest.approx(3.0)
    assert snap['stage_seconds_per_s{stage="decode"}'] == pytest.approx(20 * 0.002 / 2)
    assert snap["batches_per_s"] == pytest.approx(10.0)
    assert snap["batch_rows_mean"] == pytest.approx(500)
    assert snap["queue_depth"] == 4 and snap["watermark_lag_seconds"] == 1.5
    # The next interval with no batches: rates drop to zero, quantiles disappear.
    idle = m.snapshot(13.0, fresh=True)
    assert idle["events_in_per_s"] == 0.0
    assert "batch_seconds_p99" not in idle


def test_histogram_quantiles_track_the_interval_not_history() -> None:
    m = EngineMetrics(process=False, gpu=False)
    m.sample(0.0)
    rng = np.random.default_rng(7)
    slow = rng.uniform(0.3, 0.45, 400)
    for s in slow:
        m.record_batch(1, 1, 0, 0, 0, float(s), None, None)
    first = m.snapshot(1.0, fresh=True)
    assert 0.25 <= first["batch_seconds_p50"] <= 0.5
    fast = rng.uniform(0.001, 0.002, 400)
    for s in fast:
        m.record_batch(1, 1, 0, 0, 0, float(s), None, None)
    second = m.snapshot(2.0, fresh=True)
    assert second["batch_seconds_p99"] <= 0.0025  # only this interval's batches count


def test_event_time_lag_of_a_replay_is_measured_not_capped() -> None:
    """A replay runs minutes behind its event times (the demo: ten minutes in seconds)."""
    m = EngineMetrics(process=False, gpu=False)
    m.sample(0.0)
    lags = np.random.default_rng(3).uniform(400.0, 500.0, 200)
    for lag in lags:
        m.record_batch(1, 1, 0, 0, 0, 0.01, None, float(lag))
    snap = m.snapshot(1.0, fresh=True)
    assert 300.0 < snap["e2e_latency_seconds_p50"] <= 600.0
    assert snap["e2e_latency_seconds_p99"] <= 600.0


def test_histogram_quantile_matches_prometheus_interpolation() -> None:
    buckets = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (math.inf, 40.0)]
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1)  # rank 10: top of bucket 1
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (20 - 10) / 20)
    assert histogram_quantile(0.9, buckets) == pytest.approx(0.5 + 0.5 * (36 - 30) / 10)
    assert histogram_quantile(0.99, [(1.0, 1.0), (math.inf, 5.0)]) == 1.0  # +Inf bucket
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))


def test_counter_reset_is_not_a_negative_rate() -> None:
    from prometheus_client import CollectorRegistry, Counter

    from gpu_engine.monitor.sampler import Sampler

    reg = CollectorRegistry()
    c = Counter("tiktoktoe_things_total", "x", registry=reg)
    s = Sampler(reg)
    c.inc(100)
    s.sample(0.0)
    c._value.set(5)  # simulate a restart of the counter
    assert s.sample(1.0).values[("things_per_s", ())] == 5.0


def test_process_cpu_and_rss_are_measured() -> None:
    m = EngineMetrics(gpu=False)
    m.sample(0.0)
    import time

    t0 = time.process_time()
    while time.process_time() - t0 < 0.1:  # burn 100 ms of CPU
        sum(range(1000))
    snap = m.snapshot(1.0, fresh=True)
    # The kernel counts process CPU in 10 ms ticks, so 100 ms may read as 90: >= 5 % has room.
    assert snap["process_cpu_percent"] >= 5.0  # over a (fake) 1 s interval
    assert snap["process_rss_bytes"] > 10 * 2**20


def test_gpu_series_come_from_nvml_when_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("pynvml")
    fake.nvmlInit = lambda: None  # type: ignore[attr-defined]
    fake.nvmlDeviceGetCount = lambda: 2  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    fake.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=30 + 10 * h)  # type: ignore[attr-defined]
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        used=(h + 1) * 2**30, total=8 * 2**30
    )  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    snap = EngineMetrics(process=False).snapshot(0.0)
    assert snap['gpu_utilization_ratio{gpu="1"}'] == pytest.approx(0.4)
    assert snap['gpu_memory_used_bytes{gpu="0"}'] == 2**30


def test_no_gpu_series_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    m = EngineMetrics(process=False)
    assert m.gpu_collector is None
    assert not [k for k in m.snapshot(0.0) if k.startswith("gpu_")]


def test_two_engines_do_not_share_series() -> None:
    a, b = EngineMetrics(process=False, gpu=False), EngineMetrics(process=False, gpu=False)
    a.sample(0.0)
    b.sample(0.0)
    a.record_batch(10, 10, 0, 0, 0, 0.01, None, None)
    assert a.snapshot(1.0, fresh=True)["events_in_per_s"] == 10
    assert b.snapshot(1.0, fresh=True)["events_in_per_s"] == 0
