"""Sliding-window benchmark: the engine beside Polars, DuckDB and pandas on the same events.

    python -m benchmarks.windows --events 10M      # 1M, 100k (CI smoke) ...

Events come from the project's generator (10 minutes of event time, 100k
Zipf(1.1) content ids, up to 2 s of disorder), cached as Parquet by size and
seed. Workload: sliding 5 s / 1 s windows per ``content_id`` with count,
sum(watch_ms), mean(watch_ms), max(latency_ms) and count where event_type = 1.
Each contender runs in its own process (so peak memory is its own), on the
same in-memory columns, median of ``--repeat`` runs after a warm-up. Every
result must equal the reference's (floats within 1e-9 relative) before anything
is printed: the engine's, or without ``engine`` in ``--only`` the first contender's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue as queues
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gpu_engine.commands.generate import _count_at_least
from gpu_engine.generator import GeneratorSpec, write_events

CACHE = Path(__file__).resolve().parent / ".cache"
SIZE_MS, SLIDE_MS = 5_000, 1_000
COLUMNS = ["event_time", "content_id", "event_type", "watch_ms", "latency_ms"]
OUTPUT = ["window_start", "content_id", "views", "watch_sum", "watch_mean", "latency_max", "likes"]


def dataset(events: int, seed: int) -> Path:
    path = CACHE / f"events-{events}-{seed}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"partial-{path.name}")
        write_events(GeneratorSpec(events=events, seed=seed), partial)
        partial.rename(path)
    return path


# -- contenders: each takes the Arrow table and returns its materialised native result ------
def engine_config(workers: int | None = None) -> Any:
    """The engine's configuration of the shared workload."""
    from gpu_engine.config import parse_config

    return parse_config(
        {
            "schema": {
                "time": "event_time",
                "fields": {
                    "event_time": {"type": "int64", "required": True},
                    "content_id": {"type": "int64", "required": True, "min": 0},
                    "event_type": {"type": "int8", "allowed": [0, 1, 2, 3, 4]},
                    "watch_ms": {"type": "float32", "min": 0, "max": 3_600_000},
                    "latency_ms": {"type": "float32", "min": 0, "nullable": True},
                },
            },
            "validation": {"mode": "strict"},
            "windows": [
                {
                    "name": "w",
                    "type": "sliding",
                    "size": SIZE_MS,
                    "slide": SLIDE_MS,
                    "keys": ["content_id"],
                    "allowed_lateness": "2s",
                    "aggregations": [
                        {"name": "views", "op": "count"},
                        {"name": "watch_sum", "op": "sum", "column": "watch_ms"},
                        {"name": "watch_mean", "op": "mean", "column": "watch_ms"},
                        {"name": "latency_max", "op": "max", "column": "latency_ms"},
                        {"name": "likes", "op": "count", "where": {"event_type": 1}},
                    ],
                }
            ],
            "backend": "cpu",
            "workers": workers,
        }
    )


def run_engine(table: pa.Table, workers: int | None = None) -> pa.Table:
    from gpu_engine.engine import Engine
    from gpu_engine.io.sinks import MemorySink

    config = engine_config(workers)
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    engine.push(table)
    summary = engine.close()
    assert summary["events"]["late"] == 0 and summary["events"]["quarantined"] == 0
    result = sink.result("windows/w")
    assert result is not None
    return result


def run_polars(table: pa.Table) -> Any:
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    out = (
        frame.sort("event_time")
        .group_by_dynamic(
            "event_time",
            every=f"{SLIDE_MS}i",
            period=f"{SIZE_MS}i",
            offset=f"-{SIZE_MS - SLIDE_MS}i",
            group_by="content_id",
            closed="left",
            label="left",
        )
        .agg(
            pl.len().alias("views"),
            pl.col("watch_ms").cast(pl.Float64).sum().alias("watch_sum"),
            pl.col("watch_ms").cast(pl.Float64).mean().alias("watch_mean"),
            pl.col("latency_ms").cast(pl.Float64).max().alias("latency_max"),
            (pl.col("event_type") == 1).sum().alias("likes"),
        )
        .rename({"event_time": "window_start"})
    )
    return out


