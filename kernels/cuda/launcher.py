"""Kernel launches without Numba's per-call dispatch (the default; ``TIKTOKTOE_FAST_LAUNCH=0``
keeps Numba's dispatcher).

Why: a card measured Numba's launch at 20 µs with 2 arguments and 75-110 µs with 4 to
15 (``benchmarks.launches --costs``), and a CUDA batch makes dozens to hundreds of
launches. Every kernel of :mod:`kernels.cuda` is compiled for exactly one signature,
so the per-call work Numba repeats (typing the arguments to pick the compiled
signature, wrapping each array in an argument hint, building its memory view and
Numba type, building the launch configuration) gives the same answer every time.
:class:`PreparedKernel` does it once: the compiled kernel and the launch
configuration are kept per grid, and each device array's kernel parameters are read
from its attributes on its first launch and kept on the array (its shape, strides
and memory never change). Without the driver's own call, that is about a tenth of
Numba's host work a launch (``benchmarks.launch_cost``).

The parameters are exactly those Numba's ``_Kernel._prepare_args`` passes (the
test suite compares the two on every argument type the kernels use), handed to
the same ``cuda.core.launch`` Numba calls. A foreign device array (CuPy, cuDF) is
viewed as a Numba one first. An argument that does not fit the signature (a
non-contiguous or broadcast view, a wrong dtype or ndim, a scalar ctypes cannot
convert, a missing argument) is a ``TypeError`` naming the kernel and the argument:
Numba's own path does not check a one-signature kernel's arguments (it launches its
only overload), so it would read a float32 array as float64 on a card.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from cuda.core import LaunchConfig, launch
from numba import types
from numba.cuda import as_cuda_array
from numba.cuda._compat import CUDA_CORE_GE_1_0
from numba.cuda.cudadrv import devices
from numba.cuda.cudadrv.devicearray import DeviceNDArrayBase

_PARAMS = "_tiktoktoe_launch_params"  # where an array keeps what array_params found
_THREAD = threading.local()  # whether this host thread has made the context current

Packer = Callable[[Any, list[Any]], bool]


def array_params(array: Any) -> tuple[Any, int, bool, tuple[Any, ...]]:
    """(dtype, ndim, whether Numba types it C-contiguous, kernel parameters) of a Numba
    device array. The parameters are those ``_prepare_args`` passes (meminfo, parent, size,
    itemsize, data pointer, shape, strides in bytes), read from the array's own attributes:
    Numba's memory view and Numba type cost about 14 µs per new array, most of a batch's
    temporaries are new, and the type is needed only to tell whether the array fits."""
    shape, strides, size = array.shape, array.strides, array.size
    broadcast = 0 in strides and size != 0  # Numba types those 'A', never 'C'
    c_layout = array.flags["C_CONTIGUOUS"] and not broadcast
    params = (0, 0, size, array.dtype.itemsize, array.device_ctypes_pointer.value,
              *shape, *strides)  # fmt: skip
    return array.dtype, array.ndim, c_layout, params


def _array_packer(expected: Any) -> Packer:
    if expected.layout != "C":
        raise NotImplementedError(f"no fast launch for arrays of layout {expected.layout}")
    dtype, ndim = np.dtype(str(expected.dtype)), expected.ndim

    def pack(array: Any, out: list[Any]) -> bool:
        found = array.__dict__.get(_PARAMS) if hasattr(array, "__dict__") else None
        if found is None:
            if not isinstance(array, DeviceNDArrayBase):
                try:  # e.g. a CuPy array: viewed as Numba's launch would (not kept)
                    found = array_params(as_cuda_array(array))
                except Exception:
                    return False
            else:
                found = array.__dict__[_PARAMS] = array_params(array)
        if not (found[2] and found[1] == ndim and found[0] == dtype):
            return False
        out.extend(found[3])
        return True

    return pack


def _scalar_packer(convert: Callable[[Any], Any]) -> Packer:
    def pack(value: Any, out: list[Any]) -> bool:
        try:
            out.append(convert(value))
        except TypeError:  # e.g. a float for an integer
            return False
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
        self.name = getattr(getattr(dispatcher, "py_func", None), "__name__", repr(dispatcher))
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
    """One grid of a :class:`PreparedKernel`, configured as Numba configures it."""

    def __init__(self, prepared: PreparedKernel, numba_launch: Any) -> None:
        self.prepared = prepared
        self.stream = numba_launch.stream
        grid, block = numba_launch.griddim, numba_launch.blockdim
        if CUDA_CORE_GE_1_0:  # the same configuration as Numba's _Kernel.launch builds
            self.config = LaunchConfig(grid=grid, block=block, shmem_size=0, is_cooperative=False)
        else:  # pragma: no cover - older cuda-core
            self.config = LaunchConfig(grid=grid, block=block, shmem_size=0,
                                       cooperative_launch=False)  # fmt: skip

    def __call__(self, *args: Any) -> None:
        if not getattr(_THREAD, "has_context", False):
            # Numba's launch asks for the context on every call, which makes the primary
            # context current in a thread that has not touched the device yet; the
            # kernel handle kept here skips that, so a thread's first launch does it.
            devices.get_context()
            _THREAD.has_context = True
        prepared = self.prepared
        packers = prepared.packers
        if len(args) != len(packers):
            raise TypeError(
                f"kernel {prepared.name} takes {len(packers)} arguments, not {len(args)}"
            )
        params: list[Any] = []
        for i, (pack, arg) in enumerate(zip(packers, args, strict=True)):
            if not pack(arg, params):
                raise TypeError(
                    f"kernel {prepared.name}: argument {i} is {_described(arg)}, where its"
                    f" signature has {prepared.compiled.argument_types[i]}"
                )
        launch(self.stream, self.config, prepared.function(), *params)


def _described(value: Any) -> str:
    """An argument as the error shows it: an array's dtype, shape and strides."""
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        kind, strides = type(value).__name__, getattr(value, "strides", None)
        return f"{kind}(dtype={value.dtype}, shape={value.shape}, strides={strides})"
    return f"{type(value).__name__} {value!r}"


__all__ = ["PreparedKernel", "array_params", "packer"]
