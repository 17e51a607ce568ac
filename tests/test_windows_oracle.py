"""Window results against DuckDB on random data: every aggregation, window type and key kind."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from engine_testing import (
    ALL_AGGS,
    assert_frames_match,
    duckdb_windows,
    make_config,
    random_events,
    run_engine,
    window_frame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

AGG_NAMES = [a["name"] for a in ALL_AGGS]

WINDOWS: list[dict[str, Any]] = [
    {"type": "tumbling", "size": 1000, "keys": ["k"]},
    {"type": "sliding", "size": 3000, "slide": 1000, "keys": ["k"]},
    {"type": "sliding", "size": 2000, "slide": 500, "keys": ["k", "s"]},
    {"type": "tumbling", "size": 5000, "keys": []},
    {"type": "session", "gap": 300, "keys": ["k"]},
    {"type": "session", "gap": 1000, "keys": ["s"]},
]


def _check(frame: pd.DataFrame, window: dict[str, Any], chunk: int, lateness: int) -> None:
    config = make_config({**window, "allowed_lateness": lateness})
    sink, summary = run_engine(config, frame, chunk=chunk)
    assert summary["events"]["late"] == 0
    actual = window_frame(sink)
    expected = duckdb_windows(frame, window, ALL_AGGS)
    keys = window.get("keys", [])
    assert_frames_match(actual, expected, ["window_start", "window_end", *keys, *AGG_NAMES])


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"{w['type']}-{'-'.join(w['keys'])}")
def test_matches_duckdb_on_disordered_stream(window: dict[str, Any], rng) -> None:
    frame = random_events(rng, 3000, n_keys=7, span_ms=30_000, disorder_ms=800)
    _check(frame, window, chunk=401, lateness=800)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    n_keys=st.integers(1, 6),
    disorder=st.integers(0, 1500),
    chunk=st.integers(7, 150),
    null_share=st.sampled_from([0.0, 0.3, 1.0]),
    window=st.sampled_from(WINDOWS),
)
def test_matches_duckdb_property(seed, n, n_keys, disorder, chunk, null_share, window) -> None:
    rng = np.random.default_rng(seed)
    frame = random_events(rng, n, n_keys, span_ms=10_000, disorder_ms=disorder,
                          null_share=null_share)  # fmt: skip
    _check(frame, window, chunk=chunk, lateness=disorder)


def test_nullable_int_key_is_a_group_of_its_own(rng) -> None:
    frame = random_events(rng, 500, span_ms=5000)
    window = {"type": "tumbling", "size": 1000, "keys": ["u"]}
    _check(frame, window, chunk=97, lateness=0)
    assert frame["u"].isna().any()
