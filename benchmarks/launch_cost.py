"""The host's cost of kernel launches and device arrays, Numba's ways and ours, without a card.

    python -m benchmarks.launch_cost [--repeat 300] [--fresh 200] [--arrays]

Why: a card measured Numba's launch at 20-111 µs (``benchmarks.launches --costs``), and
the CUDA engine makes dozens of launches a batch, so the host's share of a launch
decides its speed at the default batch sizes. Most of that share is Python work that
needs no device: typing the arguments, wrapping them, building the parameters. This
benchmark times exactly that, for every registered kernel, by stubbing the driver's
part: kernels are compiled for sm_90 as the PTX tests do, Numba device arrays stand
over fake memory, and the final ``cuda.core.launch`` call does nothing. What it leaves
out is the driver's own launch call (a few µs on a card), the same for both paths.

It prints the median time of a launch by the kernel's number of arguments, through
Numba's dispatcher (``kernel[blocks, threads](*args)``) and through
:class:`kernels.cuda.launcher.PreparedKernel`, each with arrays launched before (both
paths keep what they derive from an array on it) and with new arrays, as a batch's
fresh temporaries are. Run it in its own process: it patches Numba's driver calls.

No kernel runs, so the paths' output is the launch they hand the driver: before any
figure is printed, every argument set timed (and one never launched) is launched once
more by both with the driver's call recorded, and the two must match (stream, grid,
block, shared memory, kernel handle: one stand-in for all here, and every parameter with
its ctypes type). A difference prints ``MISMATCH`` lines and ``LAUNCH_COST FAIL`` in
place of the figures (exit status 1); the last line is otherwise ``LAUNCH_COST PASS``.

``--arrays`` (``--pool``: through the opt-in pool) times the host's side of device
arrays instead, with a stand-in CUDA
context whose allocations, frees and copies do nothing: Numba's allocation
(``device_array``), slicing and copies, against :func:`kernels.cuda._core.span`,
:func:`~kernels.cuda._core.carve` and :func:`~kernels.cuda._core.copy`, and against
:func:`~kernels.cuda._core.empty_many` for several arrays at once. Each of ours is checked
against the Numba way listed before it, likewise: the same array (shape, strides, dtype,
device address; several new arrays without their addresses), answer, or driver copies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import os
import statistics
import sys
import time
import types as pytypes
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

GRID = (256, 256)  # blocks, threads: large enough that Numba does not warn about occupancy
COPIES = ("cuMemcpyDtoD", "cuMemcpyDtoDAsync", "cuMemcpyHtoD", "cuMemcpyHtoDAsync")


def _stub_driver() -> None:
    """Compile without a device and make the driver's launch a no-op (both paths)."""
    from numba.cuda import codegen, dispatcher
    from numba.cuda.cudadrv import devices, driver

    from kernels.cuda import launcher

    cufunc = pytypes.SimpleNamespace(kernel=None)
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=(9, 0))
    codegen.CUDACodeLibrary._ensure_cc = lambda self, cc: cc or (9, 0, "a")
    codegen.CUDACodeLibrary.get_cufunc = lambda self: cufunc
    dispatcher._Kernel.bind = lambda self: None
    driver._to_core_stream = lambda stream: None
    dispatcher.launch = lambda *args: None
    launcher.launch = lambda *args: None
    devices.get_context = lambda devnum=None: None  # a thread's first fast launch asks


