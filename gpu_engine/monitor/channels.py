"""Notification channels: log, JSON-lines file, webhook (HTTP POST) and Python callback.

Each channel has ``send(payload: dict) -> None`` and raises on failure; the
monitor catches, logs and records the failure so a dead webhook never stops
evaluation. A ``log`` channel always exists, even when not configured.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from .rules import CallbackChannel, ChannelConfig, JsonlChannel, LogChannel, WebhookChannel

Payload = dict[str, Any]

_LEVELS = {"critical": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}


class Channel(Protocol):
    name: str

    def send(self, payload: Payload) -> None: ...


def summary_line(payload: Payload) -> str:
    """One human line per notification, for logs and the live view."""
    alerts = payload.get("alerts", [])
    names = ", ".join(
        f"{a['rule']}{(a['labels'] and ' ' + json.dumps(a['labels'], sort_keys=True)) or ''}"
        f" value={a.get('value')}"
        for a in alerts
    )
    head = f"[{payload.get('status')}/{payload.get('severity')}] level {payload.get('level', 0)}"
    return f"{head}: {names}"


class LogSink:
    """Writes to a ``logging`` logger at a level matching the severity."""

    def __init__(self, name: str, logger: str = "gpu_engine.monitor.alerts") -> None:
        self.name = name
        self.logger = logging.getLogger(logger)

    def send(self, payload: Payload) -> None:
        level = _LEVELS.get(str(payload.get("severity")), logging.INFO)
        if payload.get("status") == "resolved":
            level = logging.INFO
        self.logger.log(level, "%s", summary_line(payload))


class JsonlSink:
    """Appends one JSON object per notification (line-buffered, thread-safe)."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._lock = threading.Lock()

    def send(self, payload: Payload) -> None:
        line = json.dumps(payload, sort_keys=True, default=str)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")


class WebhookSink:
    """POSTs the payload as JSON (Alertmanager-like body); non-2xx raises."""

    def __init__(
        self, name: str, url: str, timeout_s: float = 2.0, headers: Mapping[str, str] | None = None
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook {name}: url must be http(s), got {url!r}")
        self.name = name
        self.url = url
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json", **(headers or {})}

    def send(self, payload: Payload) -> None:
        body = json.dumps(payload, sort_keys=True, default=str).encode()
        req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            if not 200 <= resp.status < 300:
                raise RuntimeError(f"webhook {self.name} answered HTTP {resp.status}")


class CallbackSink:
    """Calls a Python function with the payload (how tests and embedders get notified)."""

    def __init__(self, name: str, fn: Callable[[Payload], Any]) -> None:
        self.name = name
        self.fn = fn

    def send(self, payload: Payload) -> None:
        self.fn(payload)


def build_channels(
    configs: Mapping[str, ChannelConfig],
    out_dir: Path | None,
    callbacks: Mapping[str, Callable[[Payload], Any]] | None = None,
) -> dict[str, Channel]:
    """Instantiate configured channels; ``log`` is added when not configured.

    A callback channel whose function is not (yet) supplied is skipped with a
    warning: the embedding program may register it later with
    ``Monitor.add_channel``.
    """
    callbacks = callbacks or {}
    channels: dict[str, Channel] = {}
    for name, cfg in configs.items():
        if isinstance(cfg, LogChannel):
            channels[name] = LogSink(name, cfg.logger)
        elif isinstance(cfg, JsonlChannel):
            path = Path(cfg.path)
            if not path.is_absolute():
                path = (out_dir or Path.cwd()) / path
            channels[name] = JsonlSink(name, path)
        elif isinstance(cfg, WebhookChannel):
            channels[name] = WebhookSink(name, cfg.url, cfg.timeout / 1000, cfg.headers)
        elif isinstance(cfg, CallbackChannel):
            fn = callbacks.get(cfg.callback or name)
            if fn is None:
                logging.getLogger(__name__).warning(
                    "callback channel %r has no function; pass callbacks={%r: fn}",
                    name,
                    cfg.callback or name,
                )
                continue
            channels[name] = CallbackSink(name, fn)
    channels.setdefault("log", LogSink("log"))
    return channels
