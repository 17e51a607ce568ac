"""A few seconds' check that kernels launch and compute right, before a card's long steps.

    python -m benchmarks.preflight

Why: kernels launch through :mod:`kernels.cuda.launcher` by default, which a card has
not run yet when this was written (its parameters are checked against Numba's own
without a device). If it failed on a card, every later step of ``gpu_check.sh`` would
fail with it, and card time is short. So the check launches a handful of kernels
covering the argument kinds the kernels use (1-D and 2-D arrays of several dtypes,
integer, float and bool scalars, a scan, a fill that is not a memset), and the pane
aggregation through its blocks' shared tables of rows (a hot row, rows that share a
table slot: the threads of a block race for slots on a card, which the simulator
only imitates), compares what they computed with the CPU kernels on random data, and
prints ``PREFLIGHT PASS`` or ``PREFLIGHT FAIL`` (exit status 0, or 1 when a kernel
differs or raises; 2, after one line saying so, when there is no CUDA device or driver
and the simulator is off). If it failed, ``gpu_check.sh`` runs
it again through Numba's dispatcher (``TIKTOKTOE_FAST_LAUNCH=0``), then without the
tables (``TIKTOKTOE_BLOCK_TABLES=0``), then without the disk cache of compiled
kernels (``TIKTOKTOE_CUDA_KERNEL_CACHE=0``), then without all three, and runs the rest
of the check with the first setting that passes.
"""

from __future__ import annotations

import argparse
import sys
import traceback

import numpy as np

from kernels import aggregate as cpu_aggregate
from kernels import validate as cpu_validate
from kernels.hashindex import HashIndex

ROWS = 5_000
# The kernels benchmark's scalar plan: (op, value column, mask) of count, count where,
# sum, mean, std, min and max of one column.
AGG_PLAN = [(cpu_aggregate.COUNT, -1, -1), (cpu_aggregate.COUNT, -1, 0),
            (cpu_aggregate.SUM, 0, -1), (cpu_aggregate.MEAN, 0, -1), (cpu_aggregate.STD, 0, -1),
            (cpu_aggregate.MIN, 0, -1), (cpu_aggregate.MAX, 0, -1)]  # fmt: skip
FLOAT_OPS = (cpu_aggregate.SUM, cpu_aggregate.MEAN, cpu_aggregate.STD)
AGG_ROWS = 8_192  # 16 rows share each slot of a block's table: some run its probes out


