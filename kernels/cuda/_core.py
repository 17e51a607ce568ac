"""Kernel registry, per-dtype compile cache and launch configuration.

Every kernel of :mod:`kernels.cuda` is registered here with the dtypes it is
shipped for and a function giving its Numba signature for a dtype. A kernel is
compiled once per (name, dtype), eagerly for exactly that signature, on first
use (the same idea as CuPy's ``_filters_core`` builders). :func:`signatures`
lists every shipped (kernel, dtype) pair, which is what the PTX test compiles
for compute capability 9.0, so nothing the engine can launch escapes it.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cuda as _numba_cuda
from numba import njit, types
from numba.np.numpy_support import from_dtype

from kernels.cache_stamp import stamp_package_sources, stamp_with_package

# ``numba.cuda`` as an untyped module: its stubs type intrinsics such as ``cuda.grid``
# by their typing-time signature, which mypy then applies to kernel source.
cuda: Any = _numba_cuda

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
if SIMULATOR:  # its arrays are not Numba device arrays: views are made the generic way
    _NumbaArray: Any = ()
    _driver: Any = None  # no driver: memsets, views and copies take the generic way
    _compiler_lock: Any = contextlib.nullcontext()  # it compiles nothing
else:
    try:  # numba-cuda's own (it takes Numba's too), which cuda.jit takes to compile
        _locks: Any = importlib.import_module("numba.cuda.core.compiler_lock")
    except ImportError:  # an older numba-cuda compiles under Numba's
        _locks = importlib.import_module("numba.core.compiler_lock")
    _compiler_lock = _locks.global_compiler_lock
    from numba.cuda.cudadrv import driver as _driver
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as _NumbaArray
    from numba.cuda.dispatcher import CUDACache as _CUDACache

    stamp_package_sources(_CUDACache._impl_class)  # a kernels/ edit renews every kernel
THREADS = 256
MAX_BLOCKS = 16_384  # grid-stride loops cover the rest
# Launch registered kernels through kernels.cuda.launcher (not on the simulator, whose
# arrays are not Numba device arrays); TIKTOKTOE_FAST_LAUNCH=0 keeps Numba's dispatcher,
# and so does a numba-cuda too old for the launcher (it mirrors the cuda.core launch of
# numba-cuda 0.30; cuDF 26.10 allows numba-cuda from 0.22.2, whose launch is ctypes').
FAST_LAUNCH = os.environ.get("TIKTOKTOE_FAST_LAUNCH", "1") != "0" and not SIMULATOR
LAUNCHER_MISSING = ""  # why the launcher could not be imported, when it could not
if FAST_LAUNCH:
    try:
        from kernels.cuda.launcher import PreparedKernel as _PreparedKernel
    except Exception as exc:  # an older numba-cuda's ImportError, or a cuda.core that fails
        FAST_LAUNCH, LAUNCHER_MISSING = False, f"{type(exc).__name__}: {exc}"
LAUNCH_PATH = (  # for reports
    "kernels.cuda.launcher" if FAST_LAUNCH
    else f"Numba's dispatcher (no kernels.cuda.launcher: {LAUNCHER_MISSING})" if LAUNCHER_MISSING
    else "Numba's dispatcher"
)  # fmt: skip
# Compiled kernels are kept on disk by Numba's cache (beside their source, or under
# NUMBA_CACHE_DIR), so a new process loads its kernels instead of compiling them: an
# engine launches dozens, which take seconds to compile (``compile_ptx`` of all 139
# shipped signatures takes 20 s on the development machine).
# TIKTOKTOE_CUDA_KERNEL_CACHE=0 compiles afresh. (TIKTOKTOE_KERNEL_CACHE is another thing:
# the folder of the CPU kernels that kernels.specialize generates.)
# Entries are stamped with every kernels/ source (kernels.cache_stamp), so an edit of a
# helper renews the kernels that call it, which Numba alone would not.
KERNEL_CACHE = os.environ.get("TIKTOKTOE_CUDA_KERNEL_CACHE", "1") != "0" and not SIMULATOR
# TIKTOKTOE_LAUNCH_BOUNDS=1 compiles the kernels registered with ``min_blocks`` under
# launch bounds (THREADS a block, at least that many blocks a multiprocessor), which caps
# their registers: benchmarks.kernel_resources finds the pane aggregation's agg.update_m2
# holding 4 blocks of 256 threads on an H100 (58 registers) and 5 with the bounds (48,
# no spills), and the fold 3 (78) and 4 (64, no spills). agg.update (5 blocks, 48) spills
# under (256, 6) and takes none. Opt-in until a card has timed it (gpu_check.sh tables).
LAUNCH_BOUNDS = os.environ.get("TIKTOKTOE_LAUNCH_BOUNDS", "0") == "1" and not SIMULATOR
SIM_THREADS = 32  # the simulator runs one Python thread per CUDA thread
SIM_BLOCKS = 2
DEVICE_GRID_THREADS = MAX_BLOCKS * THREADS  # most threads of one launch on a card


def device_function(pyfunc: Callable[..., Any]) -> Any:
    """A helper callable from kernels, taking arrays.

    On a device (and for PTX) it is an ``@njit(inline="always")`` function, which
    numba-cuda compiles into the calling kernel without needing a device at
    compile time (``cuda.jit(device=True)`` asks the current device for its
    compute capability). Under the simulator, where kernels see proxy arrays
    that CPU-compiled functions cannot unbox, the same source runs as a simulated
    device function.
    """
    if SIMULATOR:
        return cuda.jit(device=True)(pyfunc)
    return njit(inline="always")(pyfunc)


def launch(n: int, threads: int | None = None) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``n`` items."""
    if SIMULATOR:
        return SIM_BLOCKS, SIM_THREADS
    tpb = threads or THREADS
    return max(1, min(MAX_BLOCKS, math.ceil(max(n, 1) / tpb))), tpb


