"""Shared test helpers: config builders, random event frames and a DuckDB oracle.

Imported by name (``from engine_testing import ...``); a module called
``conftest`` would clash with the conftest files of the sub-suites.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from gpu_engine.config import parse_config
from gpu_engine.config.models import EngineConfig
from gpu_engine.engine import Engine
from gpu_engine.io.sinks import MemorySink

BASE_FIELDS: dict[str, Any] = {
    "t": {"type": "int64", "required": True},
    "k": {"type": "int64", "required": True},
    "s": {"type": "string", "nullable": True},
    "e": {"type": "int8", "allowed": [0, 1, 2, 3, 4]},
    "x": {"type": "float64", "nullable": True},
    "u": {"type": "int64", "nullable": True},
}

ALL_AGGS: list[dict[str, Any]] = [
    {"name": "n", "op": "count"},
    {"name": "likes", "op": "count", "where": {"e": 1}},
    {"name": "x_sum", "op": "sum", "column": "x"},
    {"name": "x_mean", "op": "mean", "column": "x"},
    {"name": "x_std", "op": "std", "column": "x"},
    {"name": "x_var", "op": "var", "column": "x", "where": {"e": [0, 2]}},
    {"name": "x_min", "op": "min", "column": "x"},
    {"name": "x_max", "op": "max", "column": "x"},
    {"name": "u_sum", "op": "sum", "column": "u"},
    {"name": "u_mean", "op": "mean", "column": "u", "where": {"e": [1, 2, 3]}},
    {"name": "u_min", "op": "min", "column": "u"},
    {"name": "u_max", "op": "max", "column": "u", "where": {"e": 4}},
    {"name": "u_distinct", "op": "count_distinct", "column": "u"},
]


def make_config(window: dict[str, Any], **top: Any) -> EngineConfig:
    data: dict[str, Any] = {
        "schema": {"time": "t", "fields": BASE_FIELDS},
        "windows": [{"name": "w", "aggregations": ALL_AGGS, **window}],
        "backend": "cpu",
    }
    data.update(top)
    return parse_config(data)


def random_events(
    rng: np.random.Generator,
    n: int,
    n_keys: int = 5,
    span_ms: int = 20_000,
    disorder_ms: int = 0,
    null_share: float = 0.1,
) -> pd.DataFrame:
    """Events in arrival order: times increase, minus up to ``disorder_ms`` of delay."""
    arrival = np.sort(rng.integers(0, span_ms, n)) + 1_000_000
    t = arrival - (rng.integers(0, disorder_ms + 1, n) if disorder_ms else 0)
    x = rng.normal(100.0, 30.0, n)
    u = rng.integers(0, 40, n)
    frame = pd.DataFrame(
        {
            "t": t.astype(np.int64),
            "k": rng.integers(0, n_keys, n).astype(np.int64),
            "s": rng.choice(["a", "b", "c"], n).astype(object),
            "e": rng.integers(0, 5, n).astype(np.int8),
            "x": pd.array(np.where(rng.random(n) < null_share, np.nan, x), dtype="Float64"),
            "u": pd.array(np.where(rng.random(n) < null_share, np.nan, u), dtype="Int64"),
        }
    )
    frame.loc[rng.random(n) < null_share, "s"] = None
    return frame


def run_engine(
    config: EngineConfig, frame: pd.DataFrame | pa.Table, chunk: int = 997, clock: Any = None
) -> tuple[MemorySink, dict[str, Any]]:
    sink = MemorySink()
    kwargs = {"clock": clock} if clock is not None else {}
    engine = Engine(config, sinks=[sink], **kwargs)
    n = frame.num_rows if isinstance(frame, pa.Table) else len(frame)
    for start in range(0, n, chunk):
        part = (
            frame.slice(start, chunk)
            if isinstance(frame, pa.Table)
            else frame.iloc[start : start + chunk]
        )
        engine.push(part)
    summary = engine.close()
    return sink, summary


def push_from_threads(engine: Engine, threads: int, pushes: int) -> pd.DataFrame:
    """``threads`` threads each push ``pushes`` random frames of 1-40 rows into ``engine``,
    all at once; every row pushed, as one frame."""
    parts: list[list[pd.DataFrame]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def pusher(i: int) -> None:
        rng = np.random.default_rng(100 + i)
        start.wait()
        for _ in range(pushes):
            part = random_events(rng, int(rng.integers(1, 41)), span_ms=3000)
            parts[i].append(part)
            engine.push(part)

    running = [threading.Thread(target=pusher, args=(i,)) for i in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return pd.concat([part for own in parts for part in own], ignore_index=True)


def window_frame(sink: MemorySink, name: str = "w") -> pd.DataFrame:
    table = sink.result(f"windows/{name}")
    if table is None:
        return pd.DataFrame()
    return table.to_pandas()


def nan_where_case(backend: str) -> tuple[list[list[int]], list[int]]:
    """``where: {x: nan}`` on an ``allow_nan`` field counts every NaN, whatever its sign
    or payload; the counts the engine gave and the ones numpy gives (the simulator
    suite runs it on ``backend: cuda``)."""
    fields = {**BASE_FIELDS, "x": {"type": "float64", "nullable": True, "allow_nan": True}}
    aggs = [{"name": "n", "op": "count"},
            {"name": "nans", "op": "count", "where": {"x": float("nan")}},
            {"name": "nan_or_1", "op": "count", "where": {"x": [1.0, -float("nan")]}}]  # fmt: skip
    negative_nan = -np.float64("nan")
    payload_nan = np.array([0x7FF8_0000_0000_0001], dtype=np.int64).view(np.float64)[0]
    x = np.array([np.nan, negative_nan, payload_nan, 1.0, 2.0, 0.0, np.nan, np.nan])
    frame = random_events(np.random.default_rng(6), len(x), n_keys=1, span_ms=900)
    is_null = np.arange(len(x)) == 7  # a null is no NaN
    table = pa.Table.from_pandas(frame.drop(columns="x"), preserve_index=False)
    table = table.append_column("x", pa.array(x, mask=is_null))  # NaN stays NaN, not null
    config = make_config({"type": "tumbling", "size": 1000, "aggregations": aggs},
                         schema={"time": "t", "fields": fields}, backend=backend)  # fmt: skip
    sink, summary = run_engine(config, table)
    assert summary["events"]["valid"] == len(x)
    is_nan = np.isnan(x) & ~is_null
    expected = [len(x), int(is_nan.sum()), int(is_nan.sum() + (x == 1.0).sum())]
    return window_frame(sink)[["n", "nans", "nan_or_1"]].values.tolist(), expected


def nan_min_max_case(
    window: dict[str, Any], backend: str, n: int = 3000
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``min``/``max`` of an ``allow_nan`` float field skip NaN: the engine's windows and
    numpy's ``nanmin``/``nanmax`` per key and window (null where a window holds NaN or
    null only; they gave +inf / -inf). Random data with many NaNs, some infinities, and
    keys whose values are all NaN; tumbling or session ``window`` (the simulator suite
    runs it on ``backend: cuda``)."""
    rng = np.random.default_rng(12)
    fields = {**BASE_FIELDS, "x": {"type": "float64", "nullable": True, "allow_nan": True},
              "y": {"type": "float32", "nullable": True, "allow_nan": True}}  # fmt: skip
    aggs = [{"name": "n", "op": "count"},
            {"name": "x_min", "op": "min", "column": "x"},
            {"name": "x_max", "op": "max", "column": "x"},
            {"name": "y_max", "op": "max", "column": "y", "where": {"e": [0, 1]}},
            {"name": "x_p50", "op": "quantile", "column": "x", "q": 0.5}]  # fmt: skip
    frame = random_events(rng, n, n_keys=40, span_ms=20_000, null_share=0.0)
    x = rng.normal(0, 10, n)
    x[rng.random(n) < 0.5] = np.nan
    x[rng.random(n) < 0.02] = np.inf
    x[frame["k"].to_numpy() % 7 == 0] = np.nan  # keys with NaN only
    y = rng.normal(0, 10, n).astype(np.float32)
    y[rng.random(n) < 0.6] = np.nan
    is_null = rng.random(n) < 0.05
    table = pa.Table.from_pandas(frame.drop(columns=["x"]), preserve_index=False)
    table = table.append_column("x", pa.array(x, mask=is_null))
    table = table.append_column("y", pa.array(y, type=pa.float32()))
    config = make_config({**window, "keys": ["k"], "aggregations": aggs},
                         schema={"time": "t", "fields": fields}, backend=backend)  # fmt: skip
    sink, summary = run_engine(config, table)
    assert summary["events"]["valid"] == n
    got = window_frame(sink)
    if window["type"] != "tumbling":  # sessions: the caller compares backends
        got = got.sort_values(["k", "window_start"]).reset_index(drop=True)
        return got, got
    data = table.to_pandas()
    data["window_start"] = data["t"] // window["size"] * window["size"]
    data["y_kept"] = data["y"].where(data["e"].isin([0, 1]))
    expected = data.groupby(["k", "window_start"]).agg(
        n=("t", "size"), x_min=("x", "min"), x_max=("x", "max"), y_max=("y_kept", "max")
    )  # pandas skips NaN and null alike, and gives NaN for none left
    got = got.set_index(["k", "window_start"]).sort_index()
    return got[["n", "x_min", "x_max", "y_max"]], expected.sort_index()


