"""The fast launch path passes exactly the kernel parameters Numba's own launch passes.

No device is needed: Numba device arrays are built over fake device memory, and the
parameters :mod:`kernels.cuda.launcher` packs are compared with those of Numba's
``_Kernel._prepare_args`` for every argument of every shipped kernel signature. Then a
prepared kernel is driven with a stand-in for ``cuda.core.launch``: packed parameters
when every argument fits its signature, a TypeError naming the argument otherwise. Runs in the
PTX process (not under the simulator, whose arrays are not Numba device arrays).
"""

from __future__ import annotations

import ctypes
import os
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("the simulator has no Numba device arrays", allow_module_level=True)
try:
    from numba import types
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    from numba.cuda.dispatcher import _Kernel

    from kernels.cuda import all_signatures, launcher
    from kernels.cuda._core import arr
except Exception as exc:  # pragma: no cover - numba without a CUDA target
    pytest.skip(f"numba.cuda unavailable: {exc}", allow_module_level=True)


class _Memory:
    """Stands for device memory: all a Numba device array asks of it is its pointer."""

    def __init__(self, pointer: int) -> None:
        self.device_ctypes_pointer = ctypes.c_void_p(pointer)


def _device_array(shape: tuple[int, ...], dtype: Any, pointer: int = 1 << 20) -> Any:
    dtype = np.dtype(dtype)
    strides = np.empty(shape, dtype).strides
    return DeviceNDArray(shape, strides, dtype, gpu_data=_Memory(pointer))


def _sample(numba_type: Any, k: int) -> Any:
    """A value of ``numba_type`` (arrays over fake memory, distinct sizes and pointers)."""
    if isinstance(numba_type, types.Array):
        shape = (3 + k, 2 + numba_type.ndim)[: numba_type.ndim]
        return _device_array(shape, numba_type.dtype.name, pointer=(k + 1) << 20)
    if isinstance(numba_type, types.Boolean):
        return k % 2 == 0
    if isinstance(numba_type, types.Integer):
        return 7 + k
    return 1.5 + k


def _numba_params(numba_type: Any, value: Any) -> list[Any]:
    out: list[Any] = []
    _Kernel._prepare_args(SimpleNamespace(extensions=[]), numba_type, value, 0, [], out)
    return out


def _comparable(params: list[Any]) -> list[Any]:
    return [(type(p).__name__, p.value) if isinstance(p, ctypes._SimpleCData) else p
            for p in params]  # fmt: skip


SIGNATURES = list(all_signatures())


@pytest.mark.parametrize(
    ("name", "dtype", "signature"),
    [(name, dtype, sig) for name, dtype, _, sig in SIGNATURES],
    ids=[f"{name}[{dtype}]" for name, dtype, *_ in SIGNATURES],
)
def test_parameters_match_numbas_own(name: str, dtype: str, signature: Any) -> None:
    for k, numba_type in enumerate(signature.args):
        value = _sample(numba_type, k)
        packed: list[Any] = []
        assert launcher.packer(numba_type)(value, packed), (name, numba_type)
        assert _comparable(packed) == _comparable(_numba_params(numba_type, value)), numba_type
        again: list[Any] = []  # the second launch reads the parameters kept on the array
        launcher.packer(numba_type)(value, again)
        assert _comparable(again) == _comparable(packed)


def test_arrays_that_do_not_fit_the_signature_are_refused() -> None:
    pack = launcher.packer(arr("float64", 2))
    whole = _device_array((4, 6), np.float64)
    assert pack(whole, [])
    every_other = DeviceNDArray((4, 3), (48, 16), np.float64, gpu_data=_Memory(1 << 20))
    assert not pack(every_other, [])  # not C-contiguous: Numba's path must see it
    assert not pack(_device_array((4, 6), np.float32), [])  # another dtype
    assert not pack(_device_array((24,), np.float64), [])  # another ndim
    fortran = DeviceNDArray((4, 6), (8, 32), np.float64, gpu_data=_Memory(1 << 20))
    assert not pack(fortran, [])  # Numba types it 'F'
    broadcast = DeviceNDArray((4, 6), (0, 8), np.float64, gpu_data=_Memory(1 << 20))
    assert not pack(broadcast, [])  # Numba types it 'A'
    foreign = SimpleNamespace(__cuda_array_interface__={"shape": (4, 6)})  # e.g. CuPy
    assert not pack(foreign, [])


