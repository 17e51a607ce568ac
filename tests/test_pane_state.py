"""Pane state: in-place compaction keeps exactly what a fresh regroup keeps, sketches included."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from engine_testing import ALL_AGGS, make_config, random_events

from gpu_engine.windows.aggregations import AggregationPlan
from gpu_engine.windows.panes import PaneState


def _state_and_plan(rng: np.random.Generator) -> tuple[PaneState, AggregationPlan]:
    aggs = [*ALL_AGGS, {"name": "q", "op": "quantile", "column": "x", "q": 0.5}]
    config = make_config({"type": "tumbling", "size": 1000, "keys": ["k"], "aggregations": aggs})
    plan = AggregationPlan(config.windows[0].aggregations, config.event_schema.fields)
    state = PaneState(plan, 2, capacity=16)
    for _ in range(3):  # several batches, so rows grow past the first capacity
        frame = random_events(rng, 400, n_keys=7, span_ms=9000)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        keys = np.stack([frame["t"].to_numpy() // 1000, frame["k"].to_numpy()], axis=1)
        state.add_events(keys, plan.prepare(table))
    return state, plan


def _finals(state: PaneState, plan: AggregationPlan) -> tuple[np.ndarray, list[list]]:
    n = len(state)
    order = np.lexsort(state.keys.T[::-1])
    values = plan.finalize(state.agg, n, state.sketch_results(n))
    return state.keys[order], [
        np.asarray(array.to_pylist(), dtype=object)[order] for array in values
    ]


@pytest.mark.parametrize("seed", range(3))
def test_keep_rows_equals_regroup(seed) -> None:
    rng = np.random.default_rng(seed)
    state, plan = _state_and_plan(rng)
    first_live = int(np.median(state.keys[:, 0]))
    alive = np.flatnonzero(state.keys[:, 0] >= first_live)
    expected = state.regroup(alive, state.keys[alive], 2)
    state.keep_rows(alive)
    assert len(state) == len(alive)
    _assert_same(state, expected, plan)
    # the compacted state takes new events into the same rows as the fresh one
    more = np.stack([np.full(5, first_live + 100), np.arange(5)], axis=1)  # new rows
    frame = random_events(rng, 5, n_keys=7)
    values = plan.prepare(pa.Table.from_pandas(frame, preserve_index=False))
    state.add_events(more, values)
    expected.add_events(more, values)
    _assert_same(state, expected, plan)


def _assert_same(state: PaneState, expected: PaneState, plan: AggregationPlan) -> None:
    keys_a, values_a = _finals(state, plan)
    keys_b, values_b = _finals(expected, plan)
    np.testing.assert_array_equal(keys_a, keys_b)
    for a, b in zip(values_a, values_b, strict=True):
        np.testing.assert_allclose(
            np.array(a, dtype=float), np.array(b, dtype=float), rtol=1e-12, equal_nan=True
        )
