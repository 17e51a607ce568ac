"""End-to-end latency of every event, not one per batch (``monitor.lag``)."""

from __future__ import annotations

import time
import urllib.request

import numpy as np
import pytest
from engine_testing import make_config, random_events
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gpu_engine.monitor.lag import LagHistogram
from gpu_engine.monitor.registry import LATENCY_BUCKETS
from gpu_engine.monitoring import EngineMonitoring
from gpu_engine.runner import run_pipeline


def _histogram(text: str, name: str) -> dict[str, float]:
    """A histogram's samples by ``le`` (buckets), ``count`` and ``sum``."""
    family = {f.name: f for f in text_string_to_metric_families(text)}[name]
    out = {}
    for s in family.samples:
        if s.name.endswith("_bucket"):
            out[s.labels["le"]] = s.value
        elif s.name.endswith(("_count", "_sum")):
            out[s.name.rsplit("_", 1)[1]] = s.value
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_batch_of_times_counts_as_prometheus_observing_each_lag(seed: int) -> None:
    """Oracle: ``prometheus_client.Histogram.observe`` of each lag in turn, with lags on
    bucket bounds exactly (``le`` is inclusive), past the last bound, and negative."""
    rng = np.random.default_rng(seed)
    now_s = 1_800_000_000.5
    now_ms = now_s * 1000.0
    bounds_ms = (np.asarray(LATENCY_BUCKETS) * 1000).astype(np.int64)
    lags_ms = np.concatenate(
        [
            rng.integers(0, 200_000, 3000),
            rng.choice(bounds_ms, 200) + rng.integers(-1, 2, 200),
            rng.integers(-5000, 0, 50),  # event times ahead of the clock
            [100_000_000, 86_400_000],
        ]
    )
    times = np.round(now_ms - lags_ms - 0.5).astype(np.int64)  # lag = now - time, sub-ms part
    ours = LagHistogram("lag_seconds", "d", LATENCY_BUCKETS)
    for part in np.array_split(times, 7):
        ours.observe_event_times(part, now_s)
    oracle_registry = CollectorRegistry()
    oracle = Histogram("lag_seconds", "d", buckets=LATENCY_BUCKETS, registry=oracle_registry)
    for t in times:
        oracle.observe(max(0.0, now_s - int(t) / 1000.0))
    registry = CollectorRegistry()
    registry.register(ours)
    got = _histogram(generate_latest(registry).decode(), "lag_seconds")
    want = _histogram(generate_latest(oracle_registry).decode(), "lag_seconds")
    assert got.pop("sum") == pytest.approx(want.pop("sum"), rel=1e-9)
    assert got == want


def test_scraped_latency_counts_every_event_of_a_batch(tmp_path, rng) -> None:
    """One batch holds events 2-3 s and 200-250 s old: the histogram has one observation
    per valid event, in their buckets (it had one per batch, the newest event's)."""
    frame = random_events(rng, 2000)
    old = rng.random(len(frame)) < 0.3
    lags_ms = np.where(old, rng.integers(200_000, 250_000, len(frame)), 2000)
    config = make_config({"type": "tumbling", "size": 1000, "keys": ["k"]})
    # A first run compiles the kernels (a minute on a cold, busy machine), so that the
    # lags below are those the events were given, plus the seconds of one warm run.
    run_pipeline(config, iter([(frame.iloc[:10], "warm", 0)]), tmp_path / "warm")  # type: ignore[arg-type]
    frame["t"] = int(time.time() * 1000) - lags_ms
    monitoring = EngineMonitoring(tmp_path, metrics_port=0)
    try:
        assert monitoring.server is not None
        batches = iter([(frame, "test", 0)])
        summary = run_pipeline(config, batches, tmp_path, monitoring=monitoring)  # type: ignore[arg-type]
        with urllib.request.urlopen(monitoring.server.url, timeout=5) as response:
            text = response.read().decode()
    finally:
        monitoring.stop()
    latency = _histogram(text, "tiktoktoe_e2e_latency_seconds")
    assert summary["batches"] == 1
    assert latency["count"] == summary["events"]["valid"] == len(frame)
    # a warm run takes well under 25 s, so no event moves past 30 s or 300 s
    assert latency["1.0"] == 0
    assert latency["30.0"] == np.count_nonzero(~old)
    assert latency["300.0"] == len(frame)
    assert latency["sum"] >= lags_ms.sum() / 1000.0
