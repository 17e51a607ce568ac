"""The engine-facing metrics registry: cheap per-batch recording, Prometheus naming.

The engine calls ``EngineMetrics`` once per batch (never per event). All series
live in a private ``CollectorRegistry`` so several engines (or tests) in one
process never collide, and the same registry is both scraped over HTTP and
sampled each interval for rules and Parquet.

Exposed series (Prometheus names):

- ``tiktoktoe_events_in_total``;
  ``tiktoktoe_events_total{outcome=valid|quarantined|late|dead_lettered}``
- ``tiktoktoe_batch_rows`` and ``tiktoktoe_batch_seconds`` histograms
- ``tiktoktoe_e2e_latency_seconds`` histogram (processing time minus event time, of
  every valid event: ``record_event_times``)
- ``tiktoktoe_stage_seconds_total{stage}``
- ``tiktoktoe_queue_depth``, ``tiktoktoe_batch_overdue_seconds``,
  ``tiktoktoe_watermark_lag_seconds`` gauges
- ``tiktoktoe_windows_emitted_total{window}``
- ``tiktoktoe_worker_events_total{worker}``, ``tiktoktoe_worker_errors_total{worker,kind}``
- ``tiktoktoe_process_cpu_seconds_total``, ``tiktoktoe_process_resident_memory_bytes``
- ``tiktoktoe_gpu_utilization_ratio{gpu}``, ``tiktoktoe_gpu_memory_used_bytes{gpu}`` (NVML only)

Flat names in ``snapshot()`` (used by rules): counters become ``<name>_per_s``
(prefix and ``_total`` dropped), gauges keep their name, histograms give
``<name>_p50/_p95/_p99``, ``<name>_mean`` and ``<name>_count_per_s``. Aliases:
``events_<outcome>_per_s``, ``quarantine_ratio`` (quarantined / in),
``errors_per_s`` and ``windows_emitted_all_per_s`` (sums over labels),
``batches_per_s``, ``process_cpu_percent``, ``process_rss_bytes``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import numpy as np
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import CollectorRegistry

from .lag import LagHistogram
from .sampler import PREFIX, Sample, Sampler
from .system import GPU_SERIES, ProcessCollector, nvml_collector

OUTCOMES = ("valid", "quarantined", "late", "dead_lettered")
# The names ``sample()`` adds on top of the sampler's (kept in step with it: a test
# checks every name a full sample holds is known).
ALIASES = (
    *(f"events_{o}_per_s" for o in OUTCOMES),
    "quarantine_ratio",
    "errors_per_s",
    "windows_emitted_all_per_s",
    "batches_per_s",
    "process_cpu_percent",
    "process_rss_bytes",
)
BATCH_SECONDS_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Up to a day: a replay or backfill runs far behind its event times (the demo plays ten
# minutes of events in seconds), and a quantile past the last bound reads as that bound.
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0, 86400.0,
)  # fmt: skip
ROWS_BUCKETS = (1, 10, 100, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 10_000_000)
# Each histogram's last finite bound, by its flat name: a quantile past it reads as it
# (Prometheus' rule), so views show such a value as "at least" (monitor.live).
TOP_BOUNDS = {
    "batch_rows": ROWS_BUCKETS[-1],
    "batch_seconds": BATCH_SECONDS_BUCKETS[-1],
    "e2e_latency_seconds": LATENCY_BUCKETS[-1],
}


def engine_series_names() -> frozenset[str]:
    """The metric names of an engine's registry, for checking rules before a run starts."""
    return EngineMetrics(process=True, gpu=False).series_names()


