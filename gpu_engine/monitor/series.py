"""Series identity shared by the sampler, the rules and the monitor.

A series is a metric name plus a label set, written the Prometheus way:
``batch_seconds_p99`` or ``worker_events_per_s{worker="w1"}``. Keeping one
canonical spelling lets rules, Parquet rows and ``snapshot()`` agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]

_NAME = r"[A-Za-z_:][A-Za-z0-9_:.\-]*"
_SELECTOR = re.compile(rf"^\s*(?P<name>{_NAME})\s*(?:\{{(?P<labels>[^{{}}]*)\}})?\s*$")
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*')


def make_labels(labels: Mapping[str, object] | None) -> Labels:
    """Canonical (sorted, stringified) label tuple, hashable for dict keys."""
    if not labels:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def _unescape(value: str) -> str:
    """PromQL's string escapes, in one pass (``\\n`` is a newline, ``\\\\`` a backslash)."""
    return _ESCAPED.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def render(key: SeriesKey) -> str:
    """``name{a="1",b="2"}``: the flat spelling used by ``snapshot()``."""
    name, labels = key
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return f"{name}{{{inner}}}"


def parse_selector(text: str) -> SeriesKey:
    """Parse ``name`` or ``name{k="v",...}``; raises ``ValueError`` saying what is wrong."""
    match = _SELECTOR.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a metric selector; write e.g. 'batch_seconds_p99' or "
            "'window:region_errors.error_rate{region=\"eu\"}'"
        )
    labels: dict[str, str] = {}
    body = match.group("labels")
    if body and body.strip():
        for part in _split_matchers(body):
            m = _MATCHER.fullmatch(part)
            if not m:
                raise ValueError(f'label matcher {part.strip()!r} in {text!r} is not k="v"')
            labels[m.group(1)] = _unescape(m.group(2))
    return match.group("name"), make_labels(labels)


def _split_matchers(body: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes = escaped = False
    for ch in body:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
        elif ch == "," and not in_quotes:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


def matches(selector: SeriesKey, key: SeriesKey) -> bool:
    """Prometheus semantics: same name, and each of the selector's labels equal to the
    series' (``k=""`` matches a series without ``k``)."""
    if selector[0] != key[0]:
        return False
    if not selector[1]:
        return True
    have = dict(key[1])
    return all(have.get(k, "") == v for k, v in selector[1])
