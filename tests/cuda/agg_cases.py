"""Shared cases of the device aggregation tests: events with given row ids through the CPU
and CUDA update kernels, compared state column by state column.

Imported only by simulator / GPU test modules (it imports the CUDA kernels).
"""

from __future__ import annotations

import numpy as np

from kernels import aggregate as cpu
from kernels.cuda import aggregate as gpu

FLOAT_OPS = (cpu.SUM, cpu.MEAN, cpu.STD, cpu.VAR)
# (op, column, mask, is_int): mask 0 = a ``where`` filter, mask 1 = column 0 not null
PLAN = [  # every kind of aggregation
    (cpu.COUNT, -1, -1, False),
    (cpu.COUNT, -1, 0, False),
    (cpu.SUM, 0, 1, False),
    (cpu.SUM, 1, -1, True),
    (cpu.MEAN, 0, 1, False),
    (cpu.MEAN, 1, 0, True),
    (cpu.MIN, 0, 1, False),
    (cpu.MAX, 0, 1, False),
    (cpu.MIN, 2, 0, False),
    (cpu.STD, 0, 1, False),
    (cpu.VAR, 2, 0, False),
    (cpu.STD, 2, -1, False),
    (cpu.SUM, 1, 0, True),
    (cpu.MIN, 1, -1, True),
    (cpu.MAX, 1, 0, True),
    (cpu.QUANTILE, 0, 1, False),
    (cpu.DISTINCT, -1, 0, False),
]
# The benchmark's shape: every accumulator fits a block's shared tiles (gpu.TILE_WIDTH).
NARROW = [(cpu.COUNT, -1, -1, False), (cpu.COUNT, -1, 0, False), (cpu.SUM, 0, -1, False),
          (cpu.MEAN, 0, -1, False), (cpu.STD, 0, -1, False), (cpu.MIN, 0, -1, False),
          (cpu.MAX, 0, -1, False)]  # fmt: skip


def update_both(ids: np.ndarray, plan: list[tuple[int, int, int, bool]], dtype: str,
                rng: np.random.Generator, rtol: float = 1e-9) -> None:  # fmt: skip
    """Add events with the given row ids through both kernels twice (two batches into one
    state) and compare every state column: counts, integer sums, minima and maxima
    exactly, float sums and moments to ``rtol``. The plan's column 0 is normal values,
    1 integers (also as floats), 2 exponential; mask 0 holds 30 % of events, mask 1 90 %."""
    ops, col_of, mask_of = (np.array([p[i] for p in plan], np.int64) for i in range(3))
    is_int = np.array([p[3] for p in plan], np.bool_)
    rows = int(ids.max()) + 1
    c_state, g_state = cpu.AggState(ops, capacity=rows), gpu.DeviceAggState(ops, capacity=rows)
    n = len(ids)
    for _ in range(2):
        x = rng.normal(0.0, 100.0, n)
        ints = rng.integers(-50, 50, n)
        fcols = np.stack([x, ints.astype(np.float64), rng.exponential(3.0, n)]).astype(dtype)
        icols = np.stack([np.zeros(n, np.int64), ints, np.zeros(n, np.int64)])
        masks = np.stack([rng.random(n) < 0.3, rng.random(n) < 0.9]).astype(np.uint8)
        cpu.update_events(ids, ops, col_of, mask_of, is_int, fcols.astype(np.float64), icols,
                          masks, c_state.rows, c_state.ist, c_state.isum, c_state.f0,
                          c_state.f1, c_state.moments)  # fmt: skip
        gpu.update_events(ids, ops, col_of, mask_of, is_int, fcols, icols, masks, g_state)
    g = g_state.to_host(rows)
    np.testing.assert_array_equal(g.rows[:rows], c_state.rows[:rows])
    np.testing.assert_array_equal(g.ist[:rows], c_state.ist[:rows])
    exact = cpu.exact_isum(ops)  # STD/VAR's: a mean's low part, rounded (f0's tolerance)
    np.testing.assert_array_equal(g.isum[:rows, exact], c_state.isum[:rows, exact])
    for a, op in enumerate(ops):
        tol = rtol if op in FLOAT_OPS else 0
        np.testing.assert_allclose(g.f0[:rows, a], c_state.f0[:rows, a], rtol=tol, atol=1e-9)
        np.testing.assert_allclose(g.f1[:rows, a], c_state.f1[:rows, a], rtol=tol, atol=1e-6)
