"""The full short-video pipeline through the CLI: Parquet in, Parquet out, streamed in batches.

    python -m benchmarks.pipeline --events 10M

Runs ``gpu-engine run --config gpu_engine/examples/short_video.yaml --input
events.parquet`` (every aggregation kind, quantile and distinct sketches,
top-k, sessions) twice in fresh processes: the first with empty Numba and
kernel caches (so its start-up includes JIT compilation), the second warm.
Reports throughput, peak memory of the run (its process's max RSS) and the
time from process start to the first processed batch, after checking each run: every
event counted valid (the generated data has no invalid rows and less disorder than the
windows allow), and the ``content`` window (top 100 keys a window) equal to an
independent DuckDB computation of the same windows (``benchmarks.windows``; pandas
without DuckDB). A mismatch raises.
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

import pandas as pd
import pyarrow.parquet as pq

from benchmarks.windows import (
    COLUMNS,
    OUTPUT,
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
CHECKED_WINDOW = "content"
# What the oracle computes for each checked column: (op, column, where).
ORACLE_AGGREGATIONS = {
    "views": ("count", None, None),
    "likes": ("count", None, {"event_type": 1}),
    "watch_sum": ("sum", "watch_ms", None),
    "watch_mean": ("mean", "watch_ms", None),
    "latency_max": ("max", "latency_ms", None),
}


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


def oracle_window(events_path: Path) -> pd.DataFrame:
    """The checked window computed by DuckDB (pandas without it) from the events file,
    cut to the configuration's top-k keys a window (ties: key ascending)."""
    (spec,) = (w for w in load_config(CONFIG).windows if w.name == CHECKED_WINDOW)
    shape = (spec.type, spec.size, spec.slide, spec.keys)
    assert shape == ("sliding", SIZE_MS, SLIDE_MS, ["content_id"]), f"{CHECKED_WINDOW}: {shape}"
    ops = {a.name: (a.op, a.column, a.where) for a in spec.aggregations}
    assert all(ops.get(name) == op for name, op in ORACLE_AGGREGATIONS.items()), ops
    compute = run_duckdb if importlib.util.find_spec("duckdb") else run_pandas
    frame = to_pandas(compute(pq.read_table(events_path, columns=COLUMNS)))
    if spec.top_k is not None:
        top = spec.top_k
        order = ["window_start", top.by, "content_id"]
        frame = frame.sort_values(order, ascending=[True, not top.descending, True])
        frame = frame.groupby("window_start", sort=False).head(top.k)
    return frame.reset_index(drop=True)


def check_window(name: str, out: Path, want: pd.DataFrame) -> None:
    got = pq.read_table(out / "windows" / CHECKED_WINDOW).select(OUTPUT).to_pandas()
    problems = frame_differences(f"{name} run, window {CHECKED_WINDOW}", got, want, rtol=1e-9)
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
        want_window = oracle_window(events_path)
        for name, run in (("cold", cold), ("warm", warm)):
            check_events(name, run, want_events)
            check_window(name, Path(tmp) / name, want_window)
    print(f"full short-video pipeline, {args.events:,} events from Parquet to Parquet (CLI)")
    for name, r in (("cold (JIT)", cold), ("warm", warm)):
        print(
            f"{name:<11} {r['wall_s']:7.2f} s  {r['events_per_s']:>12,.0f} events/s  "
            f"first batch after {r['first_batch_s']:.2f} s  peak RSS {r['peak_mb']:,.0f} MB"
        )
    print(f"JIT cost of the first run: {cold['first_batch_s'] - warm['first_batch_s']:.2f} s")
    print("events:", json.dumps(warm["events"]))
    print(
        "checked: both runs counted every event valid, none quarantined or late; window"
        f" {CHECKED_WINDOW} ({len(want_window):,} rows) equals the independent reference"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