def _stub_context(pool: bool = False) -> None:
    """A stand-in CUDA context whose device allocations, frees and copies do nothing; with
    ``pool``, its memory manager is the opt-in pool (:mod:`kernels.cuda.pool`), whose
    events are stand-ins too (recorded at once, always passed)."""
    import contextlib
    import itertools
    import logging

    from numba.cuda.cudadrv import devices, driver

    addresses = itertools.count(1 << 32, 1 << 20)
    driver.driver.cuMemAlloc = lambda size: driver.binding.CUdeviceptr(next(addresses))
    driver.driver.cuMemFree = lambda pointer: None
    for copy in COPIES:
        setattr(driver.driver, copy, lambda *args: None)
    driver._logger = logging.getLogger(__name__)  # set by the driver's initialisation
    if pool:
        from numba import cuda

        from kernels.cuda.pool import _plugin

        cuda.set_memory_manager(_plugin())
        passed = pytypes.SimpleNamespace(record=lambda stream=0: None, query=lambda: True)
        cuda.event = lambda timing=True: passed
    context = driver.Context(pytypes.SimpleNamespace(id=0), handle=None)
    if pool:
        context.memory_manager.initialize()
    devices._runtime.ensure_context = contextlib.nullcontext
    devices._runtime.get_or_create_context = lambda devnum=None: context
    devices.get_context = lambda devnum=None: context


@contextlib.contextmanager
def _recording(*stubs: tuple[Any, str]) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """The calls of the stubbed driver functions ``(owner, name)``, recorded in place of
    the no-ops the timings call (so the timed stubs stay as cheap as before)."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    saved = [(owner, name, getattr(owner, name)) for owner, name in stubs]
    for owner, name in stubs:
        setattr(owner, name, lambda *args, name=name: calls.append((name, args)))
    try:
        yield calls
    finally:
        for owner, name, stub in saved:
            setattr(owner, name, stub)


def _plain(value: Any) -> Any:
    """A driver call's argument as a comparable value: a ctypes scalar with its type."""
    if isinstance(value, ctypes._SimpleCData):
        return (type(value).__name__, value.value)
    return value


def array_costs(repeat: int) -> tuple[list[str], list[str]]:
    """µs of host time of each way to make a device array (allocations dropped at once),
    and how each of ours differs from the Numba way before it (nothing, when it does not)."""
    from numba import cuda

    from kernels.cuda._core import carve, copy, empty_many, is_device_array, span

    manager = type(cuda.current_context().memory_manager).__name__
    block = cuda.device_array(1 << 16, np.int64)
    other, host = cuda.device_array(1 << 16, np.int64), np.zeros(1 << 16, np.int64)
    parts = ((65_536, np.int64), (65_536, np.uint8), (1, np.int64))
    ways: list[tuple[str, Callable[[], Any]]] = [
        (f"{manager}: allocate 65,536 int64 (device_array), drop",
         lambda: cuda.device_array(65_536, np.int64)),
        ("Numba: a[:1000]", lambda: block[:1000]),
        ("ours: span(a, 0, 1000)", lambda: span(block, 0, 1000)),
        ("Numba: a[500:1500]", lambda: block[500:1500]),
        ("ours: span(a, 500, 1500)", lambda: span(block, 500, 1500)),
        ("Numba: a.view(uint8)[8:24].view(int16).reshape(2, 4)",
         lambda: block.view(np.uint8)[8:24].view(np.int16).reshape(2, 4)),
        ("ours: carve(a, 8, (2, 4), int16)", lambda: carve(block, 8, (2, 4), np.int16)),
        ("interface check: hasattr(a, '__cuda_array_interface__')",
         lambda: hasattr(block, "__cuda_array_interface__")),
        ("ours: is_device_array(a)", lambda: is_device_array(block)),
        ("Numba: a.copy_to_device(b), device to device", lambda: block.copy_to_device(other)),
        ("ours: copy(a, b)", lambda: copy(block, other)),
        ("Numba: a.copy_to_device(h), from the host", lambda: block.copy_to_device(host)),
        ("ours: copy(a, h)", lambda: copy(block, host)),
        ("Numba: three arrays, three allocations",
         lambda: [cuda.device_array(shape, dtype) for shape, dtype in parts]),
        ("ours: three arrays, one allocation (empty_many)", lambda: empty_many(*parts)),
    ]  # fmt: skip
    lines = [f"{_per_launch(_ignoring_args(make), [[]] * repeat):8.1f} µs  {name}"
             for name, make in ways]  # fmt: skip
    return lines, _differing_ways(ways)


