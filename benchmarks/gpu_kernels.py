"""GPU kernels against the CPU kernels on synthetic short-video events, and their throughput.

    python -m benchmarks.gpu_kernels [--events 10000000]

Generates events on the host (``gpu_engine.generator``, numpy/pyarrow only),
then runs validation (5 numeric columns, per-row reason codes) and pane
aggregation (hash insert of (pane, content_id); count, count where, sum, mean,
std, min, max of watch_ms; quantile bucket keys of watch_ms and distinct hashes
of user_id counted as sketch entries) with :mod:`kernels.cuda`, and the same with
the CPU kernels. Checks that every group's state and final value agree (counts,
minima, maxima exactly; floats to 1e-6 relative) and that reason codes and sketch
entries are identical, then prints events/s with data on the device (CUDA events, after a
warm-up; ``--repeat`` runs, each on fresh tables and each checked, the goals taking
the median of those after the first), end to end from host memory (H2D copy
included, from pageable and from pinned buffers, and from pinned buffers in chunks
whose copies overlap the kernels of the chunk before, as the engine streams
batches, once for each ``--chunk-rows`` (1M and 4M rows on a card: small chunks
overlap more of the copy, large ones launch less); those runs' results are checked
too), the pinned host-to-device bandwidth,
two floors of the device (:mod:`benchmarks.floors`: streaming the columns' bytes,
and the random reads that the hash inserts cannot avoid), the CPU kernels' speed,
and the time of each stage and of each kernel on the device (CUDA events).
``--device-only`` keeps the runs with the data on the device and the time by
kernel, for quick comparisons between settings (the device pool, the block tables).
The last line is ``GPU_KERNELS PASS`` or ``GPU_KERNELS FAIL``; the goals are judged
(``MET`` or ``MISSED``) only on a card whose results all equal the CPU's.

Runs without cuDF or CuPy (Numba device arrays only); under the simulator
(``NUMBA_ENABLE_CUDASIM=1``) it runs as a smoke test with a few thousand events, and
judges no goal. Without a device or the simulator it exits with status 2 at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from numba import types

from benchmarks.device_timing import best_seconds, device_missing, timed
from benchmarks.floors import measure as measure_floors
from gpu_engine.backend.transfer import Column, PinnedUploader
from gpu_engine.commands.generate import _count_at_least
from gpu_engine.generator import GeneratorSpec, generate
from kernels import validate as cpu_validate
from kernels.aggregate import COUNT, DISTINCT, MAX, MEAN, MIN, QUANTILE, STD, SUM, AggState
from kernels.aggregate import finalize_column as cpu_finalize
from kernels.aggregate import update_events as cpu_update
from kernels.cuda._core import (
    KERNEL_CACHE,
    LAUNCH_BOUNDS,
    LAUNCH_PATH,
    SIMULATOR,
    arr,
    cuda,
    kernel,
    register,
)
from kernels.hashindex import HashIndex
from kernels.sketches import bucket_keys as cpu_bucket_keys
from kernels.sketches import hash_int64 as cpu_hash_int64

PANE_MS = 10_000
MIN_TIME, MAX_TIME = 946_684_800_000, 4_102_444_800_000  # 2000 .. 2100
OPS = np.array([COUNT, COUNT, SUM, MEAN, STD, MIN, MAX, QUANTILE, DISTINCT], dtype=np.int64)
NAMES = ["count", "likes", "watch_sum", "watch_mean", "watch_std", "watch_min", "watch_max",
         "watch_p99", "users"]  # fmt: skip
COL_OF = np.array([-1, -1, 0, 0, 0, 0, 0, 0, -1], dtype=np.int64)
MASK_OF = np.array([-1, 0, -1, -1, -1, -1, -1, -1, -1], dtype=np.int64)
IS_INT = np.zeros(len(OPS), dtype=np.bool_)
Q_AGG, D_AGG = 7, 8
# (column, nullable, allow_nan, check_range, lo, hi, allowed)
RULES: list[tuple[str, bool, bool, bool, float, float, list[float]]] = [
    ("event_time", False, False, True, MIN_TIME, MAX_TIME, []),
    ("content_id", False, False, True, 0.0, np.inf, []),
    ("event_type", False, False, True, -np.inf, np.inf, [0.0, 1.0, 2.0, 3.0, 4.0]),
    ("watch_ms", False, False, True, 0.0, 3_600_000.0, []),
    ("latency_ms", True, False, True, 0.0, 60_000.0, []),
]
COLUMNS = ["event_time", "content_id", "user_id", "event_type", "watch_ms", "latency_ms"]
PROG = "python -m benchmarks.gpu_kernels"


# -- host data -------------------------------------------------------------------------------
def load_events(n: int) -> dict[str, np.ndarray]:
    """Columns as numpy arrays (nulls filled with 0) plus ``*_null`` uint8 masks."""
    table = pa.concat_tables(list(generate(GeneratorSpec(events=n, bad_fraction=0.01))))
    out: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        column = table.column(name).combine_chunks()
        out[name] = np.ascontiguousarray(column.fill_null(0).to_numpy(zero_copy_only=False))
        nulls = column.is_null().to_numpy(zero_copy_only=False)
        out[f"{name}_null"] = nulls.astype(np.uint8) if nulls.any() else np.empty(0, np.uint8)
    return out


def host_bytes(events: dict[str, np.ndarray]) -> int:
    return int(sum(a.nbytes for a in events.values()))


# -- CPU reference ---------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    reason: np.ndarray
    field: np.ndarray
    keys: np.ndarray  # (groups, 2) pane, content_id
    state: AggState
    entries: np.ndarray  # (entries, 3) row, agg, bucket-or-hash
    counts: np.ndarray


def cpu_pane_rows(
    ev: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, HashIndex, np.ndarray]:
    """Validation with the CPU kernels and the (pane, content_id) row of every valid event:
    (reason codes, fields, the index of rows, row ids with -1 for failed events)."""
    n = len(ev["event_time"])
    reason = np.zeros(n, np.int8)
    field = np.full(n, -1, np.int16)
    empty = np.empty(0, np.uint8)
    for f, (name, nullable, allow_nan, check_range, lo, hi, allowed) in enumerate(RULES):
        cpu_validate.check_numeric(
            ev[name], ev[f"{name}_null"], empty, f, nullable, allow_nan, check_range, lo, hi,
            np.asarray(allowed, np.float64), reason, field,
        )  # fmt: skip
    ok = reason == 0
    keys = np.c_[ev["event_time"] // PANE_MS, ev["content_id"]].astype(np.int64)
    index = HashIndex(2, capacity=1 << 16)
    ids = np.full(n, -1, np.int64)
    ids[ok] = index.insert(keys[ok])
    return reason, field, index, ids


def cpu_run(ev: dict[str, np.ndarray]) -> Result:
    n = len(ev["event_time"])
    reason, field, index, ids = cpu_pane_rows(ev)
    ok = reason == 0
    state = AggState(OPS, capacity=len(index))
    fcols = ev["watch_ms"].astype(np.float64).reshape(1, n)
    masks = (ev["event_type"] == 1).astype(np.uint8).reshape(1, n)
    cpu_update(ids, OPS, COL_OF, MASK_OF, IS_INT, fcols, np.zeros((0, 0), np.int64), masks,
               state.rows, state.ist, state.isum, state.f0, state.f1, state.moments)  # fmt: skip
    qk = np.empty(n, np.int64)
    cpu_bucket_keys(fcols[0], qk)
    hk = np.empty(n, np.int64)
    cpu_hash_int64(ev["user_id"].astype(np.int64), hk)
    entries = np.concatenate([np.c_[ids[ok], np.full(ok.sum(), Q_AGG), qk[ok]],
                              np.c_[ids[ok], np.full(ok.sum(), D_AGG), hk[ok]]])  # fmt: skip
    sketch = HashIndex(3, capacity=1 << 16)
    entry_ids = sketch.insert(entries)
    counts = np.bincount(entry_ids, minlength=len(sketch)).astype(np.int64)
    return Result(reason, field, index.keys.copy(), state, sketch.keys.copy(), counts)


# -- GPU -------------------------------------------------------------------------------------
def _prepare_sig(dt: np.dtype) -> Any:
    i8 = arr("int64")
    return types.void(i8, i8, arr(dt), types.int64, arr("int64", 2), arr("uint8", 2))


@register("bench.prepare", ("int8",), _prepare_sig)
def _prepare(times, content, etype, pane_ms, keys, like):  # pragma: no cover - compiled
    """Pane keys (pane, content_id) and the ``event_type == like`` mask of every event
    (registered, so it launches and compiles as the engine's kernels do)."""
    for i in range(cuda.grid(1), times.shape[0], cuda.gridsize(1)):
        keys[i, 0] = times[i] // pane_ms
        keys[i, 1] = content[i]
        like[0, i] = 1 if etype[i] == 1 else 0


class GpuPipeline:
    """Validation + pane aggregation + sketch entries on device-resident columns."""

    def __init__(self, events: int, groups: int) -> None:
        from kernels.cuda import aggregate, hashindex
        from kernels.cuda._core import full

        # Sized for the batch up front, as a streaming engine's warm state would be, so
        # the timed run measures the kernels and not table growth.
        self.index = hashindex.DeviceHashIndex(2, capacity=events)
        self.state = aggregate.DeviceAggState(OPS, capacity=groups)
        self.sketch = hashindex.DeviceHashIndex(3, capacity=2 * events)
        self.counts = full(self.sketch.capacity, 0, np.int64)  # per sketch entry

    def run(self, dev: dict[str, Any], mark: Any = None) -> tuple[Any, Any]:
        """Reason codes and field of every event; ``mark(stage)`` (a :class:`StageTimes`) is
        called before the first stage and after each one."""
        from kernels.cuda import aggregate, sketches, validate
        from kernels.cuda._core import empty, full, launch

        if mark is None:
            mark = _no_mark
        mark("start")
        n = dev["event_time"].shape[0]
        reason = full(n, 0, np.int8)
        field = full(n, -1, np.int16)
        found = full(1, 0, np.int64)  # failures, read by nobody: no wait per column
        no_cast = dev["_empty_u8"]
        for f, (name, nullable, allow_nan, check_range, lo, hi, allowed) in enumerate(RULES):
            validate.check_numeric(
                dev[name], dev[f"{name}_null"], no_cast, f, nullable, allow_nan, check_range,
                lo, hi, dev[f"_allowed_{f}"] if allowed else dev["_empty_f8"], reason, field,
                found=found,
            )  # fmt: skip
        mark("validation (5 columns)")
        keys = empty((n, 2), np.int64)
        like = empty((1, n), np.uint8)
        blocks, threads = launch(n)
        kernel("bench.prepare", "int8")[blocks, threads](
            dev["event_time"], dev["content_id"], dev["event_type"], PANE_MS, keys, like
        )
        mark("pane keys, like mask")
        ids = self.index.insert(keys, skip=reason)
        mark("hash insert (pane, content_id)")
        self.state.reserve(self.index.upper_bound(limit=self.state.capacity))
        watch = dev["watch_ms"].reshape(1, n)
        aggregate.update_events(ids, OPS, COL_OF, MASK_OF, IS_INT, watch, dev["_no_icols"],
                                like, self.state)  # fmt: skip
        mark("scalar aggregation (7 aggs)")
        # Both sketches' entries in one insert, as the engine does (DeviceSketchEntries).
        entries = empty((2 * n, 3), np.int64)
        sketches.sketch_entries(ids, Q_AGG, sketches.bucket_keys(dev["watch_ms"]),
                                out=entries[:n])  # fmt: skip
        sketches.sketch_entries(ids, D_AGG, sketches.hash_int64(dev["user_id"]), out=entries[n:])
        mark("sketch keys and entries")
        skip = empty(2 * n, np.int8)  # the failed rows, once per sketch
        skip[:n].copy_to_device(reason)
        skip[n:].copy_to_device(reason)
        entry_ids = self.sketch.insert(entries, skip=skip)
        mark("sketch entry inserts (2 per event)")
        if self.sketch.capacity > self.counts.shape[0]:  # the sketch table grew
            grown = full(self.sketch.capacity, 0, np.int64)
            grown[: self.counts.shape[0]].copy_to_device(self.counts)
            self.counts = grown
        sketches.add_counts(entry_ids, self.counts)
        mark("sketch counts")
        return reason, field

    def result(self, reason: Any, field: Any) -> Result:
        from kernels.cuda._core import to_host

        n = len(self.index)
        return Result(to_host(reason), to_host(field), to_host(self.index.keys),
                      self.state.to_host(n), to_host(self.sketch.keys),
                      to_host(self.counts)[: len(self.sketch)])  # fmt: skip


def _no_mark(stage: str) -> None:
    pass


@cuda.jit
def _hold(sleeps):  # pragma: no cover - compiled
    """Keep the device busy (about ``sleeps`` ms) while the host queues the work after it."""
    if cuda.grid(1) == 0:
        for _ in range(sleeps):
            cuda.nanosleep(1_000_000)


class StageTimes:
    """Device milliseconds of each stage of :meth:`GpuPipeline.run`, from CUDA events.

    ``held=False``: events between consecutive stages of one run, so a stage's time
    includes any wait for the host to launch its kernels. ``held=True``: before each
    stage the host syncs and queues a kernel that holds the device for ``HOLD_MS``, and
    the stage's clock starts after it, so the stage's kernels are queued before they run:
    its time is the device's own, without the host's launch costs (up to the first read
    of a device value inside the stage, which waits for the device).
    """

    HOLD_MS = 20

    def __init__(self, held: bool) -> None:
        self.held = held
        self._events: list[tuple[str, Any, Any]] = []  # (stage, start, end)
        self._start: Any = None

    @property
    def times(self) -> list[tuple[str, float]]:
        """(stage, ms) of every stage; call once the run's work is done."""
        return [(stage, start.elapsed_time(end)) for stage, start, end in self._events]

    def __call__(self, stage: str) -> None:
        end = cuda.event()
        end.record()
        if self._start is not None:
            self._events.append((stage, self._start, end))
        if self.held:
            cuda.synchronize()
            if not SIMULATOR:
                _hold[1, 1](self.HOLD_MS)
            end = cuda.event()
            end.record()
        self._start = end


def to_device(ev: dict[str, np.ndarray]) -> dict[str, Any]:
    from kernels.cuda._core import as_device

    dev = {name: as_device(array) for name, array in ev.items()}
    _add_constants(dev)
    return dev


def run_streamed(
    pipe: GpuPipeline, host: dict[str, np.ndarray], uploader: Any, constants: dict[str, Any]
) -> list[tuple[Any, Any]]:
    """(reason, field) of each chunk of ``host``'s events, run chunk by chunk through
    ``uploader`` (a :class:`~gpu_engine.backend.transfer.PinnedUploader`): the copy of
    chunk ``i + 1`` on its copy stream overlaps the kernels of chunk ``i``, as the engine
    streams batches. ``constants`` holds the device arrays every chunk shares (the
    rules', the aggregations' and the empty null masks), from :func:`chunk_constants`."""
    from gpu_engine.backend.transfer import Column

    names = [name for name, array in host.items() if array.size]
    n = len(host["event_time"])
    out = []
    for _, _, views in uploader.chunks([Column(host[name]) for name in names], n):
        out.append(pipe.run({**constants, **dict(zip(names, views, strict=True))}))
    return out


def chunk_constants(host: dict[str, np.ndarray]) -> dict[str, Any]:
    """The device arrays of :func:`run_streamed` that do not change from chunk to chunk."""
    from kernels.cuda._core import as_device

    dev = {name: as_device(array) for name, array in host.items() if not array.size}
    _add_constants(dev)
    return dev


def joined(parts: list[tuple[Any, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The reason codes and fields of :func:`run_streamed`'s chunks, as whole host arrays."""
    from kernels.cuda._core import to_host

    return (np.concatenate([to_host(reason) for reason, _ in parts]),
            np.concatenate([to_host(field) for _, field in parts]))  # fmt: skip


def _add_constants(dev: dict[str, Any]) -> None:
    from kernels.cuda._core import as_device

    dev["_empty_u8"] = as_device(np.empty(0, np.uint8))
    dev["_empty_f8"] = as_device(np.empty(0, np.float64))
    for f, rule in enumerate(RULES):
        if rule[6]:
            dev[f"_allowed_{f}"] = as_device(np.asarray(rule[6], np.float64))
    dev["_no_icols"] = as_device(np.zeros((0, 0), np.int64))


# -- comparison ------------------------------------------------------------------------------
def compare(cpu: Result, gpu: Result) -> list[str]:
    """Differences between the two results (empty when they agree)."""
    problems: list[str] = []
    if not np.array_equal(cpu.reason, gpu.reason) or not np.array_equal(cpu.field, gpu.field):
        bad = int(np.sum((cpu.reason != gpu.reason) | (cpu.field != gpu.field)))
        problems.append(f"validation: {bad} rows differ")
    n = len(cpu.keys)
    if len(gpu.keys) != n:
        return [*problems, f"groups: cpu {n}, gpu {len(gpu.keys)}"]
    index = HashIndex.from_keys(cpu.keys)  # ids 0..n-1 in cpu order (keys are distinct)
    rows = index.find(gpu.keys)
    if np.any(rows < 0) or len(np.unique(rows)) != n:
        return [*problems, "groups: gpu keys differ from cpu keys"]
    c, g = cpu.state, gpu.state
    for name in ("rows", "ist"):
        if not np.array_equal(getattr(c, name)[rows], getattr(g, name)[:n]):
            problems.append(f"state {name} differs")
    for a, op in enumerate(OPS):
        want = np.empty(n, np.float64)
        want_ok = np.empty(n, np.bool_)
        got = np.empty(n, np.float64)
        got_ok = np.empty(n, np.bool_)
        cpu_finalize(op, False, n, c.ist[rows], c.isum[rows], c.f0[rows], c.f1[rows], a, want,
                     want_ok)  # fmt: skip
        cpu_finalize(op, False, n, g.ist, g.isum, g.f0, g.f1, a, got, got_ok)
        exact = op in (COUNT, MIN, MAX, QUANTILE, DISTINCT)
        close = np.isclose(got, want, rtol=0.0 if exact else 1e-6, atol=0.0, equal_nan=True)
        if not np.array_equal(want_ok, got_ok) or not close.all():
            problems.append(f"{NAMES[a]}: {int((~close).sum())} groups differ")
    # sketch entries: translate gpu rows to cpu rows, then look each one up among the cpu's
    # (distinct) entries: every one found once, with the same count
    ge = gpu.entries.copy()
    ge[:, 0] = rows[ge[:, 0]]
    at = HashIndex.from_keys(cpu.entries).find(ge) if len(ge) else np.empty(0, np.int64)
    if not (
        len(ge) == len(cpu.entries)
        and np.all(at >= 0)
        and np.all(np.bincount(at, minlength=len(ge)) == 1)
        and np.array_equal(cpu.counts[at], gpu.counts)
    ):
        problems.append(f"sketch entries differ (cpu {len(cpu.entries)}, gpu {len(ge)})")
    return problems


# -- timing ----------------------------------------------------------------------------------
def _host_work() -> np.ndarray:
    """Kernel launches, waits for the device and device allocations made so far."""
    from kernels.cuda import _core

    return np.array([sum(c.values()) for c in (_core.LAUNCHES, _core.WAITS, _core.ALLOCATIONS)])


def _described(work: np.ndarray) -> str:
    launches, waits, allocations = work.tolist()
    return f"{launches} launches, {waits} waits, {allocations} allocations"


def kernel_times(n: int, groups: int, dev: dict[str, Any]) -> Any:
    """The device time of each kernel of one more run on ``dev``
    (:class:`kernels.cuda.kernel_times.Summary`)."""
    from kernels.cuda.kernel_times import recording

    pipe = GpuPipeline(n, groups)
    settle()
    with recording() as times:
        pipe.run(dev)
    summary = times.summary()
    del pipe
    return summary


def h2d_bandwidth(nbytes: int, repeats: int = 5) -> float:
    """Best pinned host-to-device copy rate in bytes/s."""
    host = cuda.pinned_array(nbytes, dtype=np.uint8)
    host[:] = 1
    dev = cuda.device_array(nbytes, dtype=np.uint8)
    return nbytes / best_seconds(lambda: dev.copy_to_device(host), repeats)


def settle() -> None:
    """Wait for the device and make the frees Numba has deferred, so that a timed run does
    not pay for an earlier run's (a burst of ``cuMemFree`` calls, each waiting for the
    device, can fall inside any run otherwise)."""
    cuda.synchronize()
    if not SIMULATOR:  # device frees wait in the memory manager's queue (the pool has none)
        context = cuda.current_context()
        for owner in (context, context.memory_manager):
            pending = getattr(owner, "deallocations", None)
            if pending is not None:
                pending.clear()


@dataclasses.dataclass
class DeviceRuns:
    """The runs with the data on the device, each on fresh tables (built before its clock
    starts, as a streaming engine's warm state would be): their seconds in order, the
    problems found comparing each with the CPU, the host's work in the first (launches,
    waits, allocations: :func:`_host_work`) and the sizes of the sketch index."""

    seconds: list[float]
    problems: list[str]
    sketch_slots: int
    sketch_rows: int
    work: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3, np.int64))

    @property
    def warm(self) -> list[float]:
        """The runs after the first (the first alone when there is one): the first pays for
        first touches of memory and caches that a running engine has already paid."""
        return self.seconds[1:] or self.seconds

    @property
    def typical(self) -> float:
        """The median of :attr:`warm`, the figure the goals take."""
        return float(np.median(self.warm))

    def line(self, n: int) -> str:
        first, typical = self.seconds[0], self.typical
        what = ("one run" if len(self.seconds) == 1 else
                f"median of runs 2..{len(self.seconds)} on fresh tables; first {first * 1e3:.2f}"
                f" ms, best {min(self.seconds) * 1e3:.2f} ms")  # fmt: skip
        return (f"gpu, data on device:      {typical * 1e3:9.2f} ms  {n / typical:>16,.0f} "
                f"events/s  ({what})")  # fmt: skip


def device_runs(cpu: Result, dev: dict[str, Any], groups: int, repeat: int) -> DeviceRuns:
    """``repeat`` runs of :class:`GpuPipeline` on ``dev``, each checked against ``cpu``."""
    n = int(dev["event_time"].shape[0])
    seconds: list[float] = []
    problems: list[str] = []
    slots = rows = 0
    work = np.zeros(3, np.int64)
    for run in range(max(1, repeat)):
        pipe = GpuPipeline(n, groups)
        settle()
        before = _host_work()
        t, (reason, field) = timed(lambda p=pipe: p.run(dev))
        if run == 0:
            work = _host_work() - before
        seconds.append(t)
        label = "" if run == 0 else f"run {run + 1}: "
        problems += [label + p for p in compare(cpu, pipe.result(reason, field))]
        slots, rows = pipe.sketch.slot_count, pipe.sketch.capacity
        del pipe, reason, field
    return DeviceRuns(seconds, problems, slots, rows, work)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG)
    positive = _count_at_least(1)
    ap.add_argument("--events", type=positive, default=3_000 if SIMULATOR else 10_000_000)
    ap.add_argument("--bw-bytes", type=positive, default=1 << 20 if SIMULATOR else 1 << 30)
    ap.add_argument("--chunk-rows", type=positive, nargs="+",
                    default=[1024] if SIMULATOR else [1 << 20, 1 << 22],
                    help="rows per chunk of the overlapped runs from pinned memory, a run a "
                         "size (smaller chunks overlap more, larger ones launch less)")  # fmt: skip
    ap.add_argument("--top-kernels", type=int, default=15,
                    help="kernels listed by device time (the rest are summed)")  # fmt: skip
    ap.add_argument("--repeat", type=positive, default=1 if SIMULATOR else 3,
                    help="runs with the data on the device, each on fresh tables; the goals "
                         "take the median of those after the first")  # fmt: skip
    ap.add_argument("--device-only", action="store_true",
                    help="only the runs with the data on the device and the time by kernel: no "
                         "runs from host memory, floors or stage tables")  # fmt: skip
    ap.add_argument("--profile-only", action="store_true",
                    help="one checked run with the data on the device, between "
                         "cuProfilerStart and Stop (for ncu --profile-from-start off), and "
                         "nothing else")  # fmt: skip
    args = ap.parse_args(argv)
    if device_missing(PROG):
        return 2
    if args.profile_only:
        args.device_only, args.repeat = True, 1
    n = args.events
    device = "simulator" if SIMULATOR else cuda.get_current_device().name
    print(f"device: {device!s}; events: {n:,}; kernels launched through {LAUNCH_PATH}; disk "
          f"cache of compiled kernels {'on' if KERNEL_CACHE else 'off'}; launch bounds "
          f"{'on' if LAUNCH_BOUNDS else 'off'}", flush=True)  # fmt: skip

    t0 = time.perf_counter()
    ev = load_events(n)
    nbytes = host_bytes(ev)
    print(f"generated {n:,} events ({nbytes / n:.1f} B/event) in "
          f"{time.perf_counter() - t0:.1f}s", flush=True)  # fmt: skip

    warm = {k: v[: min(n, 100_000)] if len(v) == n else v for k, v in ev.items()}
    t0 = time.perf_counter()
    cpu_run(warm)  # compiles the CPU kernels (cached), so the timed run below is warm
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    cpu = cpu_run(ev)
    t_cpu = time.perf_counter() - t0
    print(f"cpu kernels: {t_cpu:.3f}s ({n / t_cpu:,.0f} events/s; compiled in "
          f"{t_compile:.1f}s), {len(cpu.keys):,} pane groups", flush=True)  # fmt: skip

    groups = max(1024, 2 * len(cpu.keys))
    GpuPipeline(events=1024, groups=1024).run(to_device(warm))  # compiles; tables grow
    cuda.synchronize()

    dev = to_device(ev)
    if args.profile_only:
        return profiled_run(cpu, dev, groups)
    runs = device_runs(cpu, dev, groups, args.repeat)
    problems = runs.problems
    rate_dev = n / runs.typical
    print(runs.line(n))
    print(f"host work of a run with the data on the device: {_described(runs.work)}")
    h2d_share: float | None = None  # the better pinned end-to-end rate, in H2D bandwidths
    if not args.device_only:
        h2d_share = host_memory_runs(ev, cpu, groups, args.chunk_rows, args.bw_bytes, problems)
    by_kernel = kernel_times(n, groups, dev)
    print(f"cpu kernels:              {t_cpu * 1e3:9.2f} ms  {n / t_cpu:>16,.0f} events/s")
    print(f"speed-up over cpu (on device): {rate_dev / (n / t_cpu):.1f}x")
    if not args.device_only:
        floors = measure_floors(n, nbytes, runs.sketch_slots, runs.sketch_rows)
        print(f"floors on this device ({floors.__module__}), against {n / 3e6:.2f} ms for "
              f"{n:,} events at 3e9 events/s:")  # fmt: skip
        print("\n".join(floors.lines(n)))
        print_stage_times(n, groups, dev)
    print(f"the same run's device time by kernel (CUDA events around each launch, "
          f"{LAUNCH_PATH}):")  # fmt: skip
    print("\n".join(by_kernel.lines(top=args.top_kernels)))
    goals = [
        ("validation + pane aggregation >= 3e9 events/s on device", rate_dev >= 3e9),
        ("end to end >= 60% of H2D bandwidth (pinned host, best of whole and overlapped)",
         None if h2d_share is None else h2d_share >= 0.6),
        (">= 20x the cpu kernels", rate_dev >= 20 * n / t_cpu),
    ]  # fmt: skip
    for text, met in goals:
        print(f"goal {verdict(met, problems)} {text}")
    print(f"checked {n:,} events in each of {len(runs.seconds)} run(s) with the data on the "
          f"device, {len(cpu.keys):,} groups x {len(OPS)} aggregations, {len(cpu.entries):,} "
          "sketch entries")  # fmt: skip
    return conclude(problems)


def verdict(met: bool | None, problems: list[str]) -> str:
    """What to say of a goal: met or missed on a card whose results equal the CPU's, not
    judged under the simulator (its times are not a card's) nor when a result differs
    (a fast wrong answer meets nothing), not measured when its runs were left out."""
    if met is None:
        return "not measured (--device-only)"
    if SIMULATOR:
        return "not judged (the simulator's times are not a card's)"
    if problems:
        return "not judged (the results differ from the CPU's: GPU_KERNELS FAIL)"
    return "MET   " if met else "MISSED"


def conclude(problems: list[str]) -> int:
    """Print each mismatch, then the last line (``GPU_KERNELS PASS`` or ``FAIL``); the exit
    status."""
    for problem in problems:
        print(f"MISMATCH {problem}")
    print("GPU_KERNELS " + ("FAIL" if problems else "PASS"), flush=True)
    return 1 if problems else 0


def profiled_run(cpu: Result, dev: dict[str, Any], groups: int) -> int:
    """One run on ``dev`` between cuProfilerStart and cuProfilerStop, so that a profiler
    started with profiling off (``ncu --profile-from-start off``) sees its kernels and no
    warm-up's; checked against ``cpu`` like the others."""
    profiling = not SIMULATOR  # the simulator has no profiler API
    if profiling:
        cuda.profile_start()
    try:
        runs = device_runs(cpu, dev, groups, 1)
    finally:
        if profiling:
            cuda.profile_stop()
    print(runs.line(len(cpu.reason)) + ("" if profiling else " (simulator: not profiled)"))
    return conclude(runs.problems)


def host_memory_runs(
    ev: dict[str, np.ndarray],
    cpu: Result,
    groups: int,
    chunk_rows: Sequence[int],
    bw_bytes: int,
    problems: list[str],
) -> float:
    """Run from pageable and from pinned host memory, whole and in overlapped chunks of
    each of ``chunk_rows`` (those runs' results checked into ``problems``), print their
    rates against the pinned H2D bandwidth (a copy of ``bw_bytes``), and return the best
    pinned rate as a share of that bandwidth."""
    n = len(ev["event_time"])
    nbytes = host_bytes(ev)
    pageable = GpuPipeline(n, groups)
    settle()
    t_e2e, _ = timed(lambda p=pageable: p.run(to_device(ev)))
    del pageable
    pinned: dict[str, Any] = {}
    for name, array in ev.items():
        if array.size == 0:  # a pinned allocation of 0 bytes is a null pointer on a device
            pinned[name] = array
            continue
        buf = cuda.pinned_array(array.shape, dtype=array.dtype)
        buf[...] = array
        pinned[name] = buf
    pinned_pipe = GpuPipeline(n, groups)
    settle()
    t_e2e_pinned, _ = timed(lambda p=pinned_pipe: p.run(to_device(pinned)))
    del pinned_pipe
    # The same from pinned memory, in chunks whose copies overlap the kernels of the chunk
    # before (the engine's way of streaming), with state carried from chunk to chunk.
    constants = chunk_constants(pinned)
    streamed_runs = [(rows, *overlapped_run(pinned, constants, cpu, groups, rows, problems))
                     for rows in chunk_rows]  # fmt: skip
    bw = h2d_bandwidth(bw_bytes)
    per_event = nbytes / n
    lines = [("from pageable host:  ", t_e2e, ""), ("from pinned host:    ", t_e2e_pinned, "")]
    lines += [("pinned, overlapped:  ", seconds, f"; chunks of {rows:,} rows")
              for rows, seconds, _ in streamed_runs]  # fmt: skip
    for label, seconds, note in lines:
        rate = n / seconds
        print(f"gpu, {label}{seconds * 1e3:9.2f} ms  {rate:>16,.0f} events/s  "
              f"({rate * per_event / bw:.0%} of H2D bandwidth{note})")  # fmt: skip
    for rows, _, work in streamed_runs:
        print(f"host work of the overlapped run in chunks of {rows:,}: {_described(work)}")
    print(f"h2d bandwidth (pinned, {bw_bytes / 1e9:.2f} GB): {bw / 1e9:.2f} GB/s")
    best = min([t_e2e_pinned] + [seconds for _, seconds, _ in streamed_runs])
    return n / best * per_event / bw


def overlapped_run(pinned: dict[str, Any], constants: dict[str, Any], cpu: Result, groups: int,
                   chunk_rows: int, problems: list[str]) -> tuple[float, np.ndarray]:  # fmt: skip
    """One timed run from ``pinned`` host arrays in chunks of ``chunk_rows`` (``constants``:
    :func:`chunk_constants`), its results checked into ``problems``: (seconds, the host
    work it did)."""
    n = len(pinned["event_time"])
    uploader = PinnedUploader(chunk_rows=chunk_rows, pinned_source=True)
    names = [name for name, array in pinned.items() if array.size]
    for _ in uploader.chunks([Column(pinned[name]) for name in names], n):
        pass  # sizes the uploader's device buffers before the timed run
    streamed = GpuPipeline(n, groups)
    settle()
    work = _host_work()
    seconds, parts = timed(lambda p=streamed: run_streamed(p, pinned, uploader, constants))
    work = _host_work() - work
    problems += [f"overlapped run in chunks of {chunk_rows:,}: {p}"
                 for p in compare(cpu, streamed.result(*joined(parts)))]  # fmt: skip
    return seconds, work


def print_stage_times(n: int, groups: int, dev: dict[str, Any]) -> None:
    """Print the device time of each stage of one run, then with each stage's kernels
    queued before they run (:class:`StageTimes`)."""
    breakdowns = []
    for held in (False, True):
        staged = GpuPipeline(n, groups)
        breakdowns.append(StageTimes(held))
        settle()
        staged.run(dev, breakdowns[-1])
        cuda.synchronize()
        del staged
    print("where the time on the device goes (CUDA events), ms: in one run / each stage with its"
          " kernels queued before they run (the device's own time):")  # fmt: skip
    for (stage, ran), (_, own) in zip(*(b.times for b in breakdowns), strict=True):
        print(f"  {stage:<36}{ran:9.2f}{own:9.2f}")
    ran_total, own_total = (sum(t for _, t in b.times) for b in breakdowns)
    own_rate = f"{n / own_total * 1e3:,.0f}" if own_total > 0 else "n/a"  # the simulator: -1
    print(f"  {'total':<36}{ran_total:9.2f}{own_total:9.2f}  (device's own time: {own_rate}"
          " events/s)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
