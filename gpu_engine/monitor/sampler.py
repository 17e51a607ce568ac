"""Turn the cumulative Prometheus registry into a per-interval time series.

Prometheus stores cumulative counters and bucket counts; rules and the
Parquet history want what happened lately: per-second rates for counters over
the last interval, current values for gauges, and p50/p95/p99 and the mean of
histograms over a trailing range (``histogram_quantile(q, rate(x[range]))``;
by default the last interval). The sampler keeps the previous cumulative values
and the range's increments, so one registry walk per interval is the whole
collection cost.

Why a range for quantiles: an interval in which no batch finished has no
quantile, and a rule's ``for`` restarts at such a gap, so with batches that
finish less often than once an interval a latency rule could never fire.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client.registry import CollectorRegistry

from .series import Labels, SeriesKey, render

PREFIX = "tiktoktoe_"
QUANTILES = (0.5, 0.95, 0.99)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the rank's bucket.

    ``buckets`` are (upper bound, cumulative count) sorted by bound, ending in +Inf.
    Returns NaN when there are no observations; a rank in the +Inf bucket
    returns the largest finite bound, as Prometheus does.
    """
    if not buckets:
        return math.nan
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass
class Sample:
    """Everything derived at one instant: ``values`` keyed by series."""

    time_s: float
    values: dict[SeriesKey, float] = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """Flat ``name{labels}`` → value mapping (the spelling rules use)."""
        return {render(k): v for k, v in self.values.items()}


class Sampler:
    """Derive rates, gauges and quantiles from consecutive registry walks."""

    def __init__(self, registry: CollectorRegistry, prefix: str = PREFIX) -> None:
        self.registry = registry
        self.prefix = prefix
        self._prev_time: float | None = None
        self._prev: dict[tuple[str, Labels], float] = {}
        # (interval end, increments of every counter and histogram sample in it)
        self._recent: deque[tuple[float, dict[tuple[str, Labels], float]]] = deque()
        self._over_range: dict[tuple[str, Labels], float] = {}
        self._held: dict[tuple[str, Labels], int] = {}

    def series_names(self) -> set[str]:
        """Every flat name ``sample`` can produce from this registry's metric families.

        Derived from the families (not from samples), so labelled metrics nobody has
        recorded yet, and histograms before their first interval, are included; rules
        are checked against it before they can silently never match.
        """
        names: set[str] = set()
        for family in self.registry.collect():
            base = self._short(family.name)
            if family.type == "counter":
                names.add(f"{base}_per_s")
            elif family.type == "gauge":
                names.add(base)
            elif family.type == "histogram":
                names.update(f"{base}_p{round(q * 100)}" for q in QUANTILES)
                names.update((f"{base}_count_per_s", f"{base}_mean"))
        return names

    def _short(self, name: str) -> str:
        return name[len(self.prefix) :] if name.startswith(self.prefix) else name

    def sample(self, now: float, range_s: float = 0.0) -> Sample:
        """Walk the registry once. Rates are over ``now`` minus the previous call's time;
        histogram quantiles and means over the intervals that ended within ``range_s``
        of ``now`` (at least the last one).

        The first call only primes the counters (no rates, no quantiles), the
        Prometheus ``rate()`` behaviour with a single point. A counter that went
        down is treated as reset to zero. A call at or before the previous one's
        time gives gauges only: the interval stays open, so no increment is lost.
        """
        dt = None if self._prev_time is None else now - self._prev_time
        out = Sample(time_s=now)
        families = list(self.registry.collect())
        if dt is not None and dt <= 0:
            for family in families:
                if family.type == "gauge":
                    self._gauge(family.samples, family.name, out)
            return out
        current: dict[tuple[str, Labels], float] = {}
        increments: dict[tuple[str, Labels], float] = {}
        for family in families:
            for s in family.samples:
                counted = (family.type == "counter" and s.name.endswith("_total")) or (
                    family.type == "histogram" and s.name.endswith(("_bucket", "_count", "_sum"))
                )
                if counted:
                    key = (s.name, tuple(sorted(s.labels.items())))
                    current[key] = s.value
                    inc = self._increase(key, s.value)
                    if inc is not None:
                        increments[key] = inc
        self._keep_range(now, range_s, increments)
        for family in families:
            base = self._short(family.name)
            if family.type == "counter" and dt:
                for s in family.samples:
                    key = (s.name, tuple(sorted(s.labels.items())))
                    if key in increments:
                        out.values[(f"{base}_per_s", key[1])] = increments[key] / dt
            elif family.type == "gauge":
                self._gauge(family.samples, family.name, out)
            elif family.type == "histogram" and dt:
                self._histogram(family.samples, base, dt, increments, out)
        self._prev = current
        self._prev_time = now
        return out

    def _gauge(self, samples: Iterable[object], name: str, out: Sample) -> None:
        base = self._short(name)
        for s in samples:
            labels: dict[str, str] = s.labels  # type: ignore[attr-defined]
            out.values[(base, tuple(sorted(labels.items())))] = float(s.value)  # type: ignore[attr-defined]

    def _increase(self, key: tuple[str, Labels], value: float) -> float | None:
        prev = self._prev.get(key)
        if prev is None:
            return None if self._prev_time is None else value
        return value - prev if value >= prev else value

    def _keep_range(
        self, now: float, range_s: float, increments: dict[tuple[str, Labels], float]
    ) -> None:
        """Add this interval's increments to the range's sums and take out those of the
        intervals that ended ``range_s`` or more ago: a tick's cost does not grow with
        the range."""
        if self._prev_time is not None:
            self._recent.append((now, increments))
            self._count_in(increments, 1)
        while len(self._recent) > 1 and self._recent[0][0] <= now - range_s + 1e-9:
            self._count_in(self._recent.popleft()[1], -1)

    def _count_in(self, increments: dict[tuple[str, Labels], float], sign: int) -> None:
        for key, inc in increments.items():
            held = self._held.get(key, 0) + sign  # intervals in the range that have the key
            if held:
                self._held[key] = held
                self._over_range[key] = self._over_range.get(key, 0.0) + sign * inc
            else:
                del self._held[key], self._over_range[key]

    def increase_over_range(self, key: tuple[str, Labels]) -> float | None:
        """A counter's or histogram sample's increase over the last ``sample``'s range
        (its full name and sorted labels, ``le`` included); None before two samples."""
        return self._over_range.get(key)

    def _histogram(
        self,
        samples: Iterable[object],
        base: str,
        dt: float,
        increments: dict[tuple[str, Labels], float],
        out: Sample,
    ) -> None:
        groups: dict[Labels, list[tuple[float, float]]] = {}
        counts: dict[Labels, float] = {}
        ranged: dict[Labels, tuple[float, float]] = {}  # count and sum over the range
        for s in samples:
            name: str = s.name  # type: ignore[attr-defined]
            raw: dict[str, str] = s.labels  # type: ignore[attr-defined]
            key = (name, tuple(sorted(raw.items())))
            over_range = self._over_range.get(key)
            if name.endswith("_bucket"):
                labels = tuple(sorted((k, v) for k, v in raw.items() if k != "le"))
                if over_range is not None:
                    groups.setdefault(labels, []).append((float(raw["le"]), over_range))
            elif name.endswith(("_count", "_sum")) and over_range is not None:
                c, total = ranged.get(key[1], (0.0, 0.0))
                if name.endswith("_count"):
                    ranged[key[1]] = (over_range, total)
                    if key in increments:
                        counts[key[1]] = increments[key]
                else:
                    ranged[key[1]] = (c, over_range)
        for labels, buckets in groups.items():
            buckets.sort()
            if buckets and buckets[-1][1] > 0:
                for q in QUANTILES:
                    out.values[(f"{base}_p{round(q * 100)}", labels)] = histogram_quantile(
                        q, buckets
                    )
        for labels, count in counts.items():
            out.values[(f"{base}_count_per_s", labels)] = count / dt
        for labels, (count, total) in ranged.items():
            if count > 0:
                out.values[(f"{base}_mean", labels)] = total / count


