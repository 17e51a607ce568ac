"""The in-process push API at small pushes: events pushed a few at a time, as a host that
embeds the engine pushes what it has just served.

    python -m benchmarks.push --events 20k --rows 1

Pushes ``--events`` synthetic short-video events in pushes of ``--rows`` rows into an
engine running the short-video example configuration (batches of 65,536 rows, or 50 ms),
then closes it. Reports the seconds spent in ``push`` calls, in ``close`` (which
processes what is still buffered) and the events per second of the whole. The cost of a
push should not grow with the rows already buffered (it did: a push made every buffered
part own its buffers again).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=_count, default=20_000)
    parser.add_argument("--rows", type=_count, default=1, help="rows a push")
    args = parser.parse_args(argv)
    result = measure(args.events, max(args.rows, 1))
    print(
        f"{args.events:,} events in {result['pushes']:,} pushes of {args.rows} row(s): "
        f"push {result['push_s']:.3f} s, close {result['close_s']:.3f} s, "
        f"{result['events_per_s']:,.0f} events/s, {result['batches']} batches"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
