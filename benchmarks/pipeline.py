"""The full short-video pipeline through the CLI: Parquet in, Parquet out, streamed in batches.

    python -m benchmarks.pipeline --events 10M

Runs ``gpu-engine run --config gpu_engine/examples/short_video.yaml --input
events.parquet`` (every aggregation kind, quantile and distinct sketches,
top-k, sessions) twice in fresh processes: the first with empty Numba and
kernel caches (so its start-up includes JIT compilation), the second warm.
Reports throughput, peak memory of the run (its process's max RSS) and the
time from process start to the first processed batch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.windows import dataset
from gpu_engine.commands.generate import _count

CONFIG = Path(__file__).resolve().parents[1] / "gpu_engine" / "examples" / "short_video.yaml"


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
        "events_per_s": summary["events"]["in"] / wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    print(f"full short-video pipeline, {args.events:,} events from Parquet to Parquet (CLI)")
    for name, r in (("cold (JIT)", cold), ("warm", warm)):
        print(
            f"{name:<11} {r['wall_s']:7.2f} s  {r['events_per_s']:>12,.0f} events/s  "
            f"first batch after {r['first_batch_s']:.2f} s  peak RSS {r['peak_mb']:,.0f} MB"
        )
    print(f"JIT cost of the first run: {cold['first_batch_s'] - warm['first_batch_s']:.2f} s")
    print("events:", json.dumps(warm["events"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
