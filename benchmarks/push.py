"""The in-process push API at small pushes: events pushed a few at a time, as a host that
embeds the engine pushes what it has just served.

    python -m benchmarks.push --events 20k --rows 1
    python -m benchmarks.push --events 200k --batch-rows 100 --workers 1 2

Pushes ``--events`` synthetic short-video events in pushes of ``--rows`` rows into an
engine running the short-video example configuration (batches of 65,536 rows, or 50 ms),
then closes it. Reports the seconds spent in ``push`` calls, in ``close`` (which
processes what is still buffered) and the events per second of the whole. The cost of a
push should not grow with the rows already buffered (it did: a push made every buffered
part own its buffers again).

With ``--batch-rows N``, every push of ``N`` rows is a whole batch (``max_rows: N``),
processed before ``push`` returns: it reports the milliseconds a push takes (p50, p99,
after the first fifth, which compiles and warms), per worker count, i.e. the latency a
small batch of the full configuration costs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from gpu_engine.commands.generate import _count
from gpu_engine.config import load_config
from gpu_engine.engine import Engine
from gpu_engine.generator import GeneratorSpec, generate
from gpu_engine.io.sinks import MemorySink

CONFIG = Path(__file__).resolve().parents[1] / "gpu_engine" / "examples" / "short_video.yaml"


def measure(events: int, rows: int, seed: int = 0) -> dict[str, float]:
    table = pa.concat_tables(generate(GeneratorSpec(events=events, seed=seed, bad_fraction=0.0)))
    pushes = [table.slice(start, rows) for start in range(0, table.num_rows, rows)]
    engine = Engine(load_config(CONFIG), sinks=[MemorySink()])
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=_count, default=20_000)
    parser.add_argument("--rows", type=_count, default=1, help="rows a push")
    parser.add_argument("--batch-rows", type=_count, help="time pushes of one batch this size")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    if args.batch_rows:
        for workers in args.workers:
            r = batch_latency(args.events, max(args.batch_rows, 1), workers)
            print(f"{args.batch_rows}-row batches, {workers} worker(s): p50 {r['p50_ms']:.2f} ms, "
                  f"p99 {r['p99_ms']:.2f} ms, mean {r['mean_ms']:.2f} ms "
                  f"({r['batches']:,} batches)")  # fmt: skip
        return 0
    result = measure(args.events, max(args.rows, 1))
    print(
        f"{args.events:,} events in {result['pushes']:,} pushes of {args.rows} row(s): "
        f"push {result['push_s']:.3f} s, close {result['close_s']:.3f} s, "
        f"{result['events_per_s']:,.0f} events/s, {result['batches']} batches"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