REDUCE_ITEMS = 16  # items per thread, at least, of a kernel that adds into a few counters


def launch_reduce(n: int) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``n`` items whose threads each sum
    their items locally and add the sums to shared counters once: ``REDUCE_ITEMS`` or
    more items a thread. Atomics on one address serialise on a card (about one a clock),
    so one add per thread, not one per item, keeps a counter from becoming the kernel's
    bottleneck when many items count (every row dead, every row invalid)."""
    return launch(-(-n // REDUCE_ITEMS))


def arr(dtype: Any, ndim: int = 1) -> types.Array:
    """C-contiguous Numba array type of ``dtype`` with ``ndim`` dimensions."""
    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C")


@dataclass(frozen=True)
class KernelSpec:
    name: str
    pyfunc: Callable[..., None]
    dtypes: tuple[str, ...]
    signature: Callable[[np.dtype], Any]
    min_blocks: int | None = None  # resident blocks to compile for, under LAUNCH_BOUNDS
    cached: bool = True  # False: compiled afresh, as when a setting changes its code


_REGISTRY: dict[str, KernelSpec] = {}
_COMPILED: dict[tuple[str, str], Any] = {}
_LAUNCHABLE: dict[tuple[str, Any], Any] = {}  # _COMPILED by the dtype objects callers pass
_LOCK = threading.Lock()


def register(
    name: str,
    dtypes: tuple[str, ...],
    signature: Callable[[np.dtype], Any],
    min_blocks: int | None = None,
    cached: bool = True,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``pyfunc`` as kernel ``name`` shipped for ``dtypes`` (a decorator), to be
    compiled for ``min_blocks`` resident blocks of THREADS when LAUNCH_BOUNDS is on.
    ``cached=False`` keeps it out of the disk cache: for code that a setting read at import
    changes, since Numba's cache index keys on the source, not on the globals' values."""

    def wrap(pyfunc: Callable[..., None]) -> Callable[..., None]:
        if name in _REGISTRY:
            raise ValueError(f"kernel {name!r} registered twice")
        _REGISTRY[name] = KernelSpec(name, pyfunc, tuple(np.dtype(d).name for d in dtypes),
                                     signature, min_blocks, cached)  # fmt: skip
        stamp_with_package(pyfunc)  # it may call kernels/ helpers from anywhere
        return pyfunc

    return wrap


def compile_options(name: str) -> dict[str, Any]:
    """Numba's options for kernel ``name`` beyond its signature and the cache: its launch
    bounds, when LAUNCH_BOUNDS is on and it has them (what the PTX suite compiles too)."""
    min_blocks = _REGISTRY[name].min_blocks
    return {"launch_bounds": (THREADS, min_blocks)} if LAUNCH_BOUNDS and min_blocks else {}


