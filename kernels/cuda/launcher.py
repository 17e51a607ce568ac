"""Kernel launches without Numba's per-call dispatch (opt-in: ``TIKTOKTOE_FAST_LAUNCH=1``).

Why: a card measured Numba's launch at 20 µs with 2 arguments and 75-110 µs with 4 to
15 (``benchmarks.launches --costs``), about 6 µs an argument, and a CUDA batch makes
dozens of launches. Every kernel of :mod:`kernels.cuda` is compiled for exactly one
signature, so the per-call work Numba repeats (typing the arguments to pick the
compiled signature, wrapping each array in an argument hint, building its
memory view, building the launch configuration) gives the same answer every time.
:class:`PreparedKernel` does it once: the compiled kernel and the launch
configuration are kept per grid, and each device array's kernel parameters are
computed on its first launch and kept on the array (its shape, strides and
memory never change).

The parameters are exactly those Numba's ``_Kernel._prepare_args`` passes (the
test suite compares the two on every argument type the kernels use), handed to
the same ``cuda.core.launch`` Numba calls. An argument that is not a Numba device
array of the signature's type (a CuPy or cuDF buffer, a non-contiguous view, a
wrong dtype) sends that one launch through Numba's own path, which converts it or
raises its usual error.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from cuda.core import LaunchConfig, launch
from numba import types
from numba.cuda._compat import CUDA_CORE_GE_1_0
from numba.cuda.cudadrv.devicearray import DeviceNDArrayBase
from numba.cuda.np import numpy_support

_PARAMS = "_tiktoktoe_launch_params"  # where an array keeps (numba type, parameters)

Packer = Callable[[Any, list[Any]], bool]


def array_params(array: Any) -> tuple[Any, tuple[Any, ...]]:
    """(Numba type, kernel parameters) of a Numba device array, as ``_prepare_args``
    passes them: meminfo, parent, size, itemsize, data pointer, shape, strides in bytes."""
    view = array._strided_memory_view_shim  # what Numba builds (and caches) for a launch
    layout = view._layout
    strides = layout.strides_in_bytes or numpy_support.strides_from_shape(
        shape=view.shape, itemsize=view.dtype.itemsize,
        c_contiguous=layout.is_contiguous_c, f_contiguous=layout.is_contiguous_f,
    )  # fmt: skip
    params = (0, 0, view.size, view.dtype.itemsize, view.ptr, *view.shape, *strides)
    return array._numba_type_, params


def _array_packer(expected: Any) -> Packer:
    def pack(array: Any, out: list[Any]) -> bool:
        try:
            numba_type, params = array.__dict__[_PARAMS]
        except (AttributeError, KeyError):
            if not isinstance(array, DeviceNDArrayBase):
                return False  # e.g. a CuPy array: Numba's path wraps it
            numba_type, params = array.__dict__[_PARAMS] = array_params(array)
        if numba_type is not expected and numba_type != expected:
            return False
        out.extend(params)
        return True

    return pack


def _scalar_packer(convert: Callable[[Any], Any]) -> Packer:
    def pack(value: Any, out: list[Any]) -> bool:
        out.append(convert(value))
        return True

    return pack


def packer(numba_type: Any) -> Packer:
    """The parameter packer of one argument type (as ``_prepare_args`` converts it)."""
    if isinstance(numba_type, types.Array):
        return _array_packer(numba_type)
    if isinstance(numba_type, types.Boolean):
        return _scalar_packer(lambda value: value)
    if isinstance(numba_type, types.Integer):
        return _scalar_packer(getattr(ctypes, f"c_{numba_type}"))
    if numba_type == types.float64:
        return _scalar_packer(ctypes.c_double)
    if numba_type == types.float32:
        return _scalar_packer(ctypes.c_float)
    raise NotImplementedError(f"no fast launch for arguments of type {numba_type}")


class PreparedKernel:
    """A one-signature Numba kernel, launched as ``prepared[blocks, threads](*args)``."""

    def __init__(self, dispatcher: Any) -> None:
        (compiled,) = dispatcher.overloads.values()
        self.dispatcher = dispatcher
        self.compiled = compiled
        self.packers = [packer(t) for t in compiled.argument_types]
        self._launches: dict[Any, _Launch] = {}
        self._function: Any = None

    GRIDS_KEPT = 256  # grids sized by batch length vary; keep the recent ones

    def __getitem__(self, dims: Any) -> _Launch:
        found = self._launches.get(dims)
        if found is None:
            if len(self._launches) >= self.GRIDS_KEPT:
                self._launches.clear()
            found = self._launches[dims] = _Launch(self, self.dispatcher[dims])
        return found

    def function(self) -> Any:
        """The driver's handle of the compiled kernel (loaded on first use)."""
        if self._function is None:
            self._function = self.compiled._codelibrary.get_cufunc().kernel
        return self._function


class _Launch:
    """One grid of a :class:`PreparedKernel`; Numba's configuration is the fallback."""

    def __init__(self, prepared: PreparedKernel, numba_launch: Any) -> None:
        self.prepared = prepared
        self.numba_launch = numba_launch
        self.stream = numba_launch.stream
        grid, block = numba_launch.griddim, numba_launch.blockdim
        if CUDA_CORE_GE_1_0:  # the same configuration as Numba's _Kernel.launch builds
            self.config = LaunchConfig(grid=grid, block=block, shmem_size=0, is_cooperative=False)
        else:  # pragma: no cover - older cuda-core
            self.config = LaunchConfig(grid=grid, block=block, shmem_size=0,
                                       cooperative_launch=False)  # fmt: skip

    def __call__(self, *args: Any) -> None:
        packers = self.prepared.packers
        params: list[Any] = []
        if len(args) == len(packers):
            for pack, arg in zip(packers, args, strict=True):
                if not pack(arg, params):
                    break
            else:
                launch(self.stream, self.config, self.prepared.function(), *params)
                return
        self.numba_launch(*args)


__all__ = ["PreparedKernel", "array_params", "packer"]
