"""Reading a configuration from YAML or a dict, with errors that name the path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gpu_engine.config.checks import cross_check
from gpu_engine.config.models import EngineConfig
from gpu_engine.errors import ConfigError


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (misspelled?)"
        msg = msg.removeprefix("Value error, ")
        lines.append(f"  {_format_loc(loc)}: {msg}")
    return "\n".join(lines)


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> EngineConfig:
    """Validate a configuration mapping; raise :class:`ConfigError` naming each bad path."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid configuration in {source}: expected a mapping at top level")
    try:
        config = EngineConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    problems = cross_check(config)
    if problems:
        raise ConfigError(
            "\n".join([f"invalid configuration in {source}:", *(f"  {p}" for p in problems)])
        )
    return config


def not_utf8(exc: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8: Python's message names neither the file nor the line."""
    line = exc.object[: exc.start].count(b"\n") + 1
    return (
        f"byte 0x{exc.object[exc.start]:02x} on line {line} (offset {exc.start}) is not UTF-8"
        f" ({exc.reason}); save the file as UTF-8"
    )


def load_config(path: str | Path) -> EngineConfig:
    """Load and validate a YAML configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:  # its text alone names neither the file nor the fix
        raise ConfigError(f"cannot read configuration {path}: {not_utf8(exc)}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return parse_config(data or {}, source=str(path))
