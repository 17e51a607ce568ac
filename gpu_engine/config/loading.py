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
    return check_config(config, source)


def check_config(config: EngineConfig, source: str = "<config>") -> EngineConfig:
    """``config`` if its sections agree (see :func:`cross_check`), else a
    :class:`ConfigError` naming each bad path. The engine calls it too, since a config
    built as ``EngineConfig(...)`` has had only its sections' own checks: a float key
    field, say, would otherwise be truncated to integers."""
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping.

    PyYAML keeps the last of them silently (a second ``windows:`` block replaced the
    first); YAML 1.2 forbids duplicate keys. Keys that a ``<<`` merge brings in may still
    be overridden, as YAML's merge keys allow. A mapping is checked before PyYAML
    flattens its merges into it, in place, once: an alias of a mapping that had a merge
    (``d: *a``) then holds the merged keys beside its own, which is not a repetition.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()  # mappings whose own keys were checked

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._refuse_repeated_keys(node)
        super().flatten_mapping(node)

    def _refuse_repeated_keys(self, node: yaml.MappingNode) -> None:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first_line.get(key)
            except TypeError:  # unhashable: construct_mapping says so
                continue
            if seen is not None:
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else key
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {shown!r} is given twice in one mapping (first on line {seen}):"
                    " YAML forbids duplicate keys, and the later one would silently replace"
                    " the earlier",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1


def read_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` refusing duplicate keys; marks in errors name ``source``."""
    loader = _UniqueKeyLoader(text)
    loader.name = source  # the marks of its errors: "in <source>, line 3, column 5"
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


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
        data = read_yaml(text, str(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return parse_config(data or {}, source=str(path))
