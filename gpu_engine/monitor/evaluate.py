"""Per-rule evaluation over one interval's series: which series hold, with what value.

A rule's selector may match several series (e.g. one per region); each gets
its own detector state and its own alert. Series that vanish evaluate as
false, so their alerts resolve instead of hanging. Trend and anomaly rules
skip an infinite sample as if it were missing: one would hold their running
fit, level or deviation at inf or NaN for good. Threshold rules compare it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
        self._gone_since: dict[Labels, float] = {}  # series with state, absent since
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
        for labels in self._state.keys() - out.keys():
            out[labels] = (False, math.nan, {})
            self._gone_since.setdefault(labels, now)
        return out

    def gone_since(self, labels: Labels) -> float | None:
        """When the series last had a value, if it has none now (None while it has)."""
        return self._gone_since.get(labels)

    def forget(self, labels: Labels) -> None:
        """Drop a series' state (it starts afresh if it comes back)."""
        self._state.pop(labels, None)
        self._gone_since.pop(labels, None)

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
