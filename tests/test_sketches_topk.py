"""Quantile and distinct sketches against exact answers; top-k against a pandas oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_testing import duckdb_windows, make_config, random_events, run_engine, window_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_engine.config import parse_config
from gpu_engine.engine import Engine
from gpu_engine.io.sinks import MemorySink
from kernels.sketches import ALPHA

QUANTILE_AGGS = [
    {"name": f"q{int(q * 100)}", "op": "quantile", "column": "x", "q": q}
    for q in (0.0, 0.25, 0.5, 0.9, 0.99, 1.0)
]


def _exact_lower_quantiles(frame: pd.DataFrame, window: dict, q: float) -> pd.DataFrame:
    size, slide = window["size"], window.get("slide", window["size"])
    rows = []
    for _, row in frame.dropna(subset=["x"]).iterrows():
        t = int(row.t)
        for k in range(int(np.floor((t - size) / slide)) + 1, t // slide + 1):
            rows.append((k * slide, int(row.k), float(row.x)))
    exploded = pd.DataFrame(rows, columns=["window_start", "k", "x"])
    return (
        exploded.groupby(["window_start", "k"])["x"]
        .apply(lambda v: np.quantile(v.to_numpy(), q, method="lower"))
        .rename("exact")
        .reset_index()
    )


@pytest.mark.parametrize(
    "window", [{"type": "tumbling", "size": 2000}, {"type": "sliding", "size": 3000, "slide": 1000}]
)
def test_quantile_relative_error_within_one_percent(window, rng) -> None:
    frame = random_events(rng, 4000, n_keys=4, span_ms=12_000, disorder_ms=300)
    # Heavy tails, negatives and exact zeros, all in one stream.
    x = rng.lognormal(3.0, 2.0, len(frame)) * rng.choice([-1.0, 1.0, 1.0, 1.0], len(frame))
    x[rng.random(len(frame)) < 0.05] = 0.0
    frame["x"] = pd.array(np.where(frame["x"].isna(), np.nan, x), dtype="Float64")
    spec = {**window, "keys": ["k"], "allowed_lateness": 300}
    data = {
        "schema": {"time": "t", "fields": make_config(spec).event_schema.model_dump()["fields"]},
        "windows": [{"name": "w", "aggregations": QUANTILE_AGGS, **spec}],
        "backend": "cpu",
    }
    sink, _ = run_engine(parse_config(data), frame, chunk=333)
    actual = window_frame(sink)
    for agg in QUANTILE_AGGS:
        exact = _exact_lower_quantiles(frame, spec, agg["q"])
        merged = actual.merge(exact, on=["window_start", "k"], how="inner")
        assert len(merged) == len(exact) == actual[agg["name"]].notna().sum()
        err = np.abs(merged[agg["name"]] - merged["exact"])
        assert (err <= 0.01 * np.abs(merged["exact"]) + 1e-300).all(), agg
        assert ALPHA < 0.01


def _distinct_state_count(values: np.ndarray, parts: int) -> int:
    """count_distinct over ``values`` fed in ``parts`` batches and panes (merge path)."""
    config = parse_config({
        "schema": {"time": "t", "fields": {"t": {"type": "int64"}, "u": {"type": "int64"}}},
        "windows": [{"name": "w", "type": "tumbling", "size": 1_000_000,
                     "aggregations": [{"name": "d", "op": "count_distinct", "column": "u"}]}],
        "backend": "cpu",
    })  # fmt: skip
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    t = np.linspace(0, 999_999, len(values)).astype(np.int64)
    for chunk_t, chunk_u in zip(np.array_split(t, parts), np.array_split(values, parts),
                                strict=True):  # fmt: skip
        engine.push({"t": chunk_t, "u": chunk_u})
    engine.close()
    result = sink.result("windows/w")
    assert result is not None
    return int(result.column("d")[0].as_py())


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=999), st.integers(1, 5))
def test_count_distinct_exact_below_a_thousand(values, parts) -> None:
    assert _distinct_state_count(np.array(values, dtype=np.int64), parts) == len(set(values))


def test_count_distinct_at_100k_within_two_percent(rng) -> None:
    values = rng.integers(0, 2**40, 150_000)
    expected = len(np.unique(values))
    assert expected > 100_000
    got = _distinct_state_count(values, 7)
    assert abs(got - expected) <= 0.02 * expected


@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_ties_broken_by_key_ascending(k, rng) -> None:
    frame = random_events(rng, 2000, n_keys=12, span_ms=8000)
    frame["e"] = (frame["k"] % 2).astype(np.int8)  # many ties in "likes"
    window = {"type": "sliding", "size": 2000, "slide": 1000, "keys": ["k"]}
    config = make_config({**window, "top_k": {"by": "likes", "k": k}})
    sink, _ = run_engine(config, frame, chunk=500)
    actual = window_frame(sink)[["window_start", "k", "likes"]].reset_index(drop=True)
    full = duckdb_windows(frame, window, [{"name": "likes", "op": "count", "where": {"e": 1}}])
    expected = (
        full.sort_values(["window_start", "likes", "k"], ascending=[True, False, True])
        .groupby("window_start")
        .head(k)
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(actual, expected[["window_start", "k", "likes"]],
                                  check_dtype=False)  # fmt: skip
    assert (actual.groupby("window_start").size() <= k).all()


def test_sketches_of_all_null_columns(rng) -> None:
    frame = random_events(rng, 200, span_ms=4000, null_share=1.0)
    aggs = [*QUANTILE_AGGS[:2], {"name": "d", "op": "count_distinct", "column": "u"}]
    spec = {"type": "sliding", "size": 2000, "slide": 1000, "keys": ["k"]}
    data = {
        "schema": {"time": "t", "fields": make_config(spec).event_schema.model_dump()["fields"]},
        "windows": [{"name": "w", "aggregations": aggs, **spec}],
    }
    sink, _ = run_engine(parse_config(data), frame, chunk=50)
    out = window_frame(sink)
    assert len(out) > 0
    assert out["q0"].isna().all() and out["q25"].isna().all()
    assert (out["d"] == 0).all()


def test_quantiles_with_nan_and_infinities_sort_them_as_numpy_does(rng) -> None:
    """In an ``allow_nan`` field NaN and ±inf are values: -inf first, NaN after +inf (as
    ``np.sort`` orders them); the lower quantile is then that value or within 1 %."""
    import pyarrow as pa

    n = 400
    frame = random_events(rng, n, n_keys=3, span_ms=4000, null_share=0.0).drop(columns="x")
    x = rng.lognormal(0.0, 2.0, n) * rng.choice([-1.0, 1.0], n)
    x[rng.random(n) < 0.08] = np.nan
    x[rng.random(n) < 0.04] = np.inf
    x[rng.random(n) < 0.04] = -np.inf
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column("x", pa.array(x))
    fields = {**make_config({"type": "tumbling", "size": 1000}).event_schema.model_dump()["fields"],
              "x": {"type": "float64", "allow_nan": True}}  # fmt: skip
    spec = {"type": "tumbling", "size": 2000, "keys": ["k"]}
    data = {"schema": {"time": "t", "fields": fields},
            "windows": [{"name": "w", "aggregations": QUANTILE_AGGS, **spec}]}  # fmt: skip
    sink, _ = run_engine(parse_config(data), table, chunk=100)
    out = window_frame(sink)
    frame["x"], frame["window_start"] = x, frame["t"] // 2000 * 2000
    checked = 0
    for (start, k), group in frame.groupby(["window_start", "k"]):
        row = out[(out["window_start"] == start) & (out["k"] == k)].iloc[0]
        values = np.sort(group["x"].to_numpy())  # NaN last
        for agg in QUANTILE_AGGS:
            want = values[int(np.floor(agg["q"] * (len(values) - 1)))]
            got = row[agg["name"]]
            if np.isfinite(want):
                assert abs(got - want) <= ALPHA * 2 * abs(want), (agg["name"], got, want)
            else:
                assert got == want or (np.isnan(want) and np.isnan(got)), (agg["name"], got)
                checked += 1
    assert checked > 0  # some quantiles were infinite or NaN


def test_count_distinct_counts_every_nan_as_one_value(rng) -> None:
    """NaNs of either sign and any payload are one value, as -0.0 and 0.0 are."""
    import pyarrow as pa

    frame = random_events(rng, 8, n_keys=1, span_ms=100, null_share=0.0).drop(columns="x")
    bits = np.array([0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000001,
                     0x7FF0000000000001], dtype=np.uint64).view(np.float64)  # fmt: skip
    x = np.r_[bits, 0.0, -0.0, 1.5, 1.5]
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column("x", pa.array(x))
    fields = {**make_config({"type": "tumbling", "size": 1000}).event_schema.model_dump()["fields"],
              "x": {"type": "float64", "allow_nan": True}}  # fmt: skip
    aggs = [{"name": "d", "op": "count_distinct", "column": "x"}]
    data = {
        "schema": {"time": "t", "fields": fields},
        "windows": [{"name": "w", "type": "tumbling", "size": 1000, "aggregations": aggs}],
    }
    sink, _ = run_engine(parse_config(data), table)
    assert window_frame(sink)["d"].tolist() == [3]  # NaN, 0.0, 1.5


def test_quantiles_of_the_largest_and_smallest_floats_stay_within_one_percent() -> None:
    """Buckets near the float limits: 2 * exp(k log gamma) overflowed past ~9e307, and
    values below 1e-300 all read as 0."""
    import pyarrow as pa

    x = np.array([1e308, 1.7976931348623157e308, -1.7e308, 1e-310, 5e-301, 2.3e-308, 7.5])
    n = len(x)
    frame = pd.DataFrame({"t": 1_000_000 + np.arange(n), "k": np.arange(n), "s": "a",
                          "e": np.int8(0), "u": 1})  # fmt: skip
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column("x", pa.array(x))
    aggs = [{"name": "q", "op": "quantile", "column": "x", "q": 0.5}]
    window = {"type": "tumbling", "size": 1000, "keys": ["k"], "aggregations": aggs}
    sink, _ = run_engine(make_config(window), table)
    got = window_frame(sink).sort_values("k")["q"].to_numpy()
    assert np.isfinite(got).all()
    np.testing.assert_array_less(np.abs(got - x), 0.01 * np.abs(x))
