"""Sketch entries on the CPU: per-event and weighted counting against a pandas count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpu_engine.windows.aggregations import BatchValues
from gpu_engine.windows.state import SketchEntries


def _entries(state: SketchEntries) -> pd.Series:
    keys = state.index.keys
    return pd.Series(
        state.counts[: len(state)], index=pd.MultiIndex.from_arrays(keys.T, names=["r", "a", "k"])
    ).sort_index()


def _values(inputs: list[tuple[int, np.ndarray, np.ndarray]]) -> BatchValues:
    none = np.empty((0, 0))
    return BatchValues(none, none, none, np.empty(0, np.int64), inputs)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("masked", [False, True])
def test_event_entries_count_each_mine_event_once(seed, masked) -> None:
    rng = np.random.default_rng(seed)
    state, expected = SketchEntries(capacity=16), []  # starts small: the index grows
    for _ in range(3):
        n = int(rng.integers(1, 3000))
        ids = rng.integers(0, 50, n)
        mine = rng.random(n) < 0.6 if masked else None
        inputs = []
        for a in (2, 5):  # two aggregations, each over its own subset of the events
            index = np.flatnonzero(rng.random(n) < 0.8)
            keys = rng.integers(-(2**63), 2**63 - 1, len(index), dtype=np.int64)
            keys[: len(index) // 2] = rng.integers(-3, 3, len(index) // 2)  # many repeats
            inputs.append((a, index, keys))
            take = mine[index] if mine is not None else np.ones(len(index), bool)
            expected.append(pd.DataFrame({"r": ids[index][take], "a": a, "k": keys[take]}))
        state.add_events(ids, _values(inputs), mine)
    oracle = pd.concat(expected).value_counts().sort_index()
    got = _entries(state)
    assert got.index.equals(oracle.index)
    np.testing.assert_array_equal(got.to_numpy(), oracle.to_numpy())


def test_weighted_and_event_entries_share_their_keys() -> None:
    """Entries added per event and by key tuples land in one entry per key, after growth too."""
    rng = np.random.default_rng(7)
    state = SketchEntries(capacity=16)
    ids = rng.integers(0, 20, 500)
    keys = rng.integers(0, 40, 500)
    state.add_events(ids, _values([(3, np.arange(500), keys)]))
    size = len(state)
    tuples = np.stack([ids, np.full(500, 3), keys], axis=1)
    weights = rng.integers(1, 1000, 500)
    state.add(tuples, weights)
    assert len(state) == size  # every key was already there
    state.add(np.array([[999, 3, 1]]))  # a new key, default weight one
    extra = rng.integers(0, 10**6, (5000, 3))  # forces the index to grow and rehash
    state.add(extra)
    all_keys = np.concatenate([tuples, tuples, [[999, 3, 1]], extra])
    oracle = (
        pd.DataFrame(all_keys, columns=["r", "a", "k"])
        .assign(w=np.concatenate([np.ones(500, np.int64), weights, [1], np.ones(5000, np.int64)]))
        .groupby(["r", "a", "k"])["w"]
        .sum()
    )
    got = _entries(state)
    assert got.index.equals(oracle.index)
    np.testing.assert_array_equal(got.to_numpy(), oracle.to_numpy())
    np.testing.assert_array_equal(state.index.find(tuples), state.index.insert(tuples))
