"""Session windows on the device: the CUDA twin of :func:`kernels.sessions.merge_intervals`.

Intervals come sorted by (key, start). A key's intervals form a segment; one
thread walks each segment with the CPU's running-end rule (``s2 <= e1``
merges), first counting the sessions of its segment, then, after an exclusive
scan of those counts gives each segment its first group id, writing the ids.
The session of one key is inherently sequential; keys run in parallel.

API: ``merge_intervals(atoms, start, end) -> (group_ids, n_groups)`` with ``atoms``
``(n, width)`` int64, ``start``/``end`` int64 device arrays; ``group_ids`` is an int64
device array equal to the CPU's (same numbering: in sorted order). The two small
scans (segment starts, count offsets) run on the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types

from kernels.cuda._core import arr, as_device, cuda, empty, kernel, launch, register, to_host


def _flags_sig(dt: np.dtype) -> Any:
    return types.void(arr("int64", 2), arr("uint8"))


@register("session.key_starts", ("int64",), _flags_sig)
def _key_starts(atoms, flags):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), flags.shape[0], cuda.gridsize(1)):
        new = i == 0
        if not new:
            for c in range(atoms.shape[1]):
                if atoms[i, c] != atoms[i - 1, c]:
                    new = True
                    break
        flags[i] = 1 if new else 0


def _walk_sig(dt: np.dtype) -> Any:
    i1 = arr("int64")
    return types.void(i1, types.int64, i1, i1, i1, i1, types.boolean)


@register("session.walk", ("int64",), _walk_sig)
def _walk(seg_start, n, start, end, first_id, out, write):  # pragma: no cover - compiled
    """Per key segment: count sessions into ``first_id[s]`` or write ids from ``first_id[s]``."""
    n_seg = seg_start.shape[0]
    for s in range(cuda.grid(1), n_seg, cuda.gridsize(1)):
        lo = seg_start[s]
        hi = seg_start[s + 1] if s + 1 < n_seg else n
        g = first_id[s] if write else 0
        running_end = end[lo]
        if write:
            out[lo] = g
        for i in range(lo + 1, hi):
            if start[i] > running_end:
                g += 1
                running_end = end[i]
            elif end[i] > running_end:
                running_end = end[i]
            if write:
                out[i] = g
        if not write:
            first_id[s] = g + 1


def merge_intervals(atoms: Any, start: Any, end: Any) -> tuple[Any, int]:
    """Group ids (device int64) of intervals sorted by (key, start), and the group count."""
    start = as_device(start, np.int64)
    end = as_device(end, np.int64)
    n = start.shape[0]
    out = empty(n, np.int64)
    if n == 0:
        return out, 0
    atoms = as_device(atoms, np.int64)
    if atoms.ndim == 1:
        atoms = atoms.reshape(n, 1)
    if atoms.shape[1] == 0:
        atoms = as_device(np.zeros((n, 1), dtype=np.int64))
    flags = empty(n, np.uint8)
    blocks, threads = launch(n)
    kernel("session.key_starts")[blocks, threads](atoms, flags)
    seg_start = np.flatnonzero(to_host(flags)).astype(np.int64)
    counts = as_device(np.zeros(len(seg_start), dtype=np.int64))
    seg = as_device(seg_start)
    blocks, threads = launch(len(seg_start))
    kernel("session.walk")[blocks, threads](seg, n, start, end, counts, out, False)
    per_segment = to_host(counts)
    first = np.concatenate([[0], np.cumsum(per_segment)[:-1]]).astype(np.int64)
    kernel("session.walk")[blocks, threads](seg, n, start, end, as_device(first), out, True)
    return out, int(per_segment.sum())


__all__ = ["merge_intervals"]
