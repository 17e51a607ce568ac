"""The ``k`` best groups of each window, on the device: the CUDA twin of
:meth:`gpu_engine.windows.operator.WindowOperator.apply_top_k`.

Groups come ordered by window (``window`` non-decreasing), so the rows of a
window are one contiguous run. A bitonic sort (``log2(m) (log2(m) + 1) / 2``
compare-exchange passes over the row indices, padded to a power of two ``m``)
orders them by (window, ``by``, tie-break atoms, row); since the window is the
first key, every window keeps its run, and the rank of a row within its window
is its sorted position minus the start of the run (a binary search over
``window``). Rows of rank below ``k`` are kept, by stream compaction; with host
``window`` values (as the backend passes) the host counts them itself, ``min(k, rows)``
per window, instead of waiting for the device's count.

Order within a window, as in the CPU (Arrow ``sort_by`` with ``at_end``):
``by`` best first (largest when descending), then NaN, then nulls, in both
directions; ties by the atoms ascending, then by row (a stable sort). The
atoms must order like the key columns they stand for: integer keys are their
own atoms; callers pass ranks for string codes, and ``(is_null, value)`` for
nullable keys (whose null sorts last).

API (device arrays; host arrays are copied):

``top_k_rows(window, by, valid, atoms, k, descending) -> indices``
    host int64 indices of the kept rows, window by window, best first (the
    order of the CPU result).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import types

from kernels.cuda._core import (
    arr,
    as_device,
    cuda,
    device_function,
    empty,
    is_device_array,
    kernel,
    launch,
    register,
    to_host,
)
from kernels.cuda.scan import exclusive_offsets, exclusive_scan

_I1, _I2, _F1, _B1 = arr("int64"), arr("int64", 2), arr("float64"), arr("bool")
_i8 = types.int64


@device_function
def _before(a, b, n, window, by, valid, atoms, descending):  # pragma: no cover - compiled
    """Whether row ``a`` sorts before row ``b`` (indices ``>= n`` are padding, last)."""
    if a >= n or b >= n:
        return a < b
    if window[a] != window[b]:
        return window[a] < window[b]
    if valid[a] != valid[b]:
        return valid[a]  # nulls last
    if valid[a]:
        x = by[a]
        y = by[b]
        x_nan = math.isnan(x)
        y_nan = math.isnan(y)
        if x_nan != y_nan:
            return y_nan  # NaN after every number, before nulls
        if not x_nan and x != y:
            return x > y if descending else x < y
    for c in range(atoms.shape[1]):
        if atoms[a, c] != atoms[b, c]:
            return atoms[a, c] < atoms[b, c]
    return a < b


def _step_sig(dt: np.dtype) -> Any:
    return types.void(_I1, _i8, _I1, _F1, _B1, _I2, types.boolean, _i8, _i8)


@register("topk.bitonic_step", ("int64",), _step_sig)
def _bitonic_step(perm, n, window, by, valid, atoms, descending, size, stride):  # pragma: no cover
    """One compare-exchange pass of a bitonic sort of ``perm`` (a power-of-two length)."""
    for i in range(cuda.grid(1), perm.shape[0], cuda.gridsize(1)):
        j = i ^ stride
        if j <= i:
            continue
        a = perm[i]
        b = perm[j]
        up = (i & size) == 0
        if up:
            swap = _before(b, a, n, window, by, valid, atoms, descending)
        else:
            swap = _before(a, b, n, window, by, valid, atoms, descending)
        if swap:
            perm[i] = b
            perm[j] = a


@register("topk.iota", ("int64",), lambda dt: types.void(_I1))
def _iota(out):  # pragma: no cover - compiled
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[i] = i


@device_function
def _run_start(window, value):  # pragma: no cover - compiled
    """First index of ``value`` in the non-decreasing ``window`` (a lower bound)."""
    lo = 0
    hi = window.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if window[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@register("topk.keep", ("int64",), lambda dt: types.void(_I1, _i8, _I1, _i8, _I1))
def _keep(perm, n, window, k, flags):  # pragma: no cover - compiled
    for p in range(cuda.grid(1), n, cuda.gridsize(1)):
        flags[p] = 1 if p - _run_start(window, window[perm[p]]) < k else 0


@register("topk.gather_kept", ("int64",), lambda dt: types.void(_I1, _i8, _I1, _I1, _I1))
def _gather_kept(perm, n, flags, offsets, out):  # pragma: no cover - compiled
    for p in range(cuda.grid(1), n, cuda.gridsize(1)):
        if flags[p]:
            out[offsets[p]] = perm[p]


def top_k_rows(
    window: Any, by: Any, valid: Any, atoms: Any, k: int, descending: bool = True
) -> np.ndarray:
    """Indices of the ``k`` best rows of each window (see the module docstring)."""
    host_window = None if is_device_array(window) else np.asarray(window, dtype=np.int64)
    window = as_device(window, np.int64)
    n = int(window.shape[0])
    if n == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    by = as_device(by, np.float64)
    valid = as_device(valid, np.bool_)
    atoms = as_device(atoms, np.int64)
    if atoms.ndim == 1:
        atoms = atoms.reshape(n, 1)
    m = 1 << max(0, (n - 1).bit_length())
    perm = empty(m, np.int64)
    kernel("topk.iota")[launch(m)](perm)
    step = kernel("topk.bitonic_step")
    config = launch(m)
    size = 2
    while size <= m:
        stride = size // 2
        while stride > 0:
            step[config](perm, n, window, by, valid, atoms, bool(descending), size, stride)
            stride //= 2
        size *= 2
    flags = empty(n, np.int64)
    kernel("topk.keep")[launch(n)](perm, n, window, int(k), flags)
    if host_window is None:
        offsets, kept = exclusive_scan(flags)
    else:  # the host knows the count without waiting for the device's
        offsets, kept = exclusive_offsets(flags), kept_rows(host_window, k)
    out = empty(kept, np.int64)
    if kept:
        kernel("topk.gather_kept")[launch(n)](perm, n, flags, offsets, out)
    return to_host(out)


def kept_rows(window: np.ndarray, k: int) -> int:
    """How many rows the ``k`` best of each window keep: ``min(k, rows)`` for every window
    (in any order, as the device ranks them)."""
    _, rows = np.unique(window, return_counts=True)
    return int(np.minimum(rows, k).sum())


__all__ = ["kept_rows", "top_k_rows"]
