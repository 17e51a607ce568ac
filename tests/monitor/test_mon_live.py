"""The live view renders the main metrics and the active alerts."""

from __future__ import annotations

import io

from rich.console import Console

from gpu_engine.monitor import Monitor, MonitorConfig, ReplaySource
from gpu_engine.monitor.live import LiveView, render
from gpu_engine.monitor.registry import BATCH_SECONDS_BUCKETS, LATENCY_BUCKETS


def test_live_view_shows_metrics_and_alerts() -> None:
    cfg = MonitorConfig.model_validate(
        {
            "rules": [
                {
                    "name": "Backlog",
                    "kind": "threshold",
                    "expr": "queue_depth > 100",
                    "severity": "critical",
                    "annotations": {"summary": "{value:.0f} queued"},
                }
            ]
        }
    )

    def trace(t: float) -> dict[str, float]:
        return {
            "events_in_per_s": 12345.0,
            "queue_depth": 250.0,
            "batch_seconds_p99": 0.0421,
        }

    mon = Monitor(cfg, metrics=ReplaySource(trace))
    mon.tick(0.0)
    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(render(mon))
    text = console.export_text()
    assert "12,345" in text and "0.0421" in text
    assert "Backlog" in text and "250 queued" in text and "firing" in text
    with LiveView(mon, console=Console(file=io.StringIO(), width=120)) as view:
        view.refresh()


def test_a_quantile_at_the_last_bucket_bound_reads_as_at_least() -> None:
    top = LATENCY_BUCKETS[-1]
    trace = {"e2e_latency_seconds_p50": 450.0, "e2e_latency_seconds_p99": top,
             "batch_seconds_p99": BATCH_SECONDS_BUCKETS[-1], "batch_seconds_p50": 0.5}  # fmt: skip
    mon = Monitor(MonitorConfig(), metrics=ReplaySource(lambda t: trace))
    mon.tick(0.0)
    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(render(mon))
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in console.export_text().splitlines() if line.count("│") == 3}  # fmt: skip
    assert lines["end-to-end latency p50 (s)"] == "450.000"
    assert lines["end-to-end latency p99 (s)"] == f"≥ {top:.3f}"
    assert lines["batch time p99 (s)"] == f"≥ {BATCH_SECONDS_BUCKETS[-1]:.4f}"
    assert lines["batch time p50 (s)"] == "0.5000"