# Kernel launches by name and host reads of device arrays by caller: the host-side cost of
# a batch, counted the same under the simulator as on a card (``benchmarks.launches``).
# Every ``kernel()`` call is followed by one launch. A read waits for the device to finish
# what was queued before it, so the reads that follow a launch or a memset are also
# counted apart, as WAITS: a run of reads with nothing queued between them waits once.
# So does an upload of a host array above ``STAGED_BYTES`` (``as_device``) after queued
# work: the driver syncs the stream before a copy from pageable memory starts (CUDA's "API
# synchronization behavior"). Smaller ones go through pinned buffers and do not wait.
LAUNCHES: Counter[str] = Counter()
READS: Counter[str] = Counter()
WAITS: Counter[str] = Counter()
# Device allocations by caller: with Numba's own memory manager each one is a cuMemAlloc,
# and its free a cuMemFree (deferred, made in bursts: ``pool.defer_frees``), which waits
# for the device.
ALLOCATIONS: Counter[str] = Counter()
# Views made directly by carve/span/row, by caller (a few µs of host time each, where
# Numba's own slicing costs tens: benchmarks.launches also counts those, on the simulator).
VIEWS: Counter[str] = Counter()
COPIES: Counter[str] = Counter()  # copies into device arrays by _core.copy, by caller
_queued = [False]  # whether work was queued on the device since the last read
# The recorder of every launch's device time while ``kernel_times.recording()`` runs.
TIMING: list[Any] = [None]
# Seconds spent compiling kernels in this process (not loading them from the disk cache):
# what a machine's first run pays, reported by kernels.compile_time.
COMPILE_SECONDS = [0.0]
# Helpers that many callers use: their reads are named by their caller too.
_SHARED_READERS = frozenset({"exclusive_scan", "flag_offsets", "__len__"})


def kernel(name: str, dtype: Any = "int64") -> Any:
    """The compiled kernel ``name`` for ``dtype`` (compiled on first use, then cached)."""
    LAUNCHES[name] += 1
    _queued[0] = True
    try:  # the common case, by the caller's own dtype object: no np.dtype() on every launch
        found = _LAUNCHABLE[name, dtype]
    except (KeyError, TypeError):  # not seen yet, or an unhashable dtype description
        found = _compiled(name, dtype)
    return found if TIMING[0] is None else TIMING[0].wrap(name, found)


def compiled_kernel(name: str, dtype: Any = "int64") -> Any:
    """The compiled kernel ``name`` for ``dtype``, for inspection: no launch is counted."""
    return _compiled(name, dtype)


def _compiled(name: str, dtype: Any) -> Any:
    """Kernel ``name`` compiled for ``dtype``, compiling it on first use."""
    key = (name, np.dtype(dtype).name)
    found = _COMPILED.get(key)
    if found is not None:
        _remember(name, dtype, found)
        return found
    spec = _REGISTRY[name]
    if key[1] not in spec.dtypes:
        raise TypeError(f"kernel {name!r} is not built for dtype {key[1]} (has {spec.dtypes})")
    with _LOCK:
        found = _COMPILED.get(key)
        if found is None:
            signature = spec.signature(np.dtype(key[1]))
            options = compile_options(name)
            # Numba's cache index keys an entry on the signature, the source, the compute
            # capability and the versions, not on options such as launch bounds: a bounded
            # kernel would load an unbounded one's entry. So bounded kernels compile afresh.
            cached = KERNEL_CACHE and spec.cached and not options
            with _compiler_lock:  # re-entrant; timed once held, not while a CPU compile is
                started = time.perf_counter()
                found = cuda.jit(signature, cache=cached, **options)(spec.pyfunc)
                if _compiled_afresh(found):
                    COMPILE_SECONDS[0] += time.perf_counter() - started
            if FAST_LAUNCH:
                found = _PreparedKernel(found)
            _COMPILED[key] = found
    _remember(name, dtype, found)
    return found


def _compiled_afresh(dispatcher: Any) -> bool:
    """Whether Numba compiled the kernel rather than loading it from its disk cache (the
    simulator, which compiles nothing, keeps no statistics)."""
    stats = getattr(dispatcher, "stats", None)
    return stats is not None and sum(stats.cache_misses.values()) > 0


def _remember(name: str, dtype: Any, found: Any) -> None:
    with contextlib.suppress(TypeError):  # unhashable: looked up the slow way each time
        _LAUNCHABLE[name, dtype] = found


def signatures() -> Iterator[tuple[str, str, Callable[..., None], Any]]:
    """Every shipped (name, dtype, python function, signature), for the PTX check."""
    for spec in _REGISTRY.values():
        for dtype in spec.dtypes:
            yield spec.name, dtype, spec.pyfunc, spec.signature(np.dtype(dtype))


