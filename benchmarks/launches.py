"""Kernel launches and host reads per batch of the engine on ``backend: cuda``, by path.

    NUMBA_ENABLE_CUDASIM=1 python -m benchmarks.launches [--events 256] [--batch 256]
    python -m benchmarks.launches [--events 8192] [--batch 2048]   # the same on a card
    python -m benchmarks.launches --costs   # on a card: host us per launch, read, allocation

Each launch costs Numba some microseconds of Python on the host, each read of a device
array (``kernels.cuda._core.to_host``) costs a copy, and the first read after new work was
queued (a *wait*) makes the host wait for the device to finish that work, so these counts
are the host-side cost of a batch that no kernel speed-up removes (driver memsets, a few
microseconds each, and device allocations, each a ``cuMemAlloc`` and a deferred
``cuMemFree`` with Numba's memory manager, are counted apart). They are the same under the
CUDA simulator as on a card (only the grid sizes differ), so they can be measured, and
reduced, without one. On the simulator it also counts views of device arrays: those made
directly (``_core.carve``/``span``/``row``, a few µs each on a card) and those made by
Numba's own slicing, dtype views and reshapes (tens of µs each: ``benchmarks.launch_cost
--arrays``). Paths: host frames prepared on the device (the default), host frames
prepared on the host (``cuda_host_frames: host``), and columns pushed on the device; for
the sliding workload of :mod:`benchmarks.windows` and for the full short-video config
(sessions, sketches, top-k, 1% corrupt rows).

The simulator's launches cost tens of milliseconds each (its Python threads), the full
config makes 200 to 450 a batch, and the first path runs twice (a warm-up: a first run
allocates more), so there the defaults are one batch of 256 events over 2 s a workload
(about 30 s of CPU, where 2,048 events in batches of 1,024 took 3.5 minutes; a card's
defaults are 8,192 in batches of 2,048). Without a device or the simulator it
exits with status 2 at once.
"""

from __future__ import annotations

import argparse
import timeit
from collections import Counter
from typing import Any

import numpy as np

from benchmarks.device_timing import device_missing
from benchmarks.gpu_engine import FULL_CONFIG, configured, events, on_device, run
from benchmarks.windows import COLUMNS, engine_config
from gpu_engine.commands.generate import _count_at_least
from gpu_engine.config import load_config
from gpu_engine.config.models import EngineConfig
from kernels.cuda import _core

# Views of device arrays that Numba's own slicing, dtype views and reshapes make, and
# Numba's own copies into device arrays (copy_to_device), by caller: tens to hundreds of µs
# of host time each (benchmarks.launch_cost --arrays). Counted on the simulator only, where
# every device array is the simulator's, outside the kernels it runs.
SLICES: Counter[str] = Counter()
NUMBA_COPIES: Counter[str] = Counter()
COUNTERS = (_core.LAUNCHES, _core.READS, _core.WAITS, _core.ALLOCATIONS, _core.VIEWS, SLICES,
            _core.COPIES, NUMBA_COPIES)  # fmt: skip
NAMES = ("launched", "read by", "waited in", "allocated", "viewed by", "sliced by",
         "copied by", "Numba-copied by")  # fmt: skip
LEAN = {"carve", "_carved", "span", "row", "copy"}  # direct on a card: VIEWS and COPIES
PROG = "python -m benchmarks.launches"
# (events, batching.max_rows, event-time span in ms) by default: one batch a workload
# under the simulator (see above), four on a card.
DEFAULTS = (256, 256, 2_000) if _core.SIMULATOR else (8192, 2048, 20_000)


