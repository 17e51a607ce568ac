"""``alerts ack`` of an id that no alert has is an error: exit 2, nothing recorded.

Why: a mistyped id was "acknowledged" with exit 0 and only a warning, so the real
alert kept escalating while the operator believed it was handled.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_engine.cli import main
from gpu_engine.monitor import Monitor, MonitorConfig, ReplaySource


def _run_with_alert(out: Path) -> str:
    cfg = MonitorConfig.model_validate(
        {"rules": [{"name": "Hot", "kind": "threshold", "expr": "x > 1"}]}
    )
    mon = Monitor(cfg, out, metrics=ReplaySource(lambda t: {"x": 5.0}))
    mon.tick(0.0)
    (alert,) = mon.alerts.values()
    return alert.id


def test_unknown_id_is_refused_and_the_known_ids_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = _run_with_alert(tmp_path)
    assert main(["alerts", "ack", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no alert 'nope'" in err and f"known: {known} (firing)" in err
    assert not (tmp_path / "alerts_acks.jsonl").exists()
    assert main(["alerts", "ack", known, "--out", str(tmp_path)]) == 0  # the real one works
    assert (tmp_path / "alerts_acks.jsonl").read_text().count(known) == 1


def test_no_alerts_at_all_says_so_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never-ran"
    assert main(["alerts", "ack", "nope", "--out", str(out)]) == 2
    assert "does not exist (no run has recorded alerts there)" in capsys.readouterr().err
    assert not out.exists()
    cfg = MonitorConfig.model_validate({"rules": []})
    Monitor(cfg, tmp_path, metrics=ReplaySource(lambda t: {})).tick(0.0)  # a run, no alerts
    assert main(["alerts", "ack", "nope", "--out", str(tmp_path)]) == 2
    assert "has recorded no alerts" in capsys.readouterr().err
    assert not (tmp_path / "alerts_acks.jsonl").exists()


def test_an_ack_for_a_run_that_has_ended_is_refused_and_the_listing_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ack of a finished run's alert was "acknowledged" (exit 0), though no monitor
    would ever read it (a new run reads only acks written after it starts), and the
    listing kept showing the alert firing as if the run were live."""
    cfg = MonitorConfig.model_validate(
        {"rules": [{"name": "Hot", "kind": "threshold", "expr": "x > 1"}]}
    )
    mon = Monitor(cfg, tmp_path, metrics=ReplaySource(lambda t: {"x": 5.0}))
    mon.tick(0.0)
    (alert,) = mon.alerts.values()
    assert main(["alerts", "ack", alert.id, "--out", str(tmp_path)]) == 0  # running: taken
    mon.stop()
    capsys.readouterr()
    assert main(["alerts", "ack", alert.id, "--out", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "has ended, so no monitor will read an ack" in err
    assert main(["alerts", "list", "--out", str(tmp_path)]) == 0
    assert "has ended: its alerts as it left them" in capsys.readouterr().out
    Monitor(cfg, tmp_path, metrics=ReplaySource(lambda t: {"x": 5.0})).tick(0.0)  # a new run
    assert main(["alerts", "ack", alert.id, "--out", str(tmp_path)]) == 0
