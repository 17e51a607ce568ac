"""The full short-video pipeline through the CLI: Parquet in, Parquet out, streamed in batches.

    python -m benchmarks.pipeline --events 10M

Runs ``gpu-engine run --config gpu_engine/examples/short_video.yaml --input
events.parquet`` (every aggregation kind, quantile and distinct sketches,
top-k, sessions) twice in fresh processes: the first with empty Numba and
kernel caches (so its start-up includes JIT compilation), the second warm.
Reports throughput, peak memory of the run (its process's max RSS) and the
time from process start to the first processed batch, after checking each run: every
event counted valid (the generated data has no invalid rows and less disorder than the
windows allow), and every window it emits, every column of it, equal to an independent
computation from the same events: ``content`` (top 100 keys a window; the columns of
``benchmarks.windows``' workload, and a second query for the others) by DuckDB (pandas
without it), ``region`` and ``user_sessions`` by pandas. The quantiles come from a sketch,
so they are compared within its documented 1 % relative error of the exact lower
quantile; other floats within 1e-9 relative, the rest exactly (``count_distinct`` too:
it counts 64-bit hashes of int64 values, a bijection). A mismatch, or a column that no
reference computes, raises.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.windows import (
    COLUMNS,
    SIZE_MS,
    SLIDE_MS,
    dataset,
    frame_differences,
    run_duckdb,
    run_pandas,
    to_pandas,
)
from gpu_engine.commands.generate import _count
from gpu_engine.config import load_config
from gpu_engine.generator import GeneratorSpec

CONFIG = Path(__file__).resolve().parents[1] / "gpu_engine" / "examples" / "short_video.yaml"
# The quantile sketch's promise (README, Semantics: "relative error below 1 %").
QUANTILE_RTOL = 0.01
# What the content oracle computes for each column: (op, column, where, q). The first five
# are ``benchmarks.windows``' workload, the others ``content_extra_*``'s.
ORACLE_AGGREGATIONS = {
    "views": ("count", None, None, None),
    "likes": ("count", None, {"event_type": 1}, None),
    "watch_sum": ("sum", "watch_ms", None, None),
    "watch_mean": ("mean", "watch_ms", None, None),
    "latency_max": ("max", "latency_ms", None, None),
    "watch_std": ("std", "watch_ms", None, None),
    "latency_min": ("min", "latency_ms", None, None),
    "latency_p99": ("quantile", "latency_ms", None, 0.99),
    "viewers": ("count_distinct", "user_id", None, None),
}
P99 = ORACLE_AGGREGATIONS["latency_p99"][3]


def run_once(events_path: Path, out: Path, env: dict[str, str], workers: int | None) -> dict:
    command = [sys.executable, "-m", "gpu_engine", "run", "--config", str(CONFIG),
               "--input", str(events_path), "--out", str(out), "--no-progress"]  # fmt: skip
    if workers:
        config = out.parent / f"config-{workers}.yaml"
        config.write_text(CONFIG.read_text() + f"\nworkers: {workers}\n")
        command[command.index(str(CONFIG))] = str(config)
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"gpu-engine run failed with exit code {child.returncode}")
    summary = json.loads((out / "summary.json").read_text())
    return {
        "wall_s": wall,
        "peak_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "first_batch_s": summary.get("first_batch_after_process_start_s"),
        "events": summary["events"],
        "accounted": summary["accounted"],
        "events_per_s": summary["events"]["in"] / wall,
    }


def expected_events(events: int, seed: int) -> dict[str, int]:
    """The counts a run of ``dataset(events, seed)`` must report: the generator's defaults
    make no invalid rows and less than ``disorder_ms`` of disorder, which every window of
    the configuration allows, so every event is valid and none quarantined or late."""
    spec = GeneratorSpec(events=events, seed=seed)
    lateness = min(window.allowed_lateness for window in load_config(CONFIG).windows)
    assert spec.bad_fraction == 0 and spec.disorder_ms <= lateness, "the data has changed"
    return {"in": events, "valid": events, "quarantined": 0, "late": 0, "dead_lettered": 0}


def check_events(name: str, run: dict, want: dict[str, int]) -> None:
    got = {key: run["events"].get(key) for key in want}
    if got != want or not run["accounted"]:
        raise AssertionError(f"{name} run counted {run['events']}, expected {want}")


class Reference(NamedTuple):
    """A window as an oracle computed it, and which of its columns the engine's sketch gives."""

    frame: pd.DataFrame
    approximate: tuple[str, ...] = ()


