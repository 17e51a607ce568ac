"""A persistent hash index from fixed-width int64 key tuples to dense ids.

Every keyed structure of the engine (pane rows, window groups, sketch buckets,
session rows) is a dense, columnar state table addressed through one of these
indexes, so the aggregation kernels never hash and the state stays mergeable.
Open addressing with linear probing, load factor at most 1/2; growth happens
in Python before a kernel runs, so kernels never allocate.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

_EMPTY = -1
# The hashes' seed (2^64 over the golden ratio, as splitmix64's increment): row hashes of
# the index and value hashes of distinct counts, on the CPU and the device alike.
HASH_SEED = 0x9E3779B97F4A7C15


@njit(inline="always")
def mix64(h):  # pragma: no cover - compiled
    # splitmix64 finaliser: cheap and good avalanche for sequential integer keys.
    h = (h ^ (h >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> uint64(27))) * uint64(0x94D049BB133111EB)
    return h ^ (h >> uint64(31))


@njit(inline="always")
def hash_row(keys, i):  # pragma: no cover - compiled
    h = uint64(HASH_SEED)
    for j in range(keys.shape[1]):
        h = mix64(h ^ uint64(keys[i, j]))
    return h


@njit(inline="always")
def _same(a: np.ndarray, i: int, b: np.ndarray, j: int) -> bool:  # pragma: no cover
    for c in range(a.shape[1]):
        if a[i, c] != b[j, c]:
            return False
    return True


@njit(inline="always")
def find_or_add(slots, stored, n, first, rest, i):  # pragma: no cover - compiled
    """(id, new count) of the key ``(first, *rest[i])``, added as id ``n`` when absent.

    The hash equals :func:`hash_row` of the stored tuple, so kernels that build
    keys on the fly (a pane number and a row of key atoms) share the index.
    """
    mask = uint64(slots.shape[0] - 1)
    h = mix64(uint64(HASH_SEED) ^ uint64(first))
    for c in range(rest.shape[1]):
        h = mix64(h ^ uint64(rest[i, c]))
    pos = h & mask
    while True:
        sid = slots[pos]
        if sid == _EMPTY:
            stored[n, 0] = first
            for c in range(rest.shape[1]):
                stored[n, c + 1] = rest[i, c]
            slots[pos] = n
            return n, n + 1
        if stored[sid, 0] == first:
            same = True
            for c in range(rest.shape[1]):
                if stored[sid, c + 1] != rest[i, c]:
                    same = False
                    break
            if same:
                return sid, n
        pos = (pos + uint64(1)) & mask


@njit(inline="always")
def find_or_add_triple(slots, stored, n, a, b, c):  # pragma: no cover - compiled
    """(id, new count) of the width-3 key ``(a, b, c)``, like :func:`find_or_add`.

    Kernels that make keys per event (sketch entries) call it without building
    a key array first.
    """
    mask = uint64(slots.shape[0] - 1)
    h = mix64(mix64(mix64(uint64(HASH_SEED) ^ uint64(a)) ^ uint64(b)) ^ uint64(c))
    pos = h & mask
    while True:
        sid = slots[pos]
        if sid == _EMPTY:
            stored[n, 0] = a
            stored[n, 1] = b
            stored[n, 2] = c
            slots[pos] = n
            return n, n + 1
        if stored[sid, 0] == a and stored[sid, 2] == c and stored[sid, 1] == b:
            return sid, n
        pos = (pos + uint64(1)) & mask


@njit(nogil=True, cache=True)
def _lookup_or_insert(slots, stored, n, batch, out):  # pragma: no cover - compiled
    rest = batch[:, 1:]
    for i in range(batch.shape[0]):
        out[i], n = find_or_add(slots, stored, n, batch[i, 0], rest, i)
    return n


@njit(nogil=True, cache=True)
def _lookup(slots, stored, batch, out):  # pragma: no cover - compiled
    mask = uint64(slots.shape[0] - 1)
    for i in range(batch.shape[0]):
        pos = hash_row(batch, i) & mask
        out[i] = _EMPTY
        while True:
            sid = slots[pos]
            if sid == _EMPTY:
                break
            if _same(stored, sid, batch, i):
                out[i] = sid
                break
            pos = (pos + uint64(1)) & mask


@njit(nogil=True, cache=True)
def _reinsert(slots, stored, n):  # pragma: no cover - compiled
    mask = uint64(slots.shape[0] - 1)
    for sid in range(n):
        pos = hash_row(stored, sid) & mask
        while slots[pos] != _EMPTY:
            pos = (pos + uint64(1)) & mask
        slots[pos] = sid


def _pow2_at_least(n: int) -> int:
    return 1 << max(4, int(n - 1).bit_length())


class HashIndex:
    """Maps int64 key tuples of a fixed ``width`` to ids ``0..len-1`` in insertion order."""

    def __init__(self, width: int, capacity: int = 1024) -> None:
        self.width = width
        self._n = 0
        self._keys = np.empty((max(capacity, 16), max(width, 1)), dtype=np.int64)
        self._slots = np.full(_pow2_at_least(2 * max(capacity, 16)), _EMPTY, dtype=np.int64)

    def __len__(self) -> int:
        return self._n

    @property
    def keys(self) -> np.ndarray:
        """The stored key tuples, row ``i`` being the key of id ``i`` (a view)."""
        return self._keys[: self._n, : self.width]

    @property
    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._slots.nbytes)

    def reserve(self, extra: int) -> None:
        """Room for ``extra`` more keys, so a kernel may add them without allocating."""
        self._reserve(extra)

    def raw(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(slots, stored keys, count) for kernels that insert with :func:`find_or_add`."""
        return self._slots, self._keys, self._n

    def set_count(self, n: int) -> None:
        """The count after a kernel added keys through :meth:`raw` (after :meth:`reserve`)."""
        self._n = n

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        if need > self._keys.shape[0]:
            grown = np.empty((max(need, 2 * self._keys.shape[0]), self._keys.shape[1]), np.int64)
            grown[: self._n] = self._keys[: self._n]
            self._keys = grown
        if 2 * need > self._slots.shape[0]:
            self._slots = np.full(_pow2_at_least(4 * need), _EMPTY, dtype=np.int64)
            _reinsert(self._slots, self._keys, self._n)

    def _as_batch(self, keys: np.ndarray) -> np.ndarray:
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        if keys.ndim == 1:
            keys = keys.reshape(-1, 1)
        if self.width == 0:
            return np.zeros((keys.shape[0], 1), dtype=np.int64)
        if keys.shape[1] != self.width:
            raise ValueError(f"keys have width {keys.shape[1]}, index has {self.width}")
        return keys

    def insert(self, keys: np.ndarray) -> np.ndarray:
        """Ids of ``keys`` (an ``(n, width)`` int64 array), adding the ones not seen yet."""
        batch = self._as_batch(keys)
        self._reserve(batch.shape[0])
        out = np.empty(batch.shape[0], dtype=np.int64)
        self._n = int(_lookup_or_insert(self._slots, self._keys, self._n, batch, out))
        return out

    def keep_rows(self, keep: np.ndarray, keys: np.ndarray | None = None) -> None:
        """Keep only ids ``keep`` (ascending), renumbered ``0..len(keep)-1``, in place.

        ``keys``, when given, are the new key tuples of the kept ids.
        """
        n = len(keep)
        self._keys[:n] = self._keys[keep] if keys is None else keys
        self._n = n
        self._slots.fill(_EMPTY)
        _reinsert(self._slots, self._keys, n)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Ids of ``keys``, ``-1`` where a key is absent."""
        batch = self._as_batch(keys)
        out = np.empty(batch.shape[0], dtype=np.int64)
        _lookup(self._slots, self._keys, batch, out)
        return out

    @classmethod
    def from_keys(cls, keys: np.ndarray) -> HashIndex:
        """An index over the distinct rows of ``keys`` (ids in first-seen order)."""
        keys = np.asarray(keys, dtype=np.int64)
        width = 1 if keys.ndim == 1 else keys.shape[1]
        index = cls(width, capacity=max(16, keys.shape[0]))
        index.insert(keys)
        return index


def group_ids(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense group ids of the rows of ``keys`` and the distinct key rows, first-seen order."""
    keys = np.asarray(keys, dtype=np.int64)
    if keys.ndim == 1:
        keys = keys.reshape(-1, 1)
    index = HashIndex(keys.shape[1], capacity=max(16, keys.shape[0]))
    ids = index.insert(keys)
    return ids, index.keys.copy()