SCHEMA = pa.schema(
    [
        pa.field("time_s", pa.float64()),
        pa.field("name", pa.string()),
        pa.field("labels", pa.string()),
        pa.field("value", pa.float64()),
    ]
)


class SampleWriter:
    """Buffer samples and write them as Parquet parts ``samples-NNNNN.parquet``.

    Parts (rather than one open file) keep everything written so far readable
    even if the engine dies; ``read_samples`` stitches them back together.
    """

    def __init__(self, directory: Path, flush_every: int = 60) -> None:
        self.directory = directory
        self.flush_every = max(1, flush_every)
        self._rows: dict[str, list[object]] = {"time_s": [], "name": [], "labels": [], "value": []}
        self._pending = 0
        self._part = 0
        # Label sets as JSON, for the samples of one part (cleared when it is written:
        # kept for the run, it held every label set a window key ever made).
        self._labels_json: dict[Labels, str] = {}

    def add(self, time_s: float, values: dict[SeriesKey, float]) -> None:
        """Buffer one sample (NaN values are dropped); flush every ``flush_every`` samples."""
        items = [(k, v) for k, v in values.items() if v == v]  # v != v only for NaN
        cache = self._labels_json
        labels_text = []
        for (_, labels), _v in items:
            text = cache.get(labels)
            if text is None:
                text = cache[labels] = json.dumps(dict(labels), sort_keys=True)
            labels_text.append(text)
        rows = self._rows
        rows["time_s"].extend([time_s] * len(items))
        rows["name"].extend([k[0] for k, _ in items])
        rows["labels"].extend(labels_text)
        rows["value"].extend([float(v) for _, v in items])
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> Path | None:
        """Write buffered rows as the next part; returns its path (None if nothing buffered)."""
        self._pending = 0
        if not self._rows["time_s"]:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"samples-{self._part:05d}.parquet"
        while path.exists():  # never overwrite an earlier run's parts
            self._part += 1
            path = self.directory / f"samples-{self._part:05d}.parquet"
        pq.write_table(pa.table(self._rows, schema=SCHEMA), path)
        self._part += 1
        self._rows = {"time_s": [], "name": [], "labels": [], "value": []}
        self._labels_json.clear()
        return path


def read_samples(directory: Path) -> pa.Table:
    """All ``samples-*.parquet`` parts under ``directory`` as one table (time-ordered)."""
    parts = sorted(Path(directory).glob("samples-*.parquet"))
    if not parts:
        return SCHEMA.empty_table()
    table = pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in parts])
    return table.sort_by([("time_s", "ascending")])
