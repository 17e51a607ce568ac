"""Pooled device allocations for Numba (an External Memory Management plugin), opt-in.

Why: a CUDA batch of the engine allocates about a hundred device arrays (sliding
workload) to four hundred (full short-video config), most of them scratch that
dies within the batch (``benchmarks.launches`` counts them). With Numba's own
memory manager each is a ``cuMemAlloc``, and the frees, deferred and made in bursts,
are ``cuMemFree`` calls, which wait for the device. Here a dropped array's block
goes back to a cache by size class (powers of two) and the next request of that
class takes it, with no driver call.

Safety: a block is only handed out again once the device has passed the point of
its free. Frees are only queued (a finalizer may run in any thread, or while the
interpreter shuts down, so it makes no CUDA call); the next allocation records one
event on the default stream behind every block queued since, and a block is
reused only once its event has completed. Every kernel that used the block was
launched before it was dropped, and the engine's copies on its copy stream are
waited for by the default stream (a staged batch's when the engine takes it up, even to
drop it: ``Engine._process``), so no work can still touch a reused block,
whichever stream writes it next. When an allocation fails for lack of memory, the
cache is given back to the driver and the allocation is tried once more.

Turn it on with ``TIKTOKTOE_DEVICE_POOL=1`` in the environment (read when
:mod:`kernels.cuda` is imported, before Numba creates its CUDA context), or with
:func:`install` before the first CUDA call. Not on by default: on an H200 the engine
was no faster with it (``benchmarks/gpu_check.sh memory``, RESULTS.md). The
simulator has no memory manager, so CI tests :class:`BlockCache` with a stand-in
driver.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import weakref
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

ENV_VAR = "TIKTOKTOE_DEVICE_POOL"
MIN_BLOCK = 512  # bytes: the driver's own allocation granularity for small blocks


def block_size(size: int) -> int:
    """The size class of a request: the next power of two, at least ``MIN_BLOCK``."""
    return max(MIN_BLOCK, 1 << (max(size, 1) - 1).bit_length())


class BlockCache:
    """Freed device blocks by size class, reused once the device has passed their free.

    Driver calls are passed in, so the bookkeeping is tested without a device:
    ``alloc(nbytes) -> pointer``, ``free(pointer)``, ``new_marker() -> marker`` (an
    event recorded now on the default stream) and ``passed(marker) -> bool``.
    ``is_out_of_memory(error)`` tells an allocation failure worth a retry.
    """

    def __init__(
        self,
        alloc: Callable[[int], Any],
        free: Callable[[Any], None],
        new_marker: Callable[[], Any],
        passed: Callable[[Any], bool],
        is_out_of_memory: Callable[[BaseException], bool] = lambda error: False,
    ) -> None:
        self._alloc, self._free = alloc, free
        self._new_marker, self._passed = new_marker, passed
        self._is_out_of_memory = is_out_of_memory
        # Freed, no marker yet: a queue that takes no lock, since a finalizer may run
        # (the cyclic GC) inside take() itself, which holds the lock (a lock here hung
        # the thread for good).
        self._queued: queue.SimpleQueue[tuple[Any, int]] = queue.SimpleQueue()
        self._ready: dict[int, deque[tuple[Any, Any]]] = defaultdict(deque)  # size -> (ptr, marker)
        self._lock = threading.Lock()
        self.cached_bytes = 0  # blocks held, counted once take() or release() sees them
        self.hits = 0
        self.misses = 0

    def give(self, pointer: Any, size: int) -> None:
        """Take back block ``pointer`` of class ``size`` (no CUDA call and no lock: any
        thread, any time, a finalizer inside :meth:`take` included)."""
        self._queued.put((pointer, size))

    def _freed(self) -> list[tuple[Any, int]]:
        """The blocks given back since the last call (under the lock)."""
        blocks = []
        with contextlib.suppress(queue.Empty):
            while True:
                blocks.append(self._queued.get_nowait())
        for _, size in blocks:
            self.cached_bytes += size
        return blocks

    def take(self, nbytes: int) -> tuple[Any, int]:
        """(pointer, size class) of a block for ``nbytes``: a cached one the device is done
        with, else a new one from the driver."""
        size = block_size(nbytes)
        with self._lock:
            freed = self._freed()
            if freed:
                marker = self._new_marker()
                for pointer, queued_size in freed:
                    self._ready[queued_size].append((pointer, marker))
            ready = self._ready.get(size)
            if ready and self._passed(ready[0][1]):
                pointer, _ = ready.popleft()
                self.cached_bytes -= size
                self.hits += 1
                return pointer, size
            self.misses += 1
        try:
            return self._alloc(size), size
        except BaseException as error:
            if not self._is_out_of_memory(error):
                raise
        self.release()
        return self._alloc(size), size

    def release(self) -> None:
        """Give every cached block back to the driver (``cuMemFree`` waits for the device)."""
        with self._lock:
            blocks = [pointer for pointer, _ in self._freed()]
            blocks += [pointer for ready in self._ready.values() for pointer, _ in ready]
            self._ready.clear()
            self.cached_bytes = 0
        for pointer in blocks:
            self._free(pointer)


def _plugin() -> type:
    """The EMM plugin class (built on first use: it subclasses Numba's driver classes)."""
    from numba.cuda.cudadrv import driver as numba_driver

    from kernels.cuda._core import cuda

    drv: Any = numba_driver  # Numba's driver layer is untyped

    class PooledMemoryManager(drv.GetIpcHandleMixin, drv.HostOnlyCUDAMemoryManager):
        """Device memory from a :class:`BlockCache`; host memory as Numba does it."""

        def initialize(self) -> None:
            oom = drv.binding.CUresult.CUDA_ERROR_OUT_OF_MEMORY

            def new_marker() -> Any:
                event = cuda.event(timing=False)
                event.record()  # on the legacy default stream, behind all work so far
                return event

            self.cache = BlockCache(
                alloc=drv.driver.cuMemAlloc,
                free=drv.driver.cuMemFree,
                new_marker=new_marker,
                passed=lambda event: bool(event.query()),
                is_out_of_memory=lambda e: isinstance(e, drv.CudaAPIError) and e.code == oom,
            )

        def memalloc(self, size: int) -> Any:
            pointer, block = self.cache.take(size)
            cache = weakref.proxy(self.cache)

            def give_back() -> None:
                with contextlib.suppress(ReferenceError):  # the context (its cache) is gone
                    cache.give(pointer, block)

            return drv.MemoryPointer(weakref.proxy(self.context), pointer, size,
                                     finalizer=give_back)  # fmt: skip

        def get_memory_info(self) -> Any:
            free, total = drv.driver.cuMemGetInfo()
            return drv.MemoryInfo(free=free, total=total)

        def reset(self) -> None:
            super().reset()
            self.cache.release()

        @property
        def interface_version(self) -> int:
            return 1

    return PooledMemoryManager


def install() -> bool:
    """Make Numba allocate device memory through the pool (before its first CUDA call);
    False under the simulator, which has no memory manager."""
    from kernels.cuda._core import SIMULATOR

    if SIMULATOR:
        return False
    from kernels.cuda._core import cuda

    cuda.set_memory_manager(_plugin())
    return True


def install_if_asked() -> bool:
    """:func:`install` when ``TIKTOKTOE_DEVICE_POOL=1``."""
    return os.environ.get(ENV_VAR) == "1" and install()


FREES_ENV_VAR = "NUMBA_CUDA_MAX_PENDING_DEALLOCS_COUNT"
DEFERRED_FREES = 256  # Numba's own default is 10


def defer_frees(count: int = DEFERRED_FREES) -> int:
    """Let Numba's memory manager hold up to ``count`` frees before it makes them, unless
    ``NUMBA_CUDA_MAX_PENDING_DEALLOCS_COUNT`` is set; returns the count in force.

    Why: Numba makes its deferred frees in a burst of ``cuMemFree`` calls once more than
    ten are pending, and ``cuMemFree`` waits for the device. At the engine's hundred to
    four hundred device arrays a batch, the host would stop to wait for the device ten to
    forty times a batch, where 256 make it once every one to three batches. The bytes held
    stay capped by Numba's ``NUMBA_CUDA_MAX_PENDING_DEALLOCS_RATIO`` (a fifth of device
    memory), and an allocation that runs out of memory makes the pending frees and tries
    again. The pool (:func:`install`) takes blocks back into its own cache, not through
    these deferred frees. Numba reads the value at every deferred free, so this works at
    any time.
    """
    from numba.core import config as numba_config  # numba-cuda's config module is this one

    config: Any = numba_config  # set from the environment at import: untyped
    if os.environ.get(FREES_ENV_VAR) is None:
        config.CUDA_DEALLOCS_COUNT = count
    return int(config.CUDA_DEALLOCS_COUNT)


__all__ = [
    "DEFERRED_FREES",
    "ENV_VAR",
    "BlockCache",
    "block_size",
    "defer_frees",
    "install",
    "install_if_asked",
]
