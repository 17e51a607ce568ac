"""Performance monitor: metrics registry, Prometheus exposition, rules, alerts, escalation, actions.

Integration API for the engine::

    from gpu_engine.monitor import Monitor, MonitorConfig, EngineMetrics

    metrics = EngineMetrics()                 # hot path: record_batch(...) once per batch
    monitor = Monitor(MonitorConfig.default(), out_dir, metrics=metrics)
    server = serve_metrics(metrics.registry, port=9108)   # --metrics-port
    monitor.actions.register("scale_workers", lambda alert, delta=1: ...)  # your own
    # (a rule file naming it: load_monitor_config(path, check_actions=False))
    monitor.start()
    ...  monitor.observe_window("region_errors", frame)  # window outputs → rules
    monitor.stop(); server.stop()

Files under OUT: ``alerts.jsonl`` (every state change), ``alerts_acks.jsonl``
(acks from ``gpu-engine alerts ack``), ``actions.jsonl``,
``metrics/samples-*.parquet`` (columns time_s, name, labels JSON, value).
"""

from .actions import ActionOutcome, ActionRegistry
from .alerts import Alert, AlertState
from .exposition import MetricsServer, serve_metrics
from .monitor import Monitor, TickResult, window_series_name
from .registry import EngineMetrics
from .replay import ReplaySource
from .rules import MonitorConfig, load_monitor_config, parse_monitor_config
from .sampler import read_samples

__all__ = [
    "ActionOutcome",
    "ActionRegistry",
    "Alert",
    "AlertState",
    "EngineMetrics",
    "MetricsServer",
    "Monitor",
    "MonitorConfig",
    "ReplaySource",
    "TickResult",
    "load_monitor_config",
    "parse_monitor_config",
    "read_samples",
    "serve_metrics",
    "window_series_name",
]
