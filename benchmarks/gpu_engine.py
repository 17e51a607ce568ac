"""The whole engine on ``backend: cuda`` against ``backend: cpu`` on the same machine.

    python -m benchmarks.gpu_engine [--events 10M] [--full-events 1M] [--repeat 2]

Two workloads, both generated in memory by ``gpu_engine.generator``:

1. the shared sliding-window workload of :mod:`benchmarks.windows` on ``--events``
   events: the fastest CPU engine (one worker per core, or 4) against the CUDA engine (one
   worker), best of ``--repeat`` runs after a warm-up: host frames prepared on the
   device (the default) and on the host (``cuda_host_frames: host``, the earlier path),
   and device columns (uploaded before the clock starts: the zero-copy path of a host
   whose events are already on the GPU);
2. the full short-video configuration (every aggregation kind, both sketches,
   top-k, sessions; 1% corrupt rows) on ``--full-events`` events: the CPU engine
   against the CUDA engine with one and with two workers.

The CUDA engine pays a fixed host cost per batch (kernel launches and device reads, see
:mod:`benchmarks.launches`), so both workloads run again with batches of ``--large-batch``
rows (CPU and CUDA alike, so their outputs stay comparable: the batch boundaries decide
which rows are late), to show how much of the gap is that per-batch cost.

Every output of every run must equal the CPU engine's (that of the fastest run of its
fastest worker count): the same rows, integers and strings exactly, floats within 1e-6
relative, the same quarantine and late counts. Each of the ``--repeat`` runs is checked,
the CPU engine's too, not only the fastest whose time is quoted. The last line is
``GPU_ENGINE PASS`` or ``GPU_ENGINE FAIL``. Under the
simulator (``NUMBA_ENABLE_CUDASIM=1``) it is a smoke test with tiny inputs: by default
1,000 and 500 events over 20 s, one run each and no runs in large batches (about 30 s
of CPU). Without a device or the simulator it exits with status 2 before any run.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from benchmarks.device_timing import device_missing
from benchmarks.windows import COLUMNS, engine_config, frame_differences
from gpu_engine.commands.generate import _count, _count_at_least
from gpu_engine.config import load_config
from gpu_engine.config.models import EngineConfig
from gpu_engine.generator import GeneratorSpec, generate
from kernels.cuda._core import SIMULATOR

FULL_CONFIG = Path(__file__).resolve().parents[1] / "gpu_engine" / "examples" / "short_video.yaml"
PROG = "python -m benchmarks.gpu_engine"


def events(n: int, duration_ms: int, bad_fraction: float = 0.0) -> pa.Table:
    spec = GeneratorSpec(events=n, seed=0, duration_ms=duration_ms, bad_fraction=bad_fraction)
    return pa.concat_tables(generate(spec))


def on_device(table: pa.Table) -> dict[str, Any]:
    """The columns as device arrays (strings stay host columns), as a GPU host pushes them."""
    from numba import cuda

    columns: dict[str, Any] = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_string(column.type) or column.null_count:
            columns[name] = column
            continue
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "M":
            values = values.astype("datetime64[ms]")
        columns[name] = cuda.to_device(values)
    return columns


def head(data: Any, n: int) -> Any:
    """The first ``n`` rows of a table or of a dict of columns."""
    if isinstance(data, pa.Table):
        return data.slice(0, min(data.num_rows, n))
    return {name: values[:n] for name, values in data.items()}


def run(config: EngineConfig, table: Any) -> tuple[float, dict[str, pd.DataFrame], dict]:
    """Seconds from the first push to the closing summary, every output, the summary."""
    from gpu_engine.engine import Engine
    from gpu_engine.io.sinks import MemorySink

    sink = MemorySink()
    before = _device_work()
    started = time.perf_counter()
    engine = Engine(config, sinks=[sink])
    engine.push(table)
    summary = engine.close()
    seconds = time.perf_counter() - started
    summary["device_work"] = [now - then for now, then in zip(_device_work(), before, strict=True)]
    outputs = {}
    for kind in sorted(sink.tables):
        result = sink.result(kind)
        if result is not None and kind.startswith("windows/"):
            outputs[kind] = result.to_pandas()
    return seconds, outputs, summary


def _device_work() -> list[int]:
    """Kernel launches, waits for the device and device allocations so far (all runs)."""
    from kernels.cuda import _core

    return [sum(c.values()) for c in (_core.LAUNCHES, _core.WAITS, _core.ALLOCATIONS)]


def configured(config: EngineConfig, backend: str, workers: int) -> EngineConfig:
    # No processing-time idle timeout: both runs must see the same watermarks.
    windows = [w.model_copy(update={"idle_timeout": None}) for w in config.windows]
    return config.model_copy(update={"backend": backend, "workers": workers, "windows": windows})


def check(label: str, got: tuple, want: tuple) -> list[str]:
    """Every run of ``got`` (a result of :func:`best`, or one run) against the timed run of
    ``want``: a run differing is a failure even when another one's time is quoted."""
    runs = got[3] if len(got) > 3 else [got]
    problems = []
    for i, one in enumerate(runs, 1):
        if one[1] is not want[1]:  # not the reference itself
            name = label if len(runs) == 1 else f"{label} run {i} of {len(runs)}"
            problems += _differences(name, one, want)
    return problems


