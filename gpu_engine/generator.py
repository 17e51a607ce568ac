"""A deterministic generator of short-video interaction events.

Content popularity is Zipf-skewed, the event rate follows a ramp or diurnal
profile over the run, arrival order is perturbed by up to ``disorder_ms`` of
out-of-order delay, and a chosen fraction of rows is made invalid in one of
several ways. The same seed gives the same events whatever the chunk size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gpu_engine.config.models import DEFAULT_MAX_EVENT_TIME_MS, DEFAULT_MIN_EVENT_TIME_MS

_CHUNK = 1 << 18
# The Zipf sampler holds about 32 bytes per content id (weights, CDF, id permutation):
# 100M ids take about 3 GB; 10B would need 320 GB and end in a MemoryError.
MAX_CONTENT = 100_000_000
# Arrival positions are float64 (event index / events): exact up to 2^53 events; past
# 2^63 the int64 index overflows (10^400 events ended in an OverflowError traceback).
MAX_EVENTS = 2**53
REGIONS = ["us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-east", "sa", "af"]
EVENT_TYPE_PROBS = [0.60, 0.15, 0.03, 0.17, 0.05]  # view, like, share, skip, complete
BAD_KINDS = (
    "negative_watch", "nan_watch", "bad_event_type", "negative_latency", "absurd_time",
    "null_content", "null_region", "inf_watch",
)  # fmt: skip


StreamKind = Literal["short-video", "nexmark-bids"]


@dataclass(frozen=True)
class GeneratorSpec:
    """What to generate; every field has a default that makes a realistic stream."""

    events: int = 1_000_000
    seed: int = 0
    start_ms: int = 1_700_000_000_000
    duration_ms: int = 600_000
    n_content: int = 100_000
    zipf: float = 1.1
    n_users: int = 1_000_000
    n_creators: int = 20_000
    disorder_ms: int = 2_000
    bad_fraction: float = 0.0
    profile: Literal["flat", "ramp", "diurnal"] = "diurnal"
    kind: StreamKind = "short-video"

    def __post_init__(self) -> None:
        """Refuse values the sampling cannot use, naming the field (else: IndexError deep in
        the Zipf sampler for ``n_content=0``, or a negative count quietly writing nothing)."""
        at_least = {"events": 0, "seed": 0, "duration_ms": 0, "disorder_ms": 0,
                    "n_content": 1, "n_users": 1, "n_creators": 1}  # fmt: skip
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name} = {getattr(self, name)} is below {low}")
        if not 0.0 <= self.bad_fraction <= 1.0:  # False for NaN too
            raise ValueError(f"bad_fraction = {self.bad_fraction} is not between 0 and 1")
        if self.events > MAX_EVENTS:
            raise ValueError(f"events = {self.events} is above {MAX_EVENTS:,} (2^53)")
        if self.n_content > MAX_CONTENT:
            raise ValueError(
                f"n_content = {self.n_content} is above {MAX_CONTENT:,}, the most the Zipf"
                " sampler holds in memory (about 32 bytes per id)"
            )
        # Event times outside the engine's default bounds are quarantined as absurd, and
        # past int64 they wrap (a 10^14-day duration wrote INT64_MIN event times).
        if self.start_ms < DEFAULT_MIN_EVENT_TIME_MS:
            raise ValueError(
                f"start_ms = {self.start_ms} is before {DEFAULT_MIN_EVENT_TIME_MS}, the"
                " earliest event time the engine accepts (1970-01-01)"
            )
        if self.start_ms + self.duration_ms > DEFAULT_MAX_EVENT_TIME_MS:
            raise ValueError(
                f"start_ms + duration_ms = {self.start_ms + self.duration_ms} is after"
                f" {DEFAULT_MAX_EVENT_TIME_MS}, the latest event time the engine accepts"
                " (2100-01-01)"
            )


class _Zipf:
    """Inverse-CDF sampler of ranks 0..n-1 with P(rank k) proportional to 1/(k+1)^s."""

    def __init__(self, n: int, s: float, seed: int) -> None:
        weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
        self.cdf = np.cumsum(weights / weights.sum())
        self.cdf[-1] = 1.0
        # Popular content gets arbitrary ids, not 0, 1, 2, ...
        self.ids = np.random.default_rng([seed, 7]).permutation(n).astype(np.int64)

    def sample(self, u: np.ndarray) -> np.ndarray:
        return self.ids[np.searchsorted(self.cdf, u, side="right").clip(0, len(self.ids) - 1)]


def _arrival_quantiles(profile: str) -> tuple[np.ndarray, np.ndarray]:
    """Grid of (cumulative share of events, position in the run) for the rate profile."""
    x = np.linspace(0.0, 1.0, 4097)
    if profile == "flat":
        rate = np.ones_like(x)
    elif profile == "ramp":
        rate = 0.25 + 1.5 * x
    else:
        rate = 1.0 + 0.6 * np.sin(2 * np.pi * (x - 0.25))
    cum = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2)])
    return cum / cum[-1], x


def generate(spec: GeneratorSpec, batch_rows: int = _CHUNK) -> Iterator[pa.Table]:
    """Yield the events in arrival order, in tables of at most ``batch_rows`` rows."""
    zipf = _Zipf(spec.n_content, spec.zipf, spec.seed)
    share, position = _arrival_quantiles(spec.profile)
    pending: list[pa.Table] = []
    rows = 0
    for first in range(0, spec.events, _CHUNK):
        chunk = _chunk(spec, zipf, share, position, first, min(_CHUNK, spec.events - first))
        pending.append(chunk)
        rows += chunk.num_rows
        while rows >= batch_rows:
            table = pa.concat_tables(pending)
            yield table.slice(0, batch_rows)
            rest = table.slice(batch_rows)
            pending, rows = [rest], rest.num_rows
    if rows:
        yield pa.concat_tables(pending)


def _chunk(
    spec: GeneratorSpec,
    zipf: _Zipf,
    share: np.ndarray,
    position: np.ndarray,
    first: int,
    n: int,
) -> pa.Table:
    rng = np.random.default_rng([spec.seed, first // _CHUNK])
    order = (np.arange(first, first + n) + rng.random(n)) / max(spec.events, 1)
    arrival = spec.start_ms + np.interp(order, share, position) * spec.duration_ms
    delay = rng.random(n) * spec.disorder_ms
    event_time = np.maximum(arrival - delay, spec.start_ms).astype(np.int64)
    content = zipf.sample(rng.random(n))
    if spec.kind == "nexmark-bids":
        return _bids(rng, spec, event_time, content)
    event_type = rng.choice(5, size=n, p=EVENT_TYPE_PROBS).astype(np.int8)
    watch = rng.exponential(15_000.0, n)
    watch[event_type == 3] *= 0.1
    watch = np.minimum(watch, 3_600_000).astype(np.float32)
    latency = rng.lognormal(np.log(30.0), 0.5, n).astype(np.float32)
    latency_null = rng.random(n) < 0.02
    columns: dict[str, np.ndarray] = {
        "event_time": event_time,
        "content_id": content,
        "user_id": rng.integers(0, spec.n_users, n, dtype=np.int64),
        "creator_id": (content * 2_654_435_761) % spec.n_creators,
        "event_type": event_type,
        "watch_ms": watch,
        "latency_ms": latency,
    }
    region = np.asarray(REGIONS, dtype=object)[rng.integers(0, len(REGIONS), n)]
    masks = {"latency_ms": latency_null}
    if spec.bad_fraction > 0:
        _corrupt(rng, spec.bad_fraction, columns, masks, region)
    arrays = {name: pa.array(values, mask=masks.get(name)) for name, values in columns.items()}
    arrays["region"] = pa.array(region, pa.string(), mask=masks.get("region"))
    return pa.table(arrays)


def _bids(
    rng: np.random.Generator, spec: GeneratorSpec, event_time: np.ndarray, auction: np.ndarray
) -> pa.Table:
    """Nexmark-style bids: hot auctions (Zipf), bidders, prices in cents, a timestamp column."""
    n = len(event_time)
    price = np.round(rng.lognormal(np.log(5_000), 1.0, n)).astype(np.int64)
    if spec.bad_fraction > 0:
        price[rng.random(n) < spec.bad_fraction] = -1
    return pa.table(
        {
            "auction": pa.array(auction % 10_000),
            "bidder": pa.array(rng.integers(0, 50_000, n, dtype=np.int64)),
            "price": pa.array(price),
            "date_time": pa.array(event_time).cast(pa.timestamp("ms")),
        }
    )


def _corrupt(
    rng: np.random.Generator,
    fraction: float,
    columns: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    region: np.ndarray,
) -> None:
    """Make about ``fraction`` of the rows invalid, each in one of ``BAD_KINDS``."""
    n = len(columns["event_time"])
    bad = np.flatnonzero(rng.random(n) < fraction)
    kinds = rng.integers(0, len(BAD_KINDS), len(bad))
    for k, kind in enumerate(BAD_KINDS):
        rows = bad[kinds == k]
        if kind == "negative_watch":
            columns["watch_ms"][rows] = -5.0
        elif kind == "nan_watch":
            columns["watch_ms"][rows] = np.nan
        elif kind == "inf_watch":
            columns["watch_ms"][rows] = np.inf
        elif kind == "bad_event_type":
            columns["event_type"][rows] = 9
        elif kind == "negative_latency":
            columns["latency_ms"][rows] = -1.0
            masks["latency_ms"][rows] = False
        elif kind == "absurd_time":
            columns["event_time"][rows] = -1
        elif kind == "null_content":
            masks.setdefault("content_id", np.zeros(n, dtype=bool))[rows] = True
        else:
            masks.setdefault("region", np.zeros(n, dtype=bool))[rows] = True
    del region  # regions are nulled through the mask


def write_events(spec: GeneratorSpec, path: str | Path) -> int:
    """Write the events to ``path`` (.parquet, .csv or .jsonl); return the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    total = 0
    if suffix in (".parquet", ".pq"):
        writer = None
        for table in generate(spec):
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            total += table.num_rows
        if writer is None:
            pq.write_table(_schema(spec).empty_table(), path)
        else:
            writer.close()
    elif suffix == ".csv":
        with pacsv.CSVWriter(path, _schema(spec)) as writer:
            for table in generate(spec):
                writer.write_table(table)
                total += table.num_rows
    elif suffix in (".jsonl", ".ndjson"):
        with path.open("w") as handle:
            for table in generate(spec):
                handle.write(_json_lines(table))
                total += table.num_rows
    else:
        raise ValueError(f"{path}: unknown format; use .parquet, .csv or .jsonl")
    return total


