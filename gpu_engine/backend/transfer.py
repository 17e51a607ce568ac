"""Host-to-device upload of event batches through pinned staging buffers on a copy stream.

A batch's columns (key atoms, value columns, masks) are cut into chunks of
rows. Each chunk is copied from pageable host memory into a pinned (page-
locked) staging buffer and from there to the device with an asynchronous copy
on a dedicated stream, so that with two buffer slots (double buffering) the
copy of chunk ``i + 1`` runs while the kernels of chunk ``i`` do:

    copy stream:    [copy 0][copy 1]        [copy 2] ...
    default stream:         [kernels 0]     [kernels 1][kernels 2] ...

Ordering is by events: the kernels of a chunk wait for its copy (``copied``),
and a slot is refilled only after the kernels that read it were launched and
have run (``done``, recorded after the consumer's launches), while the host
rewrites its pinned buffer only once the copy out of it has finished.
Buffers grow (doubling) and are reused from batch to batch.

The copy stream is created non-blocking where the driver allows it, because
Numba launches kernels on the legacy default stream, which otherwise waits for
(and holds up) every copy. Columns already on the device (anything with
``__cuda_array_interface__``: Numba device arrays, CuPy, cuDF buffers) are
passed through untouched: no copy, same device pointer (they come as one chunk).

Host arrays that are page-locked already (``cuda.pinned_array``) can skip the
staging copy (``pinned_source=True``): each chunk that is contiguous in host
memory is copied straight from them.

Under the Numba CUDA simulator everything runs synchronously (streams and
events are no-ops, pinned arrays are ordinary arrays), which checks the
chunking and buffer bookkeeping but not the overlap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kernels.cuda._core import SIMULATOR, carve, copy, cuda, empty, is_device_array

DEFAULT_CHUNK_ROWS = 1 << 18


def _event() -> Any:
    return cuda.event() if SIMULATOR else cuda.event(timing=False)


def copy_stream() -> Any:
    """A stream for copies that does not synchronise with the legacy default stream."""
    if not SIMULATOR:
        try:  # numba-cuda's Context.create_stream, with CU_STREAM_NON_BLOCKING
            from numba.cuda.cudadrv import driver

            drv: Any = driver  # private API, untyped on purpose
            ctx = cuda.current_context()
            flags = drv.binding.CUstream_flags.CU_STREAM_NON_BLOCKING.value
            handle = drv.driver.cuStreamCreate(flags)
            return drv.Stream(handle, finalizer=drv._stream_finalizer(ctx.deallocations, handle))
        except Exception:  # another numba-cuda: a blocking stream is correct, just slower
            pass
    return cuda.stream()


@dataclass
class Column:
    """One array of a batch and its row axis (``axis``), e.g. ``(n, width)`` keys on axis 0,
    ``(n_columns, n)`` values on axis 1. Arrays with no element are passed as they are."""

    array: Any
    axis: int = 0


@dataclass
class _Slot:
    host: list[Any] = field(default_factory=list)  # pinned flat buffers, one per column
    device: list[Any] = field(default_factory=list)  # device flat buffers, one per column
    views: list[Any] = field(default_factory=list)  # this chunk's device arrays
    copied: Any = None  # recorded on the copy stream after the chunk's copies
    done: Any = None  # recorded on the default stream after the chunk's kernels


class PinnedUploader:
    """Chunked, double-buffered uploads of batches (see the module docstring); reusable."""

    def __init__(
        self, chunk_rows: int = DEFAULT_CHUNK_ROWS, depth: int = 2, pinned_source: bool = False
    ) -> None:
        if chunk_rows < 1 or depth < 1:
            raise ValueError("chunk_rows and depth must be positive")
        self.chunk_rows = chunk_rows
        self.pinned_source = pinned_source
        self.stream = copy_stream()
        self.slots = [_Slot(copied=_event(), done=_event()) for _ in range(depth)]
        self.copies = 0  # host-to-device copies made (for tests and metrics)
        self.bytes_copied = 0

    @property
    def pinned_bytes(self) -> int:
        return sum(int(b.nbytes) for slot in self.slots for b in slot.host if b is not None)

    def chunks(self, columns: Sequence[Column], n: int) -> Iterator[tuple[int, int, list[Any]]]:
        """``(lo, hi, device arrays)`` for rows ``lo..hi-1`` of every column, chunk by chunk.

        Launch the chunk's kernels (on the default stream) in the loop body: when
        the body returns, the slot is marked free once they have run, and the
        next chunk's copy is already under way. A device column makes the batch
        one chunk, so that it passes through whole.
        """
        if n <= 0:
            return
        step = n if any(is_device_array(c.array) for c in columns) else self.chunk_rows
        bounds = [(lo, min(lo + step, n)) for lo in range(0, n, step)]
        default = cuda.default_stream()
        depth = len(self.slots)
        self._enqueue(self.slots[0], columns, n, *bounds[0])
        for i, (lo, hi) in enumerate(bounds):
            if i + 1 < len(bounds):
                self._enqueue(self.slots[(i + 1) % depth], columns, n, *bounds[i + 1])
            slot = self.slots[i % depth]
            slot.copied.wait(default)
            yield lo, hi, slot.views
            slot.done.record(default)
        if self.pinned_source:  # copies read the caller's arrays: done before they are its
            for slot in self.slots:
                slot.copied.synchronize()

    def _enqueue(self, slot: _Slot, columns: Sequence[Column], n: int, lo: int, hi: int) -> None:
        """Stage rows ``lo..hi-1`` into ``slot``'s pinned buffers and copy them asynchronously."""
        slot.copied.synchronize()  # the last copy out of these pinned buffers has finished
        while len(slot.host) < len(columns):
            slot.host.append(None)
            slot.device.append(None)
        slot.done.wait(self.stream)  # the kernels reading these device buffers have run
        views = []
        for c, column in enumerate(columns):
            array = column.array
            if is_device_array(array):
                views.append(array)  # zero copy
                continue
            array = np.asarray(array)
            if array.size == 0 or array.shape[column.axis] != n:
                if array.size:
                    raise ValueError(f"column {c} has {array.shape[column.axis]} rows, not {n}")
                shape = list(array.shape)
                if array.ndim and array.shape[column.axis] == n:
                    shape[column.axis] = hi - lo
                views.append(empty(tuple(shape), array.dtype))
                continue
            index = [slice(None)] * array.ndim
            index[column.axis] = slice(lo, hi)
            part = array[tuple(index)]
            device = self._grown(slot, slot.device, c, part.size, part.dtype, empty)
            device = carve(device, 0, part.shape, part.dtype)
            source = part
            if not (self.pinned_source and part.flags.c_contiguous):
                host = self._grown(slot, slot.host, c, part.size, part.dtype, cuda.pinned_array)
                source = host[: part.size].reshape(part.shape)
                np.copyto(source, part)
            copy(device, source, stream=self.stream)
            self.copies += 1
            self.bytes_copied += int(part.nbytes)
            views.append(device)
        slot.copied.record(self.stream)
        slot.views = views

    @staticmethod
    def _grown(
        slot: _Slot, buffers: list[Any], c: int, size: int, dtype: np.dtype, make: Any
    ) -> Any:
        """``buffers[c]`` (pinned or device, flat), made by ``make(items, dtype=)`` or grown
        (doubling) to hold ``size`` items of ``dtype``."""
        buffer = buffers[c]
        if buffer is not None and buffer.dtype == dtype and buffer.shape[0] >= size:
            return buffer
        slot.done.synchronize()  # nothing in flight may still use the old buffer
        same = buffer is not None and buffer.dtype == dtype
        buffers[c] = make(max(size, 2 * buffer.shape[0] if same else 0, 1), dtype=dtype)
        return buffers[c]


