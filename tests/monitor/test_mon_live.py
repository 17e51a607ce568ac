"""The live view renders the main metrics and the active alerts."""

from __future__ import annotations

import io

from rich.console import Console

from gpu_engine.monitor import Monitor, MonitorConfig, ReplaySource
from gpu_engine.monitor.live import LiveView, render


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
