"""Options that record that they were given: a command refuses those that would do
nothing in its mode (``run --input`` with the generator's, ``optimize --problem`` with
the metrics fit's), whatever their values, its defaults' too."""

from __future__ import annotations

import argparse
from typing import Any

from gpu_engine.units import parse_duration_ms


class Given(argparse.Action):
    """Stores the value, and records the option as given (:func:`given_options`)."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
        values: Any, option_string: str | None = None,
    ) -> None:  # fmt: skip
        setattr(namespace, self.dest, values)
        given = getattr(namespace, "given_options", None) or []
        namespace.given_options = [*given, option_string]


def given_options(args: argparse.Namespace) -> list[str]:
    """The options of ``Given`` actions on the command line, each once, in order."""
    return list(dict.fromkeys(getattr(args, "given_options", None) or []))


def duration_ms_arg(text: str) -> int:
    """An argparse type: a duration (``50ms``, ``2s``) or a number of milliseconds (ASCII
    digits: ``str.isdigit`` takes '²'), in ms; negative ones refused as such."""
    text = text.strip()
    if text.startswith("-"):
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    try:
        return parse_duration_ms(int(text) if text.isascii() and text.isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