def _schema(spec: GeneratorSpec) -> pa.Schema:
    return stream_schema(spec.kind)


KINDS: tuple[StreamKind, ...] = get_args(StreamKind)


@functools.cache
def stream_schema(kind: StreamKind) -> pa.Schema:
    """The columns a stream of ``kind`` has (one event of it made once, with the smallest
    id spaces, since ``run`` asks for each stream's to pick the config's)."""
    return next(generate(GeneratorSpec(events=1, kind=kind, n_content=1, n_users=1,
                                       n_creators=1))).schema  # fmt: skip


def kind_for(time_field: str, fields: list[str]) -> StreamKind | None:
    """The stream whose columns hold a config's time field and most of its fields (the
    synthetic data ``run`` makes for it), or None when no stream holds its time field."""
    fitting = [k for k in KINDS if time_field in stream_schema(k).names]
    if not fitting:
        return None
    return max(fitting, key=lambda k: len(set(fields) & set(stream_schema(k).names)))


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_lines(table: pa.Table) -> str:
    """Records as JSON lines. JSON has no number for NaN or an infinity (pandas writes
    null, which a run reads as a null): they are written as the strings "NaN",
    "Infinity" and "-Infinity", which the reader casts back, so a run over the .jsonl
    quarantines the same rows for the same reasons as one over the .parquet."""
    frame = table.to_pandas(integer_object_nulls=True)  # ints with nulls stay ints, not 1.0
    for name in table.column_names:
        if not pa.types.is_floating(table.column(name).type):
            continue
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        is_null = table.column(name).is_null().to_numpy(zero_copy_only=False)
        odd = ~np.isfinite(values) & ~is_null
        if odd.any():
            column = frame[name].astype(object).where(~is_null, None)
            column[odd] = [_NON_FINITE[str(v)] for v in values[odd]]
            frame[name] = column
    return frame.to_json(orient="records", lines=True)
