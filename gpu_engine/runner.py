"""Running a pipeline from a source to the sinks: what ``gpu-engine run`` does."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gpu_engine.config.models import EngineConfig
from gpu_engine.engine import BatchListener, BatchReport, Engine
from gpu_engine.generator import GeneratorSpec, generate
from gpu_engine.io.sinks import ParquetSink, Sink
from gpu_engine.io.sources import SourceBatch, read_batches
from gpu_engine.monitoring import EngineMonitoring

ProgressHook = Callable[[int], None]


def synthetic_batches(spec: GeneratorSpec, batch_rows: int) -> Iterator[SourceBatch]:
    row = 0
    for table in generate(spec, batch_rows):
        yield table, "synthetic", row
        row += table.num_rows


def source_batches(
    config: EngineConfig, input_path: str | Path | None, synthetic: GeneratorSpec | None
) -> Iterator[SourceBatch]:
    rows = config.batching.max_rows
    if input_path is not None:
        return read_batches(input_path, rows, list(config.event_schema.fields))
    return synthetic_batches(synthetic or GeneratorSpec(), rows)


def run_pipeline(
    config: EngineConfig,
    batches: Iterator[SourceBatch],
    out_dir: str | Path,
    progress: ProgressHook | None = None,
    listeners: list[BatchListener] | None = None,
    extra_sinks: list[Sink] | None = None,
    monitoring: EngineMonitoring | None = None,
) -> dict[str, Any]:
    """Push every batch through a new engine writing to ``out_dir``; return the summary."""
    sinks: list[Sink] = [ParquetSink(out_dir), *(extra_sinks or [])]
    listeners = list(listeners or [])
    startup: dict[str, Any] = {}

    def first_batch(_report: object) -> None:
        startup.setdefault("first_batch_after_process_start_s", process_age_s())

    listeners.append(first_batch)
    # Per input with late events: its events and how many were late (summary.json's
    # ``late_inputs``). Files are read one after another and share one watermark, so a
    # file whose times do not go on from the files before it is mostly late.
    rows_read: dict[str, int] = {}
    late_inputs: dict[str, dict[str, int]] = {}

    def count_late(report: BatchReport) -> None:
        rows_read[report.source] = rows_read.get(report.source, 0) + report.rows
        if report.late or report.source in late_inputs:
            seen = late_inputs.setdefault(report.source, {"events": 0, "late": 0})
            seen["events"] = rows_read[report.source]
            seen["late"] += report.late

    listeners.append(count_late)
    if monitoring is not None:
        sinks.append(monitoring)
        listeners.append(monitoring.on_batch)
    engine = Engine(config, sinks=sinks, listeners=listeners, metrics_dir=Path(out_dir) / "metrics")
    startup["late_inputs"] = late_inputs
    engine.summary_extra = startup  # read when the summary is made (by close or abort)
    if monitoring is not None:
        monitoring.attach(engine)
    try:
        for table, source, first_row in batches:
            engine.push(table, source=source, first_row=first_row)
            engine.poll()
            if progress is not None:
                progress(table.num_rows)
        return engine.close()
    except BaseException as exc:  # Ctrl-C too: what was written stays readable
        engine.abort(exc)
        raise


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
HEAP_MMAP_THRESHOLD = 4 * 1024 * 1024


def return_freed_memory_promptly(threshold: int = HEAP_MMAP_THRESHOLD) -> bool:
    """Have glibc give large freed blocks back to the system at once (this process).

    glibc serves large allocations with mmap, but raises that threshold (up to
    32 MB) each time such a block is freed; afterwards state arrays of a few to
    30 MB come from the heap, whose freed pages stay in the process: at 10M
    events that kept ~120 MB of freed memory resident (peak RSS 915 MB against
    794 MB). A fixed threshold keeps blocks from ``threshold`` up on mmap
    (freed at once) and stops the adjustment. Per-batch temporaries (65,536
    rows: 0.5 to 1.5 MB) stay below it, on the heap: a 1 MB threshold cut
    the peak to 770 MB but mapped and faulted those in every batch (system
    time 2.6 s -> 6.3 s). Returns False where this is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, threshold) == 1
    return bool(ok and mallopt(_M_TRIM_THRESHOLD, 2 * threshold) == 1)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux), to measure start-up cost."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