@register("fill", ("int64", "int32", "int16", "int8", "uint8", "float64", "float32"),
          lambda dt: types.void(arr(dt), from_dtype(dt)))  # fmt: skip
def _fill(out, value):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[i] = value


def is_device_array(array: Any) -> bool:
    """Whether ``array`` already lives on the device (``__cuda_array_interface__``: Numba,
    CuPy, cuDF buffers; the simulator's fake device arrays count too)."""
    if isinstance(array, _NumbaArray):  # first: the interface is a property built per call
        return True
    if hasattr(array, "__cuda_array_interface__"):
        return True
    return SIMULATOR and bool(cuda.devicearray.is_cuda_ndarray(array))


def as_device(array: Any, dtype: Any | None = None) -> Any:
    """A device array for ``array`` (host arrays are copied, device arrays passed through)."""
    if is_device_array(array):
        return array
    return _upload(np.ascontiguousarray(array, dtype=dtype), sys._getframe(1).f_code.co_name)


def _upload(host: np.ndarray, caller: str) -> Any:
    ALLOCATIONS[caller] += 1
    if not host.size:  # nothing to copy (the simulator's copy refuses an empty array's strides)
        return cuda.device_array(host.shape, dtype=host.dtype)
    if 0 < host.nbytes <= STAGED_BYTES:
        _queued[0] = True  # an asynchronous copy, queued behind the work before it
        return _STAGING.upload(host)
    if _queued[0] and host.size:  # a copy from pageable memory syncs the stream first
        WAITS[f"{caller}(upload)"] += 1
        _queued[0] = False
    out = cuda.device_array(host.shape, dtype=host.dtype)
    copy(out, host)  # what cuda.to_device does, without copy_to_device's host cost
    return out


STAGED_BYTES = 1 << 20  # host arrays up to this size go to the device without a stream sync
STAGING_SLOTS = 32


class _Staging:
    """Pinned buffers that carry small host arrays to the device, one after another.

    Why: a copy from pageable memory syncs the stream before it starts, so the host
    would wait for all the queued kernels at every upload. A copy from pinned memory
    on the default stream does not sync: it runs after the work queued before it,
    so what is launched later sees the data. A buffer is refilled only once its last
    copy has run (its event, normally long past: ``STAGING_SLOTS - 1`` uploads were
    queued since). Buffers grow to the largest array they carried (at most
    ``STAGED_BYTES`` each).
    """

    def __init__(self, slots: int) -> None:
        self._buffers: list[Any] = [None] * slots
        self._events: list[Any] = [None] * slots
        self._turn = 0
        self._lock = threading.Lock()

    def upload(self, host: np.ndarray) -> Any:
        with self._lock:
            i = self._turn
            self._turn = (i + 1) % len(self._buffers)
            if self._events[i] is None:
                self._events[i] = cuda.event() if SIMULATOR else cuda.event(timing=False)
            self._events[i].synchronize()  # the last copy out of this buffer has run
            buffer = self._buffers[i]
            if buffer is None or buffer.nbytes < host.nbytes:
                buffer = self._buffers[i] = cuda.pinned_array(max(host.nbytes, 4096), np.uint8)
            staged = buffer[: host.nbytes].view(host.dtype).reshape(host.shape)
            np.copyto(staged, host)
            out = cuda.device_array(host.shape, dtype=host.dtype)
            stream = cuda.default_stream()
            copy(out, staged, stream=stream)
            self._events[i].record(stream)
            return out


_STAGING = _Staging(STAGING_SLOTS)


CONSTANT_BYTES = 4096  # the largest host array :func:`constant` keeps on the device
CONSTANT_ENTRIES = 256  # how many contents it keeps (the most recently used)
_CONSTANTS: OrderedDict[tuple[str, tuple[int, ...], bytes], Any] = OrderedDict()
_CONSTANTS_LOCK = threading.Lock()


def constant(array: Any, dtype: Any | None = None) -> Any:
    """A device copy of the small host array ``array``, made once per content and then
    shared: kernels must only read it.

    Why: an upload from pageable memory first waits for all the queued work, and the
    engine passes the same few small arrays (aggregation masks, allowed values, empty
    placeholders) with every batch. Device arrays pass through; arrays above
    ``CONSTANT_BYTES`` are copied each time, as by :func:`as_device`.
    """
    if is_device_array(array):
        return array
    host = np.ascontiguousarray(array, dtype=dtype)
    if host.nbytes > CONSTANT_BYTES:
        return _upload(host, sys._getframe(1).f_code.co_name)
    key = (host.dtype.str, host.shape, host.tobytes())
    with _CONSTANTS_LOCK:
        found = _CONSTANTS.get(key)
        if found is not None:
            _CONSTANTS.move_to_end(key)
            return found
        found = _CONSTANTS[key] = _upload(host, sys._getframe(1).f_code.co_name)
        if len(_CONSTANTS) > CONSTANT_ENTRIES:
            _CONSTANTS.popitem(last=False)
        return found


