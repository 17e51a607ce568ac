"""Shared helpers for the monitor tests: a fake clock and trace-driven monitors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from gpu_engine.monitor import Monitor, MonitorConfig, ReplaySource


class FakeClock:
    """Manually advanced time; the monitor never sleeps in tests."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def make_monitor(
    config: Mapping[str, Any],
    trace: Callable[[float], Mapping[str, float]],
    out_dir: Path | None = None,
    **kwargs: Any,
) -> Monitor:
    return Monitor(
        MonitorConfig.model_validate(dict(config)),
        out_dir,
        metrics=ReplaySource(trace),
        clock=kwargs.pop("clock", FakeClock()),
        **kwargs,
    )


@pytest.fixture(name="make_monitor")
def _make_monitor_fixture() -> Callable[..., Monitor]:
    """``make_monitor(config_dict, trace, out_dir=None, **kw)`` → a Monitor on a replayed trace."""
    return make_monitor


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
