"""Turn the cumulative Prometheus registry into a per-interval time series.

Prometheus stores cumulative counters and bucket counts; rules and the
Parquet history want what happened *in the last interval*: per-second rates
for counters, current values for gauges and p50/p95/p99 for histograms
(``histogram_quantile`` over the interval's bucket increments). The sampler
keeps the previous cumulative values and derives those, so one registry walk
per interval is the whole collection cost.
"""

from __future__ import annotations

import json
import math
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

    def sample(self, now: float) -> Sample:
        """Walk the registry once; rates are over ``now`` minus the previous call's time.

        The first call only primes the counters (no rates, no quantiles), the
        Prometheus ``rate()`` behaviour with a single point. A counter that went
        down is treated as reset to zero.
        """
        dt = None if self._prev_time is None else now - self._prev_time
        out = Sample(time_s=now)
        current: dict[tuple[str, Labels], float] = {}
        for family in self.registry.collect():
            base = self._short(family.name)
            if family.type == "counter":
                for s in family.samples:
                    if not s.name.endswith("_total"):
                        continue
                    labels = tuple(sorted(s.labels.items()))
                    key = (s.name, labels)
                    current[key] = s.value
                    inc = self._increase(key, s.value)
                    if dt and dt > 0 and inc is not None:
                        out.values[(f"{base}_per_s", labels)] = inc / dt
            elif family.type == "gauge":
                for s in family.samples:
                    out.values[(base, tuple(sorted(s.labels.items())))] = float(s.value)
            elif family.type == "histogram":
                self._histogram(family.samples, base, dt, current, out)
        self._prev = current
        self._prev_time = now
        return out

    def _increase(self, key: tuple[str, Labels], value: float) -> float | None:
        prev = self._prev.get(key)
        if prev is None:
            return None if self._prev_time is None else value
        return value - prev if value >= prev else value

    def _histogram(
        self,
        samples: Iterable[object],
        base: str,
        dt: float | None,
        current: dict[tuple[str, Labels], float],
        out: Sample,
    ) -> None:
        groups: dict[Labels, list[tuple[float, float]]] = {}
        counts: dict[Labels, tuple[float, float]] = {}
        for s in samples:
            name: str = s.name  # type: ignore[attr-defined]
            raw: dict[str, str] = s.labels  # type: ignore[attr-defined]
            value: float = s.value  # type: ignore[attr-defined]
            if name.endswith("_bucket"):
                labels = tuple(sorted((k, v) for k, v in raw.items() if k != "le"))
                key = (name, tuple(sorted(raw.items())))
                current[key] = value
                inc = self._increase(key, value)
                if inc is not None:
                    groups.setdefault(labels, []).append((float(raw["le"]), inc))
            elif name.endswith("_count") or name.endswith("_sum"):
                labels = tuple(sorted(raw.items()))
                key = (name, labels)
                current[key] = value
                inc = self._increase(key, value)
                if inc is not None:
                    c, sm = counts.get(labels, (0.0, 0.0))
                    counts[labels] = (inc, sm) if name.endswith("_count") else (c, inc)
        if not dt or dt <= 0:
            return
        for labels, buckets in groups.items():
            buckets.sort()
            if buckets and buckets[-1][1] > 0:
                for q in QUANTILES:
                    out.values[(f"{base}_p{round(q * 100)}", labels)] = histogram_quantile(
                        q, buckets
                    )
        for labels, (count, total) in counts.items():
            out.values[(f"{base}_count_per_s", labels)] = count / dt
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
        self.paths: list[Path] = []
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
        self.paths.append(path)
        self._rows = {"time_s": [], "name": [], "labels": [], "value": []}
        return path


def read_samples(directory: Path) -> pa.Table:
    """All ``samples-*.parquet`` parts under ``directory`` as one table (time-ordered)."""
    parts = sorted(Path(directory).glob("samples-*.parquet"))
    if not parts:
        return SCHEMA.empty_table()
    table = pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in parts])
    return table.sort_by([("time_s", "ascending")])