def empty(shape: Any, dtype: Any) -> Any:
    ALLOCATIONS[sys._getframe(1).f_code.co_name] += 1
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def empty_many(*parts: tuple[Any, Any], zeroed: bool = False) -> list[Any]:
    """Device arrays of the given ``(shape, dtype)`` parts, as views of one allocation
    (each part 8-byte aligned), zero-filled by one memset when ``zeroed``.

    Why: each allocation costs the host a ``cuMemAlloc`` (about 20 µs, and later a free
    that waits for the device), and many steps make several arrays that live together.
    """
    ALLOCATIONS[sys._getframe(1).f_code.co_name] += 1
    shapes = [(shape,) if isinstance(shape, int) else tuple(shape) for shape, _ in parts]
    dtypes = [np.dtype(dtype) for _, dtype in parts]
    sizes = zip(shapes, dtypes, strict=True)
    words = [-(-math.prod(shape) * dtype.itemsize // 8) for shape, dtype in sizes]
    block = cuda.device_array(max(sum(words), 1), dtype=np.int64)
    if zeroed:
        fill(block, 0)
    out, at = [], 0
    for shape, dtype, n_words in zip(shapes, dtypes, words, strict=True):
        out.append(carve(block, 8 * at, shape, dtype))
        at += n_words
    return out


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for extent in reversed(shape):
        strides.append(step)
        step *= max(extent, 1)
    return tuple(reversed(strides))


def _lean(array: Any) -> bool:
    """Whether views of ``array`` can be built directly (a C-contiguous Numba array)."""
    return isinstance(array, _NumbaArray) and bool(array.is_c_contiguous())


def carve(block: Any, offset: int, shape: tuple[int, ...], dtype: Any) -> Any:
    """A C-contiguous ``(shape, dtype)`` array over the memory of the contiguous device
    array ``block`` from byte ``offset`` (the caller keeps it inside ``block``).

    Why: Numba builds a slice, a dtype view or a reshape through its dummy-array
    machinery and a new memory pointer: 10-50 µs of host time each
    (``benchmarks.launch_cost --arrays``). Built directly it is one array over one
    memory view (none at offset 0), as Numba's slicing would make it.
    """
    VIEWS[sys._getframe(1).f_code.co_name] += 1
    return _carved(block, offset, shape, np.dtype(dtype))


def _carved(block: Any, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    size = math.prod(shape) * dtype.itemsize
    if not _lean(block):  # the simulator's arrays, or another library's: the generic way
        flat = block.reshape(-1).view(np.uint8)[offset : offset + size]
        return flat.view(dtype).reshape(shape)
    whole = offset == 0 or size == 0
    memory = block.gpu_data if whole else _memory_at(block.gpu_data, offset, size)
    return _NumbaArray(shape, _c_strides(shape, dtype.itemsize), dtype, gpu_data=memory)


def _memory_at(memory: Any, offset: int, size: int) -> Any:
    """``memory.view(offset, offset + size)`` at about half its host cost.

    Numba's view counts itself into its owner's reference count through a weak proxy
    and a finalizer. This pointer holds its parent (``memory``, which holds that count)
    instead, so the allocation lives at least as long as the view, and has the same
    owner, so views Numba makes of it count themselves as usual.
    """
    at = _driver.binding.CUdeviceptr(memory.device_pointer_value + offset)
    view = _driver.MemoryPointer(memory.context, at, size, owner=memory.owner)
    view._tiktoktoe_parent = memory  # keeps the parent's memory allocated
    return view


def span(array: Any, start: int, stop: int) -> Any:
    """``array[start:stop]`` (``0 <= start``), without Numba's slicing cost when ``array``
    is a C-contiguous Numba array: the same memory (from ``start``), a shorter first axis."""
    stop = max(start, min(int(stop), int(array.shape[0])))
    VIEWS[sys._getframe(1).f_code.co_name] += 1
    if not _lean(array):
        return array[start:stop]
    shape = (stop - start, *array.shape[1:])
    if start == 0:  # no memory view needed
        return _NumbaArray(shape, array.strides, array.dtype, gpu_data=array.gpu_data)
    return _carved(array, start * int(array.strides[0]), shape, np.dtype(array.dtype))


def copy(dst: Any, src: Any, stream: Any = 0) -> None:
    """``dst.copy_to_device(src, stream=stream)``: the items of the device or host array
    ``src`` into the device array ``dst``, of the same shape and dtype.

    Why: Numba's ``copy_to_device`` slices both arrays to their broadcast core and
    squeezes them to compare shapes, 100-250 µs of host time a copy (``benchmarks.launch_cost
    --arrays``), where the driver's copy itself takes the host a microsecond or two.
    C-contiguous arrays of equal shape and dtype go straight to the same driver call
    (asynchronous on ``stream`` when one is given, as Numba's); anything else takes
    Numba's path, with its checks and errors.
    """
    COPIES[sys._getframe(1).f_code.co_name] += 1
    if _lean(dst) and getattr(src, "shape", None) == dst.shape and src.dtype == dst.dtype:
        nbytes = int(dst.size) * dst.dtype.itemsize
        stream = stream or dst.stream
        if isinstance(src, _NumbaArray) and src.is_c_contiguous():
            if nbytes:
                _queued[0] = True
                _driver.device_to_device(dst, src, nbytes, stream=stream)
            return
        if isinstance(src, np.ndarray) and src.flags.c_contiguous:
            if nbytes:
                if not stream and _queued[0]:  # a synchronous copy waits for the queued work
                    WAITS[f"{sys._getframe(1).f_code.co_name}(upload)"] += 1
                _queued[0] = bool(stream)
                _driver.host_to_device(dst, src, nbytes, stream=stream)
            return
    dst.copy_to_device(src, stream=stream)


def row(array: Any, i: int) -> Any:
    """``array[i]``: row ``i`` of a 2-D array, as a 1-D array (cheaply, as :func:`span`)."""
    VIEWS[sys._getframe(1).f_code.co_name] += 1
    if not _lean(array):
        return array[i]
    return _carved(array, int(i) * int(array.strides[0]), tuple(array.shape[1:]),
                   np.dtype(array.dtype))  # fmt: skip


def full(shape: Any, value: Any, dtype: Any) -> Any:
    """A device array of ``shape`` filled with ``value`` on the device (see :func:`fill`)."""
    ALLOCATIONS[sys._getframe(1).f_code.co_name] += 1
    out = cuda.device_array(shape, dtype=np.dtype(dtype))
    fill(out, value)
    return out


def fill(out: Any, value: Any) -> None:
    """Write ``value`` into every item of the contiguous device array ``out``.

    Values of one repeated byte (0, -1, 0.0, ...) are written by a driver memset,
    which costs the host a few microseconds where a Numba kernel launch costs tens.
    """
    global _MEMSET_WORKS
    dtype = np.dtype(out.dtype)
    n = int(out.size)
    if not n:
        return
    pattern = np.array(value, dtype=dtype).tobytes()
    if _MEMSET_WORKS and len(set(pattern)) == 1:
        LAUNCHES["memset"] += 1
        _queued[0] = True
        if SIMULATOR:  # no driver: the same bytes, written from the host
            out.copy_to_device(np.full(out.shape, value, dtype=dtype))
            return
        try:
            _driver.device_memset(out, pattern[0], n * dtype.itemsize)  # no flat view needed
            return
        except Exception:  # another numba-cuda: the fill kernel is correct, just slower
            _MEMSET_WORKS = False
    flat = out.reshape(-1) if out.ndim != 1 else out
    blocks, threads = launch(n)
    kernel("fill", dtype)[blocks, threads](flat, dtype.type(value))


_MEMSET_WORKS = True


def to_host(array: Any) -> np.ndarray:
    """A host copy of a device array (Numba, CuPy, or anything with
    ``__cuda_array_interface__``, such as a torch CUDA tensor); host arrays as they are."""
    if is_device_array(array):
        caller = sys._getframe(1).f_code.co_name
        if caller in _SHARED_READERS:  # named by their own caller too: where the wait is
            caller = f"{sys._getframe(2).f_code.co_name}>{caller}"
        READS[caller] += 1
        if _queued[0]:
            WAITS[caller] += 1
            _queued[0] = False
    if hasattr(array, "copy_to_host"):
        return array.copy_to_host()
    if hasattr(array, "get"):  # CuPy
        return array.get()
    if hasattr(array, "__cuda_array_interface__"):
        return cuda.as_cuda_array(array).copy_to_host()
    return np.asarray(array)