class CopiesDone:
    """A batch's copies on the copy stream: :meth:`wait` makes the default stream wait
    for them, once, just before the batch's first kernel (not when they are queued)."""

    def __init__(self, event: Any) -> None:
        self._event: Any = event

    def wait(self) -> None:
        if self._event is not None:
            self._event.wait(cuda.default_stream())
            self._event = None


class PinnedStager:
    """Whole batches to fresh device arrays through reused pinned buffers (``depth`` sets).

    The copies run on the copy stream, so the upload of batch ``n + 1`` (staged before
    batch ``n`` is processed) overlaps batch ``n``'s kernels; the default stream waits
    for a batch's copies when that batch is processed (:class:`CopiesDone`): waiting as
    they were queued made batch ``n``'s kernels wait for batch ``n + 1``'s copies. A set
    of pinned buffers is rewritten only once the copies out of it have finished. Device
    arrays are fresh per batch, so no kernel can still be reading one that is being
    refilled.
    """

    def __init__(self, depth: int = 2) -> None:
        self.stream = copy_stream()
        self.sets: list[dict[int, Any]] = [{} for _ in range(depth)]
        self.copied = [_event() for _ in range(depth)]
        self.turn = 0
        self.copies = 0
        self.bytes_copied = 0

    def upload(self, arrays: Sequence[np.ndarray]) -> tuple[list[Any], CopiesDone]:
        """Device copies of ``arrays`` (1-D), queued on the copy stream, and what the
        default stream must wait for before it reads them."""
        slot = self.turn
        self.turn = (self.turn + 1) % len(self.sets)
        self.copied[slot].synchronize()  # the last copies out of these pinned buffers are done
        buffers = self.sets[slot]
        out = []
        for c, array in enumerate(arrays):
            host = buffers.get(c)
            if host is None or host.dtype != array.dtype or host.shape[0] < array.size:
                host = cuda.pinned_array(max(array.size, 1), dtype=array.dtype)
                buffers[c] = host
            staged = host[: array.size]
            np.copyto(staged, array)
            device = empty(array.size, array.dtype)
            if array.size:
                copy(device, staged, stream=self.stream)
                self.copies += 1
                self.bytes_copied += int(array.nbytes)
            out.append(device)
        self.copied[slot].record(self.stream)
        return out, CopiesDone(self.copied[slot])


__all__ = [
    "DEFAULT_CHUNK_ROWS", "Column", "CopiesDone", "PinnedStager", "PinnedUploader", "copy_stream",
]  # fmt: skip