def _differing_ways(ways: list[tuple[str, Callable[[], Any]]]) -> list[str]:
    """Each ``ours:`` way against the way listed before it (Numba's): what each gives."""
    problems = []
    for (theirs, make_theirs), (ours, make_ours) in itertools.pairwise(ways):
        if ours.startswith("ours:"):
            want, got = _outcome(make_theirs), _outcome(make_ours)
            if got != want:
                problems.append(f"{ours!r} gives {got}, {theirs!r} {want}")
    return problems


def _outcome(make: Callable[[], Any]) -> tuple[Any, list[Any]]:
    """What ``make`` gives, and the driver copies it asks for (recorded)."""
    from numba.cuda.cudadrv import driver

    with _recording(*((driver.driver, name) for name in COPIES)) as copies:
        result = make()
    return _described(result), [(name, [_plain(a) for a in args]) for name, args in copies]


def _described(result: Any) -> Any:
    """A device array as (shape, strides, dtype, device address); new arrays, which lie
    where the allocator puts them, without the address; anything else as it is."""
    if isinstance(result, list):
        return [_described(item)[:3] for item in result]
    if hasattr(result, "device_ctypes_pointer"):
        address = result.device_ctypes_pointer.value
        return (result.shape, result.strides, str(result.dtype), address)
    return result


def _ignoring_args(make: Callable[[], Any]) -> Callable[[list[Any]], None]:
    return lambda args: make()


def _fake_array(numba_type: Any, k: int) -> Any:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    memory = pytypes.SimpleNamespace(device_ctypes_pointer=_pointer((k + 1) << 20))
    shape = (1000 + k, 2 + numba_type.ndim)[: numba_type.ndim]
    dtype = np.dtype(numba_type.dtype.name)
    return DeviceNDArray(shape, np.empty(shape, dtype).strides, dtype, gpu_data=memory)


def _pointer(address: int) -> Any:
    import ctypes

    return ctypes.c_void_p(address)


def _arguments(signature: Any, k: int = 0) -> list[Any]:
    from numba import types

    out: list[Any] = []
    for j, numba_type in enumerate(signature.args):
        if isinstance(numba_type, types.Array):
            out.append(_fake_array(numba_type, k + j))
        elif isinstance(numba_type, types.Boolean):
            out.append(True)
        elif isinstance(numba_type, types.Integer):
            out.append(7)
        else:
            out.append(1.5)
    return out


def _per_launch(launch: Callable[[list[Any]], None], argument_sets: list[list[Any]]) -> float:
    """µs per launch, each argument set launched once (after one untimed launch)."""
    launch(argument_sets[0])
    start = time.perf_counter()
    for args in argument_sets:
        launch(args)
    return (time.perf_counter() - start) / len(argument_sets) * 1e6


Times = tuple[float, float, float, float]  # µs: Numba known/new arrays, prepared known/new


def measure(
    repeat: int, fresh: int, limit: int | None = None
) -> tuple[dict[int, list[Times]], list[str]]:
    """{argument count: [launch times of each kernel with that many arguments]}, of the
    first ``limit`` kernels (default: all), and where the two paths launched differently."""
    from numba import cuda

    from kernels.cuda import all_signatures

    seen: set[str] = set()
    by_count: dict[int, list[Times]] = defaultdict(list)
    problems: list[str] = []
    for name, _dtype, pyfunc, signature in all_signatures():
        if name in seen or len(seen) == limit:  # one dtype of each kernel
            continue
        seen.add(name)
        dispatcher = cuda.jit(signature)(pyfunc)
        times, differences = _kernel_times(dispatcher, signature, repeat, fresh)
        by_count[len(signature.args)].append(times)
        problems += [f"kernel {name}: {difference}" for difference in differences]
    return by_count, problems