def problems(seed: int = 0) -> list[str]:
    """What differs from the CPU (empty when nothing does)."""
    from kernels.cuda import _core, validate
    from kernels.cuda.hashindex import DeviceHashIndex

    rng = np.random.default_rng(seed)
    found: list[str] = []
    filled = _core.empty(ROWS, np.int32)
    _core.fill(filled, 7)  # not one repeated byte: the fill kernel, not a memset
    if not np.all(_core.to_host(filled) == 7):
        found.append("fill: not every item is 7")

    values = rng.normal(0.0, 2.0, ROWS)
    values[rng.random(ROWS) < 0.05] = np.nan
    nulls = (rng.random(ROWS) < 0.1).astype(np.uint8)
    allowed = np.array([-1.0, 0.0, 1.0])
    values[: ROWS // 2] = np.round(values[: ROWS // 2])
    want_reason, want_field = np.zeros(ROWS, np.int8), np.full(ROWS, -1, np.int16)
    empty = np.empty(0, np.uint8)
    rules = (4, True, False, True, -1.5, 1.5, allowed)
    cpu_validate.check_numeric(values, nulls, empty, *rules, want_reason, want_field)
    reason, field = _core.full(ROWS, 0, np.int8), _core.full(ROWS, -1, np.int16)
    failed = validate.check_numeric(values, nulls, empty, *rules, reason, field)
    if not (np.array_equal(_core.to_host(reason), want_reason)
            and np.array_equal(_core.to_host(field), want_field)):  # fmt: skip
        found.append("validate.check_numeric: reason codes differ from the CPU's")
    if failed != int(np.count_nonzero(want_reason)):
        found.append(f"validate.check_numeric: {failed} failures counted, the CPU finds "
                     f"{int(np.count_nonzero(want_reason))}")  # fmt: skip

    keys = np.c_[rng.zipf(1.3, ROWS) % 300, rng.integers(0, 4, ROWS)].astype(np.int64)
    index = DeviceHashIndex(2, capacity=16)  # grows on the way: the reinsert kernel too
    ids = _core.to_host(index.insert(keys, skip=reason))
    ok = want_reason == 0
    stored = _core.to_host(index.keys)
    if len(stored) != len(HashIndex.from_keys(keys[ok])):
        found.append("hash insert: a different number of distinct keys than the CPU's")
    elif not (np.array_equal(stored[ids[ok]], keys[ok]) and np.all(ids[~ok] == -1)):
        found.append("hash insert: ids do not name their keys")
    return found + aggregation_problems(rng)


def aggregation_rows(rng: np.random.Generator, events: int = ROWS) -> np.ndarray:
    """Row ids of ``events`` events: a third on one hot row, a fifth on the rows that all
    share one slot of a block's table (ids equal modulo its size, more of them than its
    probes reach), the rest spread, some -1."""
    from kernels.cuda.aggregate import TILE_SLOTS

    ids = rng.integers(0, AGG_ROWS, events)
    pick = rng.random(events)
    ids[pick < 1 / 3] = 5
    shared = (pick >= 1 / 3) & (pick < 1 / 3 + 1 / 5)
    ids[shared] = 7 + TILE_SLOTS * rng.integers(0, AGG_ROWS // TILE_SLOTS, int(shared.sum()))
    ids[pick > 0.97] = -1
    return ids.astype(np.int64)


def aggregation_problems(rng: np.random.Generator, events: int = ROWS) -> list[str]:
    """The pane aggregation (two batches into one state) against the CPU's: counts, minima
    and maxima exactly, sums and moments to 1e-9 relative."""
    from kernels.cuda import aggregate

    ops, col_of, mask_of = (np.array([p[i] for p in AGG_PLAN], np.int64) for i in range(3))
    is_int = np.zeros(len(ops), np.bool_)
    want = cpu_aggregate.AggState(ops, capacity=AGG_ROWS)
    state = aggregate.DeviceAggState(ops, capacity=AGG_ROWS)
    for _ in range(2):
        ids = aggregation_rows(rng, events)
        fcols = rng.normal(100.0, 30.0, (1, events))
        masks = (rng.random((1, events)) < 0.3).astype(np.uint8)
        no_ints = np.zeros((0, 0), np.int64)
        cpu_aggregate.update_events(ids, ops, col_of, mask_of, is_int, fcols, no_ints, masks,
                                    want.rows, want.ist, want.isum, want.f0, want.f1,
                                    want.moments)  # fmt: skip
        aggregate.update_events(ids, ops, col_of, mask_of, is_int, fcols, no_ints, masks, state)
    got = state.to_host(AGG_ROWS)
    exact = cpu_aggregate.exact_isum(ops)  # STD's isum: its mean's low part, rounded
    found = [
        f"agg.update: state {name} differs from the CPU's"
        for name, columns in (("rows", ...), ("ist", ...), ("isum", (slice(None), exact)))
        if not np.array_equal(
            getattr(got, name)[:AGG_ROWS][columns], getattr(want, name)[:AGG_ROWS][columns]
        )
    ]
    # Sums and moments to 1e-9 (float atomics add in any order); counts, minima, maxima exactly.
    tolerance = np.where(np.isin(ops, FLOAT_OPS), 1e-9, 0.0)
    for name in ("f0", "f1"):
        mine, theirs = getattr(got, name)[:AGG_ROWS], getattr(want, name)[:AGG_ROWS]
        if not np.all(np.isclose(mine, theirs, rtol=tolerance, atol=1e-6 * (tolerance > 0),
                                 equal_nan=True)):  # fmt: skip
            found.append(f"agg.update: state {name} differs from the CPU's")
    return found


def main(argv: list[str] | None = None) -> int:
    """The check, with the command line ``argv`` (``main()``: none, not ``sys.argv``,
    which under pytest is pytest's: the simulator suite, which gpu_check.sh runs on the
    card, calls ``main()`` and was refused its arguments)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.preflight",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.parse_args([] if argv is None else argv)  # no options: --help says what it does
    from benchmarks.device_timing import no_device

    reason = no_device()
    if reason is not None:  # the driver's traceback said this in 39 lines, as a mismatch
        print(f"no CUDA device or driver here ({reason}): no kernel to check")
        print("PREFLIGHT FAIL", flush=True)
        return 2
    from kernels.cuda._core import KERNEL_CACHE, LAUNCH_PATH

    cache = "on" if KERNEL_CACHE else "off"
    print(f"kernels launched through {LAUNCH_PATH}; disk cache of compiled kernels {cache}",
          flush=True)  # fmt: skip
    try:
        found = problems()
    except Exception:  # a launch that fails outright: say so, then FAIL
        found = ["a kernel raised:\n" + traceback.format_exc()]
    for problem in found:
        print("MISMATCH", problem)
    print("PREFLIGHT " + ("FAIL" if found else "PASS"), flush=True)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