@pytest.mark.parametrize("shape", [(0,), (0, 3), (5, 0), (1,), (1, 1)])
def test_empty_and_single_item_arrays_match_numbas_own(
    shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edge shapes: a zero-size array has no memory (Numba gives it a null pointer, in a
    context: a stand-in here) and may have zero strides, which Numba does not count as
    broadcast."""
    from numba.cuda.cudadrv import devicearray

    monkeypatch.setattr(devicearray.devices, "get_context", lambda: SimpleNamespace())
    numba_type = arr("int64", len(shape))
    memory = None if 0 in shape else _Memory(1 << 20)
    array = DeviceNDArray(shape, np.empty(shape, np.int64).strides, np.int64, gpu_data=memory)
    packed: list[Any] = []
    assert launcher.packer(numba_type)(array, packed)
    assert array._numba_type_ == numba_type
    assert _comparable(packed) == _comparable(_numba_params(numba_type, array))


class _NumbaLaunch:
    """Stands for a configured Numba kernel (``dispatcher[blocks, threads]``)."""

    def __init__(self, dims: tuple[int, int]) -> None:
        self.griddim, self.blockdim = (dims[0], 1, 1), (dims[1], 1, 1)
        self.stream = "default stream"
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)


class _Dispatcher:
    def __init__(self, signature: Any) -> None:
        cufunc = SimpleNamespace(kernel="cufunc")
        library = SimpleNamespace(get_cufunc=lambda: cufunc)
        compiled = SimpleNamespace(argument_types=list(signature.args), _codelibrary=library)
        self.overloads = {signature: compiled}
        self.launches: dict[Any, _NumbaLaunch] = {}

    def __getitem__(self, dims: tuple[int, int]) -> _NumbaLaunch:
        return self.launches.setdefault(dims, _NumbaLaunch(dims))


def test_prepared_kernel_launches_packed_parameters_or_refuses_what_does_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    launched: list[tuple[Any, ...]] = []
    monkeypatch.setattr(launcher, "launch", lambda *a: launched.append(a))
    monkeypatch.setattr(launcher, "_THREAD", threading.local())  # no later test sees it
    monkeypatch.setattr(launcher.devices, "get_context", lambda: None)  # no device here
    signature = types.void(arr("int64"), arr("float64", 2), types.int64, types.boolean)
    dispatcher = _Dispatcher(signature)
    prepared = launcher.PreparedKernel(dispatcher)
    ids, values = _device_array((5,), np.int64), _device_array((2, 5), np.float64)

    prepared[4, 256](ids, values, 3, True)
    assert len(launched) == 1
    stream, config, function, *params = launched[0]
    assert (stream, function) == ("default stream", "cufunc")
    assert (config.grid, config.block, config.shmem_size) == ((4, 1, 1), (256, 1, 1), 0)
    want = [p for t, v in zip(signature.args, (ids, values, 3, True), strict=True)
            for p in _numba_params(t, v)]  # fmt: skip
    assert _comparable(params) == _comparable(want)
    assert not dispatcher.launches[4, 256].calls
    assert prepared[4, 256] is prepared[4, 256]  # one configuration per grid
    for blocks in range(1, 2 * prepared.GRIDS_KEPT):  # batch-sized grids: a bounded cache
        prepared[blocks, 256]
    assert len(prepared._launches) <= prepared.GRIDS_KEPT

    # Numba's own path does not check a one-signature kernel's arguments (it launches
    # its only overload): these would be read as the signature's on a card.
    as_float32 = _device_array((2, 5), np.float32)
    with pytest.raises(TypeError, match=r"argument 1 is DeviceNDArray\(dtype=float32"):
        prepared[4, 256](ids, as_float32, 3, True)
    strided = DeviceNDArray((5,), (16,), np.int64, gpu_data=_Memory(1 << 20))
    with pytest.raises(TypeError, match=r"argument 0 is .*strides=\(16,\)\), where its"):
        prepared[4, 256](strided, values, 3, True)
    with pytest.raises(TypeError, match=r"argument 2 is float 3\.5"):
        prepared[4, 256](ids, values, 3.5, True)
    with pytest.raises(TypeError, match="takes 4 arguments, not 3"):
        prepared[4, 256](ids, values, 3)
    assert len(launched) == 1
    assert not dispatcher.launches[4, 256].calls


def test_each_host_thread_makes_the_context_current_before_its_first_launch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Numba's launch asks for the context every call (``get_cufunc``), which makes the
    primary context current in a new thread; the prepared kernel keeps the handle, so
    without this a thread whose first device work is a launch would have no context."""
    events: list[tuple[str, int]] = []
    monkeypatch.setattr(launcher, "_THREAD", threading.local())
    monkeypatch.setattr(launcher.devices, "get_context",
                        lambda: events.append(("context", threading.get_ident())))  # fmt: skip
    monkeypatch.setattr(launcher, "launch",
                        lambda *a: events.append(("launch", threading.get_ident())))  # fmt: skip
    prepared = launcher.PreparedKernel(_Dispatcher(types.void(arr("int64"))))
    ids = _device_array((5,), np.int64)
    prepared[1, 32](ids)
    prepared[2, 32](ids)
    worker = threading.Thread(target=lambda: prepared[1, 32](ids))
    worker.start()
    worker.join()
    main, other = threading.get_ident(), worker.ident
    assert events == [("context", main), ("launch", main), ("launch", main),
                      ("context", other), ("launch", other)]  # fmt: skip


def test_a_numba_cuda_without_the_launchers_imports_keeps_numbas_dispatcher() -> None:
    """cuDF 26.10 allows numba-cuda 0.22.2, whose ``numba.cuda._compat`` lacks what the
    launcher imports: kernels must then launch through Numba's dispatcher, and say so
    (compiling one needs a device, so this checks the switch itself)."""
    import subprocess
    import sys

    script = (
        "import numba.cuda._compat as compat\n"
        "del compat.CUDA_CORE_GE_1_0\n"
        "from kernels.cuda import _core\n"
        "print(_core.FAST_LAUNCH, '|', _core.LAUNCH_PATH)\n"
        "print(hasattr(_core, '_PreparedKernel'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKTOE_FAST_LAUNCH"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = done.stdout.splitlines()
    assert first.startswith("False | Numba's dispatcher (no kernels.cuda.launcher: ImportError: ")
    assert "CUDA_CORE_GE_1_0" in first
    assert second == "False"  # what kernel() wraps compiled kernels in, when it can
