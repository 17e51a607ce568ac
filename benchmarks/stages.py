"""Where the engine's time goes on the shared sliding-window workload (benchmarks.windows).

    python -m benchmarks.stages --events 10M engine --workers 1   # best of --repeat runs
    python -m benchmarks.stages --events 10M validate             # validation of all batches
    python -m benchmarks.stages ingest                            # pane-ingest micro-benchmark

``--events`` and ``--seed`` apply to all three (``ingest``: synthetic keys and times drawn
with that seed; by default 60 batches of ``--batch-rows``, the first 3 not timed).

``engine`` also compares commits: run the same line from the root of another checkout
that has this benchmark (``cd ../old && python -m benchmarks.stages engine``), or from
this root as ``PYTHONPATH=../old python -P -m benchmarks.stages engine`` (``-P``, Python
3.11 on: no current folder on ``sys.path``); either way that checkout's engine and
benchmarks are the ones imported. Plain ``python -m`` puts the current folder first on
``sys.path``, ahead of ``PYTHONPATH``, so ``PYTHONPATH=../old`` alone changes nothing
here; and running this file by its path fails, since ``benchmarks/`` then comes first
and its ``gpu_engine.py`` hides the ``gpu_engine`` package.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow.parquet as pq

from benchmarks.windows import COLUMNS, dataset, engine_config, run_engine
from gpu_engine.commands.generate import _count_at_least

BATCH_ROWS = 65_536


def best_of(repeat: int, fn) -> tuple[float, float]:
    """(wall, process CPU) seconds of the fastest of ``repeat`` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def engine(events: int, workers: int, repeat: int, seed: int = 0) -> None:
    table = pq.read_table(dataset(events, seed), columns=COLUMNS)
    run_engine(table.slice(0, min(events, 1_000_000)), workers=workers)  # JIT, caches
    wall, cpu = best_of(repeat, lambda: run_engine(table, workers=workers))
    print(f"engine, {workers} worker(s), {events:,} events: wall {wall:.3f} s, CPU {cpu:.3f} s")


def validate(events: int, repeat: int, seed: int = 0, rows: int = BATCH_ROWS) -> None:
    from gpu_engine.validation import Validator

    table = pq.read_table(dataset(events, seed), columns=COLUMNS)
    config = engine_config(1)
    validator = Validator(config.event_schema, config.validation)
    batches = [table.slice(i, rows) for i in range(0, table.num_rows, rows)]
    validator.validate(batches[0], "bench", 0)
    wall, _ = best_of(repeat, lambda: [validator.validate(b, "bench", 0) for b in batches])
    print(f"validation of {events:,} events in {len(batches)} batches: {wall:.3f} s")


UNTIMED_BATCHES = 3  # ingest: the state's first growth


def ingest(events: int = 60 * BATCH_ROWS, seed: int = 0, rows: int = BATCH_ROWS) -> None:
    """ns per event of the index lookups and of the updates, state at its working size:
    ``events`` in batches of ``rows`` (the last one shorter), the first
    ``UNTIMED_BATCHES`` not timed."""
    batches = -(-events // rows)
    if batches <= UNTIMED_BATCHES:
        raise ValueError(
            f"ingest of {events:,} events in batches of {rows:,}: {batches} batch(es), but"
            f" the first {UNTIMED_BATCHES} are not timed; give more --events"
        )
    from numba import njit

    from kernels.aggregate import AggState, update_row
    from kernels.hashindex import HashIndex, find_or_add

    @njit(nogil=True)
    def lookups(times, atoms, slots, stored, n, ids):
        for i in range(times.shape[0]):
            ids[i], n = find_or_add(slots, stored, n, times[i] // 1000, atoms, i)
        return n

    @njit(nogil=True)
    def updates(ids, ops, col_of, mask_of, is_int, fcols, icols, masks, state):
        rows, ist, isum, f0, f1, moments = state  # no STD/VAR here: nothing to fold
        for i in range(ids.shape[0]):
            update_row(ids[i], i, ops, col_of, mask_of, is_int, fcols, icols, masks,
                       rows, ist, isum, f0, f1, moments)  # fmt: skip

    rng = np.random.default_rng(seed)
    total = events
    keys = (rng.zipf(1.1, total) % 100_000).astype(np.int64)
    times = (np.arange(total) * (600_000 / total)).astype(np.int64) - rng.integers(0, 2000, total)
    ops = np.array([0, 1, 2, 4, 0])  # count, sum, mean, max, filtered count
    col_of, mask_of = np.array([-1, 0, 0, 1, -1]), np.array([-1, -1, -1, 0, 1])
    is_int = np.zeros(5, np.bool_)
    index, state = HashIndex(2, 1024), AggState(ops, 1024)
    spent = [0.0, 0.0]
    measured = 0
    for b in range(batches):
        part = slice(b * rows, min((b + 1) * rows, total))
        size = part.stop - part.start
        t, atoms = np.ascontiguousarray(times[part]), keys[part].reshape(-1, 1).copy()
        fcols, masks = rng.random((2, size)), np.ones((2, size), np.uint8)
        index.reserve(size)
        state.reserve(len(index) + size)
        ids = np.empty(size, np.int64)
        slots, stored, n = index.raw()
        t0 = time.perf_counter()
        index.set_count(lookups(t, atoms, slots, stored, n, ids))
        t1 = time.perf_counter()
        columns = (state.rows, state.ist, state.isum, state.f0, state.f1, state.moments)
        updates(ids, ops, col_of, mask_of, is_int, fcols, np.empty((0, 0), np.int64), masks,
                columns)  # fmt: skip
        t2 = time.perf_counter()
        if b >= UNTIMED_BATCHES:  # past the first growth of the state
            spent[0] += t1 - t0
            spent[1] += t2 - t1
            measured += size
        alive = np.flatnonzero(index.keys[:, 0] >= t.max() // 1000 - 8)  # ~8 live panes
        if 2 * len(alive) < len(index):
            state.keep_rows(alive, len(index))
            index.keep_rows(alive)
    print(f"pane ingest of {events:,} events (seed {seed}, {measured:,} timed): lookup "
          f"{spent[0] / measured * 1e9:.1f} ns/event, update {spent[1] / measured * 1e9:.1f}"
          " ns/event")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stages",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    positive = _count_at_least(1)
    parser.add_argument("what", choices=["engine", "validate", "ingest"])
    parser.add_argument(
        "--events", type=positive, help="default: 10M; ingest: 60 batches of --batch-rows"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-rows", type=positive, default=BATCH_ROWS)
    parser.add_argument("--workers", type=positive, default=1)
    parser.add_argument("--repeat", type=positive, default=3)
    args = parser.parse_args(argv)
    rows = args.batch_rows
    if args.what == "engine":
        events = 10_000_000 if args.events is None else args.events
        engine(events, args.workers, args.repeat, args.seed)
    elif args.what == "validate":
        events = 10_000_000 if args.events is None else args.events
        validate(events, args.repeat, args.seed, rows)
    else:
        events = 60 * rows if args.events is None else args.events
        if -(-events // rows) <= UNTIMED_BATCHES:
            parser.error(f"ingest needs more than {UNTIMED_BATCHES} batches of --batch-rows")
        ingest(events, args.seed, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
