"""Automated responses: named actions that rules trigger and the runtime implements.

An engine run (``gpu_engine.monitoring.EngineMonitoring``) registers
``shrink_batch_delay`` and ``run_optimizer`` (``ENGINE_ACTIONS``, with the parameters
they take; rule files loaded for a run are checked against it); an embedding
registers its own. A rule lists action names (with parameters); when its alert
starts firing the monitor calls ``execute``. Every call and its outcome is logged,
kept in ``history`` (the last 1,000) and appended to ``OUT/actions.jsonl``; an unknown action or an
exception is an outcome, never a crash of the monitor.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ActionFn = Callable[..., Any]
# The actions an engine run registers, with the keyword parameters each takes.
ENGINE_ACTIONS: dict[str, tuple[str, ...]] = {
    "shrink_batch_delay": ("factor",),
    "run_optimizer": ("budget", "sla", "price"),
}


@dataclass
class ActionOutcome:
    """What happened when an action ran: ``ok``, ``error`` or ``missing`` (not registered)."""

    time_s: float
    action: str
    alert_id: str | None
    params: dict[str, Any]
    status: str
    result: str | None = None
    error: str | None = None
    duration_s: float = 0.0


class ActionRegistry:
    """Maps action names to callables ``fn(alert: dict, **params)``."""

    def __init__(self, log_path: Path | None = None) -> None:
        self._actions: dict[str, ActionFn] = {}
        # The last outcomes (all of them go to actions.jsonl): a list kept every one.
        self.history: deque[ActionOutcome] = deque(maxlen=1000)
        self.log_path = log_path
        self._lock = threading.Lock()

    def register(self, name: str, fn: ActionFn, *, replace: bool = False) -> None:
        if name in self._actions and not replace:
            raise ValueError(f"action {name!r} is already registered (pass replace=True)")
        self._actions[name] = fn

    def unregister(self, name: str) -> None:
        self._actions.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._actions)

    def execute(
        self,
        name: str,
        alert: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> ActionOutcome:
        """Run one action and record its outcome."""
        params = dict(params or {})
        alert_id = alert.get("alert_id") if alert else None
        started = time.perf_counter()
        fn = self._actions.get(name)
        when = time.time() if now is None else now
        if fn is None:
            outcome = ActionOutcome(when, name, alert_id, params, "missing", error="not registered")
        else:
            try:
                result = fn(dict(alert or {}), **params)
                outcome = ActionOutcome(
                    when,
                    name,
                    alert_id,
                    params,
                    "ok",
                    result=None if result is None else repr(result),
                )
            except Exception as exc:  # an action's failure is recorded, never propagated
                outcome = ActionOutcome(
                    when, name, alert_id, params, "error", error=f"{type(exc).__name__}: {exc}"
                )
        outcome.duration_s = time.perf_counter() - started
        self._record(outcome)
        return outcome

    def _record(self, outcome: ActionOutcome) -> None:
        level = logging.INFO if outcome.status == "ok" else logging.WARNING
        log.log(
            level,
            "action %s for %s params=%s: %s%s",
            outcome.action,
            outcome.alert_id,
            outcome.params,
            outcome.status,
            f" ({outcome.error})" if outcome.error else "",
        )
        with self._lock:
            self.history.append(outcome)
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(asdict(outcome), sort_keys=True, default=str) + "\n")
