"""``gpu-engine generate``: write synthetic short-video events to a file."""

from __future__ import annotations

import argparse
import sys

from gpu_engine.generator import GeneratorSpec, write_events
from gpu_engine.units import parse_duration_ms


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="write synthetic events to a file")
    add_generator_options(parser)
    parser.add_argument("--out", required=True, help="output file (.parquet, .csv or .jsonl)")
    parser.set_defaults(func=_generate)


def add_generator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=_count, default=1_000_000, help="number of events (1M, 100k)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bad-fraction", type=float, default=0.0, help="share of invalid rows")
    parser.add_argument("--disorder", default="2s", help="maximum out-of-order delay")
    parser.add_argument("--duration", default="10m", help="event-time span of the stream")
    parser.add_argument("--content", type=_count, default=100_000, help="distinct content ids")
    parser.add_argument("--profile", choices=["flat", "ramp", "diurnal"], default="diurnal")
    parser.add_argument("--kind", choices=["short-video", "nexmark-bids"], default="short-video",
                        help="which stream to generate")  # fmt: skip


def spec_from_args(args: argparse.Namespace) -> GeneratorSpec:
    return GeneratorSpec(
        events=args.events,
        seed=args.seed,
        bad_fraction=args.bad_fraction,
        disorder_ms=parse_duration_ms(args.disorder),
        duration_ms=parse_duration_ms(args.duration),
        n_content=args.content,
        profile=args.profile,
        kind=args.kind,
    )


def _count(text: str) -> int:
    """Parse ``1000``, ``100k``, ``10M``."""
    scale = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
    text = text.strip().lower().replace("_", "")
    try:
        if text and text[-1] in scale:
            return int(float(text[:-1]) * scale[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a count (e.g. 1000, 100k, 10M)"
        ) from None


def _generate(args: argparse.Namespace) -> int:
    try:
        spec = spec_from_args(args)
        total = write_events(spec, args.out)
    except ValueError as exc:
        print(f"gpu-engine generate: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {total:,} events to {args.out}")
    return 0
