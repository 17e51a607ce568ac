"""Rules, channels and escalation as validated YAML (pydantic, unknown keys rejected).

Example::

    interval: 1s
    group_by: [component]
    channels:
      ops_file: {type: jsonl, path: notifications.jsonl}
      oncall:   {type: webhook, url: "http://127.0.0.1:9000/hook"}
    escalation:
      critical:
        - notify: log
        - notify: oncall
        - wait: 5m
        - repeat: 2          # the steps since the chain start / last escalate, 2 more times
        - escalate: ops_file # notify the next channel, one level up
    rules:
      - name: BatchLatencyHigh
        kind: threshold
        expr: batch_seconds_p99 > 0.5
        for: 10s
        keep_firing_for: 30s
        severity: warning
        labels: {component: engine}
        annotations: {summary: "batch p99 {value:.3f}s > {threshold}s"}
        actions: [shrink_batch_delay]
      - name: ThroughputFalling
        kind: trend
        metric: events_in_per_s
        window: 60s
        method: relative_change   # or slope (units per second)
        smoothing: holt           # optional double exponential smoothing
        op: "<"
        threshold: -0.3           # falling 30 % over the window
      - name: IngestAnomaly
        kind: anomaly
        metric: events_in_per_s
        detector: {kind: cusum, k: 0.5, h: 5.1}

Metric names are the flat names of ``EngineMetrics.snapshot()`` or window
series ``window:<window>.<column>{<key>="<value>"}`` (see ``Monitor.observe_window``).
A selector without labels matches every label set of that name; each matching
series is its own alert (its labels are added to the alert's). Series whose labels
the rule's own ``labels`` make equal are one alert, which holds when any of them does.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gpu_engine.config.loading import not_utf8, read_yaml
from gpu_engine.errors import ConfigError
from gpu_engine.units import DurationMs

from .actions import ENGINE_ACTIONS
from .series import SeriesKey, parse_selector

BUILTIN_RULES = Path(__file__).with_name("builtin_rules.yaml")

Severity = Literal["critical", "warning", "info"]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPR = re.compile(
    r"^\s*(?P<sel>.+?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<num>[-+]?[0-9.eE+\-]+|[-+]?inf)\s*$"
)
_RULE_NAME = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"


class _Strict(BaseModel):
    # No inf or NaN in a setting: a threshold or sigma of inf is a typo, not a rule.
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, allow_inf_nan=False
    )


def _check_selector(value: str) -> str:
    parse_selector(value)
    return value


class ActionRef(_Strict):
    """An automated response: a registered action name plus keyword parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class _RuleBase(_Strict):
    name: str = Field(pattern=_RULE_NAME)
    severity: Severity = "warning"
    for_: DurationMs = Field(0, alias="for")
    keep_firing_for: DurationMs = 0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    actions: list[ActionRef] = Field(default_factory=list)

    @property
    def selector(self) -> SeriesKey:
        raise NotImplementedError


class ThresholdRule(_RuleBase):
    """``expr: <selector> <op> <number>``, Prometheus-style with ``for``/``keep_firing_for``."""

    kind: Literal["threshold"]
    expr: str

    @field_validator("expr")
    @classmethod
    def _parse(cls, value: str) -> str:
        cls.split_expr(value)
        return value

    @staticmethod
    def split_expr(expr: str) -> tuple[SeriesKey, str, float]:
        m = _EXPR.match(expr)
        if not m:
            raise ValueError(
                f"{expr!r} is not '<metric> <op> <number>' (op one of > >= < <= == !=)"
            )
        try:
            number = float(m.group("num"))
        except ValueError:
            raise ValueError(f"{m.group('num')!r} in {expr!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{m.group('num')!r} in {expr!r} is not a finite number")
        return parse_selector(m.group("sel")), m.group("op"), number

    @property
    def selector(self) -> SeriesKey:
        return self.split_expr(self.expr)[0]

    @property
    def op(self) -> str:
        return self.split_expr(self.expr)[1]

    @property
    def threshold(self) -> float:
        return self.split_expr(self.expr)[2]


class TrendRule(_RuleBase):
    """Slope (units/s) or relative change over ``window``, optionally Holt-smoothed."""

    kind: Literal["trend"]
    metric: Annotated[str, Field(min_length=1)]
    window: DurationMs
    method: Literal["relative_change", "slope"] = "relative_change"
    smoothing: Literal["none", "holt"] = "none"
    alpha: float = Field(0.5, gt=0, le=1)
    beta: float = Field(0.3, gt=0, le=1)
    min_fill: float = Field(0.8, gt=0, le=1, description="fraction of the window that must be seen")
    op: Op
    threshold: float

    _metric = field_validator("metric")(classmethod(lambda cls, v: _check_selector(v)))

    @field_validator("window")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("window must be longer than 0")
        return value

    @property
    def selector(self) -> SeriesKey:
        return parse_selector(self.metric)


