"""A tick's slow outputs (a webhook that hangs, a slow action) hold up neither the window
series the engine sets nor acks: they run after the evaluation, outside its lock."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gpu_engine.monitor import Monitor, MonitorConfig

HANG_S = 3.0


class _HangingServer:
    """A real local HTTP server whose POSTs answer only when released (or after HANG_S)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.posted = threading.Event()
        self.log: list[tuple[str, str]] = []  # ("start" | "end", the notice's status)
        release, posted, log = self.release, self.posted, self.log

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                log.append(("start", status["status"]))
                posted.set()
                release.wait(HANG_S)
                log.append(("end", status["status"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _config(url: str, actions: list[dict] | None = None) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {
            "channels": {"hook": {"type": "webhook", "url": url, "timeout": "10s"}},
            "escalation": {"warning": [{"notify": "hook"}]},
            "rules": [
                {
                    "name": "Busy",
                    "kind": "threshold",
                    "expr": "window:w.n > 0",
                    "severity": "warning",
                    "actions": actions or [],
                }
            ],
        }
    )


def _while_ticking(monitor: Monitor, started: threading.Event) -> tuple[threading.Thread, list]:
    results: list = []
    thread = threading.Thread(target=lambda: results.append(monitor.tick(0.0)), daemon=True)
    thread.start()
    assert started.wait(HANG_S), "the tick never reached its slow output"
    return thread, results


def test_a_hanging_webhook_holds_up_neither_window_series_nor_acks() -> None:
    server = _HangingServer()
    try:
        monitor = Monitor(_config(server.url))
        monitor.observe_window("w", {"k": ["a"], "n": [1]})
        thread, results = _while_ticking(monitor, server.posted)
        start = time.perf_counter()
        assert monitor.observe_window("w", {"k": ["a"], "n": [2]}) == 1
        (alert,) = monitor.firing()
        assert monitor.ack(alert.id)
        waited = time.perf_counter() - start
        assert thread.is_alive()  # the webhook still hangs
        server.release.set()
        thread.join(HANG_S)
        assert waited < 1.0, f"the engine's thread waited {waited:.2f} s for a webhook"
        (delivery,) = results[0].deliveries
        assert delivery["ok"] and list(monitor.deliveries) == [delivery]
    finally:
        server.close()


def test_an_action_runs_outside_the_evaluation_lock() -> None:
    server = _HangingServer()
    server.release.set()  # only the action is slow here
    in_action, leave = threading.Event(), threading.Event()
    try:
        monitor = Monitor(_config(server.url, [{"name": "slow"}]))

        def slow(alert: dict) -> str:
            in_action.set()
            leave.wait(HANG_S)
            return alert["alert_id"]

        monitor.actions.register("slow", slow)
        monitor.observe_window("w", {"k": ["a"], "n": [1]})
        thread, _ = _while_ticking(monitor, in_action)
        start = time.perf_counter()
        (alert,) = monitor.firing()  # takes the lock
        monitor.observe_window("w", {"k": ["a"], "n": [0]})
        waited = time.perf_counter() - start
        leave.set()
        thread.join(HANG_S)
        assert waited < 1.0, f"waited {waited:.2f} s for an action"
        (outcome,) = monitor.actions.history
        assert outcome.status == "ok" and outcome.result == repr(alert.id)
    finally:
        server.close()


def test_overlapping_ticks_send_in_the_order_they_evaluated() -> None:
    """The final tick at stop may overlap the thread's: its "resolved" notice waits for
    the "firing" one still being sent, rather than reaching the receiver beside it."""
    server = _HangingServer()
    try:
        monitor = Monitor(_config(server.url))
        monitor.observe_window("w", {"k": ["a"], "n": [1]})
        firing, _ = _while_ticking(monitor, server.posted)
        monitor.observe_window("w", {"k": ["a"], "n": [0]})
        resolved = threading.Thread(target=monitor.tick, args=(1.0,), daemon=True)
        resolved.start()
        time.sleep(0.3)  # the second tick has evaluated, and waits to send
        server.release.set()
        firing.join(HANG_S)
        resolved.join(HANG_S)
        assert server.log == [("start", "firing"), ("end", "firing"),
                              ("start", "resolved"), ("end", "resolved")]  # fmt: skip
    finally:
        server.close()
