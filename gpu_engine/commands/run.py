"""``gpu-engine run``: run a pipeline (the built-in demo when given no arguments)."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from contextlib import nullcontext, suppress
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gpu_engine.commands.generate import add_generator_options, spec_from_args
from gpu_engine.commands.options import given_options
from gpu_engine.commands.startup import lighten_startup
from gpu_engine.config import load_config
from gpu_engine.config.models import EngineConfig
from gpu_engine.errors import EngineError
from gpu_engine.generator import KINDS, GeneratorSpec, kind_for, stream_schema
from gpu_engine.io.sinks import ParquetSink
from gpu_engine.io.sources import input_files
from gpu_engine.monitor import load_monitor_config
from gpu_engine.monitor.live import render
from gpu_engine.monitor.monitor import ACKS_FILE, ACTIONS_FILE, ALERTS_FILE, METRICS_DIR
from gpu_engine.monitoring import EngineMonitoring
from gpu_engine.runner import return_freed_memory_promptly, run_pipeline, source_batches

DEMO_EVENTS = 500_000
# What a run writes under --out (README's outputs table): a folder holding any of them
# holds an earlier run's results (or a killed run's logs); ``--overwrite`` removes them.
RUN_FILES = (*ParquetSink.OUTPUTS, METRICS_DIR, ALERTS_FILE, ACTIONS_FILE, ACKS_FILE)


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
    add_generator_options(parser, min_events=1)
    parser.set_defaults(events=DEMO_EVENTS, bad_fraction=0.001)
    parser.add_argument("--out", help="output folder (default: a new folder here)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace the results of an earlier run in --out (refused without it)",
    )  # fmt: skip
    parser.add_argument("--backend", choices=["auto", "cpu", "cuda"], help="override the config")
    parser.add_argument(
        "--metrics-port", type=_port,
        help="serve Prometheus metrics on this port (0: any free port)",
    )  # fmt: skip
    parser.add_argument("--metrics-addr", default="127.0.0.1", help="address for --metrics-port")
    parser.add_argument("--monitor-config", help="YAML rules for the monitor (default: built-in)")
    parser.add_argument("--no-progress", action="store_true", help="no live view / progress bar")
    parser.set_defaults(func=_run)


def default_config_path() -> Path:
    return Path(str(resources.files("gpu_engine") / "examples" / "short_video.yaml"))


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: the system picks a free one)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0: any free port)")
    return port


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an --out that is not a folder, or that holds an earlier run's results.

    Why: a run writes only the outputs it has rows for, so a second run into the same
    folder would leave the first one's quarantine or late rows beside its own summary, and
    its alert log and metric samples would go on from the first one's.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    if overwrite or not out.is_dir():
        return
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found:
        raise ValueError(
            f"--out {out}: holds the results of an earlier run ({', '.join(found)});"
            " pass --overwrite to replace them, or choose another folder"
        )


def new_out_folder(now: float | None = None) -> Path:
    """A folder of its own for a run given no --out: ``tiktoktoe-out-<time>``, then
    ``-2``, ``-3``... Made here (not only named), so that two runs started in the same
    second cannot pick the same one."""
    base = f"tiktoktoe-out-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"
    for n in range(1, 10_000):
        path = Path(base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise ValueError(f"no free folder {base}-N here; pass --out")


def _remove_unstarted_run(out: Path) -> None:
    """Remove what a run that never started wrote (the monitor's first log line and
    folders), so that the same command can be run again; not if it wrote any results."""
    if not any((out / name).exists() for name in ParquetSink.OUTPUTS):
        with suppress(OSError):
            clear_previous_run(out)


def clear_previous_run(out: Path) -> None:
    """Remove what an earlier run wrote under ``out`` (``RUN_FILES``), nothing else."""
    for name in RUN_FILES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _run(args: argparse.Namespace) -> int:
    lighten_startup()
    return_freed_memory_promptly()
    console = Console(stderr=True)
    monitoring = None
    claimed = False  # whether this run may remove what it wrote, should it not start
    try:
        out = Path(args.out) if args.out else new_out_folder()
    except (ValueError, OSError) as exc:  # no folder can be made here
        console.print(f"[red]gpu-engine run: {escape(str(exc))}[/]", soft_wrap=True)
        return 2
    try:
        config = load_config(args.config or default_config_path())
        if args.backend:
            config = config.model_copy(update={"backend": args.backend})
        if args.input:  # before --out is touched: a mistyped path removes no results
            _refuse_generator_options(args)
            input_files(Path(args.input))
        check_out(out, args.overwrite)
        spec = None if args.input else _synthetic_spec(args, config)
        if spec is not None:  # live data: event times end now, so end-to-end latency is real
            spec = replace(spec, start_ms=int(time.time() * 1000) - spec.duration_ms)
        batches = source_batches(config, args.input, spec)
        label = f"synthetic ({spec.events:,} events)" if spec is not None else args.input
        console.print(
            f"[bold]TikTokToe[/] {escape(str(label))} -> {escape(str(out))}", soft_wrap=True
        )
        monitor_config = load_monitor_config(args.monitor_config) if args.monitor_config else None
        claimed = True  # every check passed: from here on this run writes to --out
        if args.overwrite and out.is_dir():
            clear_previous_run(out)
        monitoring = EngineMonitoring(out, monitor_config, args.metrics_port, args.metrics_addr)
        if monitoring.server is not None:
            console.print(f"metrics at {monitoring.server.url}")
        monitoring.start()
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} events"),
            TimeElapsedColumn(),
        )
        task = progress.add_task("processing", total=spec.events if spec else None)
        view = Group(progress, _MonitorView(monitoring))
        live = Live(view, console=console, refresh_per_second=4, transient=False)
        with nullcontext() if args.no_progress else live:
            summary = run_pipeline(
                config,
                batches,
                out,
                progress=lambda n: progress.advance(task, n),
                monitoring=monitoring,
            )
    except (EngineError, ValueError, OSError, KeyboardInterrupt) as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        message = "interrupted" if interrupted else escape(str(exc))
        console.print(f"[red]gpu-engine run: {message}[/]", soft_wrap=True)
        _stop(monitoring, console)
        # Only a run that started wrote this summary (not an earlier run's, left in --out).
        failed = failed_summary(out) if monitoring is not None else None
        if failed is not None:
            console.print(_failed_run_note(failed, out), soft_wrap=True)
        elif claimed and (monitoring is None or monitoring.engine is None):
            _remove_unstarted_run(out)  # no engine was made: a busy port, no device
        if failed is None and args.out is None:
            with suppress(OSError):  # the folder made for it, if nothing is left in it
                out.rmdir()
        return 130 if interrupted else 2
    except BaseException:
        _stop(monitoring, console)
        raise
    if not _stop(monitoring, console):
        return 2
    _report(summary, monitoring, out, console)
    return 0 if summary["accounted"] else 1


def _report(
    summary: dict[str, Any], monitoring: EngineMonitoring, out: Path, console: Console
) -> None:
    """A finished run's table, its notes (files mostly late), the alerts that fired and
    what it wrote."""
    Console().print(summary_table(summary))
    for note in mostly_late_inputs(summary):
        console.print(f"[yellow]{escape(note)}[/]", soft_wrap=True)
    fired = sorted({a.rule for a in monitoring.monitor.alerts.values() if a.fired_at is not None})
    print(f"alerts fired: {', '.join(fired) if fired else 'none'} (see {out}/alerts.jsonl)")
    written = [f"{name}/" if (out / name).is_dir() else name for name in RUN_FILES
               if (out / name).exists()]  # fmt: skip
    print(f"results in {out}/ ({', '.join(written)})")


def mostly_late_inputs(summary: dict[str, Any]) -> list[str]:
    """A note for each input at least half of whose events were late: the files of a
    folder are read one after another and share one watermark, so a file whose event
    times do not go on from those before it (a folder partitioned by region, say) is late."""
    notes = []
    for name, seen in (summary.get("late_inputs") or {}).items():
        if seen["events"] and 2 * seen["late"] >= seen["events"]:
            notes.append(
                f"{seen['late']:,} of the {seen['events']:,} events of {name} were late: the"
                " watermark had passed them. Files are read one after another, in name order,"
                " under one watermark: their event times must go on from the files before"
                " (or widen allowed_lateness)."
            )
    return notes


def _synthetic_spec(args: argparse.Namespace, config: EngineConfig) -> GeneratorSpec:
    """The synthetic stream for ``config``: ``--kind``, else the stream whose columns hold
    the config's time field and most of its fields. A stream without them is refused:
    every event would be quarantined for the missing columns, and the run exit 0."""
    schema = config.event_schema
    kind = args.kind or kind_for(schema.time, list(schema.fields))
    if kind is not None and schema.time in stream_schema(kind).names:
        return replace(spec_from_args(args), kind=kind)
    if args.kind:
        raise ValueError(
            f"--kind {args.kind} makes {', '.join(stream_schema(args.kind).names)}, without"
            f" the config's time field {schema.time!r}; leave --kind out, or give --input"
        )
    made = "; ".join(f"{k}: {', '.join(stream_schema(k).names)}" for k in KINDS)
    raise ValueError(
        f"no synthetic stream has the config's time field {schema.time!r}"
        f" ({made}); give --input, or a config for one of these streams"
    )


def _refuse_generator_options(args: argparse.Namespace) -> None:
    """Generator options given with ``--input``, which reads files: they would be ignored
    (whatever their values, the defaults' too)."""
    given = given_options(args)
    if given:
        raise ValueError(
            f"{', '.join(given)} shape synthetic events; with --input they do nothing"
            " (drop them, or drop --input)"
        )


def _stop(monitoring: EngineMonitoring | None, console: Console) -> bool:
    """Stop the monitor, which writes its last samples and log lines: False (said) when
    that fails, a full disk say, so the run exits 2 rather than with a traceback."""
    if monitoring is None:
        return True
    try:
        monitoring.stop()
    except OSError as exc:
        console.print(f"[red]gpu-engine run: {escape(str(exc))}[/]", soft_wrap=True)
        return False
    return True


def _failed_run_note(summary: dict[str, Any], out: Path) -> str:
    """What a run that stopped left behind: the events it had processed, whose results
    are in ``out`` (but for rows a failed write left out), and those it had not (the
    failing batch, rows waiting for a batch)."""
    events = summary["events"]
    read = int(events["in"])
    done = sum(int(events.get(k, 0)) for k in ("valid", "quarantined", "late", "dead_lettered"))
    note = (
        f"{done:,} of the {read:,} events read were processed before it; their results are"
        f" in {escape(str(out))}/ (summary.json: failed)"
    )
    unwritten = summary.get("unwritten") or {}
    if unwritten:
        lacking = ", ".join(f"{rows:,} rows of {name}" for name, rows in unwritten.items())
        note += f", but for what could not be written: {escape(lacking)} (summary.json: unwritten)"
    if read > done:
        note += f"; the other {read - done:,} (the failing batch, or rows waiting for one) were not"
    return note


def failed_summary(out: Path) -> dict[str, Any] | None:
    """The summary a run that stopped part-way left in ``out`` (see ``Engine.abort``)."""
    with suppress(OSError, ValueError):
        summary = json.loads((out / "summary.json").read_text())
        if isinstance(summary, dict) and summary.get("failed"):
            return summary
    return None


class _MonitorView:
    """The monitor's live tables, redrawn on every refresh."""

    def __init__(self, monitoring: EngineMonitoring) -> None:
        self.monitoring = monitoring

    def __rich__(self) -> Group:
        return render(self.monitoring.monitor, max_alerts=5)


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
    compiling, elapsed = summary.get("compile_s", 0.0), summary["elapsed_s"]
    if compiling >= 0.1:  # a machine's first run: the kernels, cached for later runs
        rest = elapsed - compiling
        table.add_row("compiling kernels", f"{compiling:.1f} s of {elapsed:.1f} s")
        if rest >= max(0.2, 0.02 * elapsed):  # a small difference magnifies any error
            table.add_row("throughput, compiling aside", f"{events['in'] / rest:,.0f} events/s")
    latency = summary["latency_ms"]
    if latency["p50"] is not None:
        table.add_row("batch latency p50 / p99", f"{latency['p50']:.1f} / {latency['p99']:.1f} ms")
    table.add_row("backend", summary["backend"])
    table.add_row("every event accounted for", "yes" if summary["accounted"] else "NO")
    return table
