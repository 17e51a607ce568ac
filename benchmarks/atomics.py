"""Global atomics of the pane aggregation's update passes, counted on the host.

    python -m benchmarks.atomics [--events 10000000] [--tile 256]

A model, not a measurement: it replays what ``agg.update`` and ``agg.update_m2``
(:mod:`kernels.cuda.aggregate`) do with each event of ``benchmarks.gpu_kernels``'
data (same generator, same plan) and counts the atomics they make on global memory,
with and without the blocks' shared tables of rows, and those they make on the tables.
A shared add is native only for the int32 counts (sm_90's ``ATOMS.POPC.INC``); a
float64 one is a compare-and-store loop (``ATOMS.CAST.SPIN``), which a warp goes round
once per lane on its busiest address, so the model counts those rounds, and gives them
as they were when the counts were float64 too. (A SASS reference for Maxwell says that
``.SPIN`` lets one lane per shared-memory bank try each round; if sm_90 does the same,
lanes on other addresses of a bank wait too, and the rounds are more than counted
here.) A tile is ``--tile`` consecutive
events (a block's threads on a card: 256); its table is filled in event order, so
which events find no slot within ``TILE_PROBES`` may differ from a card's, where
threads race for slots. Row ids are the CPU hash index's (first-seen order); the
device numbers rows differently, which changes which rows share a table slot but not
how often. MIN/MAX are left out: both ways read first and rarely swap. A tile row's
accumulator counts once when any of its events feeds it (the kernel skips totals
that come to exactly zero, so this is an upper bound).

Why: the H200 timed ``agg.update`` at half the device time of the kernel benchmark,
and an atomic's cost grows with how many threads hit its address at once. What
this counts is what the shared tables change; what that is worth in milliseconds
only a card can say (``benchmarks.gpu_kernels``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from numba import njit

from benchmarks.gpu_kernels import COL_OF, IS_INT, MASK_OF, OPS, cpu_pane_rows, load_events
from gpu_engine.commands.generate import _count_at_least
from kernels.cuda.aggregate import (
    COUNT_WHERE,
    FLOAT_SUM,
    INT_SUM,
    SQUARES,
    TILE_PROBES,
    TILE_SLOTS,
    plan_tables,
    tile_columns,
)

WARP = 32  # lanes that issue an atomic instruction together


@njit(cache=True)
def _feeds(steps, masks, i, kind_lo, k):  # pragma: no cover - compiled
    """Whether step ``k`` adds event ``i`` to an accumulator in this pass."""
    kind = steps[k, 0]
    if kind_lo == SQUARES:
        if kind != SQUARES:
            return False
    elif kind != COUNT_WHERE and kind != INT_SUM and kind != FLOAT_SUM:
        return False
    m = steps[k, 1]
    return m < 0 or masks[m, i] != 0


@njit(cache=True)
def _end_warp(busiest, on_slot, touched, n_touched):  # pragma: no cover - compiled
    """The finished warp's loop rounds; clears its counts (the slots its lanes took) for
    the next warp."""
    rounds = busiest.sum()
    busiest[:] = 0
    for j in range(n_touched):
        on_slot[touched[j], :] = 0
    return rounds


@njit(cache=True)
def count_atomics(ids, masks, steps, kept, native, n_rows, tile, squares):  # pragma: no cover
    """Of pass 1 (``squares=False``) or pass 2: (global atomics without tables, with
    tables, the hottest row count's adds without, with; then, with tables, the shared adds
    that are native atomics, those that are compare-and-store loops, and the loops'
    rounds). ``kept``/``native`` per step: ``aggregate.tile_columns``. A warp (32 lanes
    of a tile) runs one loop per step for all its lanes, and the loop goes round once per
    lane on the busiest address, so its rounds are the most lanes on one slot."""
    kind_lo = SQUARES if squares else COUNT_WHERE
    n = ids.shape[0]
    n_steps = steps.shape[0]
    plain = 0
    tiled = 0
    shared_native = 0
    shared_loop = 0
    loop_rounds = 0
    row_adds = np.zeros(n_rows, np.int64)  # adds to each row's count accumulator
    plain_row_adds = np.zeros(n_rows, np.int64)
    table = np.full(TILE_SLOTS, -1, np.int64)
    fed = np.zeros((TILE_SLOTS, n_steps), np.bool_)
    on_slot = np.zeros((TILE_SLOTS, n_steps), np.int64)  # a warp's lanes per slot and step
    busiest = np.zeros(n_steps, np.int64)
    touched = np.empty(WARP, np.int64)  # the slots the warp's lanes took
    n_touched = 0
    for start in range(0, n, tile):
        for i in range(start, min(n, start + tile)):
            if (i - start) % WARP == 0:
                loop_rounds += _end_warp(busiest, on_slot, touched, n_touched)
                n_touched = 0
            r = ids[i]
            if r < 0:
                continue
            pos = r & (TILE_SLOTS - 1)
            s = -1
            for _ in range(TILE_PROBES):
                if table[pos] == -1 or table[pos] == r:
                    table[pos] = r
                    s = pos
                    break
                pos = (pos + 1) & (TILE_SLOTS - 1)
            if s >= 0:
                touched[n_touched] = s
                n_touched += 1
            for k in range(n_steps):
                if k == 0 and not squares:  # the row count
                    plain += 1
                    plain_row_adds[r] += 1
                    if s < 0:
                        tiled += 1
                        row_adds[r] += 1
                elif _feeds(steps, masks, i, kind_lo, k):
                    plain += 1
                    if s >= 0 and kept[k]:
                        fed[s, k] = True
                    else:
                        tiled += 1
                else:
                    continue
                if s < 0 or not kept[k]:
                    continue
                if native[k]:
                    shared_native += 1
                else:
                    shared_loop += 1
                    on_slot[s, k] += 1
                    busiest[k] = max(busiest[k], on_slot[s, k])
        loop_rounds += _end_warp(busiest, on_slot, touched, n_touched)
        n_touched = 0
        for s in range(TILE_SLOTS):
            r = table[s]
            if r == -1:
                continue
            if not squares:
                tiled += 1
                row_adds[r] += 1
            for k in range(n_steps):
                if fed[s, k]:
                    tiled += 1
                    fed[s, k] = False
            table[s] = -1
    w = 2 if squares else 1  # pass 2 adds a deviation's square and the deviation itself
    return (w * plain, w * tiled, plain_row_adds.max(), row_adds.max(), w * shared_native,
            w * shared_loop, w * loop_rounds)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.atomics")
    positive = _count_at_least(1)
    ap.add_argument("--events", type=positive, default=10_000_000)
    ap.add_argument("--tile", type=positive, default=256,
                    help="events per tile (a block's threads)")  # fmt: skip
    args = ap.parse_args(argv)
    ev = load_events(args.events)
    n = len(ev["event_time"])
    reason, _, index, ids = cpu_pane_rows(ev)
    ok = reason == 0
    masks = (ev["event_type"] == 1).astype(np.uint8).reshape(1, n)
    steps, _, _, _ = plan_tables(OPS, COL_OF, MASK_OF, IS_INT)
    kept, native = tile_columns(steps)
    print(f"{n:,} events ({int(ok.sum()):,} valid), {len(index):,} rows; tiles of "
          f"{args.tile} events, tables of {TILE_SLOTS} slots, {TILE_PROBES} probes")  # fmt: skip
    print(f"{'pass':<24}{'without tables':>16}{'with tables':>14}   global atomics per event")
    totals = [0, 0]
    shared = []
    rows = len(index)
    for name, squares in (("1 (agg.update)", False), ("2 (agg.update_m2)", True)):
        counted = count_atomics(ids, masks, steps, kept, native, rows, args.tile, squares)
        plain, tiled, hot_plain, hot_tiled = counted[:4]
        totals[0] += plain
        totals[1] += tiled
        print(f"{name:<24}{plain / n:>16.3f}{tiled / n:>14.3f}")
        if squares:
            shared.append(("2", counted[4:]))
            continue
        print(f"{'  hottest row count':<24}{hot_plain:>16,}{hot_tiled:>14,}   adds to one "
              "address")  # fmt: skip
        if not native.any():  # TIKTOKTOE_TILE_COUNTS=float64
            shared.append(("1, float64 counts", counted[4:]))
            continue
        shared.append(("1, int32 counts", counted[4:]))
        as_floats = count_atomics(ids, masks, steps, kept, np.zeros_like(native), rows,
                                  args.tile, squares)  # fmt: skip
        shared.append(("1, float64 counts", as_floats[4:]))
    print(f"{'both':<24}{totals[0] / n:>16.3f}{totals[1] / n:>14.3f}   "
          f"({1 - totals[1] / totals[0]:.0%} fewer)")  # fmt: skip
    print(f"\n{'pass':<24}{'native adds':>16}{'loop adds':>14}{'loop rounds':>14}   shared "
          f"atomics in the tables per {WARP} events")  # fmt: skip
    for name, (native_adds, loop_adds, rounds) in shared:
        print(f"{name:<24}{WARP * native_adds / n:>16.2f}{WARP * loop_adds / n:>14.2f}"
              f"{WARP * rounds / n:>14.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
