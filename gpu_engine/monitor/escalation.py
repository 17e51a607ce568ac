"""Escalation chains: per-severity ordered steps run against an injected clock.

A chain such as ``[notify: a, wait: 5m, repeat: 2, escalate: b]`` is compiled
once into a schedule of (offset, channel, level) deliveries — here ``a`` at
0, 5m, 10m and ``b`` at 15m — so its timing is plain data that tests can check.
``repeat: n`` replays the steps since the chain start or the last ``escalate``
n more times; ``escalate: ch`` notifies ``ch`` one level up. ``advance(now)``
releases every delivery whose time has come; a chain stops when its alert
resolves or is acknowledged. Offsets are from the chain start, not from the
previous tick, so slow ticks never make the schedule drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .rules import Severity, Step


@dataclass(frozen=True)
class Delivery:
    """A scheduled notification of one alert on one channel."""

    offset_ms: int
    channel: str
    level: int
    step: int  # index in the compiled schedule


def compile_chain(steps: Sequence[Step]) -> list[Delivery]:
    """Expand waits and repeats into absolute offsets (milliseconds from the chain start)."""
    out: list[Delivery] = []
    t = 0
    level = 0
    segment: list[Step] = []

    def emit(channel: str) -> None:
        out.append(Delivery(t, channel, level, len(out)))

    for step in steps:
        if step.notify is not None:
            emit(step.notify)
            segment.append(step)
        elif step.wait is not None:
            t += step.wait
            segment.append(step)
        elif step.repeat is not None:
            for _ in range(step.repeat):
                for s in segment:
                    if s.notify is not None:
                        emit(s.notify)
                    elif s.wait is not None:
                        t += s.wait
        elif step.escalate is not None:
            level += 1
            segment = []
            emit(step.escalate)
            segment.append(Step.model_validate({"notify": step.escalate}))
    return out


@dataclass
class _Run:
    alert_id: str
    severity: Severity
    started: float
    schedule: list[Delivery]
    next_index: int = 0
    notified: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Due:
    """A delivery released by ``advance``: send ``alert_id`` to ``channel`` now."""

    alert_id: str
    channel: str
    level: int
    step: int
    due_s: float


class Escalator:
    """Tracks one running chain per alert; pure bookkeeping, the monitor does the sending."""

    def __init__(self, chains: Mapping[Severity, Sequence[Step]]) -> None:
        self.schedules = {sev: compile_chain(steps) for sev, steps in chains.items()}
        self.default = [Delivery(0, "log", 0, 0)]
        self._runs: dict[str, _Run] = {}

    def active(self, alert_id: str) -> bool:
        return alert_id in self._runs

    def start(self, alert_id: str, severity: Severity, now: float) -> None:
        """Begin the chain for a newly notifiable alert (no-op if already running)."""
        if alert_id not in self._runs:
            schedule = self.schedules.get(severity, self.default)
            self._runs[alert_id] = _Run(alert_id, severity, now, schedule)

    def stop(self, alert_id: str) -> list[str]:
        """End the chain; returns the channels it had notified (for a resolved message)."""
        run = self._runs.pop(alert_id, None)
        return list(dict.fromkeys(run.notified)) if run else []

    def advance(self, now: float) -> list[Due]:
        """Release every delivery due at or before ``now``, in schedule order."""
        due: list[Due] = []
        for run in self._runs.values():
            while run.next_index < len(run.schedule):
                d = run.schedule[run.next_index]
                at = run.started + d.offset_ms / 1000
                if at > now + 1e-9:
                    break
                due.append(Due(run.alert_id, d.channel, d.level, d.step, at))
                run.notified.append(d.channel)
                run.next_index += 1
        return due
