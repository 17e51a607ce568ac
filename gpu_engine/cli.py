"""The ``gpu-engine`` command line: one subcommand per job, each defined beside its code."""

from __future__ import annotations

import argparse
import difflib
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
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand's parser, with its usage (``run --confg``)
        command = _command_parser(parser, args)
        options = [o for a in command._actions for o in a.option_strings]
        close = [m for x in extra for m in difflib.get_close_matches(x.split("=")[0], options, 1)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        command.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` came through: ``alerts ack``'s, ``run``'s,
    or the top level's."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for dest in ("command", "alerts_command"):
                chosen = action.choices.get(getattr(args, dest, None) or "")
                if chosen is not None:
                    return _command_parser(chosen, args)
    return parser


if __name__ == "__main__":
    sys.exit(main())