class EngineMetrics:
    """Hot-path recorder plus the interval sampler over one private registry."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        process: bool = True,
        gpu: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._events_in = Counter("tiktoktoe_events_in_total", "Events received.", registry=r)
        events = Counter(
            "tiktoktoe_events_total", "Events by validation outcome.", ["outcome"], registry=r
        )
        self._outcome = {o: events.labels(outcome=o) for o in OUTCOMES}
        self._batch_rows = Histogram(
            "tiktoktoe_batch_rows", "Rows per batch.", buckets=ROWS_BUCKETS, registry=r
        )
        self._batch_seconds = Histogram(
            "tiktoktoe_batch_seconds",
            "Wall time to process one batch.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self._latency = LagHistogram(
            "tiktoktoe_e2e_latency_seconds",
            "Processing time minus event time, per valid event.",
            LATENCY_BUCKETS,
        )
        r.register(self._latency)
        self._stage = Counter(
            "tiktoktoe_stage_seconds_total",
            "Wall time spent per pipeline stage.",
            ["stage"],
            registry=r,
        )
        self._queue = Gauge(
            "tiktoktoe_queue_depth", "Rows pushed and waiting for their micro-batch.", registry=r
        )
        self._overdue = Gauge(
            "tiktoktoe_batch_overdue_seconds",
            "How far the oldest row waiting for its micro-batch is past max_delay.",
            registry=r,
        )
        self._wm_lag = Gauge(
            "tiktoktoe_watermark_lag_seconds", "Wall clock minus the watermark.", registry=r
        )
        self._windows = Counter(
            "tiktoktoe_windows_emitted_total", "Window results emitted.", ["window"], registry=r
        )
        self._worker_events = Counter(
            "tiktoktoe_worker_events_total", "Events processed per worker.", ["worker"], registry=r
        )
        self._errors = Counter(
            "tiktoktoe_worker_errors_total",
            "Errors per worker and kind.",
            ["worker", "kind"],
            registry=r,
        )
        # labels() takes a lock and a dict lookup; cache children so the hot path is one inc().
        self._child_lock = threading.Lock()
        self._stage_children: dict[str, object] = {}
        self._worker_children: dict[str, object] = {}
        if process:
            r.register(ProcessCollector())
        self.gpu_collector = nvml_collector() if gpu else None
        if self.gpu_collector is not None:
            r.register(self.gpu_collector)
        self._sampler = Sampler(r)
        self._last: Sample | None = None

    # -- hot path ---------------------------------------------------------------------------
    def record_batch(
        self,
        rows_in: int,
        valid: int,
        quarantined: int,
        late: int,
        dead_lettered: int,
        seconds: float,
        stage_seconds: Mapping[str, float] | None = None,
        event_time_lag_s: float | None = None,
        worker: str = "0",
        worker_rows: Mapping[str, int] | None = None,
    ) -> None:
        """Record one processed batch; O(stages) counter increments, no allocation per event.

        ``event_time_lag_s`` is one observation of the end-to-end latency; the engine's
        listener gives every event's instead (``record_event_times``).
        """
        self._events_in.inc(rows_in)
        out = self._outcome
        if valid:
            out["valid"].inc(valid)
        if quarantined:
            out["quarantined"].inc(quarantined)
        if late:
            out["late"].inc(late)
        if dead_lettered:
            out["dead_lettered"].inc(dead_lettered)
        self._batch_rows.observe(rows_in)
        self._batch_seconds.observe(seconds)
        if event_time_lag_s is not None:
            self._latency.observe(max(0.0, event_time_lag_s))
        if stage_seconds:
            for stage, secs in stage_seconds.items():
                child = self._stage_children.get(stage)
                if child is None:
                    with self._child_lock:
                        child = self._stage_children.setdefault(
                            stage, self._stage.labels(stage=stage)
                        )
                child.inc(secs)  # type: ignore[attr-defined]
        # Per-worker throughput: the rows each worker (shard) took, or all to ``worker``.
        for name, rows in (worker_rows if worker_rows is not None else {worker: rows_in}).items():
            wchild = self._worker_children.get(name)
            if wchild is None:
                with self._child_lock:
                    wchild = self._worker_children.setdefault(
                        name, self._worker_events.labels(worker=name)
                    )
            wchild.inc(rows)  # type: ignore[attr-defined]

    def record_event_times(self, times_ms: np.ndarray, now_s: float) -> None:
        """The end-to-end latency of each event of a batch: ``now_s`` minus its time."""
        self._latency.observe_event_times(times_ms, now_s)

    def set_queue_depth(self, n: int | float) -> None:
        """For a registry with no engine to read (``watch_batcher`` replaces it)."""
        self._queue.set(n)

    def watch_batcher(
        self, buffered_rows: Callable[[], float], overdue_s: Callable[[], float]
    ) -> None:
        """Read the queue depth and the overdue seconds when sampled or scraped: a batch's
        report cannot say that rows are stuck, since stuck rows make no batch."""
        self._queue.set_function(buffered_rows)
        self._overdue.set_function(overdue_s)

    def set_watermark_lag(self, seconds: float) -> None:
        self._wm_lag.set(seconds)

    def add_windows_emitted(self, window_name: str, n: int = 1) -> None:
        self._windows.labels(window=window_name).inc(n)

    def record_error(self, worker: str, kind: str) -> None:
        self._errors.labels(worker=worker, kind=kind).inc()

    # -- interval side ----------------------------------------------------------------------
    def sample(self, now: float | None = None, range_s: float = 0.0) -> Sample:
        """Take the interval's sample (rates since the previous call) and add the aliases.

        Histogram quantiles and means, and ``quarantine_ratio``, are over ``range_s``
        (at least the interval; see :mod:`.sampler`). The ``Monitor`` calls this once
        per interval; calling it elsewhere too would shorten the Monitor's rate window,
        so other readers should use ``last_sample``/``snapshot(fresh=False)``.
        """
        sampler = self._sampler
        s = sampler.sample(time.time() if now is None else now, range_s)
        v = s.values
        for o in OUTCOMES:
            rate = v.get(("events_per_s", (("outcome", o),)))
            if rate is not None:
                v[(f"events_{o}_per_s", ())] = rate
        rate_in = v.get(("events_in_per_s", ()))
        events_in = sampler.increase_over_range((f"{PREFIX}events_in_total", ()))
        quarantined = sampler.increase_over_range(
            (f"{PREFIX}events_total", (("outcome", "quarantined"),))
        )
        if rate_in is not None and events_in and quarantined is not None:
            v[("quarantine_ratio", ())] = quarantined / events_in
        elif rate_in is not None:  # no event over the range (or none quarantined yet)
            v[("quarantine_ratio", ())] = 0.0
        errors = [x for (n, _), x in v.items() if n == "worker_errors_per_s"]
        if rate_in is not None:
            v[("errors_per_s", ())] = float(sum(errors))
        windows = [x for (n, _), x in v.items() if n == "windows_emitted_per_s"]
        if rate_in is not None:
            v[("windows_emitted_all_per_s", ())] = float(sum(windows))
        if ("batch_seconds_count_per_s", ()) in v:
            v[("batches_per_s", ())] = v[("batch_seconds_count_per_s", ())]
        if ("process_cpu_seconds_per_s", ()) in v:
            v[("process_cpu_percent", ())] = 100.0 * v[("process_cpu_seconds_per_s", ())]
        if ("process_resident_memory_bytes", ()) in v:
            v[("process_rss_bytes", ())] = v[("process_resident_memory_bytes", ())]
        self._last = s
        return s

    def series_names(self) -> frozenset[str]:
        """Every flat metric name rules can use on this registry (GPU series included).

        Window series (``window:<window>.<column>``) are not listed: they come from
        ``Monitor.observe_window`` at run time.
        """
        return frozenset(self._sampler.series_names() | set(ALIASES) | set(GPU_SERIES))

    @property
    def last_sample(self) -> Sample | None:
        return self._last

    def snapshot(self, now: float | None = None, *, fresh: bool | None = None) -> dict[str, float]:
        """Current values as flat ``name{labels}`` → float (the names rules use).

        By default returns the last interval's sample, taking one first if none
        exists yet; ``fresh=True`` forces a new sample (rates since the last).
        """
        if fresh or (fresh is None and self._last is None):
            return self.sample(now).flat()
        assert self._last is not None
        return self._last.flat()
