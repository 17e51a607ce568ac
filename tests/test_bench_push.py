"""``benchmarks.push``: timed engines come after a warmed-up one; serve flags falling behind."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from benchmarks import push


class _Recording(push.Engine):
    """The engine, noting what it was given and whether the engines before it were closed."""

    made: ClassVar[list[_Recording]] = []
    was_closed: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.earlier_closed = [engine.was_closed for engine in self.made]
        super().__init__(*args, **kwargs)
        self.options = {k: v for k, v in kwargs.items() if k != "sinks"}
        self.pushed = 0
        self.was_closed = False
        self.made.append(self)

    def push(self, frame: Any, *args: Any, **kwargs: Any) -> None:
        self.pushed += frame.num_rows
        super().push(frame, *args, **kwargs)

    def close(self) -> dict[str, Any]:
        self.was_closed = True
        return super().close()


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[_Recording]:
    monkeypatch.setattr(_Recording, "made", [])
    monkeypatch.setattr(push, "Engine", _Recording)
    return _Recording.made


def _check_warm_up(made: list[_Recording], events: int) -> None:
    warm, timed = made
    assert warm.options == timed.options  # the same mode
    assert warm.pushed == min(events, push.WARM_UP_EVENTS) and warm.was_closed
    assert timed.earlier_closed == [True] and timed.pushed == events


@pytest.mark.parametrize("background", [False, True])
def test_measure_times_an_engine_after_a_warm_up(made: list[_Recording], background: bool) -> None:
    """The timed engine used to be the process's first: it paid JIT compilation (1,052
    events/s cold, 40,833 warm)."""
    result = push.measure(2_000, 100, background=background)
    assert result["pushes"] == 20
    _check_warm_up(made, 2_000)


@pytest.mark.parametrize("background", [False, True])
def test_each_serve_mode_is_warmed_up(made: list[_Recording], background: bool) -> None:
    push.serve(1_000, 100, 1e6, background)
    _check_warm_up(made, 1_000)


def _served(behind_s: float) -> Any:
    def serve(events: int, rows: int, rate: float, background: bool) -> dict[str, float]:
        return {"p50_ms": 0.01, "p99_ms": 0.1, "p999_ms": 1.0, "max_ms": 2.0,
                "behind_s": behind_s if background else 0.0, "batch_p99_ms": 50.0,
                "batches": 3}  # fmt: skip

    return serve


def test_serve_behind_the_pace_warns_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--events", "1000", "--rows", "10", "--serve", "50k"]
    monkeypatch.setattr(push, "serve", _served(0.5))
    assert push.main(args) == 0
    assert "WARNING" not in capsys.readouterr().out
    monkeypatch.setattr(push, "serve", _served(2.5))
    assert push.main(args) == 1
    out = capsys.readouterr().out
    assert "WARNING: pushes ended more than 1 s behind the pace" in out
    assert "background=True (2.50 s)" in out
