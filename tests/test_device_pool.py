"""The device block cache of :mod:`kernels.cuda.pool`, with a stand-in driver.

The cache must never hand out a block before the device has passed the point of its
free (a marker recorded behind the work queued so far), must reuse blocks of the
same size class afterwards, and must give its blocks back to the driver and retry
once when an allocation runs out of memory. Under a real card the same class backs
the Numba memory manager (``TIKTOKTOE_DEVICE_POOL=1``, measured by gpu_check).
"""

from __future__ import annotations

import itertools

import pytest

from kernels.cuda.pool import MIN_BLOCK, BlockCache, block_size


class FakeDevice:
    """Pointers from a counter, markers that pass when the test says the device has."""

    def __init__(self, memory: int = 1 << 30) -> None:
        self.memory = memory
        self.live: dict[int, int] = {}
        self.freed: list[int] = []
        self.markers = itertools.count()
        self.done_until = -1  # markers up to this one have passed
        self._next = itertools.count(1)

    def alloc(self, nbytes: int) -> int:
        if sum(self.live.values()) + nbytes > self.memory:
            raise MemoryError("out of device memory")
        pointer = next(self._next)
        self.live[pointer] = nbytes
        return pointer

    def free(self, pointer: int) -> None:
        self.freed.append(pointer)
        del self.live[pointer]

    def cache(self) -> BlockCache:
        return BlockCache(self.alloc, self.free, lambda: next(self.markers),
                          lambda marker: marker <= self.done_until,
                          lambda error: isinstance(error, MemoryError))  # fmt: skip


def test_size_classes_are_powers_of_two() -> None:
    assert block_size(0) == block_size(1) == block_size(MIN_BLOCK) == MIN_BLOCK
    assert block_size(MIN_BLOCK + 1) == 2 * MIN_BLOCK
    assert block_size(3_000_000) == 1 << 22


def test_a_block_is_reused_only_after_the_device_passed_its_free() -> None:
    device = FakeDevice()
    cache = device.cache()
    first, size = cache.take(1000)
    cache.give(first, size)
    second, _ = cache.take(1000)  # the marker of the free has not passed: a new block
    assert second != first and cache.misses == 2 and cache.hits == 0
    device.done_until = 10**9
    third, _ = cache.take(600)  # same class (1 KiB), the device is past the free
    assert third == first and cache.hits == 1
    assert cache.cached_bytes == 0


def test_other_classes_are_not_reused() -> None:
    device = FakeDevice()
    cache = device.cache()
    small, size = cache.take(100)
    cache.give(small, size)
    device.done_until = 10**9
    big, _ = cache.take(100_000)
    assert big != small and cache.cached_bytes == MIN_BLOCK


def test_out_of_memory_gives_the_cache_back_and_retries() -> None:
    device = FakeDevice(memory=4 * MIN_BLOCK)
    cache = device.cache()
    blocks = [cache.take(MIN_BLOCK) for _ in range(4)]
    for pointer, size in blocks[:3]:
        cache.give(pointer, size)
    pointer, size = cache.take(2 * MIN_BLOCK)  # no room until the cached blocks are freed
    assert sorted(device.freed) == sorted(p for p, _ in blocks[:3])
    assert size == 2 * MIN_BLOCK and cache.cached_bytes == 0
    with pytest.raises(MemoryError):
        cache.take(8 * MIN_BLOCK)  # more than the device has: the error is the driver's


def test_release_frees_every_cached_block() -> None:
    device = FakeDevice()
    cache = device.cache()
    taken = [cache.take(n) for n in (10, 5000, 70_000)]
    for pointer, size in taken:
        cache.give(pointer, size)
    cache.take(10)  # moves the queued frees behind a marker
    cache.release()
    assert set(device.freed) == {p for p, _ in taken} and cache.cached_bytes == 0


def test_numba_frees_are_deferred_in_bursts_unless_the_user_chose(monkeypatch) -> None:
    from numba.core import config

    from kernels.cuda.pool import DEFERRED_FREES, FREES_ENV_VAR, defer_frees

    monkeypatch.setattr(config, "CUDA_DEALLOCS_COUNT", 10)  # Numba's own default
    monkeypatch.delenv(FREES_ENV_VAR, raising=False)
    assert defer_frees() == DEFERRED_FREES == config.CUDA_DEALLOCS_COUNT
    monkeypatch.setattr(config, "CUDA_DEALLOCS_COUNT", 7)  # as Numba read it from the env
    monkeypatch.setenv(FREES_ENV_VAR, "7")
    assert defer_frees() == 7 == config.CUDA_DEALLOCS_COUNT


@pytest.mark.parametrize("env, want", [(None, 256), ("7", 7)])
def test_importing_the_cuda_kernels_defers_frees(env: str | None, want: int) -> None:
    import os
    import subprocess
    import sys

    from kernels.cuda.pool import FREES_ENV_VAR

    environ = {k: v for k, v in os.environ.items() if k != FREES_ENV_VAR}
    if env is not None:
        environ[FREES_ENV_VAR] = env
    code = ("import kernels.cuda; from numba.cuda.cudadrv import driver; "
            "print(driver.config.CUDA_DEALLOCS_COUNT)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert int(out.stdout) == want


def test_a_block_freed_by_the_garbage_collector_inside_take_does_not_hang_it() -> None:
    """The cyclic GC may run at any allocation, take()'s own (its marker's event) included,
    and free a pooled array caught in a reference cycle: its finalizer gives the block
    back from inside take(). That took take()'s lock again, in the same thread: a hang."""
    import gc
    import threading
    import weakref

    pointers = iter(range(0x1000, 0x100000, 0x1000))

    def new_marker() -> object:
        gc.collect()  # a collection at this allocation, as Python may start one
        return object()

    cache = BlockCache(lambda size: next(pointers), lambda p: None, new_marker, lambda m: True)

    class PooledArray:  # a DeviceNDArray whose memory gives its block back when collected
        me: object = None

    def pooled() -> PooledArray:
        pointer, size = cache.take(1024)
        array = PooledArray()
        weakref.finalize(array, cache.give, pointer, size)
        return array

    first = pooled()
    cycle = pooled()
    cycle.me = cycle  # garbage only the cyclic collector frees
    del cycle, first  # first's block is queued: the next take() makes a marker
    done = threading.Event()
    threading.Thread(target=lambda: (cache.take(1024), done.set()), daemon=True).start()
    assert done.wait(10), "take() hung on its own lock"
    cache.take(1024)
    assert cache.hits + cache.misses == 4