def count_slices() -> None:
    """Count the host's Numba-style views and copies of device arrays (simulator only)."""
    import sys
    import threading

    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    def host_caller() -> str | None:  # the caller of the counted method, outside kernels
        if type(threading.current_thread()).__name__ == "BlockThread":
            return None
        caller = sys._getframe(2).f_code.co_name
        return None if caller in LEAN else caller

    def counting(method: Any) -> Any:
        def wrapper(array: Any, *args: Any, **kwargs: Any) -> Any:
            caller = host_caller()
            index = args[0] if args else None  # an int index of a 1-D array is an item
            if caller == "array_core":  # copy_to_device's own slicing: counted as a copy
                caller = None
            if caller and (method.__name__ != "__getitem__" or isinstance(index, (slice, tuple))
                           or (isinstance(index, int) and array.ndim > 1)):  # fmt: skip
                SLICES[caller] += 1
            return method(array, *args, **kwargs)

        return wrapper

    def counting_copies(method: Any) -> Any:
        def wrapper(array: Any, *args: Any, **kwargs: Any) -> Any:
            caller = host_caller()
            if caller and caller != "fill":  # fill's simulator branch: a memset on a card
                NUMBA_COPIES[caller] += 1
            return method(array, *args, **kwargs)

        return wrapper

    for name in ("__getitem__", "view", "reshape"):
        setattr(FakeCUDAArray, name, counting(getattr(FakeCUDAArray, name)))
    FakeCUDAArray.copy_to_device = counting_copies(FakeCUDAArray.copy_to_device)


def counted(config: EngineConfig, data: Any) -> tuple[int, list[Counter[str]]]:
    """(batches, [launches by kernel, then reads, waits, allocations, direct views and
    Numba-style views by caller]) of a run."""
    before = [Counter(c) for c in COUNTERS]
    _, _, summary = run(config, data)
    return summary["batches"], [Counter(now) - then for now, then in
                                zip(COUNTERS, before, strict=True)]  # fmt: skip


