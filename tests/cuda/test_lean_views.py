"""Views built directly (``_core`` carve, span, row) equal those Numba's slicing builds.

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


@pytest.mark.parametrize(("shape", "i"), [((3, 5), 0), ((3, 5), 2), ((4, 2, 3), 1), ((2, 0), 1)])
def test_row_equals_numbas_index(shape: tuple[int, ...], i: int) -> None:
    array = _core.carve(_block(40), 8, shape, np.float64)
    assert _described(_core.row(array, i)) == _described(array[i])


def test_views_of_other_arrays_take_the_generic_way() -> None:
    block = _block(16)
    every_other = DeviceNDArray((4,), (16,), np.dtype(np.int64), gpu_data=block.gpu_data)
    assert _described(_core.span(every_other, 1, 3)) == _described(every_other[1:3])


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The driver's copies, recorded (destination, source and bytes, stream), not made."""
    made: list[tuple[Any, ...]] = []

    def record(kind: str) -> Any:
        def copy(dst: Any, src: Any, size: int, stream: Any = 0) -> None:
            source = src.ctypes.data if isinstance(src, np.ndarray) else driver.device_pointer(src)
            made.append((kind, driver.device_pointer(dst), source, size, stream))

        return copy

    monkeypatch.setattr(driver, "device_to_device", record("d2d"))
    monkeypatch.setattr(driver, "host_to_device", record("h2d"))
    return made


@pytest.mark.parametrize("stream", [0, "a stream"])
@pytest.mark.parametrize("shape", [(6,), (2, 3), (0,)])
def test_copy_makes_numbas_driver_call(copies: list[tuple[Any, ...]], shape: tuple[int, ...],
                                       stream: Any) -> None:  # fmt: skip
    block = _block(40)
    dst = _core.carve(block, 0, shape, np.int64)
    for src in (
        _core.carve(block, 64, shape, np.int64),
        np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape),
    ):
        copies.clear()
        dst.copy_to_device(src, stream=stream)
        want = list(copies)
        copies.clear()
        _core.copy(dst, src, stream=stream)
        assert copies == want


def test_copy_of_arrays_that_do_not_match_takes_numbas_path(copies: list[Any]) -> None:
    block = _block(40)
    dst = _core.carve(block, 0, (6,), np.int64)
    with pytest.raises(ValueError):  # Numba's own error: incompatible shape
        _core.copy(dst, np.zeros(5, np.int64))
    _core.copy(dst, np.zeros((1, 6), np.int64))  # squeezes to the same shape: Numba copies
    assert [kind for kind, *_ in copies] == ["h2d"]
    with pytest.raises(TypeError):  # Numba's own error: incompatible dtype
        _core.copy(dst, np.arange(6, dtype=np.int32))


@pytest.mark.parametrize("carved", [True, False], ids=["carve", "numba"])
def test_a_view_keeps_its_allocation_until_it_is_dropped(carved: bool) -> None:
    """Numba frees an allocation when the last handle counted into it goes; a carved view
    holds its parent's handle, so dropping the parent array first frees nothing."""
    import gc

    freed: list[int] = []
    memory = driver.AutoFreePointer(None, driver.binding.CUdeviceptr(BASE), 8 * 16,
                                    finalizer=lambda: freed.append(1))  # fmt: skip
    block = DeviceNDArray((16,), (8,), np.dtype(np.int64), gpu_data=memory.own())
    part = _core.carve(block, 24, (4,), np.int64) if carved else block[3:7]
    del block
    gc.collect()
    assert not freed and part.device_ctypes_pointer.value == BASE + 24
    again = _core.span(part, 1, 3)  # a view of the view: counted as Numba counts it
    del part
    gc.collect()
    assert not freed and again.device_ctypes_pointer.value == BASE + 32
    del again
    gc.collect()
    assert freed == [1]
