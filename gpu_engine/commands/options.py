"""Options that record that they were given: a command refuses those that would do
nothing in its mode (``run --input`` with the generator's, ``optimize --problem`` with
the metrics fit's), whatever their values, its defaults' too."""

from __future__ import annotations

import argparse
from typing import Any


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
