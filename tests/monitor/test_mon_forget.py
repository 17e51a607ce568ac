"""Alerts of series that are gone are forgotten: a window keyed by ever-new keys made one
alert (and one detector) per key for good, gigabytes a day, and a slower tick each time."""

from __future__ import annotations


def _config(forget_after: str = "10s", **rule: object) -> dict:
    return {
        "forget_after": forget_after,
        "channels": {"cb": {"type": "callback"}},
        "escalation": {"warning": [{"notify": "cb"}]},
        "rules": [
            {"name": "Hot", "kind": "threshold", "expr": "n > 5", **rule},
            {"name": "Odd", "kind": "anomaly", "metric": "n",
             "detector": {"kind": "robust_z", "window": 20, "min_samples": 5}},
        ],
    }  # fmt: skip


def test_alerts_of_keys_that_stop_coming_are_forgotten(make_monitor) -> None:
    """Each second brings a new key (hot on every fourth) for 3 seconds: without
    forgetting, 600 s made 1,200 alerts; with forget_after 10 s, about 2 × 13 stay."""
    sent: list[tuple[float, str, str]] = []

    def trace(t: float) -> dict[str, float]:
        keys = [k for k in range(int(t) - 2, int(t) + 1) if k >= 0]
        return {f'n{{k="{k}"}}': 9.0 if k % 4 == 0 else 1.0 for k in keys}

    mon = make_monitor(_config(), trace, callbacks={"cb": lambda p: sent.extend(
        (p["time_s"], p["status"], a["labels"]["k"]) for a in p["alerts"])})  # fmt: skip
    held = []
    for t in range(600):
        mon.tick(float(t))
        held.append(len(mon.alerts))
    assert max(held[100:]) <= 2 * 14 and min(held[100:]) >= 2 * 3
    states = [len(ev._state) for ev in mon.evaluators]
    assert max(states) <= 14
    # Every hot key fired and was resolved, each notice once, before it was forgotten.
    fired = [k for _, status, k in sent if status == "firing"]
    resolved = [k for _, status, k in sent if status == "resolved"]
    assert fired == resolved == [str(k) for k in range(0, 600, 4) if k + 2 < 600]


def test_a_key_that_comes_back_after_it_was_forgotten_starts_afresh(make_monitor, tmp_path) -> None:
    """Its rule state starts afresh, its alert at the next episode (notices keyed by id and
    episode keep the two incidents apart); ``alerts list`` drops it while forgotten."""
    from gpu_engine.monitor.cli import read_states

    def trace(t: float) -> dict[str, float]:
        return {'n{k="a"}': 9.0} if t < 3 or t >= 30 else {}

    mon = make_monitor(_config("10s"), trace, out_dir=tmp_path, callbacks={"cb": lambda p: None})
    states, listed = [], []
    for t in range(40):
        mon.tick(float(t))
        hot = [a for a in mon.alerts.values() if a.rule == "Hot"]
        states.append([(a.state.value, a.episode) for a in hot])
        listed.append(sorted(r["rule"] for r in read_states(tmp_path).values()))
    assert states[2] == [("firing", 1)] and states[3] == [("resolved", 1)]
    # gone from t = 3 (its first evaluation without a value): forgotten 10 s later
    assert states[12] == [("resolved", 1)] and states[13] == []
    assert listed[12] == ["Hot"] and listed[13] == []
    assert states[30] == [("firing", 2)]  # back: the next episode
    assert listed[30] == ["Hot"]


def test_a_firing_or_pending_alert_is_kept_however_long_its_series_is_gone(make_monitor) -> None:
    """keep_firing_for holds an alert firing past its series' end: it is not forgotten
    while it fires, and goes once it has resolved and the time is up."""

    def trace(t: float) -> dict[str, float]:
        return {'n{k="a"}': 9.0} if t < 3 else {}

    mon = make_monitor(_config("5s", keep_firing_for="60s"), trace, callbacks={"cb": print})
    for t in range(70):
        mon.tick(float(t))
        hot = [a for a in mon.alerts.values() if a.rule == "Hot"]
        if 2 <= t < 62:
            assert [a.state.value for a in hot] == ["firing"], t
    assert [a for a in mon.alerts.values() if a.rule == "Hot"] == []
