"""CUDA kernels (Numba ``@cuda.jit``), the device twins of the CPU kernels in :mod:`kernels`.

Only the CUDA backend imports this package (it imports ``numba.cuda``); the CPU
path never does. Each module takes device arrays (Numba device arrays or
anything with ``__cuda_array_interface__``, e.g. CuPy) and writes device
arrays; host numpy arrays are accepted and copied, for tests.

Modules: :mod:`.validate` (per-row reason codes), :mod:`.hashindex` (key tuples
to dense ids), :mod:`.aggregate` (pane aggregation, window combination,
finalisation), :mod:`.sketches` (quantile buckets, distinct hashes, entry
counts), :mod:`.sketch_state` (sketch entries of pane rows combined into
windows), :mod:`.sessions` (session cutting, merging and emission), :mod:`.sort`
(stable radix sort), :mod:`.scan` (prefix sums),
:mod:`.windows` (window emission from pane rows, compaction), :mod:`.ingest`
(batches pushed as device columns: casts, row selection, kernel inputs), :mod:`.topk`
(the best groups of each window). Kernels are compiled once per
(kernel, dtype) on first use; :func:`all_signatures` lists every shipped one.
:mod:`.pool` pools device allocations when ``TIKTOKTOE_DEVICE_POOL=1`` (opt-in); otherwise
Numba's own frees are made in bursts of 256, not 10 (:func:`.pool.defer_frees`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kernels.cuda._core import SIMULATOR, kernel, signatures
from kernels.cuda.pool import defer_frees, install_if_asked

install_if_asked()  # before any CUDA call creates Numba's context
defer_frees()


def all_signatures() -> Iterator[tuple[str, str, Callable[..., None], Any]]:
    """(name, dtype, python function, signature) of every kernel of every module."""
    from kernels.cuda import (  # noqa: F401
        aggregate,
        hashindex,
        ingest,
        scan,
        sessions,
        sketch_state,
        sketches,
        sort,
        topk,
        validate,
        windows,
    )

    return signatures()


__all__ = ["SIMULATOR", "all_signatures", "kernel"]
