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

``--arrays`` (``--pool``: through the opt-in pool) times the host's side of device
arrays instead, with a stand-in CUDA
context whose allocations, frees and copies do nothing: Numba's allocation
(``device_array``), slicing and copies, against :func:`kernels.cuda._core.span`,
:func:`~kernels.cuda._core.carve` and :func:`~kernels.cuda._core.copy`, and against
:func:`~kernels.cuda._core.empty_many` for several arrays at once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types as pytypes
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

GRID = (256, 256)  # blocks, threads: large enough that Numba does not warn about occupancy


def _stub_driver() -> None:
    """Compile without a device and make the driver's launch a no-op (both paths)."""
    from numba.cuda import codegen, dispatcher
    from numba.cuda.cudadrv import driver

    from kernels.cuda import launcher

    cufunc = pytypes.SimpleNamespace(kernel=None)
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=(9, 0))
    codegen.CUDACodeLibrary._ensure_cc = lambda self, cc: cc or (9, 0, "a")
    codegen.CUDACodeLibrary.get_cufunc = lambda self: cufunc
    dispatcher._Kernel.bind = lambda self: None
    driver._to_core_stream = lambda stream: None
    dispatcher.launch = lambda *args: None
    launcher.launch = lambda *args: None


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
    for copy in ("cuMemcpyDtoD", "cuMemcpyDtoDAsync", "cuMemcpyHtoD", "cuMemcpyHtoDAsync"):
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


def array_costs(repeat: int) -> list[str]:
    """µs of host time of each way to make a device array (allocations dropped at once)."""
    from numba import cuda

    from kernels.cuda._core import carve, copy, empty_many, is_device_array, span

    manager = type(cuda.current_context().memory_manager).__name__
    block = cuda.device_array(1 << 16, np.int64)
    other, host = cuda.device_array(1 << 16, np.int64), np.zeros(1 << 16, np.int64)
    parts = ((65_536, np.int64), (65_536, np.uint8), (1, np.int64))
    ways: list[tuple[str, Callable[[], Any]]] = [
        (f"{manager}: allocate 65,536 int64 (device_array), drop",
         lambda: cuda.device_array(65_536)),
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
    return [f"{_per_launch(_ignoring_args(make), [[]] * repeat):8.1f} µs  {name}"
            for name, make in ways]  # fmt: skip


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


def measure(repeat: int, fresh: int, limit: int | None = None) -> dict[int, list[Times]]:
    """{argument count: [launch times of each kernel with that many arguments]}, of the
    first ``limit`` kernels (default: all)."""
    from numba import cuda

    from kernels.cuda import all_signatures

    seen: set[str] = set()
    by_count: dict[int, list[Times]] = defaultdict(list)
    for name, _dtype, pyfunc, signature in all_signatures():
        if name in seen or len(seen) == limit:  # one dtype of each kernel
            continue
        seen.add(name)
        dispatcher = cuda.jit(signature)(pyfunc)
        by_count[len(signature.args)].append(_kernel_times(dispatcher, signature, repeat, fresh))
    return by_count


def _kernel_times(dispatcher: Any, signature: Any, repeat: int, fresh: int) -> Times:
    from kernels.cuda.launcher import PreparedKernel

    prepared = PreparedKernel(dispatcher)
    known = [_arguments(signature)] * repeat
    return (
        _per_launch(lambda args: dispatcher[GRID](*args), known),
        _per_launch(lambda args: dispatcher[GRID](*args), _new(signature, fresh)),
        _per_launch(lambda args: prepared[GRID](*args), known),
        _per_launch(lambda args: prepared[GRID](*args), _new(signature, fresh)),
    )


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
        lines = array_costs(args.repeat)
    else:
        _stub_driver()
        lines = report(measure(args.repeat, args.fresh, args.kernels))
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