def oracle_windows(events_path: Path) -> dict[str, Reference]:
    """Every window of the configuration computed from the events file without the engine,
    by its type, so that a window added to the configuration is checked too (or refused)."""
    config = load_config(CONFIG)
    events = pq.read_table(events_path).to_pandas()
    time = config.event_schema.time
    references = {}
    for spec in config.windows:
        if spec.type == "sliding":
            frame = oracle_content(events_path, spec)
        elif spec.type == "tumbling":
            frame = oracle_tumbling(events, time, spec)
        else:
            frame = oracle_sessions(events, time, spec)
        quantiles = (a.name for a in spec.aggregations if a.op == "quantile")
        references[spec.name] = Reference(frame, tuple(q for q in quantiles if q in frame))
    return references


def oracle_content(events_path: Path, spec: Any) -> pd.DataFrame:
    """The sliding window by DuckDB (pandas without it): the ``benchmarks.windows``
    workload's columns, cut to the configuration's top-k keys a window (ties: key
    ascending), and ``content_extra_*``'s for the windows kept. An aggregation neither
    computes is refused."""
    shape = (spec.type, spec.size, spec.slide, spec.keys)
    assert shape == ("sliding", SIZE_MS, SLIDE_MS, ["content_id"]), f"{spec.name}: {shape}"
    ops = {a.name: (a.op, a.column, a.where, a.q) for a in spec.aggregations}
    differ = [n for n in {**ops, **ORACLE_AGGREGATIONS} if ops.get(n) != ORACLE_AGGREGATIONS.get(n)]
    assert not differ, f"{spec.name}: no oracle computes {differ} as configured"
    table = pq.read_table(events_path, columns=[*COLUMNS, "user_id"])
    has_duckdb = importlib.util.find_spec("duckdb") is not None
    frame = to_pandas((run_duckdb if has_duckdb else run_pandas)(table.select(COLUMNS)))
    if spec.top_k is not None:
        top = spec.top_k
        order = ["window_start", top.by, "content_id"]
        frame = frame.sort_values(order, ascending=[True, not top.descending, True])
        frame = frame.groupby("window_start", sort=False).head(top.k)
    keys = frame[["window_start", "content_id"]]
    extra = (content_extra_duckdb if has_duckdb else content_extra_pandas)(table, keys)
    frame = frame.merge(extra, on=list(keys.columns), validate="one_to_one")
    assert len(frame) == len(keys), "the second query misses windows"
    frame.insert(1, "window_end", frame["window_start"] + spec.size)
    return frame.reset_index(drop=True)


