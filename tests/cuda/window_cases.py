"""Shared cases of the device window tests: a plan with every aggregation kind,
random pane batches, and a group-by-group comparison of two ``WindowGroups``.

Imported only by simulator / GPU test modules (it imports the CUDA backend).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the core suite's helpers

from engine_testing import ALL_AGGS, BASE_FIELDS

from gpu_engine.backend.device_state import DevicePaneState
from gpu_engine.config.models import AggregationSpec, FieldSpec
from gpu_engine.windows.aggregations import AggregationPlan
from gpu_engine.windows.panes import PaneState, WindowGroups

FIELDS = {name: FieldSpec.model_validate(spec) for name, spec in BASE_FIELDS.items()}
AGGS = [
    *ALL_AGGS,  # count, count where, sum/mean/std/min/max float, var where, sum int, distinct
    {"name": "x_p50", "op": "quantile", "column": "x", "q": 0.5},
    {"name": "u_min", "op": "min", "column": "u"},  # an integer min (integer output)
    {"name": "u_mean", "op": "mean", "column": "u"},
    {"name": "n_e2", "op": "count", "where": {"e": 2}},
]
PLAN = AggregationPlan([AggregationSpec.model_validate(a) for a in AGGS], FIELDS)


def random_batch(rng: np.random.Generator, n: int, panes: tuple[int, int], n_keys: int = 4):
    """Pane keys ``(pane, k, s-code)`` and the prepared values of ``n`` random events."""
    x = rng.normal(100.0, 30.0, n)
    u = rng.integers(0, 12, n)
    table = pa.table(
        {
            "k": pa.array(rng.integers(0, n_keys, n), pa.int64()),
            "e": pa.array(rng.integers(0, 5, n), pa.int8()),
            "x": pa.array(x, mask=rng.random(n) < 0.15),
            "u": pa.array(u, mask=rng.random(n) < 0.15),
        }
    )
    keys = np.c_[
        rng.integers(panes[0], panes[1], n),
        table.column("k").to_numpy(),
        rng.integers(0, 2, n),
    ].astype(np.int64)
    return keys, PLAN.prepare(table)


def new_states(chunk_rows: int = 1 << 18) -> tuple[PaneState, DevicePaneState]:
    return PaneState(PLAN, 3), DevicePaneState(PLAN, 3, capacity=16, chunk_rows=chunk_rows)


def _sorted(groups: WindowGroups) -> tuple[np.ndarray, np.ndarray, list[pa.Array]]:
    assert np.all(np.diff(groups.k) >= 0), "k must be non-decreasing"
    order = np.lexsort((*groups.atoms.T[::-1], groups.k))
    take = pa.array(order)
    return groups.k[order], groups.atoms[order], [v.take(take) for v in groups.values]


def assert_same_groups(cpu: WindowGroups | None, gpu: WindowGroups | None) -> None:
    assert (cpu is None) == (gpu is None)
    if cpu is None or gpu is None:
        return
    k_c, atoms_c, values_c = _sorted(cpu)
    k_g, atoms_g, values_g = _sorted(gpu)
    np.testing.assert_array_equal(k_c, k_g)
    np.testing.assert_array_equal(atoms_c, atoms_g)
    assert len(values_c) == len(values_g) == len(AGGS)
    for spec, a, b in zip(AGGS, values_c, values_g, strict=True):
        assert a.type == b.type, spec["name"]
        np.testing.assert_array_equal(a.is_valid(), b.is_valid(), err_msg=spec["name"])
        if pa.types.is_integer(a.type):
            assert a.equals(b), spec["name"]
        else:
            np.testing.assert_allclose(
                a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False),
                rtol=1e-9, atol=0, err_msg=spec["name"],
            )  # fmt: skip