def run_duckdb(table: pa.Table) -> pa.Table:
    import duckdb

    con = duckdb.connect()
    con.register("events", table)
    return con.sql(
        f"""
        WITH x AS (
          SELECT *, unnest(range((event_time - {SIZE_MS}) // {SLIDE_MS} + 1,
                                 event_time // {SLIDE_MS} + 1)) AS k
          FROM events)
        SELECT k * {SLIDE_MS} AS window_start, content_id, count(*) AS views,
               sum(watch_ms::DOUBLE) AS watch_sum, avg(watch_ms::DOUBLE) AS watch_mean,
               max(latency_ms::DOUBLE) AS latency_max,
               count(*) FILTER (WHERE event_type = 1) AS likes
        FROM x GROUP BY k, content_id"""
    ).to_arrow_table()


def run_pandas(table: pa.Table) -> pd.DataFrame:
    # Panes of one slide, then each window = the 5 panes before it (no event copied 5 times).
    frame = table.to_pandas()
    frame["pane"] = frame["event_time"] // SLIDE_MS
    frame["like"] = frame["event_type"] == 1
    frame["watch"] = frame["watch_ms"].astype("float64")
    frame["latency"] = frame["latency_ms"].astype("float64")
    panes = frame.groupby(["pane", "content_id"], sort=False).agg(
        views=("event_time", "size"),
        watch_sum=("watch", "sum"),
        watch_n=("watch", "count"),
        latency_max=("latency", "max"),
        likes=("like", "sum"),
    )
    panes = panes.reset_index()
    shifted = []
    for offset in range(SIZE_MS // SLIDE_MS):
        part = panes.copy()
        part["window"] = part["pane"] - offset
        shifted.append(part)
    windows = (
        pd.concat(shifted)
        .groupby(["window", "content_id"], sort=False)
        .agg(
            views=("views", "sum"),
            watch_sum=("watch_sum", "sum"),
            watch_n=("watch_n", "sum"),
            latency_max=("latency_max", "max"),
            likes=("likes", "sum"),
        )
        .reset_index()
    )
    windows["window_start"] = windows["window"] * SLIDE_MS
    windows["watch_mean"] = windows["watch_sum"] / windows["watch_n"]
    return windows[OUTPUT]


def to_pandas(result: Any) -> pd.DataFrame:
    """The comparable frame of any contender's result (outside the timed region)."""
    if isinstance(result, pd.DataFrame):
        return result[OUTPUT]
    if hasattr(result, "read_all"):  # a RecordBatchReader
        result = result.read_all()
    return result.select(OUTPUT).to_pandas()


CONTENDERS: dict[str, Callable[[pa.Table], Any]] = {
    "engine": run_engine,
    "engine-1w": lambda table: run_engine(table, workers=1),
    "polars": run_polars,
    "duckdb": run_duckdb,
    "pandas": run_pandas,
}


def _child(name: str, path: str, repeat: int, out: str, queue: Any) -> None:
    started = time.perf_counter()
    table = pq.read_table(path, columns=COLUMNS)
    read_s = time.perf_counter() - started
    fn = CONTENDERS[name]
    result = fn(table)  # warm-up (JIT compile, caches)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn(table)
        times.append(time.perf_counter() - started)
    to_pandas(result).to_parquet(out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put({"times": times, "read_s": read_s, "peak_bytes": peak})


def measure(name: str, path: Path, repeat: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    out = CACHE / f"result-{name}.parquet"
    proc = ctx.Process(target=_child, args=(name, str(path), repeat, str(out), queue))
    proc.start()
    info = None
    while info is None:  # not a bare get(): a child that dies never puts its result
        try:
            info = queue.get(timeout=1.0)
        except queues.Empty:
            if not proc.is_alive():
                try:  # what it put just before exiting may still be in the pipe
                    info = queue.get(timeout=1.0)
                except queues.Empty:
                    break
    proc.join()
    if proc.exitcode != 0 or info is None:
        raise RuntimeError(
            f"contender {name!r} exited with code {proc.exitcode}"
            + ("" if info is not None else " without a result")
        )
    info["result"] = pd.read_parquet(out)
    return dict(info)


def frame_differences(name: str, got: pd.DataFrame, want: pd.DataFrame, rtol: float) -> list[str]:
    """Differences between two results (empty when equal): the same rows in any order,
    float columns within ``rtol`` relative and nulls in the same places, others exactly
    (by value, whatever the integer type)."""
    if list(got.columns) != list(want.columns):
        return [f"{name}: columns {list(got.columns)} != {list(want.columns)}"]
    if len(got) != len(want):
        return [f"{name}: {len(got)} rows, the reference {len(want)}"]
    columns = list(want.columns)
    floats = [c for c in columns if pd.api.types.is_float_dtype(want[c])]
    exact = [c for c in columns if c not in floats]
    got = got.sort_values(exact + floats).reset_index(drop=True)
    want = want.sort_values(exact + floats).reset_index(drop=True)
    problems = []
    for column in exact:
        if not got[column].astype(object).equals(want[column].astype(object)):
            problems.append(f"{name}: {column} differs")
    for column in floats:
        a = got[column].to_numpy(dtype=np.float64, na_value=np.nan)
        b = want[column].to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            problems.append(f"{name}: nulls differ in {column}")
            continue
        ok = ~np.isnan(a)
        if not np.allclose(a[ok], b[ok], rtol=rtol, atol=0.0):
            worst = np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-300))
            problems.append(f"{name}: {column} differs (worst relative {worst:.2e})")
    return problems


def check_equal(name: str, got: pd.DataFrame, want: pd.DataFrame) -> None:
    problems = frame_differences(name, got[OUTPUT], want[OUTPUT], rtol=1e-9)
    if problems:
        raise AssertionError("; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.windows",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--events", type=_count_at_least(1), default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=_count_at_least(1), default=5)
    parser.add_argument(
        "--only", nargs="*", default=list(CONTENDERS), choices=list(CONTENDERS),
        help="contenders (engine = one worker per core, engine-1w = a single worker)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.only:
        parser.error("--only names no contender")
    path = dataset(args.events, args.seed)
    results = {name: measure(name, path, args.repeat) for name in args.only}
    # The engine is the reference; without it, the first contender named.
    ref_name = "engine" if "engine" in results else next(iter(results))
    reference = results[ref_name]
    compared = [name for name in results if name != ref_name]
    for name in compared:
        check_equal(name, results[name]["result"], reference["result"])
    print(f"{args.events:,} events, sliding 5s/1s per content_id, median of {args.repeat} runs")
    vs = f"vs {ref_name}"
    print(f"{'contender':<10}{'seconds':>10}{'events/s':>16}{vs:>14}{'peak MB':>10}")
    ref_s = statistics.median(reference["times"])
    for name, info in results.items():
        seconds = statistics.median(info["times"])
        print(
            f"{name:<10}{seconds:>10.3f}{args.events / seconds:>16,.0f}{seconds / ref_s:>13.2f}x"
            f"{info['peak_bytes'] / 2**20:>10,.0f}"
        )
    read = statistics.median(info["read_s"] for info in results.values())
    if compared:
        verdict = f"all results equal ({', '.join(compared)} checked against {ref_name})"
    else:
        verdict = "a single contender: nothing compared"
    print(f"(Parquet read, not included above: {read:.3f} s; rows out of {ref_name}: "
          f"{len(reference['result']):,}; {verdict})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
