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
    tokens = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(tokens)
    if extra:  # said by the subcommand's parser, with its usage (``run --confg``)
        command = _command_parser(parser, args, tokens, tokens.index(extra[0]))
        command.error(f"unrecognized arguments: {' '.join(extra)}{_hint(command, extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace, tokens: list[str], at: int
) -> argparse.ArgumentParser:
    """The parser of the (sub)command the unknown token ``tokens[at]`` came after:
    ``alerts ack``'s, ``run``'s, or the top level's (``gpu-engine --bogus run``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for dest in ("command", "alerts_command"):
                name = getattr(args, dest, None) or ""
                chosen = action.choices.get(name)
                if chosen is not None and name in tokens[:at]:
                    return _command_parser(chosen, args, tokens, at)
    return parser


def _hint(command: argparse.ArgumentParser, extra: list[str]) -> str:
    """The options an unknown ``--opsion`` may have meant (names compared without their
    dashes, so that every ``--x`` is not close to every ``--y``)."""
    names = {o.lstrip("-"): o for a in command._actions for o in a.option_strings}
    unknown = [x.split("=")[0].lstrip("-") for x in extra if x.startswith("-")]
    close = [names[m] for x in unknown for m in difflib.get_close_matches(x, names, 1, 0.7)]
    return f" (did you mean {', '.join(close)}?)" if close else ""


if __name__ == "__main__":
    sys.exit(main())
