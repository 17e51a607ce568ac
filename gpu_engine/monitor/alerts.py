"""Alert state machine (Prometheus semantics), templated annotations, grouping and inhibition.

States: ``inactive → pending → firing → resolved``. A true condition makes an
alert pending (or firing at once with ``for: 0``); it fires once the condition
has held for ``for`` (counted in whole evaluation intervals, so at most
``for`` plus one interval after the condition starts). A firing alert resolves
only once the condition has been false for ``keep_firing_for``, counted from the
first evaluation that found it false, as Prometheus does (hysteresis against
flapping; a true evaluation in between starts the count again). A resolved alert whose condition
returns starts a new episode (pending again).
"""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .rules import InhibitRule, Severity


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


def alert_id(rule: str, labels: Mapping[str, str]) -> str:
    """Stable id ``<rule>-<8 hex>`` from the rule and its label set (short enough to type)."""
    text = rule + "\0" + "\0".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"{rule}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


class _SafeFormatter(string.Formatter):
    """``str.format`` without attribute access, so templates cannot reach object internals."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if "." in field_name or "__" in field_name:
            raise KeyError(field_name)
        return super().get_field(field_name, args, kwargs)


_FORMATTER = _SafeFormatter()


def render_template(template: str, fields: Mapping[str, Any]) -> str:
    """Fill ``{value:.2f}``, ``{threshold}``, ``{labels[region]}``; on error keep text, say why."""
    try:
        return _FORMATTER.vformat(template, (), dict(fields))
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        return f"{template} [template error: {exc!r}]"


@dataclass
class Alert:
    """One rule × series: its state and everything a notification needs."""

    id: str
    rule: str
    severity: Severity
    labels: dict[str, str]
    annotation_templates: dict[str, str]
    for_s: float
    keep_firing_for_s: float
    state: AlertState = AlertState.INACTIVE
    value: float = math.nan
    threshold: float | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    active_since: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    false_since: float | None = None  # the first false evaluation while firing
    acknowledged: bool = False
    inhibited: bool = False
    episode: int = 0
    interval_s: float = 0.0

    def _due(self, seconds: float) -> float:
        """``seconds`` rounded down to whole evaluation intervals (minus 5 % jitter slack).

        The condition is first seen up to one interval after it starts to hold;
        counting ``for`` in whole intervals keeps firing at most ``for`` plus one
        interval after onset, and equals Prometheus when ``for`` is a multiple
        of the interval.
        """
        if self.interval_s <= 0:
            return seconds
        whole = math.floor(seconds / self.interval_s + 1e-9) * self.interval_s
        return max(0.0, whole - 0.05 * self.interval_s)

    def observe(
        self, holds: bool, now: float, value: float, extra: Mapping[str, Any]
    ) -> AlertState | None:
        """Advance the state machine by one evaluation; return the previous state if it changed."""
        if not math.isnan(value):
            self.value = value
        prev = self.state
        if holds or prev in (AlertState.PENDING, AlertState.FIRING):
            self._annotate(extra)  # inactive alerts are never shown: skip the formatting
        if holds:
            self.false_since = None
            if self.state in (AlertState.INACTIVE, AlertState.RESOLVED):
                self.episode += 1
                self.acknowledged = False
                self.active_since = now
                self.fired_at = self.resolved_at = None
                self.state = AlertState.PENDING
            if self.state is AlertState.PENDING and now - (
                now if self.active_since is None else self.active_since
            ) >= self._due(self.for_s):
                self.state = AlertState.FIRING
                self.fired_at = now
        elif self.state is AlertState.PENDING:
            self.state = AlertState.INACTIVE
            self.active_since = None
        elif self.state is AlertState.FIRING:
            if self.false_since is None:
                self.false_since = now
            slack = 0.05 * self.interval_s  # evaluations come a little early or late
            if self.keep_firing_for_s <= 0 or (
                now - self.false_since >= self.keep_firing_for_s - slack
            ):
                self.state = AlertState.RESOLVED
                self.resolved_at = now
                self.false_since = None
        return prev if self.state is not prev else None

    def _annotate(self, extra: Mapping[str, Any]) -> None:
        fields = {
            "value": self.value,
            "threshold": self.threshold,
            "labels": self.labels,
            "rule": self.rule,
            "severity": self.severity,
            **extra,
        }
        self.annotations = {
            k: render_template(t, fields) for k, t in self.annotation_templates.items()
        }

    def record(self) -> dict[str, Any]:
        """JSON-ready view used by alerts.jsonl, notifications and the live view."""
        return {
            "alert_id": self.id,
            "rule": self.rule,
            "state": self.state.value,
            "severity": self.severity,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "value": json_number(self.value),
            "threshold": None if self.threshold is None else json_number(self.threshold),
            "active_since": self.active_since,
            "fired_at": self.fired_at,
            "resolved_at": self.resolved_at,
            "episode": self.episode,
            "acknowledged": self.acknowledged,
            "inhibited": self.inhibited,
        }


def json_number(value: float) -> float | str | None:
    """A value as strict JSON takes it: NaN (no value) as null, ±inf as Prometheus
    spells them (``"+Inf"``, ``"-Inf"``); Python's json would write bare ``Infinity``."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def group_key(labels: Mapping[str, str], by: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The labels an alert is grouped on (missing labels group as empty), Alertmanager-style."""
    return tuple((k, labels.get(k, "")) for k in by)


def group_alerts(
    alerts: Iterable[Alert], by: Sequence[str]
) -> dict[tuple[tuple[str, str], ...], list[Alert]]:
    groups: dict[tuple[tuple[str, str], ...], list[Alert]] = {}
    for a in alerts:
        groups.setdefault(group_key(a.labels, by), []).append(a)
    return groups


def apply_inhibition(alerts: Iterable[Alert], rules: Sequence[InhibitRule]) -> list[Alert]:
    """Set ``inhibited`` on every alert; return those whose flag changed.

    A firing ``source``-severity alert silences firing or pending ``target``
    alerts whose ``equal`` labels all match its own (and are present on it). As in
    Alertmanager, an alert that is itself a source of the rule is not silenced by it
    (so two critical alerts of a rule that targets critical ones do not silence each
    other). Linear time: the sources' label tuples are counted first.
    """
    alerts = list(alerts)
    sources: list[dict[tuple[str | None, ...], int]] = []
    for rule in rules:
        counts: dict[tuple[str | None, ...], int] = {}
        for src in alerts:
            if (
                src.state is AlertState.FIRING
                and src.severity == rule.source
                and all(k in src.labels for k in rule.equal)
            ):
                key: tuple[str | None, ...] = tuple(src.labels[k] for k in rule.equal)
                counts[key] = counts.get(key, 0) + 1
        sources.append(counts)
    changed = []
    for a in alerts:
        inhibited = False
        if a.state in (AlertState.FIRING, AlertState.PENDING):
            for rule, counts in zip(rules, sources, strict=True):
                if a.severity not in rule.target or not counts:
                    continue
                is_a_source = (
                    a.state is AlertState.FIRING
                    and a.severity == rule.source
                    and all(k in a.labels for k in rule.equal)
                )
                if is_a_source:  # sources of a rule that targets them don't silence each other
                    continue
                if counts.get(tuple(a.labels.get(k) for k in rule.equal), 0) > 0:
                    inhibited = True
                    break
        if inhibited != a.inhibited:
            a.inhibited = inhibited
            changed.append(a)
    return changed
