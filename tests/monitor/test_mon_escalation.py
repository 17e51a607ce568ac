"""Escalation chains on a fake clock: order, timing, repeat, escalate, stop on ack/resolve."""

from __future__ import annotations

import json

from gpu_engine.monitor.escalation import compile_chain
from gpu_engine.monitor.rules import Step


def _steps(*raw: dict) -> list[Step]:
    return [Step.model_validate(s) for s in raw]


def test_compile_expands_waits_repeats_and_escalations() -> None:
    chain = _steps(
        {"notify": "a"},
        {"wait": "5m"},
        {"repeat": 2},
        {"escalate": "b"},
        {"wait": "1m"},
        {"repeat": 1},
    )
    got = [(d.offset_ms // 1000, d.channel, d.level) for d in compile_chain(chain)]
    assert got == [(0, "a", 0), (300, "a", 0), (600, "a", 0), (900, "b", 1), (960, "b", 1)]


CONFIG = {
    "interval": "1s",
    "channels": {"pager": {"type": "callback"}, "manager": {"type": "callback"}},
    "escalation": {
        "critical": [
            {"notify": "pager"},
            {"wait": "10s"},
            {"repeat": 2},
            {"escalate": "manager"},
        ]
    },
    "rules": [
        {
            "name": "Backlog",
            "kind": "threshold",
            "expr": "queue_depth > 100",
            "severity": "critical",
            "for": "2s",
            "labels": {"component": "engine"},
        },
    ],
}


def _run(make_monitor, until: int, bad_from: float = 5, bad_to: float = 1e9, ack_at=None, out=None):
    sent: list[tuple[float, str, str, int]] = []
    callbacks = {
        "pager": lambda p: sent.append((p["time_s"], "pager", p["status"], p["level"])),
        "manager": lambda p: sent.append((p["time_s"], "manager", p["status"], p["level"])),
    }
    trace = lambda t: {"queue_depth": 500 if bad_from <= t < bad_to else 3}  # noqa: E731
    mon = make_monitor(CONFIG, trace, out_dir=out, callbacks=callbacks)
    for t in range(until):
        if ack_at is not None and t == ack_at:
            (alert,) = mon.alerts.values()
            assert mon.ack(alert.id, now=float(t))
        mon.tick(float(t))
    return mon, sent


def test_steps_happen_in_order_at_the_configured_times(make_monitor) -> None:
    _, sent = _run(make_monitor, until=60)
    # Condition from t=5, for 2s → firing at 7: pager at 7, 17, 27, then manager at 37.
    assert sent == [
        (7.0, "pager", "firing", 0),
        (17.0, "pager", "firing", 0),
        (27.0, "pager", "firing", 0),
        (37.0, "manager", "firing", 1),
    ]


def test_slow_ticks_do_not_shift_the_schedule(make_monitor) -> None:
    sent = []
    mon = make_monitor(
        CONFIG,
        lambda t: {"queue_depth": 500},
        callbacks={"pager": sent.append, "manager": sent.append},
    )
    for t in [0.0, 2.0, 13.0, 21.5, 50.0]:  # irregular ticks
        mon.tick(t)
    due = [s["due_s"] for d in mon.deliveries for s in d["steps"]]
    assert due == [2.0, 12.0, 22.0, 32.0]  # anchored to the firing time, not to the ticks
    assert [d["time_s"] for d in mon.deliveries] == [2.0, 13.0, 50.0, 50.0]


def test_resolution_stops_the_chain_and_notifies_resolved(make_monitor) -> None:
    _, sent = _run(make_monitor, until=60, bad_to=20)
    assert sent == [
        (7.0, "pager", "firing", 0),
        (17.0, "pager", "firing", 0),
        (20.0, "pager", "resolved", 0),
    ]


def test_acknowledgement_stops_the_chain(make_monitor, tmp_path) -> None:
    _, sent = _run(make_monitor, until=60, ack_at=20, out=tmp_path)
    assert sent == [(7.0, "pager", "firing", 0), (17.0, "pager", "firing", 0)]
    records = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [r["time_s"] for r in records if r.get("event") == "acknowledged"] == [20.0]


def test_an_acknowledged_alert_still_sends_resolved_to_the_channels_it_paged(
    make_monitor,
) -> None:
    """An ack stops the repeats, not the closing notice (a pager's incident closes)."""
    _, sent = _run(make_monitor, until=60, ack_at=20, bad_to=30)
    assert sent == [
        (7.0, "pager", "firing", 0),
        (17.0, "pager", "firing", 0),
        (30.0, "pager", "resolved", 0),
    ]


def test_an_alert_inhibited_then_resolved_sends_resolved_once(make_monitor) -> None:
    """Paged, then inhibited by a critical alert, then resolved while still inhibited: the
    pager hears it resolved once; a later firing is a new page."""
    config = {
        **CONFIG,
        "escalation": {"warning": [{"notify": "pager"}], "critical": [{"notify": "manager"}]},
        "rules": [
            {**CONFIG["rules"][0], "severity": "warning"},
            {"name": "Down", "kind": "threshold", "expr": "down > 0", "severity": "critical",
             "labels": {"component": "engine"}},
        ],
    }  # fmt: skip
    sent: list[tuple[float, str, str, list[str]]] = []

    def callback(p):
        sent.append((p["time_s"], p["channel"], p["status"], [a["rule"] for a in p["alerts"]]))

    def trace(t: float) -> dict[str, float]:
        return {"queue_depth": 500 if t < 20 or t >= 40 else 3, "down": 1 if 10 <= t < 30 else 0}

    mon = make_monitor(config, trace, callbacks={"pager": callback, "manager": callback})
    for t in range(50):
        mon.tick(float(t))
    assert sent == [
        (2.0, "pager", "firing", ["Backlog"]),
        (10.0, "manager", "firing", ["Down"]),
        (20.0, "pager", "resolved", ["Backlog"]),
        (30.0, "manager", "resolved", ["Down"]),
        (42.0, "pager", "firing", ["Backlog"]),
    ]


def test_ack_via_file_reaches_a_running_monitor(make_monitor, tmp_path) -> None:
    """The CLI writes OUT/alerts_acks.jsonl; the monitor applies it on its next tick."""
    from gpu_engine.cli import main

    sent = []
    trace = lambda t: {"queue_depth": 500}  # noqa: E731
    mon = make_monitor(
        CONFIG, trace, out_dir=tmp_path, callbacks={"pager": sent.append, "manager": sent.append}
    )
    for t in range(10):
        mon.tick(float(t))
    (alert,) = mon.alerts.values()
    assert main(["alerts", "ack", alert.id, "--out", str(tmp_path), "--by", "alice"]) == 0
    for t in range(10, 60):
        mon.tick(float(t))
    assert alert.acknowledged
    assert [p["time_s"] for p in sent] == [2.0]  # the 12 s repeat never went out
    acked = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(r["time_s"], r["by"]) for r in acked if r.get("event") == "acknowledged"] == [
        (10.0, "alice")
    ]


def test_new_episode_after_resolve_escalates_again(make_monitor) -> None:
    sent = []
    trace = lambda t: {"queue_depth": 500 if (t < 10 or 30 <= t < 40) else 0}  # noqa: E731
    mon = make_monitor(CONFIG, trace, callbacks={"pager": sent.append, "manager": sent.append})
    for t in range(60):
        mon.tick(float(t))
    firing = [p["time_s"] for p in sent if p["status"] == "firing"]
    assert firing == [2.0, 32.0]
