"""What a card can do at best for the kernels benchmark's work: two floors under its time.

``benchmarks.gpu_kernels`` prints these next to its own figures, so a missed goal
says how far it is from the hardware rather than only from the target:

* **streaming**: a device-to-device copy of as many bytes as the run's columns
  (every column read once and written once, which is more than validation reads);
* **random reads**: what the hash inserts cannot avoid. Each event makes three
  inserts (its pane row and two sketch entries), and each insert reads at least a
  slot at a hashed position and then, from that slot, the stored key it must
  compare with: two dependent reads at random places in tables the size of the
  sketch index's (the largest). No atomics, no writes, no compare: only the reads.

Both run on the default stream and are timed by CUDA events, best of a few runs
(:mod:`benchmarks.device_timing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import types, uint64

from benchmarks.device_timing import best_seconds
from kernels.cuda._core import arr, cuda, empty, full, kernel, launch, register
from kernels.cuda.hashindex import hash_seed, hash_step, slot_of

INSERTS_PER_EVENT = 3  # the pane row, the quantile entry and the distinct entry


def _reads_sig(dt: np.dtype) -> Any:
    i8 = arr("int64")
    return types.void(i8, arr("int64", 2), types.int64, i8)


@register("bench.random_reads", ("int64",), _reads_sig)
def _random_reads(slots, keys, reads, out):  # pragma: no cover - compiled
    """``reads`` probes: ``slots`` at a hashed position, then the key row its value names.
    The sum of what was read is stored only when it equals ``reads`` (never, in practice),
    so the reads cannot be optimised away and the kernel writes nothing else."""
    n_slots = slots.shape[0]
    total = 0
    for i in range(cuda.grid(1), reads, cuda.gridsize(1)):
        s = slots[slot_of(hash_step(hash_seed(), i), n_slots)]
        total += keys[uint64(s) % uint64(keys.shape[0]), 0]
    if total == reads:
        out[0] = total


@register("bench.scatter_ids", ("int64",), lambda dt: types.void(arr("int64")))
def _scatter_ids(slots):  # pragma: no cover - compiled
    """Fill the slot table with hashed values, so each slot names a random key row."""
    for i in range(cuda.grid(1), slots.shape[0], cuda.gridsize(1)):
        slots[i] = hash_step(hash_seed() + 1, i)


@dataclass(frozen=True)
class Floors:
    stream_ms: float  # a device copy of the columns' bytes
    stream_bytes: int
    random_ms: float  # INSERTS_PER_EVENT dependent random read pairs per event
    reads: int
    slots_bytes: int
    keys_bytes: int

    def lines(self, events: int) -> list[str]:
        def rate(ms: float) -> str:
            return f"{events / ms * 1e3:,.0f} events/s" if ms > 0 else "n/a"

        return [
            f"  streaming: a device copy of the columns' {self.stream_bytes / 1e6:,.0f} MB   "
            f"{self.stream_ms:8.2f} ms  ({rate(self.stream_ms)})",
            f"  random reads: {self.reads:,} slot-then-key read pairs ({INSERTS_PER_EVENT} per"
            f" event; tables of {self.slots_bytes / 1e6:,.0f} and {self.keys_bytes / 1e6:,.0f}"
            f" MB)  {self.random_ms:8.2f} ms  ({rate(self.random_ms)})",
        ]


def _copy_ms(nbytes: int, repeats: int) -> float:
    src, dst = empty(nbytes, np.uint8), empty(nbytes, np.uint8)
    return best_seconds(lambda: dst.copy_to_device(src), repeats) * 1e3


def measure(events: int, column_bytes: int, slots: int, key_rows: int, repeats: int = 3) -> Floors:
    """The two floors for ``events`` events whose columns take ``column_bytes``, with a slot
    table of ``slots`` int64 (a power of two) and ``key_rows`` stored 3-wide keys."""
    stream_ms = _copy_ms(column_bytes, repeats)
    table = empty(slots, np.int64)
    keys = full((key_rows, 3), 0, np.int64)  # its values are only summed
    blocks, threads = launch(slots)
    kernel("bench.scatter_ids")[blocks, threads](table)
    out = empty(1, np.int64)
    reads = INSERTS_PER_EVENT * events
    blocks, threads = launch(reads)
    random_ms = 1e3 * best_seconds(
        lambda: kernel("bench.random_reads")[blocks, threads](table, keys, np.int64(reads), out),
        repeats,
    )
    return Floors(stream_ms, column_bytes, random_ms, reads, table.nbytes, keys.nbytes)


__all__ = ["INSERTS_PER_EVENT", "Floors", "measure"]