def content_extra_duckdb(events: pa.Table, keys: pd.DataFrame) -> pd.DataFrame:
    """The content window's columns beyond the workload's, for the (window_start,
    content_id) of ``keys`` only: those the top-k cut keeps, a fifth of the time of all at
    10M events. The quantile is taken by rank from the sorted values, as DuckDB's
    ``quantile_disc`` takes rank floor(q·n), not the lower quantile's floor(q·(n−1))."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # a long query would draw one
    con.register("events", events)
    con.register("keys", pa.Table.from_pandas(keys, preserve_index=False))
    query = con.sql(
        f"""
        WITH x AS (
          SELECT content_id, user_id, watch_ms::DOUBLE AS watch, latency_ms::DOUBLE AS latency,
                 unnest(range((event_time - {SIZE_MS}) // {SLIDE_MS} + 1,
                              event_time // {SLIDE_MS} + 1)) * {SLIDE_MS} AS window_start
          FROM events WHERE content_id IN (SELECT content_id FROM keys))
        SELECT window_start, content_id,
               stddev_samp(watch) AS watch_std, min(latency) AS latency_min,
               list_sort(list(latency) FILTER (WHERE latency IS NOT NULL))
                 [floor({P99!r}::DOUBLE * (count(latency) - 1))::BIGINT + 1] AS latency_p99,
               count(DISTINCT user_id) AS viewers
        FROM x SEMI JOIN keys USING (window_start, content_id)
        GROUP BY window_start, content_id"""
    )
    return query.to_arrow_table().to_pandas()


def content_extra_pandas(events: pa.Table, keys: pd.DataFrame) -> pd.DataFrame:
    """``content_extra_duckdb`` by pandas: each event copied into each window it is in."""
    frame = events.to_pandas()
    frame = frame[frame["content_id"].isin(keys["content_id"])]
    pane = frame["event_time"] // SLIDE_MS
    frame = frame.assign(watch=frame["watch_ms"].astype("float64"),
                         latency=frame["latency_ms"].astype("float64"))  # fmt: skip
    copies = [frame.assign(window_start=(pane - lag) * SLIDE_MS)
              for lag in range(SIZE_MS // SLIDE_MS)]  # fmt: skip
    rows = pd.concat(copies).merge(keys, on=list(keys.columns))
    grouped = rows.groupby(list(keys.columns))
    columns = {
        "watch_std": grouped["watch"].std(ddof=1),
        "latency_min": grouped["latency"].min(),
        "latency_p99": grouped["latency"].quantile(P99, interpolation="lower"),
        "viewers": grouped["user_id"].nunique(),
    }
    return pd.DataFrame(columns).reset_index()


def oracle_tumbling(events: pd.DataFrame, time: str, spec: Any) -> pd.DataFrame:
    """A tumbling window per key: ``[start, start + size)`` aligned to the epoch."""
    start = (events[time] // spec.size * spec.size).rename("window_start")
    frame = _aggregate(events, [start, *(events[key] for key in spec.keys)], spec.aggregations)
    frame = frame.reset_index()
    frame.insert(1, "window_end", frame["window_start"] + spec.size)
    return frame


def oracle_sessions(events: pd.DataFrame, time: str, spec: Any) -> pd.DataFrame:
    """Sessions per key: a key's events in time order, a new session where one comes more
    than ``gap`` after the one before (at ``gap`` it joins: Flink's inclusive rule);
    ``window_end`` = last event + gap. Out of order arrival changes nothing here, as every
    event is on time (``check_events``): the one case it would, an on-time event that
    joins a session already emitted (only at the lateness bound), shows as a mismatch."""
    ordered = events.sort_values([*spec.keys, time], kind="stable")
    keys = ordered[spec.keys]
    assert not keys.isna().any().any(), "null keys: not sessionised here"
    new_key = keys.ne(keys.shift()).any(axis=1)
    session = (new_key | (ordered[time].diff() > spec.gap)).cumsum().rename("session")
    grouped = ordered.groupby(session)
    frame = pd.DataFrame({"window_start": grouped[time].min(),
                          "window_end": grouped[time].max() + spec.gap})  # fmt: skip
    for key in spec.keys:
        frame[key] = grouped[key].first()
    frame = frame.join(_aggregate(ordered, [session], spec.aggregations))
    return frame.reset_index(drop=True)


def _aggregate(events: pd.DataFrame, by: list[pd.Series], aggregations: list) -> pd.DataFrame:
    """Each aggregation per group of ``by`` (a null key a group of its own, as in the engine),
    by pandas, over the rows its ``where`` keeps: ``count`` (events, nulls too), float64
    ``sum`` and ``quantile`` of the non-null values (the lower one, numpy's
    ``method="lower"``, as the engine defines it). Other ops raise."""
    columns = {}
    for agg in aggregations:
        keep = pd.Series(True, index=events.index)
        for column, allowed in (agg.where or {}).items():
            keep &= events[column].isin(allowed if isinstance(allowed, list) else [allowed])
        if agg.op == "count":
            columns[agg.name] = keep.groupby(by, dropna=False).sum()
            continue
        values = events[agg.column].astype("float64").where(keep).groupby(by, dropna=False)
        if agg.op == "sum":
            columns[agg.name] = values.sum(min_count=1)
        elif agg.op == "quantile":
            columns[agg.name] = values.quantile(agg.q, interpolation="lower")
        else:
            raise NotImplementedError(f"no oracle computes op {agg.op} ({agg.name})")
    return pd.DataFrame(columns)


def window_differences(label: str, got: pd.DataFrame, want: Reference) -> list[str]:
    """``frame_differences`` with floats within 1e-9 relative, but the sketch's quantiles
    within its 1 %: those compared apart, on rows told apart by the columns not floats."""
    frame = want.frame
    tight = [c for c in frame.columns if c not in want.approximate]
    problems = frame_differences(label, got[tight], frame[tight], rtol=1e-9)
    if want.approximate and not problems:
        rows = [c for c in tight if not pd.api.types.is_float_dtype(frame[c])]
        loose = [*rows, *want.approximate]
        problems = frame_differences(label, got[loose], frame[loose], rtol=QUANTILE_RTOL)
    return problems


def check_windows(name: str, out: Path, want: dict[str, Reference]) -> None:
    """Every window the run wrote against its reference, every column: one the reference
    lacks is a mismatch, so that a column added to the engine's output is checked too."""
    emitted = sorted(path.name for path in (out / "windows").iterdir())
    problems = []
    if emitted != sorted(want):
        problems.append(f"{name} run wrote windows {emitted}, the references {sorted(want)}")
    for window in sorted(set(emitted) & set(want)):
        label = f"{name} run, window {window}"
        got = pq.read_table(out / "windows" / window).to_pandas()
        columns = list(want[window].frame.columns)
        if sorted(got.columns) != sorted(columns):
            problems.append(f"{label}: wrote columns {list(got.columns)}, the reference {columns}")
            continue
        problems += window_differences(label, got[columns], want[window])
    if problems:
        raise AssertionError("; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--events", type=_count, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    events_path = dataset(args.events, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env["NUMBA_CACHE_DIR"] = str(Path(tmp) / "numba")
        env["TIKTOKTOE_KERNEL_CACHE"] = str(Path(tmp) / "kernels")
        cold = run_once(events_path, Path(tmp) / "cold", env, args.workers)
        warm = run_once(events_path, Path(tmp) / "warm", env, args.workers)
        want_events = expected_events(args.events, args.seed)
        want_windows = oracle_windows(events_path)
        for name, run in (("cold", cold), ("warm", warm)):
            check_events(name, run, want_events)
            check_windows(name, Path(tmp) / name, want_windows)
    print(f"full short-video pipeline, {args.events:,} events from Parquet to Parquet (CLI)")
    for name, r in (("cold (JIT)", cold), ("warm", warm)):
        print(
            f"{name:<11} {r['wall_s']:7.2f} s  {r['events_per_s']:>12,.0f} events/s  "
            f"first batch after {r['first_batch_s']:.2f} s  peak RSS {r['peak_mb']:,.0f} MB"
        )
    print(f"JIT cost of the first run: {cold['first_batch_s'] - warm['first_batch_s']:.2f} s")
    print("events:", json.dumps(warm["events"]))
    rows = ", ".join(f"{name} ({len(w.frame):,} rows)" for name, w in want_windows.items())
    print(
        "checked: both runs counted every event valid, none quarantined or late; windows"
        f" {rows} equal the independent references in every column"
        f" (quantiles within {QUANTILE_RTOL:.0%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
