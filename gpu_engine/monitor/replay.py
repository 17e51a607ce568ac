"""Replay recorded or synthetic metric traces through the monitor, without an engine.

``Monitor(metrics=ReplaySource(trace))`` evaluates rules on the trace's values
instead of a live registry: how the tests check alert timing, and how a user
can try a rules file against ``OUT/metrics/samples-*.parquet`` of an old run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from prometheus_client.registry import CollectorRegistry

from .sampler import Sample, read_samples
from .series import SeriesKey, make_labels, parse_selector

Trace = Callable[[float], Mapping[str, float]]


class ReplaySource:
    """A metrics source whose ``sample(now)`` returns the trace's values at ``now``.

    ``trace`` maps a time to flat ``name{labels}`` → value; ``recorded`` maps
    exact sample times to series (what ``from_parquet`` builds).
    """

    def __init__(
        self,
        trace: Trace | None = None,
        *,
        recorded: Mapping[float, Mapping[SeriesKey, float]] | None = None,
    ) -> None:
        if (trace is None) == (recorded is None):
            raise ValueError("give exactly one of trace or recorded")
        self.trace = trace
        self.recorded = recorded
        self.registry = CollectorRegistry()  # empty: nothing to expose
        self.last_sample: Sample | None = None

    @property
    def times(self) -> list[float]:
        """Recorded sample times, in order (empty for a function trace)."""
        return sorted(self.recorded) if self.recorded is not None else []

    def sample(self, now: float, range_s: float = 0.0) -> Sample:
        """The values recorded (or traced) at ``now``: already derived, so ``range_s``
        does not apply."""
        if self.recorded is not None:
            values = dict(self.recorded.get(now, {}))
        else:
            assert self.trace is not None
            values = {parse_selector(k): float(v) for k, v in self.trace(now).items()}
        self.last_sample = Sample(now, values)
        return self.last_sample

    @classmethod
    def from_parquet(cls, directory: Path) -> ReplaySource:
        """Replay an earlier run's ``samples-*.parquet``: tick at each of ``times``."""
        recorded: dict[float, dict[SeriesKey, float]] = {}
        for row in read_samples(directory).to_pylist():
            key = (row["name"], make_labels(json.loads(row["labels"])))
            recorded.setdefault(row["time_s"], {})[key] = row["value"]
        return cls(recorded=recorded)
