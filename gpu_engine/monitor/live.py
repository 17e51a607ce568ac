"""A rich renderable of the main metrics and the alerts, for the demo's live view.

Usage by the engine::

    with LiveView(monitor) as view:       # refreshes from the monitor's last sample
        ... run ...

or ``render(monitor)`` to get a renderable for one's own ``rich.live.Live``.
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from .alerts import AlertState
from .monitor import Monitor
from .registry import TOP_BOUNDS

MAIN_METRICS: tuple[tuple[str, str, str], ...] = (
    ("events_in_per_s", "events in /s", "{:,.0f}"),
    ("events_valid_per_s", "valid /s", "{:,.0f}"),
    ("events_quarantined_per_s", "quarantined /s", "{:,.0f}"),
    ("events_late_per_s", "late /s", "{:,.0f}"),
    ("events_dead_lettered_per_s", "dead-lettered /s", "{:,.0f}"),
    ("batch_rows_mean", "batch size (mean rows)", "{:,.0f}"),
    ("batch_seconds_p50", "batch time p50 (s)", "{:.4f}"),
    ("batch_seconds_p99", "batch time p99 (s)", "{:.4f}"),
    ("e2e_latency_seconds_p50", "end-to-end latency p50 (s)", "{:.3f}"),
    ("e2e_latency_seconds_p99", "end-to-end latency p99 (s)", "{:.3f}"),
    ("queue_depth", "rows awaiting a batch", "{:.0f}"),
    ("batch_overdue_seconds", "rows overdue (s)", "{:.2f}"),
    ("watermark_lag_seconds", "watermark lag (s)", "{:.2f}"),
    ("windows_emitted_all_per_s", "windows emitted /s", "{:,.1f}"),
    ("errors_per_s", "errors /s", "{:.2f}"),
    ("process_cpu_percent", "process CPU %", "{:.1f}"),
    ("process_rss_bytes", "process RSS (MiB)", "mib"),
)

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _fmt(value: float | None, spec: str, top: float = math.inf) -> str:
    if value is None or math.isnan(value):
        return "–"
    if spec == "mib":
        return f"{value / 2**20:,.1f}"
    return ("≥ " if value >= top else "") + spec.format(value)


def _top_bound(key: str) -> float:
    """The last finite bucket bound of the histogram a ``<name>_pNN`` key comes from: a
    quantile there is shown as "at least" that, not as a measured value."""
    prefix, _, suffix = key.rpartition("_")
    if not suffix.startswith("p") or not suffix[1:].isdigit():
        return math.inf
    return TOP_BOUNDS.get(prefix, math.inf)


def render(monitor: Monitor, max_alerts: int = 10) -> Group:
    """Metrics table plus active alerts and the latest state changes."""
    flat = monitor.last_sample.flat() if monitor.last_sample else {}
    metrics = Table(title="TikTokToe engine", expand=False)
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for key, label, spec in MAIN_METRICS:
        metrics.add_row(label, _fmt(flat.get(key), spec, _top_bound(key)))
    for key in sorted(k for k in flat if k.startswith("gpu_")):
        metrics.add_row(key, _fmt(flat[key], "{:,.2f}"))

    alerts = Table(title="alerts", expand=False)
    for col in ("id", "state", "severity", "summary"):
        alerts.add_column(col)
    active = [
        a for a in monitor.alerts.values() if a.state in (AlertState.PENDING, AlertState.FIRING)
    ]
    for a in sorted(
        active, key=lambda a: (a.severity != "critical", a.severity != "warning", a.id)
    )[:max_alerts]:
        flags = "".join(
            [" (acked)" if a.acknowledged else "", " (inhibited)" if a.inhibited else ""]
        )
        alerts.add_row(
            a.id,
            a.state.value + flags,
            f"[{_STYLE.get(a.severity, '')}]{a.severity}[/]",
            a.annotations.get("summary", ""),
        )
    history = Table(title="recent alert changes", expand=False)
    history.add_column("t")
    history.add_column("alert")
    history.add_column("change")
    for rec in list(monitor.recent_changes)[-max_alerts:]:
        change = (
            rec.get("event")
            if rec.get("event") != "state"
            else f"{rec.get('previous')} → {rec.get('state')}"
        )
        history.add_row(f"{rec.get('time_s', 0):.0f}", str(rec.get("alert_id")), str(change))
    return Group(metrics, alerts, history)


class LiveView:
    """Context manager around ``rich.live.Live`` that redraws ``render(monitor)``."""

    def __init__(
        self, monitor: Monitor, console: Console | None = None, refresh_per_second: float = 2
    ) -> None:
        self.monitor = monitor
        self._live = Live(
            get_renderable=lambda: render(monitor),
            console=console,
            refresh_per_second=refresh_per_second,
        )

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)

    def refresh(self) -> None:
        self._live.refresh()
