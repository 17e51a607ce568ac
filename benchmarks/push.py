"""The in-process push API at small pushes: events pushed a few at a time, as a host that
embeds the engine pushes what it has just served.

    python -m benchmarks.push --events 20k --rows 1 [--background]
    python -m benchmarks.push --events 200k --batch-rows 100 --workers 1 2

Pushes ``--events`` synthetic short-video events in pushes of ``--rows`` rows into an
engine running the short-video example configuration (batches of 65,536 rows, or 50 ms),
then closes it. Reports the seconds spent in ``push`` calls, in ``close`` (which
processes what is still buffered) and the events per second of the whole, after an
engine of the same configuration and mode has processed the first ``WARM_UP_EVENTS``
events (so JIT compilation and kernel-cache loading are not timed). The cost of a
push should not grow with the rows already buffered (it did: a push made every buffered
part own its buffers again).

With ``--batch-rows N``, every push of ``N`` rows is a whole batch (``max_rows: N``),
processed before ``push`` returns: it reports the milliseconds a push takes (p50, p99,
after the first fifth, which compiles and warms), per worker count, i.e. the latency a
small batch of the full configuration costs.

With ``--serve RATE``, pushes of ``--rows`` rows are paced at ``RATE`` events/s, as a
server pushes what it serves, into an engine that polls itself: once with
``poll_every`` (a push that fills a batch, or comes while the poller processes one,
waits for that batch) and once with ``background=True`` (a push only queues its rows).
It reports how long the pushes took (p50, p99, p99.9, max after the first fifth): the
latency the engine adds to the request that pushes. Each mode is warmed up first, as
above. When the pushes end more than ``MAX_BEHIND_S`` behind the pace, the pushes did not
keep up with ``RATE`` and the figures describe an overloaded engine, not the latency it
adds: the run prints a warning and exits 1.

    python -m benchmarks.push --events 300k --rows 50 --serve 50k
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from gpu_engine.commands.generate import _count_at_least
from gpu_engine.config import load_config
from gpu_engine.engine import Engine
from gpu_engine.generator import GeneratorSpec, generate
from gpu_engine.io.sinks import MemorySink

CONFIG = Path(__file__).resolve().parents[1] / "gpu_engine" / "examples" / "short_video.yaml"
WARM_UP_EVENTS = 5_000  # pushed through a throw-away engine before the timed one
MAX_BEHIND_S = 1.0  # serve: pushes ending further behind the pace did not keep up


def warm_up(make_engine: Callable[[], Engine], table: pa.Table, rows: int) -> None:
    """Push the first ``WARM_UP_EVENTS`` events, ``rows`` at a time, into a throw-away
    engine from ``make_engine`` (the timed run's configuration and mode) and close it:
    its kernels compile or load from the cache here, not in the timed run."""
    engine = make_engine()
    for start in range(0, min(table.num_rows, WARM_UP_EVENTS), rows):
        engine.push(table.slice(start, min(rows, WARM_UP_EVENTS - start)))
    assert engine.close()["accounted"]


def measure(events: int, rows: int, seed: int = 0, background: bool = False) -> dict[str, float]:
    table = pa.concat_tables(generate(GeneratorSpec(events=events, seed=seed, bad_fraction=0.0)))
    pushes = [table.slice(start, rows) for start in range(0, table.num_rows, rows)]

    def make_engine() -> Engine:
        return Engine(load_config(CONFIG), sinks=[MemorySink()], background=background)

    warm_up(make_engine, table, rows)
    engine = make_engine()
    started = time.perf_counter()
    for part in pushes:
        engine.push(part)
    pushed = time.perf_counter()
    summary = engine.close()
    closed = time.perf_counter()
    assert summary["accounted"] and summary["events"]["in"] == events
    return {
        "pushes": len(pushes),
        "push_s": pushed - started,
        "close_s": closed - pushed,
        "events_per_s": events / (closed - started),
        "batches": summary["batches"],
    }


def batch_latency(events: int, rows: int, workers: int, seed: int = 0) -> dict[str, float]:
    """Milliseconds a push of one whole batch of ``rows`` rows takes, with ``workers``."""
    table = pa.concat_tables(generate(GeneratorSpec(events=events, seed=seed, bad_fraction=0.0)))
    config = load_config(CONFIG)
    config = config.model_copy(
        update={
            "workers": workers,
            "batching": config.batching.model_copy(update={"max_rows": rows}),
        }
    )
    engine = Engine(config, sinks=[MemorySink()])
    times = []
    for start in range(0, table.num_rows, rows):
        began = time.perf_counter()
        engine.push(table.slice(start, rows))
        times.append(time.perf_counter() - began)
    summary = engine.close()
    assert summary["accounted"] and summary["batches"] == len(times)
    kept = np.asarray(times[len(times) // 5 :]) * 1000
    return {"p50_ms": float(np.percentile(kept, 50)), "p99_ms": float(np.percentile(kept, 99)),
            "mean_ms": float(kept.mean()), "batches": len(times)}  # fmt: skip


def serve(events: int, rows: int, rate: float, background: bool, seed: int = 0) -> dict[str, float]:
    """Milliseconds each paced push of ``rows`` rows took, and the run's summary."""
    table = pa.concat_tables(generate(GeneratorSpec(events=events, seed=seed, bad_fraction=0.0)))
    pushes = [table.slice(start, rows) for start in range(0, table.num_rows, rows)]

    def make_engine() -> Engine:
        if background:
            return Engine(load_config(CONFIG), sinks=[MemorySink()], background=True)
        return Engine(load_config(CONFIG), sinks=[MemorySink()], poll_every=0.01)

    warm_up(make_engine, table, rows)
    engine = make_engine()
    times = []
    started = time.perf_counter()
    for i, part in enumerate(pushes):
        due = started + i * rows / rate
        while (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        began = time.perf_counter()
        engine.push(part)
        times.append(time.perf_counter() - began)
    pushed = time.perf_counter()
    summary = engine.close()
    assert summary["accounted"] and summary["events"]["in"] == events
    kept = np.asarray(times[len(times) // 5 :]) * 1000
    return {
        "p50_ms": float(np.percentile(kept, 50)),
        "p99_ms": float(np.percentile(kept, 99)),
        "p999_ms": float(np.percentile(kept, 99.9)),
        "max_ms": float(kept.max()),
        "behind_s": pushed - started - (len(pushes) - 1) * rows / rate,
        "batch_p99_ms": summary["latency_ms"]["p99"],
        "batches": summary["batches"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.push",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    positive = _count_at_least(1)
    parser.add_argument("--events", type=positive, default=20_000)
    parser.add_argument("--rows", type=positive, default=1, help="rows a push")
    parser.add_argument("--batch-rows", type=positive, help="time pushes of one batch this size")
    parser.add_argument("--workers", type=positive, nargs="+", default=[1, 2])
    parser.add_argument("--serve", type=positive, help="pace pushes at this many events/s")
    parser.add_argument("--background", action="store_true", help="Engine(background=True)")
    args = parser.parse_args(argv)
    if args.serve:
        behind = []
        for background in (False, True):
            r = serve(args.events, args.rows, args.serve, background)
            mode = "background=True " if background else "poll_every=0.01"
            print(
                f"{mode}: push p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, "
                f"p99.9 {r['p999_ms']:.3f} ms, max {r['max_ms']:.1f} ms; "
                f"pushes ended {r['behind_s']:.2f} s behind the pace; "
                f"batch latency p99 {r['batch_p99_ms']:.0f} ms ({r['batches']} batches)"
            )
            if r["behind_s"] > MAX_BEHIND_S:
                behind.append(f"{mode.strip()} ({r['behind_s']:.2f} s)")
        if behind:
            print(
                f"WARNING: pushes ended more than {MAX_BEHIND_S:g} s behind the pace of "
                f"{args.serve:,} events/s with {', '.join(behind)}: the pushes did not keep "
                "up, so these latencies are not the engine's cost at that rate; "
                "lower --serve or --events"
            )
            return 1
        return 0
    if args.batch_rows:
        for workers in args.workers:
            r = batch_latency(args.events, args.batch_rows, workers)
            print(f"{args.batch_rows}-row batches, {workers} worker(s): p50 {r['p50_ms']:.2f} ms, "
                  f"p99 {r['p99_ms']:.2f} ms, mean {r['mean_ms']:.2f} ms "
                  f"({r['batches']:,} batches)")  # fmt: skip
        return 0
    result = measure(args.events, args.rows, background=args.background)
    print(
        f"{args.events:,} events in {result['pushes']:,} pushes of {args.rows} row(s)"
        f"{' (background)' if args.background else ''}: "
        f"push {result['push_s']:.3f} s, close {result['close_s']:.3f} s, "
        f"{result['events_per_s']:,.0f} events/s, {result['batches']} batches"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