class EwmaParams(_Strict):
    """EWMA chart; λ=0.1, L=2.85: ARL0≈575, 1σ shift flagged after ≈10.3 samples (median 9)."""

    kind: Literal["ewma"]
    lambda_: float = Field(0.1, alias="lambda", gt=0, le=1)
    L: float = Field(2.85, gt=0)
    mean: float | None = None
    sigma: float | None = Field(None, gt=0)
    warmup: int = Field(30, ge=2)
    direction: Literal["both", "up", "down"] = "both"


class CusumParams(_Strict):
    """Two-sided CUSUM; k=0.5, h=5.1: ARL0≈550, 1σ shift flagged after ≈9.9 samples (median 9)."""

    kind: Literal["cusum"]
    k: float = Field(0.5, ge=0)
    h: float = Field(5.1, gt=0)
    mean: float | None = None
    sigma: float | None = Field(None, gt=0)
    warmup: int = Field(30, ge=2)
    direction: Literal["both", "up", "down"] = "both"


class RobustZParams(_Strict):
    """Spike detector: |x - median| / (1.4826·MAD) over the last ``window`` samples."""

    kind: Literal["robust_z"]
    window: int = Field(60, ge=5)
    threshold: float = Field(3.5, gt=0)
    min_samples: int = Field(10, ge=3)
    direction: Literal["both", "up", "down"] = "both"

    @model_validator(mode="after")
    def _fills(self) -> RobustZParams:
        if self.min_samples > self.window:
            raise ValueError(
                f"min_samples ({self.min_samples}) is more than the window holds"
                f" ({self.window}): the detector could never score a sample"
            )
        return self


DetectorParams = Annotated[EwmaParams | CusumParams | RobustZParams, Field(discriminator="kind")]


class AnomalyRule(_RuleBase):
    """Statistical anomaly on one metric: EWMA/CUSUM for shifts, robust z for spikes."""

    kind: Literal["anomaly"]
    metric: Annotated[str, Field(min_length=1)]
    detector: DetectorParams

    _metric = field_validator("metric")(classmethod(lambda cls, v: _check_selector(v)))

    @field_validator("detector", mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"kind": data} if isinstance(data, str) else data

    @property
    def selector(self) -> SeriesKey:
        return parse_selector(self.metric)


Rule = Annotated[ThresholdRule | TrendRule | AnomalyRule, Field(discriminator="kind")]


class LogChannel(_Strict):
    type: Literal["log"]
    logger: str = "gpu_engine.monitor.alerts"


class JsonlChannel(_Strict):
    type: Literal["jsonl"]
    path: str = Field(description="relative paths are under OUT")


class WebhookChannel(_Strict):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    timeout: DurationMs = 2000
    headers: dict[str, str] = Field(default_factory=dict)


class CallbackChannel(_Strict):
    type: Literal["callback"]
    callback: str | None = Field(
        None, description="name passed to Monitor(callbacks=...); default: the channel name"
    )


ChannelConfig = Annotated[
    LogChannel | JsonlChannel | WebhookChannel | CallbackChannel, Field(discriminator="type")
]


class Step(_Strict):
    """One escalation step: exactly one of notify, wait, repeat, escalate."""

    notify: str | None = None
    wait: DurationMs | None = None
    repeat: int | None = Field(None, ge=1)
    escalate: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [
            k for k in ("notify", "wait", "repeat", "escalate") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"a step has exactly one of notify, wait, repeat, escalate (got {given or 'none'})"
            )
        return self


_TARGETS: tuple[Severity, ...] = ("warning", "info")


class InhibitRule(_Strict):
    """A firing ``source`` alert silences ``target`` alerts sharing its ``equal`` labels."""

    source: Severity = "critical"
    target: list[Severity] = Field(default_factory=lambda: list(_TARGETS))
    equal: list[str] = Field(default_factory=lambda: ["component"])


