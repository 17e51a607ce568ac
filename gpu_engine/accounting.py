"""Where every event went, and what each batch took: the engine's counts, the report
a batch's listeners get, and the timings behind the summary and the optimizer."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa


@dataclass
class Counts:
    """Where every event went."""

    received: int = 0
    valid: int = 0
    quarantined: int = 0
    late: int = 0
    dead_lettered: int = 0

    @property
    def accounted(self) -> int:
        return self.valid + self.quarantined + self.late + self.dead_lettered


@dataclass
class BatchReport:
    """What happened to one batch (for metrics and monitors)."""

    rows: int
    valid: int
    quarantined: int
    late: int
    dead_lettered: int
    stage_seconds: dict[str, float]
    latency_s: float
    finished_at: float
    worker_rows: dict[str, int]  # valid rows each worker (key shard) took, first sharded window
    watermark_ms: int | None  # the lowest watermark over the windows
    event_times_ms: np.ndarray | None = None  # each valid row's event time (int64 epoch ms)
    source: str = ""  # the batch's source (an input file's path, a push's ``source``)

    @property
    def max_event_time_ms(self) -> int | None:
        """The batch's newest event time (None without valid rows)."""
        times = self.event_times_ms
        return int(times.max()) if times is not None and len(times) else None


KEPT_BATCHES = 10_000  # batches whose timings are kept (an embedded engine runs for days)


@dataclass
class BatchTimings:
    """Per-batch timings of the last ``KEPT_BATCHES`` batches (the optimizer's input and
    the summary's latency percentiles), and totals over every batch."""

    # Per batch: (wall time, rows, seconds by stage).
    stages: deque[tuple[float, int, dict[str, float]]] = field(
        default_factory=lambda: deque(maxlen=KEPT_BATCHES)
    )
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=KEPT_BATCHES))
    batches: int = 0
    seconds_by_stage: dict[str, float] = field(default_factory=dict)

    def add(self, wall: float, rows: int, stage: dict[str, float], latency: float) -> None:
        self.batches += 1
        self.latencies.append(latency)
        self.stages.append((wall, rows, stage))
        for name, seconds in stage.items():
            self.seconds_by_stage[name] = self.seconds_by_stage.get(name, 0.0) + seconds

    def stage_records(self) -> list[tuple[float, str, int, float]]:
        """(wall time, stage, rows, seconds) per kept batch and stage."""
        batches = list(self.stages)  # a snapshot: batches may be added meanwhile
        return [(wall, name, n, s) for wall, n, stage in batches for name, s in stage.items()]

    def latency_ms(self) -> dict[str, float | None]:
        """p50 and p99 of the kept batches' latencies, in ms (None before a batch)."""
        latencies = np.asarray(list(self.latencies)) * 1000  # list: one snapshot
        if not len(latencies):
            return {"p50": None, "p99": None}
        return {f"p{q}": float(np.percentile(latencies, q)) for q in (50, 99)}

    def metrics_table(self, workers: int) -> pa.Table:
        """Per kept batch and stage: time_s, stage, rows, seconds, workers (the
        optimizer's input)."""
        records = self.stage_records()
        wall, stage, rows, seconds = zip(*records, strict=True) if records else ((), (), (), ())
        return pa.table(
            {
                "time_s": pa.array(wall, pa.float64()),
                "stage": pa.array(stage, pa.string()),
                "rows": pa.array(rows, pa.int64()),
                "seconds": pa.array(seconds, pa.float64()),
                "workers": pa.array([workers] * len(wall), pa.int64()),
            }
        )


BatchListener = Callable[[BatchReport], None]
