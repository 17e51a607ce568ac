"""``gpu-engine run``: run a pipeline (the built-in demo when given no arguments)."""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gpu_engine.commands.generate import add_generator_options, spec_from_args
from gpu_engine.config import load_config
from gpu_engine.errors import EngineError
from gpu_engine.runner import run_pipeline, source_batches

DEMO_EVENTS = 500_000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a pipeline (no arguments: the built-in demo on synthetic data)",
        description="Validate, window and aggregate events; write Parquet results to --out.",
    )
    parser.add_argument("--config", help="YAML config (default: the short-video example)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", help="Parquet/CSV/JSONL file or directory of events")
    source.add_argument("--synthetic", action="store_true", help="generate events (default)")
    add_generator_options(parser)
    parser.set_defaults(events=DEMO_EVENTS, bad_fraction=0.001)
    parser.add_argument("--out", help="output folder (default: a new folder here)")
    parser.add_argument("--backend", choices=["auto", "cpu", "cuda"], help="override the config")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


def default_config_path() -> Path:
    return Path(str(resources.files("gpu_engine") / "examples" / "short_video.yaml"))


def _run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        config = load_config(args.config or default_config_path())
        if args.backend:
            config = config.model_copy(update={"backend": args.backend})
        out = Path(args.out or f"tiktoktoe-out-{time.strftime('%Y%m%d-%H%M%S')}")
        spec = None if args.input else spec_from_args(args)
        batches = source_batches(config, args.input, spec)
        total = spec.events if spec is not None else None
        label = args.input or f"synthetic ({spec.events:,} events)" if spec else args.input
        console.print(f"[bold]TikTokToe[/] {label} -> {out}")
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} events"),
            TimeElapsedColumn(),
            console=console,
            disable=args.no_progress,
            transient=True,
        ) as progress:
            task = progress.add_task("processing", total=total)
            summary = run_pipeline(
                config, batches, out, progress=lambda n: progress.advance(task, n)
            )
    except (EngineError, ValueError, OSError) as exc:
        console.print(f"[red]gpu-engine run: {exc}[/]")
        return 2
    Console().print(summary_table(summary))
    print(f"results in {out}/ (summary.json, windows/, quarantine/, late/)")
    return 0 if summary["accounted"] else 1


def summary_table(summary: dict[str, Any]) -> Table:
    events = summary["events"]
    table = Table(title="Run summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name in ("in", "valid", "quarantined", "late", "dead_lettered"):
        table.add_row(f"events {name}", f"{events[name]:,}")
    for name, info in summary["windows"].items():
        table.add_row(f"windows {name}", f"{info['emitted']:,}")
    table.add_row("throughput", f"{summary['throughput_events_per_s']:,.0f} events/s")
    latency = summary["latency_ms"]
    if latency["p50"] is not None:
        table.add_row("batch latency p50 / p99", f"{latency['p50']:.1f} / {latency['p99']:.1f} ms")
    table.add_row("backend", summary["backend"])
    table.add_row("every event accounted for", "yes" if summary["accounted"] else "NO")
    return table


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