class MonitorConfig(_Strict):
    """The monitor's whole configuration (``monitor:`` section or a file of its own)."""

    interval: DurationMs = 1000
    # Histogram quantiles and means, and quarantine_ratio, are over the intervals that
    # ended within ``range`` (at least the last one): a rule on batch_seconds_p99 then
    # holds between batches that finish less often than once an interval.
    range: DurationMs = 10_000
    # An alert that is not pending or firing, whose series has had no value this long
    # (a window key that stopped coming), is forgotten with its rule state: kept, they
    # grew by every key a window ever had (gigabytes a day) and slowed every tick.
    # Prometheus keeps a resolved alert 15 minutes.
    forget_after: DurationMs = 900_000
    flush_every: int = Field(60, ge=1, description="samples per Parquet part")
    rules: list[Rule] = Field(default_factory=list)
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    escalation: dict[Severity, list[Step]] = Field(default_factory=dict)
    group_by: list[str] = Field(default_factory=lambda: ["component"])
    inhibit: list[InhibitRule] = Field(default_factory=lambda: [InhibitRule()])

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("interval must be longer than 0")
        return value

    @model_validator(mode="after")
    def _references(self) -> MonitorConfig:
        names = [r.name for r in self.rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rules: duplicate rule names {dup}")
        known = set(self.channels) | {"log"}
        for severity, steps in self.escalation.items():
            for i, step in enumerate(steps):
                target = step.notify or step.escalate
                if target is not None and target not in known:
                    raise ValueError(
                        f"escalation.{severity}[{i}]: unknown channel {target!r} "
                        f"(known: {sorted(known)})"
                    )
        return self

    @classmethod
    def default(cls) -> MonitorConfig:
        """Built-in rules (``builtin_rules.yaml`` beside this module): batch latency,
        quarantine rate, dead letters, throughput trend and anomaly, and rows left waiting
        past their batch timeout."""
        return load_monitor_config(BUILTIN_RULES, check_metrics=False, check_actions=False)


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not (isinstance(part, str) and part.startswith("function-")):
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def parse_monitor_config(
    data: Mapping[str, Any] | None, source: str = "<monitor config>"
) -> MonitorConfig:
    """Validate a mapping; raise ``ConfigError`` with one ``path: message`` line per problem."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid monitor configuration in {source}: expected a mapping")
    try:
        return MonitorConfig.model_validate(dict(data))
    except ValidationError as exc:
        lines = [f"invalid monitor configuration in {source}:"]
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field (misspelled?)"
            lines.append(f"  {_format_loc(tuple(err['loc']))}: {msg}")
        raise ConfigError("\n".join(lines)) from None


WINDOW_PREFIX = "window:"  # window outputs, named at run time (Monitor.observe_window)


def check_rule_metrics(
    config: MonitorConfig, known: Iterable[str], source: str = "<monitor config>"
) -> None:
    """Refuse rules on metrics that do not exist: such a rule would never fire, silently.

    ``known`` holds the flat names the metrics source produces; ``window:`` series are
    exempt (they come from window outputs at run time). Label selectors are not
    checked here: a label value may first appear mid-run.
    """
    names = set(known)
    lines = []
    for i, rule in enumerate(config.rules):
        metric = rule.selector[0]
        if metric in names or metric.startswith(WINDOW_PREFIX):
            continue
        close = difflib.get_close_matches(metric, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        lines.append(f"  rules[{i}] ({rule.name}): unknown metric {metric!r}{hint}")
    if lines:
        raise ConfigError(
            "\n".join(
                [
                    f"invalid monitor configuration in {source}:",
                    *lines,
                    f"  known metrics: {', '.join(sorted(names))}; and "
                    f"{WINDOW_PREFIX}<window>.<column> for window outputs",
                ]
            )
        )


def check_rule_actions(
    config: MonitorConfig,
    known: Mapping[str, Sequence[str]],
    source: str = "<monitor config>",
) -> None:
    """Refuse actions that are not registered, or parameters they do not take: such an
    action would only be logged as missing, or fail, when its alert first fires."""
    lines = []
    for i, rule in enumerate(config.rules):
        for action in rule.actions:
            if action.name not in known:
                close = difflib.get_close_matches(action.name, list(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                lines.append(f"  rules[{i}] ({rule.name}): unknown action {action.name!r}{hint}")
                continue
            extra = sorted(set(action.params) - set(known[action.name]))
            if extra:
                takes = ", ".join(known[action.name]) or "none"
                lines.append(
                    f"  rules[{i}] ({rule.name}): action {action.name!r} takes no parameter"
                    f" {', '.join(map(repr, extra))} (it takes: {takes})"
                )
    if lines:
        raise ConfigError(
            "\n".join(
                [
                    f"invalid monitor configuration in {source}:",
                    *lines,
                    f"  known actions: {', '.join(sorted(known))}",
                ]
            )
        )


def load_monitor_config(
    path: str | Path, *, check_metrics: bool = True, check_actions: bool = True
) -> MonitorConfig:
    """Load a YAML file; accepts the monitor section at top level or under ``monitor:``.

    With ``check_metrics`` (the default: files are written for engine runs) every
    rule's metric must be one the engine produces, and with ``check_actions`` every
    action one an engine run registers (``ENGINE_ACTIONS``), checked before a run
    starts. A :class:`Monitor` with actions of its own loads with ``check_actions=False``.
    """
    path = Path(path)
    try:
        data = read_yaml(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read monitor configuration {path}: {exc}") from None
    except UnicodeDecodeError as exc:  # else a traceback naming neither file nor line
        raise ConfigError(f"cannot read monitor configuration {path}: {not_utf8(exc)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if isinstance(data, Mapping) and set(data) == {"monitor"}:
        data = data["monitor"]
    config = parse_monitor_config(data, str(path))
    if check_metrics:
        from .registry import engine_series_names  # prometheus_client only when needed

        check_rule_metrics(config, engine_series_names(), str(path))
    if check_actions:
        check_rule_actions(config, ENGINE_ACTIONS, str(path))
    return config
