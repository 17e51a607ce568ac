"""Views built directly (``_core.carve``, ``_core.span``) equal those Numba's slicing builds.

No device is needed: Numba device arrays stand over a memory pointer that was never
allocated, and Numba's own slicing runs with its context requirement stubbed. Each
view is compared with Numba's on everything a kernel launch or a copy reads: shape,
strides, dtype, size, data pointer and Numba type, and on the memory it keeps alive.
Runs in the PTX process (the simulator has no Numba device arrays).
"""

from __future__ import annotations

import contextlib
import os
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("the simulator has no Numba device arrays", allow_module_level=True)
try:
    from numba.cuda.cudadrv import devices, driver
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    from kernels.cuda import _core
except Exception as exc:  # pragma: no cover - numba without a CUDA target
    pytest.skip(f"numba.cuda unavailable: {exc}", allow_module_level=True)

BASE = 1 << 32  # where the stand-in memory starts


@pytest.fixture(autouse=True)
def no_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Numba's slicing asks for a CUDA context it does not use here."""
    monkeypatch.setattr(devices._runtime, "ensure_context", contextlib.nullcontext)
    monkeypatch.setattr(devices, "get_context", lambda devnum=None: SimpleNamespace())


def _block(n_words: int) -> Any:
    pointer = driver.binding.CUdeviceptr(BASE)
    memory = driver.MemoryPointer(None, pointer, 8 * n_words)
    return DeviceNDArray((n_words,), (8,), np.dtype(np.int64), gpu_data=memory)


def _described(array: Any) -> tuple[Any, ...]:
    return (array.shape, array.strides, array.dtype, array.size,
            array.device_ctypes_pointer.value, array._numba_type_)  # fmt: skip


@pytest.mark.parametrize(
    ("offset", "shape", "dtype"),
    [(0, (10,), np.int64), (16, (3, 4), np.int64), (8, (7,), np.uint8), (24, (2, 3), np.int16),
     (40, (5,), np.float64), (48, (0,), np.int64), (0, (0, 3), np.int64), (56, (1, 1), np.int8)],
)  # fmt: skip
def test_carve_equals_numbas_slice_view_and_reshape(offset: int, shape: tuple[int, ...],
                                                    dtype: Any) -> None:  # fmt: skip
    block = _block(16)
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    want = block.view(np.uint8)[offset : offset + size].view(dtype).reshape(shape)
    got = _core.carve(block, offset, shape, dtype)
    assert _described(got) == _described(want)
    if size:  # the view keeps the block's memory alive, as Numba's does
        assert got.gpu_data.owner is block.gpu_data.owner


def test_empty_many_lays_parts_out_one_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_core.cuda, "device_array", lambda n, dtype: _block(n))
    parts = _core.empty_many((5, np.int64), ((2, 3), np.uint8), (1, np.float64), (0, np.int64))
    assert [p.shape for p in parts] == [(5,), (2, 3), (1,), (0,)]
    pointers = [p.device_ctypes_pointer.value for p in parts[:3]]
    assert pointers == [BASE, BASE + 40, BASE + 48]  # 8-byte aligned, in order


@pytest.mark.parametrize(("shape", "start", "stop"), [
    ((10,), 0, 4), ((10, 3), 0, 7), ((10,), 0, 0), ((10, 2), 0, 10), ((4,), 0, 9),
    ((10,), 3, 8), ((10, 3), 2, 5), ((10,), 4, 4), ((6, 2), 5, 9), ((6,), 6, 6),
])  # fmt: skip
def test_span_equals_numbas_slice(shape: tuple[int, ...], start: int, stop: int) -> None:
    block = _block(40)
    array = _core.carve(block, 0, shape, np.int64)
    want, got = array[start:stop], _core.span(array, start, stop)
    assert _described(got) == _described(want)
    if want.size:
        assert got.gpu_data.owner is block.gpu_data.owner


def test_views_of_other_arrays_take_the_generic_way() -> None:
    block = _block(16)
    every_other = DeviceNDArray((4,), (16,), np.dtype(np.int64), gpu_data=block.gpu_data)
    assert _described(_core.span(every_other, 1, 3)) == _described(every_other[1:3])
