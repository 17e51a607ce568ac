"""``benchmarks.atomics``' count of global atomics, on events small enough to count by hand.

The benchmark's plan adds each valid event to its row's count and to the float sum of
``watch_ms`` (pass 1; ``likes`` only under its mask) and its squared deviation (pass 2).
In the block's tables the counts are native int32 adds, the sums compare-and-store loops.
"""

from __future__ import annotations

import numpy as np

from benchmarks.atomics import count_atomics
from benchmarks.gpu_kernels import COL_OF, IS_INT, MASK_OF, OPS
from kernels.cuda.aggregate import (
    COUNT_WHERE,
    FLOAT_SUM,
    HIGHEST,
    LOWEST,
    ROWS,
    SQUARES,
    TILE_PROBES,
    TILE_SLOTS,
    plan_tables,
    tile_columns,
)

STEPS = plan_tables(OPS, COL_OF, MASK_OF, IS_INT)[0]
KEPT, NATIVE = tile_columns(STEPS)


def _count(ids: list[int], tile: int, likes: list[int] | None = None,
           native: np.ndarray = NATIVE) -> list[tuple[int, ...]]:  # fmt: skip
    """(pass 1, pass 2) of ``count_atomics``: 4 global figures, then 3 shared ones."""
    ids_ = np.array(ids, np.int64)
    masks = np.array([likes or [0] * len(ids)], np.uint8)
    rows = int(ids_.max()) + 1
    return [tuple(int(v) for v in count_atomics(ids_, masks, STEPS, KEPT, native, rows, tile,
                                                squares))
            for squares in (False, True)]  # fmt: skip


def test_the_plan_keeps_counts_native_and_sums_in_loops() -> None:
    kinds = [ROWS, COUNT_WHERE, FLOAT_SUM, SQUARES, LOWEST, HIGHEST]  # likes, watch_ms
    assert STEPS[:, 0].tolist() == kinds
    assert KEPT.tolist() == [True, True, True, True, False, False]  # MIN/MAX: no tile
    assert NATIVE.tolist() == [True, True, False, False, False, False]


def test_rows_repeated_in_a_tile_add_once_per_tile() -> None:
    pass1, pass2 = _count([0, 0, 0, 0, 1, 1, 1, 0], tile=4)
    # without tables: 2 per event; with: tile 1 holds row 0, tile 2 rows 1 and 0
    assert pass1[:4] == (16, 2 + 2 * 2, 5, 2)
    assert pass2[:4] == (2 * 8, 2 * (1 + 2), 0, 0)  # a square and a deviation each


def test_masked_accumulators_and_skipped_events() -> None:
    pass1, _ = _count([2, -1, 2, 2], tile=4, likes=[1, 1, 0, 1])
    # three events of row 2, two of them likes: plain 3 x 2 + 2, tiled count + sum + likes
    assert pass1[:4] == (8, 3, 3, 1)


def test_events_past_the_probes_add_globally() -> None:
    ids = [TILE_SLOTS * k for k in range(TILE_PROBES + 2)]  # all hash to slot 0
    pass1, pass2 = _count(ids, tile=len(ids))
    assert pass1[:2] == (2 * len(ids), 2 * len(ids))  # 8 slots, 2 events straight through
    assert pass2[:2] == (2 * len(ids), 2 * len(ids))


def test_shared_adds_and_the_rounds_of_their_loops() -> None:
    ids = [0, 0, 0, 0, 1, 1, 1, 0]
    pass1, pass2 = _count(ids, tile=4)
    # per event a native count add and a looped sum add; the loop goes round once per
    # lane on the busiest slot: 4 (row 0) in tile 1, 3 (row 1) in tile 2
    assert pass1[4:] == (8, 8, 4 + 3)
    assert pass2[4:] == (0, 16, 2 * (4 + 3))  # squares and deviations: loops only
    as_floats, _ = _count(ids, tile=4, native=np.zeros_like(NATIVE))
    assert as_floats[4:] == (0, 16, 2 * (4 + 3))
    liked, _ = _count(ids, tile=4, likes=[1, 0, 1, 0, 0, 0, 0, 1])
    assert liked[4:] == (8 + 3, 8, 4 + 3)  # three likes: native adds


def test_loop_rounds_are_counted_per_warp() -> None:
    ids = [0] * 40 + [1] * 24  # one tile, two warps: 32 lanes of row 0, then 8 and 24
    pass1, _ = _count(ids, tile=64)
    assert pass1[4:] == (64, 64, 32 + 24)
