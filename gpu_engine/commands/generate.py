"""``gpu-engine generate``: write synthetic short-video events to a file."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpu_engine.commands.options import Given, duration_ms_arg
from gpu_engine.config.models import (
    DEFAULT_MAX_EVENT_TIME_MS,
    DEFAULT_MIN_EVENT_TIME_MS,
    MAX_EVENT_TIME_BOUND_MS,
)
from gpu_engine.generator import KINDS, MAX_CONTENT, MAX_EVENTS, GeneratorSpec, write_events
from gpu_engine.units import parse_duration_ms


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="write synthetic events to a file")
    add_generator_options(parser, min_events=0, start_ms=GeneratorSpec.start_ms)
    parser.add_argument("--out", required=True, help="output file (.parquet, .csv or .jsonl)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(func=_generate)


def add_generator_options(
    parser: argparse.ArgumentParser, min_events: int = 1, start_ms: int | None = None
) -> None:
    """The generator's options, each checked by argparse so a bad value names its option.

    ``start_ms``: where the stream starts; ``None`` for ``run``'s live data, which ends
    now. Either way ``--duration`` may not take event times outside the engine's
    default bounds (before 1970 or after 2100: quarantined as absurd, or wrapped).
    Each option given on the command line is recorded in ``args.given_options``
    (``run`` refuses them with ``--input``, whatever their values).
    """
    given: dict[str, Any] = {"action": Given}
    parser.add_argument(
        "--events", type=_count_at_least(min_events, MAX_EVENTS), default=1_000_000,
        help="number of events (1M, 100k)", **given,
    )  # fmt: skip
    parser.add_argument("--seed", type=_count_at_least(0), default=0, **given)
    parser.add_argument("--bad-fraction", type=_fraction, default=0.0,
                        help="share of invalid rows (0 to 1)", **given)  # fmt: skip
    parser.add_argument("--disorder", type=_duration, default="2s",
                        help="maximum out-of-order delay", **given)  # fmt: skip
    parser.add_argument("--duration", type=_span(start_ms), default="10m",
                        help="event-time span of the stream", **given)  # fmt: skip
    parser.add_argument("--content", type=_count_at_least(1, MAX_CONTENT), default=100_000,
                        help=f"distinct content ids (1 to {MAX_CONTENT:,})", **given)  # fmt: skip
    parser.add_argument("--profile", choices=["flat", "ramp", "diurnal"], default="diurnal",
                        **given)  # fmt: skip
    parser.add_argument("--kind", choices=list(KINDS), default=None,
                        help="which stream to generate (default: short-video; for run, the"
                             " one whose columns the config's schema names)", **given)  # fmt: skip


def spec_from_args(args: argparse.Namespace) -> GeneratorSpec:
    return GeneratorSpec(
        events=args.events,
        seed=args.seed,
        bad_fraction=args.bad_fraction,
        disorder_ms=parse_duration_ms(args.disorder),
        duration_ms=parse_duration_ms(args.duration),
        n_content=args.content,
        profile=args.profile,
        kind=args.kind or "short-video",
    )


def _count(text: str) -> int:
    """Parse ``1000``, ``100k``, ``10M`` (zero or more)."""
    scale = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
    text = text.strip().lower().replace("_", "")
    try:
        multiple = scale.get(text[-1:], 1)
        value = int(float(text[:-1]) * multiple) if multiple > 1 else int(text)
    except (ValueError, OverflowError):  # OverflowError: "infk"
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a count (e.g. 1000, 100k, 10M)"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; a count is 0 or more")
    return value


def _count_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a count (``100k``) of at least ``minimum`` (and at most ``maximum``)."""

    def parse(text: str) -> int:
        value = _count(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text.strip()!r} is below {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f"{text.strip()!r} is above {maximum:,}, the most supported"
            )
        return value

    parse.__name__ = "count"  # argparse names the type in some messages
    return parse


def _fraction(text: str) -> float:
    """A share from 0 to 1 (``0.001``); NaN and values outside are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def _duration(text: str) -> int:
    """A duration (``2s``, ``10m``, or ``0``: plain milliseconds) in ms, checked by argparse,
    at most 2^61 ms, as the config's durations."""
    ms = duration_ms_arg(text)
    if ms > MAX_EVENT_TIME_BOUND_MS:
        raise argparse.ArgumentTypeError(
            f"{text.strip()!r} is too long a duration (2^61 ms at most)"
        )
    return ms


def _span(start_ms: int | None) -> Callable[[str], int]:
    """An argparse type: a duration that keeps the stream's event times inside the
    engine's default bounds, from ``start_ms`` on or (``None``) ending now."""

    def parse(text: str) -> int:
        value = duration_ms_arg(text)
        if start_ms is None:
            most = int(time.time() * 1000) - DEFAULT_MIN_EVENT_TIME_MS
            why = (
                "a longer stream ending now would start before 1970-01-01, the earliest"
                " event time the engine accepts"
            )
        else:
            most = DEFAULT_MAX_EVENT_TIME_MS - start_ms
            why = (
                f"a longer stream from {_utc(start_ms)} would end after 2100-01-01,"
                " the latest event time the engine accepts"
            )
        if value > most:
            raise argparse.ArgumentTypeError(
                f"{text.strip()!r} is longer than {most // 86_400_000:,}d: {why}"
            )
        return value

    parse.__name__ = "duration"
    return parse


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _generate(args: argparse.Namespace) -> int:
    try:
        _check_out(Path(args.out), args.overwrite)
        spec = spec_from_args(args)
        total = write_events(spec, args.out)
    except (ValueError, OSError) as exc:
        print(f"gpu-engine generate: {_reason(exc, args.out)}", file=sys.stderr)
        return 2
    print(f"wrote {total:,} events to {args.out}")
    return 0


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse a folder, and an existing file unless ``--overwrite`` (as ``run`` keeps an
    earlier run's results): a mistyped --out replaced a million events without a word."""
    if out.is_dir():
        raise ValueError(f"--out {out}: is a folder; name the file to write (events.parquet)")
    if out.exists() and not overwrite:
        raise ValueError(f"--out {out}: exists; pass --overwrite to replace it")


def _reason(exc: Exception, out: str) -> str:
    """The error with the path it concerns (an OSError's text alone may not name it)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"--out {exc.filename or out}: {exc.strerror}"
    return str(exc)
