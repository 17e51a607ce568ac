"""Per-rule evaluation over one interval's series: which series hold, with what value.

A rule's selector may match several series (e.g. one per region); each gets
its own detector state and its own alert. Series that vanish evaluate as
false, so their alerts resolve instead of hanging. Trend and anomaly rules
skip an infinite sample as if it were missing: one would hold their running
fit, level or deviation at inf or NaN for good. Threshold rules compare it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from .detectors import Cusum, Ewma, Holt, LinearTrend, RobustZ
from .rules import OPS, AnomalyRule, CusumParams, EwmaParams, ThresholdRule, TrendRule
from .series import Labels, SeriesKey, matches

Result = tuple[bool, float, dict[str, Any]]


def index_by_name(values: Mapping[SeriesKey, float]) -> dict[str, list[tuple[Labels, float]]]:
    """Group series by metric name so each rule only looks at its own metric."""
    out: dict[str, list[tuple[Labels, float]]] = {}
    for (name, labels), value in values.items():
        out.setdefault(name, []).append((labels, value))
    return out


class RuleEvaluator:
    """Holds per-series state for one rule and evaluates it each interval."""

    def __init__(self, rule: ThresholdRule | TrendRule | AnomalyRule) -> None:
        self.rule = rule
        self.selector = rule.selector
        self._state: dict[Labels, Any] = {}
        # Series with state that have no value: since when (oldest first, as they went).
        self._gone_since: dict[Labels, float] = {}
        self._present: set[Labels] = set()  # series with a value at the last evaluation
        self._watched: set[Labels] = set()  # gone series still reported (see watch)
        if isinstance(rule, ThresholdRule):
            _, self.op, self.threshold = rule.split_expr(rule.expr)
        else:
            self.op = getattr(rule, "op", ">")
            self.threshold = getattr(rule, "threshold", math.nan)

    def evaluate(
        self,
        now: float,
        values: dict[SeriesKey, float],
        by_name: Mapping[str, list[tuple[Labels, float]]] | None = None,
    ) -> dict[Labels, Result]:
        """Return ``labels → (condition holds, value, template extras)`` for matching series.

        ``by_name`` (series grouped by name, built once per tick by the monitor)
        avoids scanning every series for every rule.
        """
        out: dict[Labels, Result] = {}
        if by_name is None:
            by_name = index_by_name(values)
        for labels, value in by_name.get(self.selector[0], ()):
            if not matches(self.selector, (self.selector[0], labels)):
                continue
            if value is None or math.isnan(value):
                continue
            value = float(value)
            if math.isinf(value) and not isinstance(self.rule, ThresholdRule):
                continue
            out[labels] = self._one(now, labels, value)
            self._gone_since.pop(labels, None)
        present = set(out)
        # A series that went is reported false once, then only while watched: stepping
        # the quiet alerts of every series ever gone made each tick slower by all of them.
        for labels in (self._present - present) | (self._watched - present):
            if labels in self._state:
                out[labels] = (False, math.nan, {})
                self._gone_since.setdefault(labels, now)
        self._present = present
        return out

    def watch(self, labels: Labels, on: bool) -> None:
        """Keep reporting a gone series (false) while its alert still fires, so that
        ``keep_firing_for`` runs out and it resolves."""
        if on:
            self._watched.add(labels)
        else:
            self._watched.discard(labels)

    def gone(self) -> Iterator[tuple[Labels, float]]:
        """The gone series and since when, the longest gone first (stop at the first
        not gone long enough: only those before it are read)."""
        return iter(self._gone_since.items())

    def forget(self, labels: Labels) -> None:
        """Drop a series' state (it starts afresh if it comes back)."""
        self._state.pop(labels, None)
        self._gone_since.pop(labels, None)
        self._watched.discard(labels)

    def _one(self, now: float, labels: Labels, value: float) -> Result:
        rule = self.rule
        if isinstance(rule, ThresholdRule):
            self._state.setdefault(labels, None)
            return OPS[self.op](value, self.threshold), value, {"metric": rule.selector[0]}
        if isinstance(rule, TrendRule):
            tracker = self._state.get(labels)
            if tracker is None:
                window_s = rule.window / 1000
                tracker = (
                    Holt(rule.alpha, rule.beta, window_s)
                    if rule.smoothing == "holt"
                    else LinearTrend(window_s, rule.min_fill)
                )
                self._state[labels] = tracker
            tracker.update(now, value)
            stat = tracker.slope() if rule.method == "slope" else tracker.relative_change()
            if math.isnan(stat):
                return False, math.nan, {"metric_value": value}
            return OPS[rule.op](stat, rule.threshold), stat, {"metric_value": value}
        det = self._state.get(labels)
        if det is None:
            det = _make_detector(rule)
            self._state[labels] = det
        alarm = det.update(value)
        return bool(alarm), value, {"statistic": det.statistic}


def _make_detector(rule: AnomalyRule) -> Cusum | Ewma | RobustZ:
    p = rule.detector
    if isinstance(p, CusumParams):
        return Cusum(p.k, p.h, mean=p.mean, sigma=p.sigma, warmup=p.warmup, direction=p.direction)
    if isinstance(p, EwmaParams):
        return Ewma(
            p.lambda_, p.L, mean=p.mean, sigma=p.sigma, warmup=p.warmup, direction=p.direction
        )
    return RobustZ(p.window, p.threshold, min_samples=p.min_samples, direction=p.direction)
