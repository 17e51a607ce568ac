"""A few seconds' check that kernels launch and compute right, before a card's long steps.

    python -m benchmarks.preflight

Why: kernels launch through :mod:`kernels.cuda.launcher` by default, which a card has
not run yet when this was written (its parameters are checked against Numba's own
without a device). If it failed on a card, every later step of ``gpu_check.sh`` would
fail with it, and card time is short. So the check launches a handful of kernels
covering the argument kinds the kernels use (1-D and 2-D arrays of several dtypes,
integer, float and bool scalars, a scan, a fill that is not a memset), compares what
they computed with the CPU kernels on random data, and prints ``PREFLIGHT PASS`` or
``PREFLIGHT FAIL``; ``gpu_check.sh`` then runs the rest through Numba's dispatcher
(``TIKTOKTOE_FAST_LAUNCH=0``) if it failed.
"""

from __future__ import annotations

import sys
import traceback

import numpy as np

from kernels import validate as cpu_validate
from kernels.hashindex import HashIndex

ROWS = 5_000


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
    return found


def main() -> int:
    from kernels.cuda._core import LAUNCH_PATH

    print(f"kernels launched through {LAUNCH_PATH}", flush=True)
    try:
        found = problems()
    except Exception:  # a launch that fails outright: say so, then FAIL
        found = ["a kernel raised:\n" + traceback.format_exc()]
    for problem in found:
        print("MISMATCH", problem)
    print("PREFLIGHT " + ("FAIL" if found else "PASS"), flush=True)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