def _kernel_times(
    dispatcher: Any, signature: Any, repeat: int, fresh: int
) -> tuple[Times, list[str]]:
    """The kernel's four times, then how the paths' launches differ (see ``_differing``)."""
    from kernels.cuda.launcher import PreparedKernel

    prepared = PreparedKernel(dispatcher)
    known = [_arguments(signature)] * repeat
    new = _new(signature, fresh)  # the prepared path's: it keeps their parameters on them
    times = (
        _per_launch(lambda args: dispatcher[GRID](*args), known),
        _per_launch(lambda args: dispatcher[GRID](*args), _new(signature, fresh)),
        _per_launch(lambda args: prepared[GRID](*args), known),
        _per_launch(lambda args: prepared[GRID](*args), new),
    )
    untouched = _arguments(signature, fresh + 1)
    return times, _differing(dispatcher, prepared, [known[0], untouched, *new])


def _differing(dispatcher: Any, prepared: Any, argument_sets: list[list[Any]]) -> list[str]:
    """The argument sets on which Numba's launch and the prepared one hand the driver
    different launches, each path's single launch call recorded in place of the stub's."""
    from numba.cuda import dispatcher as numba_dispatcher

    from kernels.cuda import launcher

    stubs = ((numba_dispatcher, "launch"), (launcher, "launch"))
    problems = []
    for k, args in enumerate(argument_sets):
        with _recording(*stubs) as numba_calls:
            dispatcher[GRID](*args)
        with _recording(*stubs) as prepared_calls:
            prepared[GRID](*args)
        want, got = _launches(numba_calls), _launches(prepared_calls)
        if len(want) != 1 or got != want:
            problems.append(f"argument set {k}: Numba's launches {want}, the prepared {got}")
    return problems


def _launches(calls: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """Recorded ``cuda.core.launch(stream, config, kernel, *params)`` calls, comparable."""
    out = []
    for _, (stream, config, kernel, *params) in calls:
        shape = tuple(getattr(config, a, None) for a in ("grid", "block", "shmem_size",
                      "is_cooperative", "cooperative_launch"))  # fmt: skip
        out.append((stream, shape, kernel, [_plain(p) for p in params]))
    return out


def _new(signature: Any, count: int) -> list[list[Any]]:
    return [_arguments(signature, k) for k in range(1, count + 1)]


def report(by_count: dict[int, list[Times]]) -> list[str]:
    lines = [
        "arguments  kernels   µs a launch: Numba (known arrays / new)   prepared (known / new)"
    ]
    every: list[Times] = []
    for count in sorted(by_count):
        rows = by_count[count]
        every.extend(rows)
        a, b, c, d = (statistics.median(col) for col in zip(*rows, strict=True))
        lines.append(f"{count:>9}  {len(rows):>7}  {a:>24.1f} / {b:<8.1f}  {c:>13.1f} / {d:.1f}")
    a, b, c, d = (statistics.median(col) for col in zip(*every, strict=True))
    lines.append(f"all {len(every)} kernels, median µs a launch: Numba {a:.1f} / {b:.1f}, "
                 f"prepared {c:.1f} / {d:.1f} (known / new arrays): {a / c:.1f}x / "
                 f"{b / d:.1f}x less host work")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.launch_cost",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--repeat", type=int, default=300, help="launches with known arrays")
    parser.add_argument("--fresh", type=int, default=200, help="launches with new arrays")
    parser.add_argument("--arrays", action="store_true", help="time device arrays instead")
    parser.add_argument("--kernels", type=int, default=None, help="only the first N kernels")
    parser.add_argument("--pool", action="store_true",
                        help="with --arrays: allocate through the opt-in pool")  # fmt: skip
    args = parser.parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        print("launch_cost times Numba's real launch path: run it without the simulator")
        return 2
    if args.arrays:
        _stub_context(pool=args.pool)
        lines, problems = array_costs(args.repeat)
        checked = "each of our ways gives what the Numba way before it gives"
    else:
        _stub_driver()
        by_count, problems = measure(args.repeat, args.fresh, args.kernels)
        lines = report(by_count)
        checked = "both paths handed the driver the same launches, every argument set"
    if problems:  # no figures: the two did not do the same thing
        print("\n".join(f"MISMATCH {problem}" for problem in problems))
        print("LAUNCH_COST FAIL")
        return 1
    for line in lines:
        print(line)
    print(f"checked: {checked}")
    print("LAUNCH_COST PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
