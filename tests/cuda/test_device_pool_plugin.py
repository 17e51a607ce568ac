"""The pooled memory manager as Numba sees it (:mod:`kernels.cuda.pool`).

Without a device: the plugin class builds on this numba-cuda and passes Numba's
interface check (``set_memory_manager``). On a device (``gpu``): blocks come back
to the pool when their array is dropped and are handed out again only after the
device has passed the drop, and data written through pooled arrays is intact.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, SIMULATOR, real_device

pytestmark = [
    pytest.mark.skipif(SIMULATOR, reason="the simulator has no memory manager"),
    *CUDA_WARNINGS,
]


def test_the_plugin_passes_numbas_interface_check() -> None:
    from numba.cuda.cudadrv import driver

    from kernels.cuda import pool

    plugin = pool._plugin()
    assert plugin(context=None).interface_version == 1
    before = driver._memory_manager
    try:
        driver.set_memory_manager(plugin)  # raises on an interface mismatch
        assert driver._memory_manager is plugin
    finally:
        driver._memory_manager = before


@pytest.mark.gpu
@pytest.mark.skipif(not real_device(), reason="needs a real CUDA device")
def test_pooled_blocks_are_reused_after_the_device_is_done() -> None:
    from numba import cuda
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    from kernels.cuda import pool

    manager = pool._plugin()(context=cuda.current_context())
    manager.initialize()

    def array(n: int) -> DeviceNDArray:
        memory = manager.memalloc(n * 8)
        return DeviceNDArray((n,), (8,), np.dtype(np.int64), gpu_data=memory)

    first = array(1000)
    first.copy_to_device(np.arange(1000))
    pointer = first.device_ctypes_pointer.value
    del first
    other = array(10)  # another class: a new block; the free is now behind a marker
    cuda.synchronize()  # ... which the device has passed
    second = array(900)  # the same 8 KiB class as the first: its block
    assert second.device_ctypes_pointer.value == pointer
    assert manager.cache.hits == 1
    second.copy_to_device(np.arange(900) * 3)
    np.testing.assert_array_equal(second.copy_to_host(), np.arange(900) * 3)
    del other, second
    manager.cache.release()