def big_integers_case(window: dict[str, Any], backend: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``min``, ``max`` and ``sum`` of int64 values past 2^53 are exact, and ``mean`` does
    not wrap where the sum does: (what the engine gave, what Python's integers give) per
    window and key, for ``window`` on ``backend`` (the simulator suite runs it on cuda).
    The expected frame also says which sums wrapped (``wrapped``)."""
    aggs = [{"name": f"u_{op}", "op": op, "column": "u"} for op in ("min", "max", "sum", "mean")]
    rng = np.random.default_rng(8)
    frame = random_events(rng, 120, n_keys=3, span_ms=4000, null_share=0.1)
    big = 2**62 + rng.integers(-1000, 1000, len(frame))  # three of them wrap an int64 sum
    frame["u"] = pd.array(np.where(frame["u"].isna(), None, big * rng.choice([-1, 1], len(frame))),
                          dtype="Int64")  # fmt: skip
    config = make_config({**window, "keys": ["k"], "aggregations": aggs}, backend=backend)
    sink, _ = run_engine(config, frame, chunk=50)
    got = window_frame(sink).sort_values(["window_start", "k"]).reset_index(drop=True)
    rows = []
    for _, out in got.iterrows():
        inside = frame[(frame["k"] == out["k"]) & (frame["t"] >= out["window_start"])
                       & (frame["t"] < out["window_end"]) & frame["u"].notna()]  # fmt: skip
        values = [int(v) for v in inside["u"]]
        total = sum(values)
        wrapped = (total + 2**63) % 2**64 - 2**63  # int64 arithmetic, as Polars'
        rows.append((min(values), max(values), wrapped, total / len(values), wrapped != total))
    expected = pd.DataFrame(rows, columns=["u_min", "u_max", "u_sum", "u_mean", "wrapped"])
    return got[["u_min", "u_max", "u_sum", "u_mean"]], expected


def timestamp_extremes_case(backend: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``min`` and ``max`` of a timestamp field come out as timestamps (they were int64 epoch
    ms), nulls skipped: (what the engine gave, what pandas gives) per tumbling window and key
    on ``backend`` (the simulator suite runs it on cuda)."""
    fields = {**BASE_FIELDS, "seen": {"type": "timestamp", "nullable": True}}
    aggs = [{"name": "first_seen", "op": "min", "column": "seen"},
            {"name": "last_seen", "op": "max", "column": "seen"}]  # fmt: skip
    frame = random_events(np.random.default_rng(3), 50, n_keys=2, span_ms=3000)
    frame["seen"] = pd.to_datetime(frame["t"] * 1000 + 7, unit="ms").astype("datetime64[ms]")
    frame.loc[[3, 4], "seen"] = None
    config = make_config({"type": "tumbling", "size": 1000, "keys": ["k"], "aggregations": aggs},
                         schema={"time": "t", "fields": fields}, backend=backend)  # fmt: skip
    sink, _ = run_engine(config, frame, chunk=20)
    got = window_frame(sink).sort_values(["window_start", "k"]).reset_index(drop=True)
    frame["window_start"] = frame["t"] // 1000 * 1000
    groups = frame.groupby(["window_start", "k"])["seen"]
    expected = pd.DataFrame({"first_seen": groups.min(), "last_seen": groups.max()})
    return got[["first_seen", "last_seen"]], expected.reset_index(drop=True)


def time_zone_case(window: dict[str, Any], backend: str) -> tuple[MemorySink, pd.DataFrame]:
    """A time field and a second timestamp field with ``tz: America/New_York``, pushed
    as instants in other zones (Tokyo, UTC, naive = UTC) and as epoch ms, batch by batch:
    (the engine's sink, every row pushed with ``t_ms`` and ``seen_ms`` as epoch ms) on
    ``backend``. The windows must be the epoch-ms ones, in New York time. One more row,
    at the epoch, is late."""
    fields = {**BASE_FIELDS, "t": {"type": "timestamp", "required": True, "tz": NEW_YORK},
              "seen": {"type": "timestamp", "nullable": True, "tz": NEW_YORK}}  # fmt: skip
    aggs = [{"name": "n", "op": "count"}, {"name": "x_sum", "op": "sum", "column": "x"},
            {"name": "first_seen", "op": "min", "column": "seen"},
            {"name": "last_seen", "op": "max", "column": "seen"}]  # fmt: skip
    frame = random_events(np.random.default_rng(5), 200, n_keys=3, span_ms=6000,
                          disorder_ms=1500)  # fmt: skip
    frame["seen"] = frame["t"] - 86_400_000 + np.arange(len(frame))
    frame.loc[[3, 50], "seen"] = None
    config = make_config({**window, "keys": ["k"], "aggregations": aggs, "allowed_lateness": 2000},
                         schema={"time": "t", "fields": fields}, backend=backend,
                         batching={"max_rows": 40})  # fmt: skip
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    zones = ["Asia/Tokyo", "UTC", None, "epoch ms", "+05:30"]
    for i, start in enumerate(range(0, len(frame), 40)):
        part = frame.iloc[start : start + 40].copy()
        zone = zones[i % len(zones)]
        for column in ("t", "seen"):
            if zone == "epoch ms":
                part[column] = part[column].astype("Int64")
                continue
            instants = pd.to_datetime(part[column], unit="ms").astype("datetime64[ms]")
            part[column] = (
                instants if zone is None else instants.dt.tz_localize("UTC").dt.tz_convert(zone)
            )
        engine.push(part)
    late = frame.iloc[:1].assign(t=pd.Timestamp(0, tz="Asia/Tokyo"), seen=None)
    engine.push(late)  # late for every window: it comes out on its own, zoned too
    engine.close()
    return sink, frame.rename(columns={"t": "t_ms", "seen": "seen_ms"})


NEW_YORK = "America/New_York"


def huge_moments_case(backend: str) -> tuple[list[list[float]], list[list[float]]]:
    """``var`` and ``std`` of values whose squares overflow (means past 1.3e154): numpy's
    answers (0 for equal values, inf otherwise), not NaN (a window's first pane times
    inf times zero). (what the engine gave, what numpy gives) per window."""
    aggs = [{"name": "x_var", "op": "var", "column": "x"},
            {"name": "x_std", "op": "std", "column": "x"}]  # fmt: skip
    windows = [[1e160, 1e160], [1e155, 3e155], [-1e200, -1e200, -1e200], [1.0, 2.0]]
    t = np.concatenate([1_000_000 + 1000 * w + np.arange(len(x)) for w, x in enumerate(windows)])
    frame = random_events(np.random.default_rng(1), len(t), n_keys=1, null_share=0.0)
    frame["t"] = t
    frame["x"] = pd.array(np.concatenate(windows), dtype="Float64")
    config = make_config({"type": "sliding", "size": 1000, "slide": 500, "aggregations": aggs},
                         backend=backend)  # fmt: skip
    sink, _ = run_engine(config, frame, chunk=3)
    out = window_frame(sink).sort_values("window_start")
    got = out.loc[out["window_start"] % 1000 == 0, ["x_var", "x_std"]].values.tolist()
    with np.errstate(over="ignore", invalid="ignore"):
        expected = [[np.var(x, ddof=1), np.std(x, ddof=1)] for x in windows]
    return got, expected


def large_mean_moments_case(
    window: dict[str, Any], backend: str, max_rows: int | None = None
) -> list[tuple[float, float]]:
    """``var`` of values far from 0 (means of 1e15), whose float sums round: (what the
    engine gave, the exact sample variance of the same doubles, by fractions) per window,
    in batches of ``max_rows`` (else one). The device's two-pass moments squared
    deviations around a rounded mean: a constant column had a std of 0.13, and 1e15 +
    {0, 1} a variance 56 % too large; means kept as float64 alone rounded at every batch
    merged into a row (2 % off in batches of 5)."""
    rng = np.random.default_rng(7)
    windows = [
        np.full(100, 1e15 + 0.2),
        1e15 + np.tile([0.0, 1.0], 100),
        1e15 + rng.integers(0, 2, 150).astype(float),
        3e14 + rng.normal(0, 1, 120),
    ]
    t = np.concatenate([1_000_000 + 2000 * w + np.sort(rng.integers(0, 1000, len(x)))
                        for w, x in enumerate(windows)])  # fmt: skip
    frame = random_events(rng, len(t), n_keys=1, null_share=0.0)
    frame["t"] = t
    frame["x"] = np.concatenate(windows)
    aggs = [{"name": "x_var", "op": "var", "column": "x"}]
    batching = {"max_rows": max_rows} if max_rows else {}
    config = make_config({**window, "aggregations": aggs}, backend=backend, batching=batching)
    sink, _ = run_engine(config, frame, chunk=max_rows or 47)
    out = window_frame(sink).sort_values("window_start")
    got = out.loc[(out["window_start"] - 1_000_000) % 2000 == 0, "x_var"].tolist()

    def exact(x: np.ndarray) -> float:
        values = [Fraction(float(v)) for v in x]
        mean = sum(values) / len(values)
        return float(sum((v - mean) ** 2 for v in values) / (len(values) - 1))

    return list(zip(got, [exact(x) for x in windows], strict=True))


def int64_bounds_case(backend: str) -> tuple[list[tuple[int, int | None]], list[tuple]]:
    """Rules of an int64 field past 2^53, where float64 rounds: (each row's value and
    the reason code the engine gave it, None when it passed; the same by Python's exact
    integers). ``max: 2**60`` let ``2**60 + 1`` through, ``allowed: [2**53 + 1]`` let
    ``2**53`` through."""
    big = 2**60
    fields = {
        "t": {"type": "int64", "required": True},
        "k": {"type": "int64", "required": True},
        "u": {"type": "int64", "nullable": True, "min": -big - 3, "max": big},
        "v": {"type": "int64", "nullable": True, "allowed": [2**53 + 1, -(2**62) - 1, 7]},
    }
    config = make_config(
        {"type": "tumbling", "size": 1000, "aggregations": [{"name": "n", "op": "count"}]},
        schema={"time": "t", "fields": fields}, backend=backend,
    )  # fmt: skip
    u = [big - 1, big, big + 1, big + 2, -big - 3, -big - 4, None, 5, 5, 5, 5]
    v = [7, 7, 7, 7, 7, 7, 7, 2**53, 2**53 + 1, -(2**62) - 1, -(2**62)]
    n = len(u)
    table = pa.table({"t": pa.array(1_000_000 + np.arange(n)), "k": pa.array(np.zeros(n, int)),
                      "u": pa.array(u, pa.int64()), "v": pa.array(v, pa.int64())})  # fmt: skip
    sink, _ = run_engine(config, table)
    quarantine = sink.result("quarantine")
    got = {}
    if quarantine is not None:
        rows, reasons = quarantine.column("_row"), quarantine.column("_reason")
        got = dict(zip(rows.to_pylist(), reasons.to_pylist(), strict=True))

    def expected(row: int) -> str | None:
        if u[row] is not None and u[row] < -big - 3:
            return f"u={u[row]} is below min {-big - 3}"
        if u[row] is not None and u[row] > big:
            return f"u={u[row]} is above max {big}"
        if v[row] not in fields["v"]["allowed"]:
            return f"v={v[row]} is not one of {fields['v']['allowed']}"
        return None

    return [(row, got.get(row)) for row in range(n)], [(row, expected(row)) for row in range(n)]


def timestamp_bounds_case(backend: str) -> tuple[list[int], list[int]]:
    """Bounds of a timestamp time field past 2^53 ms, where float64 rounds: (the rows the
    engine quarantined, the rows Python's exact integers put outside the bounds).
    ``max: 2**60`` let ``2**60 + 1`` through, and a session gap of 2^61 after an event at
    ``2**61 + 100`` ended past the last watermark: valid, but in no window."""
    big = 2**60
    fields = {"t": {"type": "timestamp", "min": -big - 3, "max": big},
              "k": {"type": "int64"}}  # fmt: skip
    config = make_config(
        {"type": "session", "gap": 1000, "aggregations": [{"name": "n", "op": "count"}]},
        schema={"time": "t", "fields": fields}, backend=backend,
    )  # fmt: skip
    t = [big - 1, big, big + 1, big + 100, -big - 3, -big - 4, -big - 2, 5]
    table = pa.table({"t": pa.array(t, pa.timestamp("ms")), "k": pa.array([0] * len(t))})
    sink, summary = run_engine(config, table)
    assert summary["accounted"]
    quarantine = sink.result("quarantine")
    got = [] if quarantine is None else sorted(quarantine.column("_row").to_pylist())
    return got, [row for row, value in enumerate(t) if not -big - 3 <= value <= big]


_SQL_AGG = {
    "count": "count(*)",
    "sum": "sum({c})",
    "mean": "avg({c})",
    "std": "stddev_samp({c})",
    "var": "var_samp({c})",
    "min": "min({c})",
    "max": "max({c})",
    "count_distinct": "count(DISTINCT {c})",
}


def _sql_value(v: Any) -> str:
    return f"'{v}'" if isinstance(v, str) else str(v)


def sql_aggregations(aggs: list[dict[str, Any]]) -> str:
    parts = []
    for agg in aggs:
        if agg["op"] == "quantile":
            continue
        expr = _SQL_AGG[agg["op"]].format(c=agg.get("column"))
        if agg.get("where"):
            conds = []
            for col, val in agg["where"].items():
                vals = val if isinstance(val, list) else [val]
                conds.append(f"{col} IN ({', '.join(_sql_value(v) for v in vals)})")
            expr += f" FILTER (WHERE {' AND '.join(conds)})"
            if agg["op"] == "count_distinct" or agg["op"] == "count":
                pass
        parts.append(f"{expr} AS {agg['name']}")
    return ", ".join(parts)


def duckdb_windows(
    frame: pd.DataFrame, window: dict[str, Any], aggs: list[dict[str, Any]]
) -> pd.DataFrame:
    """The expected output of a tumbling/sliding/session window, computed by DuckDB."""
    keys = window.get("keys", [])
    key_list = ", ".join(keys)
    key_sel = f"{key_list}, " if keys else ""
    import duckdb  # here, so the CUDA tests import this module where DuckDB is absent

    con = duckdb.connect()
    con.register("events", pa.Table.from_pandas(frame, preserve_index=False))
    if window["type"] == "session":
        gap = window["gap"]
        part = f"PARTITION BY {key_list}" if keys else ""
        sql = f"""
        WITH o AS (SELECT *, CASE WHEN t - lag(t) OVER (w) <= {gap} THEN 0 ELSE 1 END AS brk
                   FROM events WINDOW w AS ({part} ORDER BY t)),
             s AS (SELECT *, sum(brk) OVER ({part} ORDER BY t ROWS UNBOUNDED PRECEDING) AS sid
                   FROM o)
        SELECT min(t) AS window_start, max(t) + {gap} AS window_end, {key_sel}
               {sql_aggregations(aggs)}
        FROM s GROUP BY {key_sel} sid"""
    else:
        size = window["size"]
        slide = window.get("slide", size)
        sql = f"""
        WITH x AS (SELECT *, unnest(range(CAST(floor((t - {size}) / {slide}) AS BIGINT) + 1,
                                          CAST(floor(t / {slide}) AS BIGINT) + 1)) AS kk
                   FROM events)
        SELECT kk * {slide} AS window_start, kk * {slide} + {size} AS window_end, {key_sel}
               {sql_aggregations(aggs)}
        FROM x GROUP BY kk, {key_sel.rstrip(", ")}""".rstrip(", ")
        if not keys:
            sql = sql.replace("GROUP BY kk, ", "GROUP BY kk")
    result = con.execute(sql).df()
    return result.sort_values(["window_start", *keys], na_position="last").reset_index(drop=True)


def assert_frames_match(actual: pd.DataFrame, expected: pd.DataFrame, columns: list[str]) -> None:
    """Equal row sets; floats within 1e-9 relative (nulls equal nulls)."""
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    order = [c for c in ("window_start", "k", "s", "u", "window_end") if c in columns]
    actual = actual.sort_values(order, na_position="last").reset_index(drop=True)
    expected = expected.sort_values(order, na_position="last").reset_index(drop=True)
    for col in columns:
        a = pd.array(actual[col]).astype("Float64") if col not in ("s",) else actual[col]
        e = pd.array(expected[col]).astype("Float64") if col not in ("s",) else expected[col]
        if col == "s":
            assert list(pd.Series(a).fillna("<null>")) == list(pd.Series(e).fillna("<null>")), col
            continue
        a_null = pd.isna(a)
        e_null = pd.isna(e)
        assert (np.asarray(a_null) == np.asarray(e_null)).all(), f"null pattern differs in {col}"
        av = np.asarray(a[~a_null], dtype=np.float64)
        ev = np.asarray(e[~e_null], dtype=np.float64)
        np.testing.assert_allclose(av, ev, rtol=1e-9, atol=1e-9, err_msg=col)


def wait_for(condition: Callable[[], bool], seconds: float = 120.0) -> bool:
    """Whether ``condition`` came true within ``seconds`` (a cold first run compiles)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def summaries_read_during(engine: Engine, pushes: Callable[[], None]) -> tuple[int, list]:
    """(reads, torn) of ``engine.summary()`` read from another thread while ``pushes``
    runs: how many reads, and the events of those that did not add up."""
    torn: list[dict] = []
    reads = [0]
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            summary = engine.summary()
            reads[0] += 1
            if not summary["accounted"]:
                torn.append(summary["events"])
            time.sleep(0.0005)  # a reader that spins starves the pushes of the GIL

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        pushes()
    finally:
        done.set()
        thread.join()
    return reads[0], torn


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """A started daemon thread running ``call``, and the list its result or exception
    goes to (empty while it runs: a deadlock leaves it so)."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as error:
            out.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def dictionary_chunks_case(rows: int, chunk: int) -> tuple[pd.DataFrame, pa.Table]:
    """Random events, and the same as Arrow with column ``s`` made of chunks of ``chunk``
    rows that each bring their own 100 strings as int8 codes (as Parquet's row groups or
    concatenated tables do): no one dictionary of two chunks fits int8."""
    frame = random_events(np.random.default_rng(0), rows)
    base = pa.Table.from_pandas(frame, preserve_index=False)
    starts = range(0, rows, chunk)
    codes = [pa.array(np.arange(min(chunk, rows - c)) % 100, pa.int8()) for c in starts]
    words = [pa.array([f"v{c}_{j}" for j in range(100)]) for c in starts]
    pairs = zip(codes, words, strict=True)
    column = pa.chunked_array([pa.DictionaryArray.from_arrays(c, w) for c, w in pairs])
    frame["s"] = column.cast(pa.string()).to_pylist()
    return frame, base.set_column(base.schema.get_field_index("s"), "s", column)


@contextlib.contextmanager
def validation_failing_at(call: int, message: str) -> Iterator[None]:
    """Fault injection: the ``call``-th batch's validation raises ``RuntimeError(message)``
    (its rows are then dead-lettered)."""
    from gpu_engine.validation import Validator

    original = Validator.validate
    calls = {"n": 0}

    def flaky(self, table, source, first_row):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == call:
            raise RuntimeError(message)
        return original(self, table, source, first_row)

    Validator.validate = flaky  # type: ignore[method-assign]
    try:
        yield
    finally:
        Validator.validate = original  # type: ignore[method-assign]


def late_rows_case(backend: str) -> tuple[MemorySink, pd.DataFrame]:
    """Late rows beside quarantined ones in the same batches, pushed from two sources: the
    engine's outputs and the frame pushed, row ``i`` of source ``src-j`` being
    ``frame[(frame.src == j)].iloc[i]`` (the simulator suite runs it on cuda)."""
    rng = np.random.default_rng(31)
    n = 600
    frame = random_events(rng, n, n_keys=3, span_ms=15_000, disorder_ms=2_500)
    frame["e"] = frame["e"].where(rng.random(n) > 0.08, np.int8(9))  # not allowed: quarantined
    frame["src"] = rng.integers(0, 2, n)
    window = {"type": "tumbling", "size": 1000, "allowed_lateness": 500}
    config = make_config(
        {**window, "aggregations": [{"name": "n", "op": "count"}]},
        backend=backend,
        batching={"max_rows": 100},
    )
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    for start in range(0, n, 60):  # pushes of 60 rows, each split between the sources
        part = frame.iloc[start : start + 60]
        for j in (0, 1):
            engine.push(part[part["src"] == j].drop(columns="src"), source=f"src-{j}")
    engine.close()
    return sink, frame
