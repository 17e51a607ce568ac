"""Connecting a running engine to the monitor: batch metrics, window outputs, actions.

The engine knows nothing of Prometheus or rules; it reports each batch to
listeners and each output to sinks. :class:`EngineMonitoring` is both a
listener and a sink, and registers the automated responses the runtime can
carry out.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from gpu_engine.engine import BatchReport, Engine
from gpu_engine.monitor import EngineMetrics, Monitor, MonitorConfig, serve_metrics
from gpu_engine.monitor.exposition import MetricsServer

WINDOW_BOUNDS = ("window_start", "window_end")  # a window's bounds: neither key nor value


class EngineMonitoring:
    """Metrics, rules and the optional Prometheus endpoint of one run."""

    def __init__(
        self,
        out_dir: str | Path,
        config: MonitorConfig | None = None,
        metrics_port: int | None = None,
        metrics_addr: str = "127.0.0.1",
    ) -> None:
        self.metrics = EngineMetrics()
        self.monitor = Monitor(config or MonitorConfig.default(), out_dir, metrics=self.metrics)
        self.server: MetricsServer | None = None
        if metrics_port is not None:
            self.server = serve_metrics(self.metrics.registry, metrics_port, metrics_addr)
        rules_text = self.monitor.config.model_dump_json()
        self._watched = lambda window: f"window:{window}." in rules_text
        self.engine: Engine | None = None
        self._window_keys: dict[str, list[str]] = {}  # each window's key columns (attach)

    def attach(self, engine: Engine) -> None:
        """Register the actions this engine can carry out when a rule asks for them."""
        self.engine = engine
        self._window_keys = {w.name: list(w.keys) for w in engine.config.windows}

        def buffered_rows() -> float:  # rows of a closed engine wait for nothing any more
            return 0 if engine.closed else engine.waiting_rows

        def overdue_s() -> float:
            return 0.0 if engine.closed else engine.batcher.overdue_s(engine.clock())

        self.metrics.watch_batcher(buffered_rows, overdue_s)
        self.monitor.actions.register("shrink_batch_delay", self._shrink_batch_delay)
        self.monitor.actions.register("run_optimizer", self._run_optimizer)

    def _run_optimizer(
        self, alert: Any = None, budget: float = 2.0, sla: str = "50ms", price: float = 0.05
    ) -> dict[str, Any]:
        """Fit the queueing model to this run's batches, solve it, apply what can change live.

        Worker counts are reported for the next start, since the key-partitioned state
        is fixed for the life of a run. What changes at once is the micro-batch size and
        delay: the size that gives the engine as it runs (one batch at a time, its stages
        in turn: :mod:`gpu_engine.optimizer.shared_batch`) the lowest predicted latency
        within the SLA; nothing changes when no size meets it.
        """
        from gpu_engine.optimizer.fit import fit_metrics, problem_from_metrics
        from gpu_engine.optimizer.shared_batch import best_shared_batch, engine_utilisation
        from gpu_engine.optimizer.solver import recommend

        assert self.engine is not None
        fit = fit_metrics(self.engine.batch_metrics().to_pandas())
        problem = problem_from_metrics(fit, budget, sla, price=price)
        allocation = recommend(problem)
        shared = best_shared_batch(problem)
        if shared is not None:
            self.engine.set_batching(
                max_rows=shared.batch, max_delay_s=max(0.001, shared.max_delay_s)
            )
        batcher = self.engine.batcher
        return {
            "feasible": allocation.feasible,
            "binding": allocation.binding,
            "applied": {"max_rows": batcher.max_rows, "max_delay_s": batcher.max_delay_s},
            "applied_meets_sla": shared is not None,
            "predicted_latency_s_now": None if shared is None else shared.latency_s,
            "utilisation_now": engine_utilisation(problem, batcher.max_rows),
            "workers_now": {st.name: st.workers for st in fit.stages},
            "workers_next_start": {s.name: s.workers for s in allocation.stages},
            "predicted_latency_s": allocation.latency_s,
            "cost": allocation.cost,
            "warnings": fit.warnings(),  # e.g. batch sizes too alike to fit a per-batch cost
        }

    def _shrink_batch_delay(self, alert: Any = None, factor: float = 0.5) -> dict[str, float]:
        assert self.engine is not None
        before = self.engine.batcher.max_delay_s
        self.engine.set_batching(max_delay_s=max(0.001, before * factor))
        return {"max_delay_s_before": before, "max_delay_s_after": self.engine.batcher.max_delay_s}

    # -- engine listener ----------------------------------------------------------------
    def on_batch(self, report: BatchReport) -> None:
        if report.event_times_ms is not None:
            self.metrics.record_event_times(report.event_times_ms, time.time())
        self.metrics.record_batch(
            rows_in=report.rows,
            valid=report.valid,
            quarantined=report.quarantined,
            late=report.late,
            dead_lettered=report.dead_lettered,
            seconds=sum(report.stage_seconds.values()),
            stage_seconds=report.stage_seconds,
            worker_rows=report.worker_rows,
        )
        if report.dead_lettered:
            self.metrics.record_error("engine", "dead_letter")
        if report.watermark_ms is not None:
            self.metrics.set_watermark_lag(time.time() - report.watermark_ms / 1000.0)

    # -- sink ---------------------------------------------------------------------------
    def windows(self, name: str, table: pa.Table) -> None:
        self.metrics.add_windows_emitted(name, table.num_rows)
        if self._watched(name):
            keys = self._window_keys.get(name)
            if keys is None:  # not attached: the monitor tells keys from values by type
                self.monitor.observe_window(name, table)
                return
            # The window's own keys, whatever their type: an integer key (content_id) was
            # taken for a value, and every key's rows then set one series, the last row's.
            values = [f.name for f in table.schema
                      if f.name not in keys and f.name not in WINDOW_BOUNDS
                      and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                           or pa.types.is_boolean(f.type))]  # fmt: skip
            self.monitor.observe_window(name, table, keys=keys, values=values)

    def quarantine(self, table: pa.Table) -> None:
        pass

    def late(self, name: str, table: pa.Table) -> None:
        pass

    def dead_letter(self, table: pa.Table) -> None:
        pass

    def close(self, summary: dict[str, Any]) -> None:
        pass

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> EngineMonitoring:
        self.monitor.start()
        return self

    def stop(self) -> None:
        self.monitor.tick()
        self.monitor.stop()
        if self.server is not None:
            self.server.stop()