def report(label: str, result: tuple[int, list[Counter[str]]], top: int) -> None:
    batches, counters = result
    launches, reads, waits, allocations, views, slices, copies, numba_copies = counters
    per = max(batches, 1)
    memsets = launches.pop("memset", 0)
    print(f"  {label:<34}{sum(launches.values()) / per:8.1f} launches"
          f"{sum(reads.values()) / per:8.1f} reads{sum(waits.values()) / per:8.1f} waits"
          f"{memsets / per:8.1f} memsets{sum(allocations.values()) / per:8.1f} allocations "
          f"per batch ({batches} batches)")  # fmt: skip
    if _core.SIMULATOR:
        print(f"  {'':<34}{sum(views.values()) / per:8.1f} direct views"
              f"{sum(slices.values()) / per:8.1f} Numba-style views"
              f"{sum(copies.values()) / per:8.1f} direct copies"
              f"{sum(numba_copies.values()) / per:8.1f} Numba copies per batch")  # fmt: skip
    for what, counter in zip(NAMES, counters, strict=True):
        common = ", ".join(f"{name} {n / per:.1f}" for name, n in counter.most_common(top))
        if common:
            print(f"      most {what + ':':<10} {common}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    positive = _count_at_least(1)
    events_default, batch_default, duration_default = DEFAULTS
    parser.add_argument("--events", type=positive, default=events_default)
    parser.add_argument("--batch", type=positive, default=batch_default,
                        help="batching.max_rows")  # fmt: skip
    parser.add_argument("--duration-ms", type=positive, default=duration_default,
                        help="event-time span")  # fmt: skip
    parser.add_argument("--top", type=_count_at_least(0), default=6)
    parser.add_argument(
        "--costs", action="store_true",
        help="only time one launch and one read on this device (meaningful on a card)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if device_missing(PROG):
        return 2
    if args.costs:
        for what, us in device_costs().items():
            print(f"{what:<58}{us:8.1f} us")
        if not _core.SIMULATOR:  # which allocator the figures are of (the pool is opt-in)
            from numba.core import config as numba_config

            manager = type(_core.cuda.current_context().memory_manager).__name__
            print(f"device memory manager: {manager}; Numba's deferred frees made in bursts "
                  f"of {numba_config.CUDA_DEALLOCS_COUNT + 1}")  # fmt: skip
        print(f"kernels launched through {_core.LAUNCH_PATH} (TIKTOKTOE_FAST_LAUNCH)")
        return 0

    def cuda(config: EngineConfig, frames: str) -> EngineConfig:
        batching = config.batching.model_copy(update={"max_rows": args.batch})
        update = {"cuda_host_frames": frames, "batching": batching}
        return configured(config, "cuda", 1).model_copy(update=update)

    if _core.SIMULATOR:
        count_slices()
    table = events(args.events, args.duration_ms).select(COLUMNS)
    full = events(args.events, args.duration_ms, bad_fraction=0.01)
    for title, base, data in (
        ("sliding 5s/1s per content_id", engine_config(1), table),
        ("full short-video config", load_config(FULL_CONFIG), full),
    ):
        print(f"{title}, {args.events:,} events in batches of {args.batch:,}:")
        run(cuda(base, "device"), data)  # compiles, and makes what a first run allocates
        report("host frames, device-prepared", counted(cuda(base, "device"), data), args.top)
        report("host frames, host-prepared", counted(cuda(base, "host"), data), args.top)
        report("device columns", counted(cuda(base, "device"), on_device(data)), args.top)
    lookup = kernel_lookup_us()
    print(f"finding a compiled kernel (kernels.cuda._core.kernel): {lookup:.2f} us a launch")
    return 0


def device_costs(calls: int = 2000) -> dict[str, float]:
    """Host microseconds of one kernel launch (tiny grids, so the host's cost is what is
    timed), by number of arguments, and of one read of a device value: with the counts
    above, the host's time per batch that no kernel speed-up removes. Only a card gives
    real figures; under the simulator this is a smoke test."""
    from kernels.cuda import aggregate, hashindex

    calls = 20 if _core.SIMULATOR else calls
    values = _core.full(256, 0.0, np.float64)
    index = hashindex.DeviceHashIndex(2, capacity=16)
    probe = _core.as_device(np.zeros((1, 2), np.int64))
    state = aggregate.DeviceAggState(np.array([aggregate.SUM]), capacity=16)
    ops, col_of, mask_of = (np.array([v], np.int64) for v in (aggregate.SUM, 0, -1))
    skipped = _core.as_device(np.array([-1], np.int64))  # the event is skipped: no writes
    fcols = _core.as_device(np.zeros((1, 1), np.float64))
    icols = _core.as_device(np.zeros((0, 0), np.int64))
    masks = _core.as_device(np.zeros((0, 1), np.uint8))
    is_int = np.zeros(1, np.bool_)
    one = _core.as_device(np.zeros(1, np.int64))

    def fill() -> None:
        _core.kernel("fill", np.float64)[1, 32](values, 1.5)

    def lookup() -> None:
        index.find(probe)

    def update() -> None:
        aggregate.update_events(skipped, ops, col_of, mask_of, is_int, fcols, icols, masks, state)

    def read() -> None:
        _core.to_host(one)

    def allocate() -> None:
        _core.empty(512, np.int64)  # dropped at once: its free is queued (Numba defers them)

    def allocate_large() -> None:  # 2**25 int64s, 256 MiB (a 10M-event batch's sketch
        # entries, 2 x 10M x 3 int64s, are 480 MB)
        _core.empty(1 << 25, np.int64)

    out: dict[str, float] = {}
    for what, fn, number in (
        ("launch, 2 arguments (fill)", fill, calls),
        ("launch, 4 arguments (hash.lookup through find)", lookup, calls),
        ("update_events: 2 launches, of 9 and 12 arguments", update, calls),
        ("read of one device value (to_host: a wait and a copy)", read, calls),
        ("allocation of 4 KiB and its free (empty, then dropped)", allocate, calls),
        ("allocation of 256 MiB and its free (empty, then dropped)", allocate_large,
         max(2, calls // 100)),
    ):  # fmt: skip
        fn()  # compiled, outside the clock
        _core.cuda.synchronize()
        seconds = timeit.timeit(fn, number=number)
        _core.cuda.synchronize()
        out[what] = seconds / number * 1e6
    return out


def kernel_lookup_us(calls: int = 100_000) -> float:
    """Host microseconds that ``kernel(name, dtype)`` adds to every launch (before Numba's
    own launch cost, which only a card measures)."""
    dtype = np.dtype(np.float64)
    _core.kernel("fill", dtype)  # compiled once, outside the clock
    seconds = timeit.timeit(lambda: _core.kernel("fill", dtype), number=calls)
    _core.LAUNCHES["fill"] -= calls + 1  # lookups, not launches
    return seconds / calls * 1e6


if __name__ == "__main__":
    raise SystemExit(main())
