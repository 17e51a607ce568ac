"""The Monitor: samples metrics, evaluates rules, drives alerts, escalation and actions.

One ``tick(now)`` is one evaluation interval:

1. apply acknowledgements appended to ``OUT/alerts_acks.jsonl`` (by ``gpu-engine alerts ack``);
2. sample the registry (rates, gauges, quantiles) and add the window series;
3. buffer the sample for ``OUT/metrics/samples-*.parquet``;
4. evaluate every rule on every matching series and step the alert state machines;
5. apply inhibition;
6. start/stop escalation chains and gather what is due, grouped by labels; a resolved
   notice goes to every channel told the alert fired, even if an ack or inhibition
   stopped its chain since;
7. forget alerts whose series have been gone ``forget_after`` (not pending or firing);
8. append every state change to ``OUT/alerts.jsonl``;
9. outside the evaluation's lock (a slow webhook or action holds up neither acks nor the
   engine), run the actions of newly firing alerts and send what step 6 gathered.

``start()``/``stop()`` run ticks on a background thread every ``interval``.
Everything takes ``now`` from the injected ``clock`` so tests replay traces
without sleeping.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .actions import ActionRegistry
from .alerts import Alert, AlertState, alert_id, apply_inhibition, group_key
from .channels import Channel, Payload, build_channels
from .escalation import Due, Escalator
from .evaluate import RuleEvaluator, index_by_name
from .registry import EngineMetrics
from .rules import MonitorConfig, check_rule_metrics
from .sampler import Sample, SampleWriter
from .series import Labels, SeriesKey, make_labels

log = logging.getLogger(__name__)

ALERTS_FILE = "alerts.jsonl"
ACKS_FILE = "alerts_acks.jsonl"
ACTIONS_FILE = "actions.jsonl"
METRICS_DIR = "metrics"
FORGOTTEN_EPISODES_KEPT = 100_000  # forgotten alerts whose episode a return goes on from


# A notification to send: its channel (None: not available), message and delivery record.
_Send = tuple["Channel | None", Payload, dict[str, Any]]


class MetricSource(Protocol):
    """What the monitor samples: ``EngineMetrics`` live, or a ``ReplaySource``.

    ``range_s``: the trailing range of histogram quantiles and ratios (``range``)."""

    def sample(self, now: float, range_s: float = 0.0) -> Sample: ...


_QUIET = (AlertState.INACTIVE, AlertState.RESOLVED)  # a false evaluation changes neither


def _rank(holds: bool, value: float) -> tuple[bool, bool]:
    """Which of the series that step one alert it follows: one that holds, then one
    with a value (a vanished series has none)."""
    return holds, not math.isnan(value)


def window_series_name(window: str, column: str) -> str:
    """``window:<window>.<column>``: how window outputs are named in rules."""
    return f"window:{window}.{column}"


@dataclass
class TickResult:
    """What one evaluation did (returned for tests and the live view)."""

    time_s: float
    sample: Sample
    changes: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)


class Monitor:
    """Ties metrics, rules, alerts, escalation, channels and actions together."""

    def __init__(
        self,
        config: MonitorConfig | None = None,
        out_dir: Path | str | None = None,
        *,
        metrics: MetricSource | None = None,
        clock: Callable[[], float] = time.time,
        actions: ActionRegistry | None = None,
        callbacks: Mapping[str, Callable[[Payload], Any]] | None = None,
    ) -> None:
        self.config = config if config is not None else MonitorConfig.default()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.metrics: MetricSource = metrics if metrics is not None else EngineMetrics()
        names = getattr(self.metrics, "series_names", None)
        if callable(names):  # a live registry knows its names; a replayed trace does not
            check_rule_metrics(self.config, names(), "the monitor configuration")
        self.clock = clock
        self.actions = actions if actions is not None else ActionRegistry()
        if self.actions.log_path is None and self.out_dir is not None:
            self.actions.log_path = self.out_dir / ACTIONS_FILE
        self.channels: dict[str, Channel] = build_channels(
            self.config.channels, self.out_dir, callbacks
        )
        self.escalator = Escalator(self.config.escalation)
        # Channels told that an alert fired whose chain an ack or inhibition stopped: they
        # are told when it resolves too (an acknowledged page still closes).
        self._told_before: dict[str, list[str]] = {}
        # The last episode of alerts forgotten (see _forget_gone), so that one that comes
        # back counts on: notices keyed by (id, episode) keep two incidents apart.
        self._episodes: OrderedDict[str, int] = OrderedDict()
        self.evaluators = [RuleEvaluator(r) for r in self.config.rules]
        self.alerts: dict[str, Alert] = {}
        self._alert_cache: dict[tuple[int, Labels], Alert] = {}
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=1000)
        self.recent_changes: deque[dict[str, Any]] = deque(maxlen=200)
        self.last_sample: Sample | None = None
        self._windows: dict[str, dict[SeriesKey, float]] = {}
        # The engine's thread sets window series under a lock of their own: a tick holds
        # ``_lock`` while it evaluates, and must not make the engine wait for it.
        self._windows_lock = threading.Lock()
        self._lock = threading.RLock()
        self._sending = threading.Lock()  # a tick's actions and notifications, in tick order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.writer: SampleWriter | None = None
        self._ack_offset = 0
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SampleWriter(self.out_dir / METRICS_DIR, self.config.flush_every)
            acks = self.out_dir / ACKS_FILE
            self._ack_offset = acks.stat().st_size if acks.exists() else 0  # earlier runs' acks
            self._append_records([{"event": "monitor_started", "time_s": self.clock()}])

    # -- inputs ---------------------------------------------------------------------------
    def add_channel(self, channel: Channel) -> None:
        """Add or replace a channel at run time (e.g. a callback the engine owns)."""
        self.channels[channel.name] = channel

    def observe_window(
        self,
        window_name: str,
        frame: Any,
        *,
        keys: Sequence[str] | None = None,
        values: Sequence[str] | None = None,
    ) -> int:
        """Expose a window's latest output to rules; returns the number of series set.

        ``frame`` is a mapping of column → sequence (or a pandas DataFrame /
        pyarrow Table). Key columns become labels, numeric columns become series
        ``window:<window_name>.<column>{<key>="<value>",...}``. By default string
        columns are keys and int/float/bool columns are values (other types are
        ignored); pass ``keys``/``values`` to choose explicitly (e.g. integer ids).
        The previous output of the same window is replaced; within one frame
        the last row per key wins.
        """
        columns = _columns(frame)
        if keys is None:
            keys = [c for c, col in columns.items() if _kind(col) == "key"]
        if values is None:
            values = [c for c, col in columns.items() if c not in keys and _kind(col) == "value"]
        missing = [c for c in [*keys, *values] if c not in columns]
        if missing:
            raise KeyError(
                f"observe_window({window_name!r}): no column(s) {missing}; have {sorted(columns)}"
            )
        n = len(next(iter(columns.values()))) if columns else 0
        series: dict[SeriesKey, float] = {}
        names = {c: window_series_name(window_name, c) for c in values}
        for i in range(n):
            labels = make_labels({k: columns[k][i] for k in keys})
            for c in values:
                v = columns[c][i]
                if v is None:
                    continue
                series[(names[c], labels)] = float(v)
        with self._windows_lock:
            self._windows[window_name] = series
        return len(series)

    # -- evaluation -----------------------------------------------------------------------
    def tick(self, now: float | None = None) -> TickResult:
        """Evaluate once at ``now`` (default: the clock).

        Actions and notifications run after the evaluation, outside its lock: a webhook
        that hangs until its timeout, or a slow action, holds up neither acks nor the
        window series the engine sets (``observe_window``)."""
        with self._lock:
            now = self.clock() if now is None else now
            result, actions, sends = self._evaluate(now)
            # Taken before the evaluation lock is let go: ticks that overlap (the final
            # tick at stop, one called by hand) send in the order they evaluated, so a
            # "resolved" notice never overtakes the "firing" one.
            self._sending.acquire()
        try:
            for ev, alert in actions:
                for action in ev.rule.actions:
                    self.actions.execute(action.name, alert.record(), action.params, now)
            result.deliveries = [self._send(*send) for send in sends]
        finally:
            self._sending.release()
        with self._lock:
            self.deliveries.extend(result.deliveries)
        return result

    def _evaluate(
        self, now: float
    ) -> tuple[TickResult, list[tuple[RuleEvaluator, Alert]], list[_Send]]:
        """Steps 1-8 of a tick: the result, the alerts that started firing (whose actions
        the caller runs) and the notifications due (which it sends), step 9."""
        self._poll_acks(now)
        sample = self.metrics.sample(now, self.config.range / 1000)
        values = dict(sample.values)
        with self._windows_lock:
            windows = list(self._windows.values())
        for series in windows:
            values.update(series)
        sample = Sample(now, values)
        self.last_sample = sample
        if self.writer is not None:
            self.writer.add(now, values)
        result = TickResult(now, sample)
        newly_firing = []
        by_name = index_by_name(values)
        for i, ev in enumerate(self.evaluators):
            # Series whose labels become one alert's (the rule's labels override theirs)
            # step it once: it holds when any of them does.
            steps: dict[str, tuple[Alert, bool, float, dict[str, Any]]] = {}
            gone: list[tuple[Labels, Alert]] = []
            for labels, (holds, value, extra) in ev.evaluate(now, values, by_name).items():
                alert = self._alert_cache.get((i, labels))
                if alert is None:
                    alert = self._alert_cache[(i, labels)] = self._alert_for(ev, labels)
                if not holds and math.isnan(value):  # the series has gone
                    gone.append((labels, alert))
                    if alert.state in _QUIET:
                        continue  # a step changes nothing
                seen = steps.get(alert.id)
                if seen is None or _rank(holds, value) > _rank(seen[1], seen[2]):
                    steps[alert.id] = (alert, holds, value, extra)
            for alert, holds, value, extra in steps.values():
                prev = alert.observe(holds, now, value, extra)
                if prev is not None:
                    result.changes.append(self._change(alert, "state", now, previous=prev.value))
                    if alert.state is AlertState.FIRING:
                        newly_firing.append((ev, alert))
            for labels, alert in gone:  # still firing (keep_firing_for): stepped on
                ev.watch(labels, alert.state not in _QUIET)
        for alert in apply_inhibition(self.alerts.values(), self.config.inhibit):
            event = "inhibited" if alert.inhibited else "uninhibited"
            result.changes.append(self._change(alert, event, now))
        resolved: list[tuple[str, Alert]] = []
        for alert in self.alerts.values():
            notifiable = (
                alert.state is AlertState.FIRING and not alert.inhibited and not alert.acknowledged
            )
            if notifiable:
                self.escalator.start(alert.id, alert.severity, now)
                continue
            if self.escalator.active(alert.id):
                self._silenced(alert.id, self.escalator.stop(alert.id))
            if alert.state is AlertState.RESOLVED and alert.id in self._told_before:
                resolved.extend((ch, alert) for ch in self._told_before.pop(alert.id))
        sends = self._notifications(self.escalator.advance(now), resolved, now)
        result.changes.extend(self._forget_gone(now))
        self._append_records(result.changes)
        self.recent_changes.extend(result.changes)
        return result, newly_firing, sends

    def _forget_gone(self, now: float) -> list[dict[str, Any]]:
        """Drop the alerts (and their series' rule state) that are neither pending nor
        firing, owe no resolved notice, and whose series have had no value for
        ``forget_after``; a series that comes back starts afresh, its alert at the next
        episode. Returns a ``forgotten`` record for each (``alerts list`` drops it)."""
        after = self.config.forget_after / 1000
        gone = []
        for i, ev in enumerate(self.evaluators):
            for labels, since in ev.gone():  # the longest gone first
                if now - since < after:
                    break
                alert = self._alert_cache[(i, labels)]
                if alert.state not in _QUIET or alert.id in self._told_before:
                    continue
                if not self.escalator.active(alert.id):
                    gone.append((i, labels))
        if not gone:
            return []
        for i, labels in gone:
            del self._alert_cache[(i, labels)]
            self.evaluators[i].forget(labels)
        held = {alert.id for alert in self._alert_cache.values()}
        records = []
        for aid in [aid for aid in self.alerts if aid not in held]:
            alert = self.alerts.pop(aid)
            self._episodes[aid] = alert.episode
            self._episodes.move_to_end(aid)
            while len(self._episodes) > FORGOTTEN_EPISODES_KEPT:
                self._episodes.popitem(last=False)
            records.append(self._change(alert, "forgotten", now))
        return records

    def _alert_for(self, ev: RuleEvaluator, series_labels: Labels) -> Alert:
        rule = ev.rule
        labels = {**dict(series_labels), **rule.labels, "alertname": rule.name}
        aid = alert_id(rule.name, labels)
        alert = self.alerts.get(aid)
        if alert is None:
            alert = Alert(
                id=aid,
                rule=rule.name,
                severity=rule.severity,
                labels=labels,
                annotation_templates=dict(rule.annotations),
                for_s=rule.for_ / 1000,
                keep_firing_for_s=rule.keep_firing_for / 1000,
                threshold=None if math.isnan(ev.threshold) else ev.threshold,
                interval_s=self.config.interval / 1000,
            )
            alert.episode = self._episodes.pop(aid, 0)  # one that was forgotten goes on
            self.alerts[aid] = alert
        return alert

    def _change(
        self, alert: Alert, event: str, now: float, previous: str | None = None
    ) -> dict[str, Any]:
        rec = {"event": event, "time_s": now, **alert.record()}
        if previous is not None:
            rec["previous"] = previous
        level = logging.INFO if alert.severity == "info" or event != "state" else logging.WARNING
        log.log(level, "alert %s %s: %s -> %s", alert.id, event, previous, alert.state.value)
        return rec

    def _notifications(
        self, due: list[Due], resolved: list[tuple[str, Alert]], now: float
    ) -> list[_Send]:
        """Due escalation steps and resolved notices, one message per channel and group."""
        batches: dict[tuple[Any, ...], list[Alert]] = {}
        meta: dict[tuple[Any, ...], dict[str, Any]] = {}
        by = self.config.group_by
        for d in due:
            alert = self.alerts[d.alert_id]
            key = ("firing", d.channel, alert.severity, d.level, group_key(alert.labels, by))
            batches.setdefault(key, []).append(alert)
            meta.setdefault(key, {"steps": []})["steps"].append(
                {"alert_id": d.alert_id, "step": d.step, "due_s": d.due_s}
            )
        for channel, alert in resolved:
            key = ("resolved", channel, alert.severity, 0, group_key(alert.labels, by))
            batches.setdefault(key, []).append(alert)
            meta.setdefault(key, {"steps": []})
        out = []
        for key, alerts in batches.items():
            status, channel, severity, level, group = key
            payload: Payload = {
                "status": status,
                "severity": severity,
                "level": level,
                "channel": channel,
                "group": dict(group),
                "time_s": now,
                "alerts": [a.record() for a in alerts],
            }
            record = {
                "time_s": now,
                "channel": channel,
                "status": status,
                "level": level,
                "alert_ids": [a.id for a in alerts],
                "steps": meta[key]["steps"],
                "ok": True,
                "error": None,
            }
            out.append((self.channels.get(channel), payload, record))
        return out

    @staticmethod
    def _send(channel: Channel | None, payload: Payload, record: dict[str, Any]) -> dict[str, Any]:
        """Send one notification; its delivery record, with the error if it failed."""
        try:
            if channel is None:
                raise LookupError(f"channel {record['channel']!r} is not available")
            channel.send(payload)
        except Exception as exc:  # a failing channel is recorded, evaluation goes on
            record["ok"] = False
            record["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("notification via %s failed: %s", record["channel"], record["error"])
        return record

    # -- acknowledgement ------------------------------------------------------------------
    def ack(self, alert_id: str, by: str = "api", now: float | None = None) -> bool:
        """Acknowledge a pending/firing alert: its escalation stops until it resolves."""
        with self._lock:
            now = self.clock() if now is None else now
            alert = self.alerts.get(alert_id)
            if alert is None or alert.state not in (AlertState.PENDING, AlertState.FIRING):
                log.warning(
                    "ack %s by %s ignored: no pending or firing alert with that id", alert_id, by
                )
                return False
            if alert.acknowledged:
                return True
            alert.acknowledged = True
            self._silenced(alert_id, self.escalator.stop(alert_id))
            rec = self._change(alert, "acknowledged", now)
            rec["by"] = by
            self._append_records([rec])
            self.recent_changes.append(rec)
            return True

    def _silenced(self, alert_id: str, notified: list[str]) -> None:
        """Remember the channels a stopped chain had told, for the resolved notice."""
        if notified:
            told = self._told_before.setdefault(alert_id, [])
            told.extend(ch for ch in notified if ch not in told)

    def _poll_acks(self, now: float) -> None:
        if self.out_dir is None:
            return
        path = self.out_dir / ACKS_FILE
        try:
            with path.open("rb") as fh:
                fh.seek(self._ack_offset)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # only whole lines; a half-written one waits
        self._ack_offset += end
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
                self.ack(str(rec["alert_id"]), by=str(rec.get("by", "cli")), now=now)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("bad line in %s: %s", path, exc)

    # -- outputs --------------------------------------------------------------------------
    def _append_records(self, records: Iterable[dict[str, Any]]) -> None:
        records = list(records)
        if self.out_dir is None or not records:
            return
        with (self.out_dir / ALERTS_FILE).open("a", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, sort_keys=True, default=str) + "\n")

    def firing(self) -> list[Alert]:
        with self._lock:
            return [a for a in self.alerts.values() if a.state is AlertState.FIRING]

    def flush(self) -> None:
        """Write buffered samples to Parquet now."""
        with self._lock:
            if self.writer is not None:
                self.writer.flush()

    # -- background thread ----------------------------------------------------------------
    def start(self) -> Monitor:
        """Tick every ``interval`` on a daemon thread (first tick at once)."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="tiktoktoe-monitor", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        interval = self.config.interval / 1000
        next_t = time.monotonic()
        while not self._stop.wait(max(0.0, next_t - time.monotonic())):
            try:
                self.tick()
            except Exception:  # keep monitoring even if one tick fails
                log.exception("monitor tick failed")
            next_t += interval
            if next_t < time.monotonic():  # fell behind: skip, do not burst
                next_t = time.monotonic() + interval

    def stop(self) -> None:
        """Stop the thread, flush samples to Parquet, mark the run's end in alerts.jsonl."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self.writer is not None:
                self.writer.flush()
            self._append_records([{"event": "monitor_stopped", "time_s": self.clock()}])

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _columns(frame: Any) -> dict[str, list[Any]]:
    if hasattr(frame, "to_pydict"):  # pyarrow Table / RecordBatch
        return {str(k): list(v) for k, v in frame.to_pydict().items()}
    if hasattr(frame, "columns") and hasattr(frame, "__getitem__") and hasattr(frame, "to_dict"):
        return {str(c): frame[c].tolist() for c in frame.columns}  # pandas DataFrame
    if isinstance(frame, Mapping):
        cols = {str(k): list(v.tolist() if hasattr(v, "tolist") else v) for k, v in frame.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise ValueError(
                f"columns have different lengths: { {k: len(v) for k, v in cols.items()} }"
            )
        return cols
    raise TypeError(f"cannot read columns from {type(frame).__name__}; pass a dict of columns")


def _kind(column: Sequence[Any]) -> str:
    for v in column:
        if v is None:
            continue
        if isinstance(v, str):
            return "key"
        if isinstance(v, bool | int | float):
            return "value"
        return "other"
    return "other"
