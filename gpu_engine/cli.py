"""The ``gpu-engine`` command line: one subcommand per job, each defined beside its code."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module provides ``register(subparsers)``, adding its subcommand(s) and
# setting ``func`` (taking the parsed namespace, returning an exit code).
_SUBCOMMAND_MODULES = (
    "gpu_engine.commands.run",
    "gpu_engine.commands.generate",
    "gpu_engine.optimizer.cli",
    "gpu_engine.monitor.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpu-engine",
        description="TikTokToe: real-time windowed analytics on the GPU (or the CPU).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # An absent subcommand package is skipped; a missing dependency is not.
            if exc.name is None or not name.startswith(exc.name):
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
