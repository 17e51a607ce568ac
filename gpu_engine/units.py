"""Parsing of human-written quantities (durations) shared by every config model.

Durations are written as ``50ms``, ``2s``, ``5m``, ``1h`` (or plain numbers of
milliseconds) and are held internally as integer milliseconds, the engine's
unit of event time.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Annotated

from pydantic import BeforeValidator

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration_ms(value: object) -> int:
    """Return ``value`` as whole milliseconds.

    Accepts ``"250ms"``, ``"1.5s"``, ``"5m"``, ``"1h"``, ``"1d"`` or a
    non-negative number of milliseconds. Anything else raises ``ValueError``
    with a message saying what is accepted.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write e.g. '50ms', '2s', '5m', '1h'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration {value!r} is negative")
        if isinstance(value, float) and not value.is_integer():  # an int is exact as it is
            raise ValueError(f"duration {value!r} ms is not a whole number of milliseconds")
        return int(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            ms = Fraction(match.group(1)) * _UNIT_MS[match.group(2)]  # exact, any length
            if ms.denominator != 1:
                raise ValueError(f"duration {value!r} is not a whole number of milliseconds")
            return int(ms)
    raise ValueError(f"{value!r} is not a duration; write e.g. '50ms', '2s', '5m', '1h'")


def format_duration_ms(ms: int) -> str:
    """Shortest exact spelling of ``ms`` in the units accepted by ``parse_duration_ms``."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]
"""A pydantic field type: a duration parsed from text, stored as integer ms."""
