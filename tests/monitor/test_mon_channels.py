"""Channels: a webhook to a real local HTTP server, JSON lines, callback, failures recorded."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from gpu_engine.monitor.channels import JsonlSink, WebhookSink


class _Receiver:
    """A real HTTP server on 127.0.0.1 that records POSTed JSON bodies."""

    def __init__(self, status: int = 200) -> None:
        bodies: list[dict] = []
        self.bodies = bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                bodies.append(
                    {
                        "body": json.loads(self.rfile.read(length)),
                        "ctype": self.headers["Content-Type"],
                        "path": self.path,
                    }
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.close()


def test_webhook_posts_alert_to_local_server(make_monitor, receiver) -> None:
    cfg = {
        "channels": {"hook": {"type": "webhook", "url": receiver.url}},
        "escalation": {"critical": [{"notify": "hook"}]},
        "rules": [
            {
                "name": "DeadLetters",
                "kind": "threshold",
                "expr": "events_dead_lettered_per_s > 0",
                "severity": "critical",
                "labels": {"component": "validation"},
                "annotations": {"summary": "{value:.0f}/s dead-lettered"},
            }
        ],
    }
    mon = make_monitor(cfg, lambda t: {"events_dead_lettered_per_s": 12.0 if t < 3 else 0.0})
    for t in range(5):
        mon.tick(float(t))
    assert [d["ok"] for d in mon.deliveries] == [True, True]
    first, resolved = (b["body"] for b in receiver.bodies)
    assert (
        receiver.bodies[0]["ctype"] == "application/json" and receiver.bodies[0]["path"] == "/hook"
    )
    assert first["status"] == "firing" and first["severity"] == "critical"
    (alert,) = first["alerts"]
    assert (
        alert["rule"] == "DeadLetters" and alert["annotations"]["summary"] == "12/s dead-lettered"
    )
    assert alert["labels"]["component"] == "validation" and first["group"] == {
        "component": "validation"
    }
    assert resolved["status"] == "resolved" and resolved["time_s"] == 3.0


def test_failing_webhook_is_recorded_and_evaluation_continues(make_monitor) -> None:
    bad = _Receiver(status=500)
    try:
        cfg = {
            "channels": {"hook": {"type": "webhook", "url": bad.url, "timeout": "2s"}},
            "escalation": {"warning": [{"notify": "hook"}, {"notify": "log"}]},
            "rules": [{"name": "X", "kind": "threshold", "expr": "x > 0"}],
        }
        mon = make_monitor(cfg, lambda t: {"x": 1.0})
        mon.tick(0.0)
    finally:
        bad.close()
    hook, log = mon.deliveries
    assert not hook["ok"] and "500" in hook["error"]
    assert log["ok"] and log["channel"] == "log"


def test_jsonl_sink_appends_lines(tmp_path) -> None:
    sink = JsonlSink("f", tmp_path / "sub" / "n.jsonl")
    sink.send({"a": 1})
    sink.send({"b": 2})
    lines = (tmp_path / "sub" / "n.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"a": 1}, {"b": 2}]


def test_jsonl_channel_relative_path_is_under_out(make_monitor, tmp_path) -> None:
    cfg = {
        "channels": {"file": {"type": "jsonl", "path": "notifications.jsonl"}},
        "escalation": {"info": [{"notify": "file"}]},
        "rules": [{"name": "I", "kind": "threshold", "expr": "x > 0", "severity": "info"}],
    }
    make_monitor(cfg, lambda t: {"x": 2.0}, out_dir=tmp_path).tick(0.0)
    (rec,) = [json.loads(x) for x in (tmp_path / "notifications.jsonl").read_text().splitlines()]
    assert rec["alerts"][0]["value"] == 2.0


def test_webhook_rejects_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookSink("w", "file:///etc/passwd")