def _differences(label: str, got: tuple, want: tuple) -> list[str]:
    _, outputs, summary = got[:3]
    _, reference, ref_summary = want[:3]
    problems = []
    if sorted(outputs) != sorted(reference):
        problems.append(f"{label}: outputs {sorted(outputs)} != {sorted(reference)}")
    for kind in reference:
        if kind in outputs:
            problems += frame_differences(f"{label} {kind}", outputs[kind], reference[kind], 1e-6)
    for count in ("quarantined", "late"):
        if summary["events"][count] != ref_summary["events"][count]:
            problems.append(f"{label}: {count} {summary['events'][count]} "
                            f"!= {ref_summary['events'][count]}")  # fmt: skip
    return problems


def best(config: EngineConfig, table: Any, repeat: int) -> tuple:
    """The fastest of ``repeat`` runs (seconds, outputs, summary), then every run, so that
    :func:`check` checks them all, not only the one whose time is quoted."""
    run(config, head(table, 200_000))  # JIT, caches
    runs = [run(config, table) for _ in range(repeat)]
    return (*min(runs, key=lambda r: r[0]), runs)


def profile(config: EngineConfig, table: pa.Table, top: int) -> None:
    """Where the host time of a CUDA run goes (cProfile, by own time)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(run, config, table)
    print(f"  profile of one CUDA run, {top} costliest functions by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def kernel_profile(label: str, config: EngineConfig, table: Any, top: int) -> None:
    """The device time of each kernel in one more CUDA run, against the run's wall time:
    how busy the host keeps the device (events around each launch cost the host a little,
    so this run's wall time is not the one to quote)."""
    from kernels.cuda.kernel_times import recording

    with recording() as times:
        seconds = run(config, table)[0]
    summary = times.summary()
    busy = summary.kernel_ms / (seconds * 1e3)
    print(
        f"  device time by kernel, one more {label} run: {summary.kernel_ms:.1f} ms in "
        f"kernels over {seconds * 1e3:.1f} ms of wall time (device busy {busy:.0%})"
    )
    print("\n".join(summary.lines(top)))


def report(label: str, n: int, result: tuple, cpu_s: float | None = None) -> None:
    seconds, summary = result[0], result[2]
    ratio = f", {cpu_s / seconds:5.2f}x the CPU engine" if cpu_s else ""
    print(f"  {label:<26}{seconds:8.3f} s {n / seconds / 1e6:9.2f}M events/s{ratio}", flush=True)
    stages = ", ".join(f"{name} {s:.3f}" for name, s in summary["stage_s"].items())
    print(f"  {'':<26}(seconds by stage: {stages}; closing {seconds - summary['busy_s']:.3f})")
    launches, waits, allocations = summary["device_work"]
    if launches:  # the CUDA engine: its host-side work per batch (see benchmarks.launches)
        per = max(summary["batches"], 1)
        print(f"  {'':<26}(per batch: {launches / per:.1f} kernel launches, {waits / per:.1f} "
              f"waits, {allocations / per:.1f} device allocations)")  # fmt: skip


def large_batches(
    base: EngineConfig, data: Any, rows: int, cpu_workers: int, repeat: int, label: str = "sliding"
) -> list[str]:
    """The CPU and the CUDA engine (one worker) again, with batches of ``rows`` rows."""
    batching = base.batching.model_copy(update={"max_rows": rows})
    sized = base.model_copy(update={"batching": batching})
    cpu = best(configured(sized, "cpu", cpu_workers), data, repeat)
    n = data.num_rows
    report(f"cpu, batches of {rows:,}", n, cpu)
    gpu = best(configured(sized, "cuda", 1), data, repeat)
    report(f"cuda, batches of {rows:,}", n, gpu, cpu[0])
    problems = check(f"{label} cpu-{cpu_workers}w batches of {rows:,}", cpu, cpu)
    return problems + check(f"{label} cuda-1w batches of {rows:,}", gpu, cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    positive = _count_at_least(1)
    # The simulator's launches cost tens of ms of Python each and its kernels loop over
    # every item in Python threads: there the defaults are a smoke test's (one run of the
    # full config on 1,000 events over 10 minutes took over 2 minutes, on 500 over 20 s 12).
    parser.add_argument("--events", type=positive, default=1_000 if SIMULATOR else 10_000_000)
    parser.add_argument("--full-events", type=positive, default=500 if SIMULATOR else 1_000_000)
    parser.add_argument("--repeat", type=positive, default=1 if SIMULATOR else 2)
    parser.add_argument("--duration-ms", type=positive, default=20_000 if SIMULATOR else 600_000,
                        help="event-time span")  # fmt: skip
    parser.add_argument(
        "--large-batch", type=_count, default=0 if SIMULATOR else 1_048_576, metavar="ROWS",
        help="batching.max_rows of the second run of each workload (0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N",
        help="profile one more CUDA run of the sliding workload; print its N costliest functions",
    )  # fmt: skip
    parser.add_argument(
        "--cpu-workers", type=positive, nargs="+", default=sorted({os.cpu_count() or 1, 4}),
        help="CPU engine worker counts to try; the fastest is the reference",
    )  # fmt: skip
    parser.add_argument(
        "--kernel-times", type=int, default=0, metavar="N",
        help="one more CUDA run of each workload with its N costliest kernels by device time",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if device_missing(PROG):  # before the CPU runs, which would be for nothing
        return 2
    problems: list[str] = []

    from kernels.cuda._core import LAUNCH_PATH

    print(f"cuda kernels launched through {LAUNCH_PATH} (TIKTOKTOE_FAST_LAUNCH)")
    table = events(args.events, args.duration_ms).select(COLUMNS)
    print(
        f"sliding 5s/1s per content_id, {args.events:,} events, best of {args.repeat}:", flush=True
    )
    base = engine_config(1)
    cpu_runs = {}
    for workers in args.cpu_workers:
        cpu_runs[workers] = best(configured(base, "cpu", workers), table, args.repeat)
        report(f"cpu, {workers} workers", args.events, cpu_runs[workers])
    cpu_workers, cpu = min(cpu_runs.items(), key=lambda item: item[1][0])
    for workers, result in cpu_runs.items():
        problems += check(f"sliding cpu-{workers}w", result, cpu)
    cpu_runs.clear()
    gpu = best(configured(base, "cuda", 1), table, args.repeat)
    report("cuda, 1 worker", args.events, gpu, cpu[0])
    problems += check("sliding cuda-1w", gpu, cpu)
    host_prepared = configured(base, "cuda", 1).model_copy(update={"cuda_host_frames": "host"})
    gpu_host = best(host_prepared, table, args.repeat)
    report("cuda, host-prepared", args.events, gpu_host, cpu[0])
    problems += check("sliding cuda-1w host-prepared", gpu_host, cpu)
    del gpu_host
    device = on_device(table)
    gpu_device = best(configured(base, "cuda", 1), device, args.repeat)
    report("cuda, device columns", args.events, gpu_device, cpu[0])
    problems += check("sliding cuda-1w device columns", gpu_device, cpu)
    del device, gpu_device
    if args.large_batch:
        problems += large_batches(base, table, args.large_batch, cpu_workers, args.repeat)
    if args.profile:
        profile(configured(base, "cuda", 1), table, args.profile)
    if args.kernel_times:
        kernel_profile("sliding", configured(base, "cuda", 1), table, args.kernel_times)
    del table, cpu, gpu

    full = events(args.full_events, args.duration_ms, bad_fraction=0.01)
    base = load_config(FULL_CONFIG)
    print(f"full short-video config, {args.full_events:,} events (1% corrupt), "
          f"best of {args.repeat}:", flush=True)  # fmt: skip
    cpu = best(configured(base, "cpu", cpu_workers), full, args.repeat)
    report(f"cpu, {cpu_workers} workers", args.full_events, cpu)
    problems += check(f"full cpu-{cpu_workers}w", cpu, cpu)
    # The simulator cannot launch kernels from worker threads: one worker there.
    for workers in (1,) if SIMULATOR else (1, 2):
        gpu = best(configured(base, "cuda", workers), full, args.repeat)
        report(f"cuda, {workers} worker(s)", args.full_events, gpu, cpu[0])
        problems += check(f"full cuda-{workers}w", gpu, cpu)
    if args.large_batch:
        problems += large_batches(base, full, args.large_batch, cpu_workers, args.repeat, "full")
    if args.kernel_times:
        kernel_profile("full-config", configured(base, "cuda", 1), full, args.kernel_times)
    rows = sum(len(frame) for frame in cpu[1].values())
    counts = cpu[2]["events"]
    print(f"  ({rows:,} output rows in {len(cpu[1])} windows; "
          f"quarantined {counts['quarantined']:,}, late {counts['late']:,})")  # fmt: skip

    for problem in problems:
        print("MISMATCH", problem)
    print("GPU_ENGINE PASS" if not problems else "GPU_ENGINE FAIL")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
