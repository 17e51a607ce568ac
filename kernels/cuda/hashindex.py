"""A device hash index from fixed-width int64 key tuples to dense ids.

The CUDA twin of :class:`kernels.hashindex.HashIndex`: open addressing with
linear probing over a power-of-two ``slots`` array, load factor at most 1/2,
the same splitmix64 row hash (the scalar ``mix64`` step is the CPU helper
itself). Ids are dense (``0..len-1``): a batch's new keys take the next ids in
the order of the rows that claimed their slots, which is not first-seen order
when a key repeats in the batch (compare groupings, not ids).

Insertion is lock-free and never spins: pass 1 claims empty slots with
``atomic.cas(slot, EMPTY, -(i + 2))`` (a claim names the claiming row ``i`` of
the batch, whose key any other thread can compare with at once) and flags the
claimers; an exclusive scan of the flags numbers them; pass 2 gives each
claimer the id ``len + its number``, stores its key and publishes the id in its
slot, and points every other row of a claimed key at the claimer's id (read
from the scan, not from the claimer, so pass 2 has no ordering of its own). No
thread reads a stored key in the pass that writes it, so no fence is needed:
the launch boundaries order them. New ids are numbered by the scan rather than
by an atomic counter because every thread adding to one counter serialises on
that one address: about one add per clock for the whole device, which a
batch of millions of new keys (sketch entries) would pay in milliseconds.

API (device arrays; host arrays are copied):

``DeviceHashIndex(width, capacity)``
    ``.insert(keys, skip=None) -> ids``: ``keys`` (n, width) int64; returns int64 ids
    (a device array), adding unseen keys; rows with ``skip[i] != 0`` (an int8 array,
    e.g. validation reason codes) get id ``-1`` and add nothing.
    ``.find(keys) -> ids``: ids, ``-1`` where absent.
    ``.keys`` (device, (len, width)), ``len(index)``.
    ``.upper_bound(limit=None)``: at least ``len(index)`` without waiting for the device.
    The length is counted on the device (pass 2 adds the scan's total), so an insert
    never waits for it; ``len()`` reads it back when inserts happened since the last read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import int64, njit, types, uint64

from kernels.cuda._core import (
    arr,
    as_device,
    constant,
    copy,
    cuda,
    device_function,
    empty,
    empty_many,
    fill,
    full,
    kernel,
    launch,
    register,
    span,
    to_host,
)
from kernels.cuda.scan import device_flag_offsets
from kernels.hashindex import HASH_SEED, mix64

EMPTY = -1


@njit(inline="always")
def hash_step(h, v):  # pragma: no cover - compiled
    """One step of the CPU ``hash_row``, ``mix64(h ^ uint64(v))``, on int64 bit patterns.

    Hashes travel as int64 so that no value above 2**63 ever crosses from a
    compiled helper into simulated (Python) code.
    """
    return int64(mix64(uint64(h) ^ uint64(v)))


@njit(inline="always")
def hash_seed():  # pragma: no cover - compiled
    return int64(uint64(HASH_SEED))


@njit(inline="always")
def slot_of(h, n_slots):  # pragma: no cover - compiled
    return int64(uint64(h) & uint64(n_slots - 1))


@device_function
def _hash_row(keys, i):  # pragma: no cover - compiled
    h = hash_seed()
    for j in range(keys.shape[1]):
        h = hash_step(h, keys[i, j])
    return h


@device_function
def _same(a, i, b, j):  # pragma: no cover - compiled
    for c in range(a.shape[1]):
        if a[i, c] != b[j, c]:
            return False
    return True


def _claim_sig(dt: np.dtype) -> Any:
    i1, i2 = arr("int64"), arr("int64", 2)
    return types.void(i1, i2, i2, arr("int8"), arr("uint8"), i1, i1, i1)


@register("hash.claim", ("int64",), _claim_sig)
def _claim(slots, stored, batch, skip, claimed, claim, out, count):  # pragma: no cover
    """Pass 1: ``out[i]`` = an existing id, or ``-(j + 2)`` naming the row ``j`` that claimed
    the key's slot; a claimer (``claimed[i] = 1``, its slot in ``claim[i]``) gets its id in
    pass 2. ``count`` = (length before this batch, length): the first becomes the second
    here, for pass 2 to number new keys from."""
    n_slots = slots.shape[0]
    has_skip = skip.shape[0] > 0
    if cuda.grid(1) == 0:
        count[0] = count[1]
    for i in range(cuda.grid(1), batch.shape[0], cuda.gridsize(1)):
        claim[i] = -1
        claimed[i] = 0
        if has_skip and skip[i] != 0:
            out[i] = EMPTY
            continue
        pos = slot_of(_hash_row(batch, i), n_slots)
        while True:
            s = slots[pos]
            if s == EMPTY:
                s = cuda.atomic.cas(slots, pos, EMPTY, -(i + 2))
                if s == EMPTY:
                    claimed[i] = 1
                    claim[i] = pos
                    out[i] = EMPTY
                    break
            if s >= 0:
                if _same(stored, s, batch, i):
                    out[i] = s
                    break
            elif _same(batch, -(s + 2), batch, i):
                out[i] = s
                break
            pos = pos + 1
            if pos == n_slots:
                pos = 0


def _resolve_sig(dt: np.dtype) -> Any:
    i1, i2 = arr("int64"), arr("int64", 2)
    return types.void(i1, i2, i2, i1, i1, i1, i1, i1)


@register("hash.resolve", ("int64",), _resolve_sig)
def _resolve(slots, stored, batch, claim, number, added, count, out):  # pragma: no cover
    """Pass 2: claimer ``i`` takes id ``base + number[i]``, stores its key and publishes the id
    in its slot; a row that found the claim of row ``j`` takes ``base + number[j]``. ``base``
    is the length before the batch (``count[0]``, which only pass 1 writes); the length
    (``count[1]``) grows by the ``added[0]`` new keys."""
    base = count[0]
    if cuda.grid(1) == 0:
        count[1] = base + added[0]
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        pos = claim[i]
        if pos >= 0:
            sid = base + number[i]
            for c in range(batch.shape[1]):
                stored[sid, c] = batch[i, c]
            slots[pos] = sid
            out[i] = sid
            continue
        s = out[i]
        if s <= -2:
            out[i] = base + number[-(s + 2)]


def _lookup_sig(dt: np.dtype) -> Any:
    i2 = arr("int64", 2)
    return types.void(arr("int64"), i2, i2, arr("int64"))


@register("hash.lookup", ("int64",), _lookup_sig)
def _lookup(slots, stored, batch, out):  # pragma: no cover - compiled
    n_slots = slots.shape[0]
    for i in range(cuda.grid(1), batch.shape[0], cuda.gridsize(1)):
        pos = slot_of(_hash_row(batch, i), n_slots)
        out[i] = EMPTY
        while True:
            s = slots[pos]
            if s == EMPTY:
                break
            if _same(stored, s, batch, i):
                out[i] = s
                break
            pos = pos + 1
            if pos == n_slots:
                pos = 0


def _reinsert_sig(dt: np.dtype) -> Any:
    return types.void(arr("int64"), arr("int64", 2), types.int64)


@register("hash.reinsert", ("int64",), _reinsert_sig)
def _reinsert(slots, stored, n):  # pragma: no cover - compiled
    """Rebuild ``slots`` (all EMPTY) from the ``n`` stored keys after growth."""
    n_slots = slots.shape[0]
    for sid in range(cuda.grid(1), n, cuda.gridsize(1)):
        pos = slot_of(_hash_row(stored, sid), n_slots)
        while cuda.atomic.cas(slots, pos, EMPTY, sid) != EMPTY:
            pos = pos + 1
            if pos == n_slots:
                pos = 0


def _pow2_at_least(n: int) -> int:
    return 1 << max(4, int(n - 1).bit_length())


_NO_SKIP = np.empty(0, dtype=np.int8)


class DeviceHashIndex:
    """Maps int64 key tuples of a fixed ``width`` (>= 1) to dense ids on the device."""

    def __init__(self, width: int, capacity: int = 1024) -> None:
        if width < 1:
            raise ValueError("DeviceHashIndex needs width >= 1 (pass a zero column for width 0)")
        self.width = width
        # The length lives on the device, so an insert need not wait for it: the host knows
        # it as of its last read, plus how many rows were inserted since (an upper bound).
        self._known = 0
        self._pending = 0
        self._keys, self._count = self._keys_and_count(max(capacity, 16))
        fill(self._count, 0)
        self._slots = full(_pow2_at_least(2 * capacity), EMPTY, np.int64)
        self._no_skip = constant(_NO_SKIP)  # read only: one shared empty array
        self._scratch: tuple[Any, ...] = ()  # an insert's claims, flags and their scan
        self._scratch_rows = 0

    def _keys_and_count(self, capacity: int) -> tuple[Any, Any]:
        """Room for ``capacity`` keys, and the (length before the last insert, length) pair,
        in one allocation."""
        keys, count = empty_many(((capacity, self.width), np.int64), (2, np.int64))
        return keys, count

    def __len__(self) -> int:
        """The number of keys (reads the device's count after inserts: a wait)."""
        if self._pending:
            self._known = int(to_host(self._count)[1])
            self._pending = 0
        return self._known

    def upper_bound(self, limit: int | None = None) -> int:
        """At least ``len(self)``, without waiting for the device; exactly ``len(self)`` (a
        wait) when the quick bound would exceed ``limit``, such as a state's capacity."""
        bound = self._known + self._pending
        if limit is not None and bound > limit:
            return len(self)
        return bound

    @property
    def keys(self) -> Any:
        """Stored key tuples, row ``i`` being the key of id ``i`` (a device view)."""
        return span(self._keys, 0, len(self))

    def counted_keys(self) -> tuple[Any, Any]:
        """(the stored keys up to the upper bound, the device's one-item length array), for
        a kernel that reads the length itself and returns it with its own results (then
        :meth:`learn_length`): no wait for the length alone."""
        return span(self._keys, 0, self.upper_bound()), span(self._count, 1, 2)

    def learn_length(self, n: int) -> None:
        """The length, read back from the device since the last insert."""
        self._known = n
        self._pending = 0

    @property
    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._slots.nbytes)

    @property
    def capacity(self) -> int:
        """Keys the index holds before its key table grows."""
        return int(self._keys.shape[0])

    @property
    def slot_count(self) -> int:
        """Slots of its open-addressing table (a power of two, at least twice the keys)."""
        return int(self._slots.shape[0])

    def _reserve(self, extra: int) -> None:
        """Room for ``extra`` more keys, judged by the upper bound (the exact length is read
        only when the bound says the tables may have to grow)."""
        need = self.upper_bound() + extra
        if need <= self._keys.shape[0] and 2 * need <= self._slots.shape[0]:
            return
        n = len(self)
        need = n + extra
        if need > self._keys.shape[0]:
            grown, count = self._keys_and_count(max(need, 2 * self._keys.shape[0]))
            if n:
                copy(span(grown, 0, n), span(self._keys, 0, n))
            copy(count, self._count)
            self._keys, self._count = grown, count
        if 2 * need > self._slots.shape[0]:
            self._slots = full(_pow2_at_least(4 * need), EMPTY, np.int64)
            if n:
                blocks, threads = launch(n)
                kernel("hash.reinsert")[blocks, threads](self._slots, self._keys, n)

    def _batch(self, keys: Any) -> Any:
        keys = as_device(keys, np.int64)
        if keys.ndim == 1:
            keys = keys.reshape(keys.shape[0], 1)
        if keys.shape[1] != self.width:
            raise ValueError(f"keys have width {keys.shape[1]}, index has {self.width}")
        return keys

    def insert(self, keys: Any, skip: Any = None) -> Any:
        """Device int64 ids of ``keys``, adding the ones not seen yet (see module docstring)."""
        batch = self._batch(keys)
        n = batch.shape[0]
        self._reserve(n)
        out = empty(n, np.int64)
        if n == 0:
            return out
        claim, claimed, number, added = self._insert_scratch(n)
        skip = self._no_skip if skip is None else as_device(skip, np.int8)
        blocks, threads = launch(n)
        kernel("hash.claim")[blocks, threads](
            self._slots, self._keys, batch, skip, claimed, claim, out, self._count
        )
        device_flag_offsets(claimed, into=(number, added))
        kernel("hash.resolve")[blocks, threads](
            self._slots, self._keys, batch, claim, number, added, self._count, out
        )
        self._pending += n
        return out

    def _insert_scratch(self, n: int) -> tuple[Any, Any, Any, Any]:
        """(claimed slots, claim flags, their scan, the count it adds) for an insert of
        ``n`` rows, kept from insert to insert and grown as needed.

        Why: an allocation costs the host 17-29 µs and a deferred free that waits for the
        device, and an engine batch makes several inserts. Reuse is safe because every
        kernel runs on the default stream in launch order: the next insert's kernels
        write these arrays only after this insert's kernels have read them.
        """
        if n > self._scratch_rows:
            rows = max(n, 2 * self._scratch_rows)
            self._scratch = tuple(empty_many((rows, np.int64), (rows, np.uint8),
                                             (rows, np.int64), (1, np.int64)))  # fmt: skip
            self._scratch_rows = rows
        claim, claimed, number, added = self._scratch
        return span(claim, 0, n), span(claimed, 0, n), span(number, 0, n), added

    def find(self, keys: Any) -> Any:
        """Device int64 ids of ``keys``, ``-1`` where a key is absent."""
        batch = self._batch(keys)
        out = empty(batch.shape[0], np.int64)
        if batch.shape[0]:
            blocks, threads = launch(batch.shape[0])
            kernel("hash.lookup")[blocks, threads](self._slots, self._keys, batch, out)
        return out


__all__ = ["EMPTY", "DeviceHashIndex", "hash_seed", "hash_step"]
