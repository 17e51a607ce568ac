"""Serve the engine registry at ``http://ADDR:PORT/metrics`` (Prometheus text format).

Thin wrapper over ``prometheus_client.start_http_server`` that returns a
stoppable handle and reports the real port (``port=0`` picks a free one).
Binds 127.0.0.1 by default; pass ``addr="0.0.0.0"`` for a remote Prometheus.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry


@dataclass
class MetricsServer:
    """A running exposition endpoint; ``stop()`` closes the socket and joins the thread."""

    server: Any
    thread: threading.Thread
    addr: str

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_metrics(
    registry: CollectorRegistry, port: int = 9108, addr: str = "127.0.0.1"
) -> MetricsServer:
    """Start serving ``registry``; 9108 is the engine's default ``--metrics-port``.

    A port that cannot be bound raises ``OSError`` naming the address and port, since
    the socket's own message ("Address already in use") names neither.
    """
    try:
        server, thread = start_http_server(port, addr=addr, registry=registry)
    except (OSError, OverflowError) as exc:  # OverflowError: a port outside 0..65535
        reason = getattr(exc, "strerror", None) or str(exc)
        raise OSError(f"cannot serve metrics on {addr}:{port}: {reason}") from exc
    return MetricsServer(server, thread, addr)
