"""Adaptive key-to-worker assignment: consistent hashing with bounded loads + hot-key splitting.

Keys live on a hash ring (``vnodes`` points per worker), which alone keeps moves
to about 1/n of the keys when a worker joins or leaves. Measured per-key loads
then drive two corrections, both recorded as exceptions to the ring so that
everything else stays put:

* hot keys (load above ``hot_fraction`` of an average worker's load) are split
  over several workers (partial key grouping: each replica takes an equal share
  of the events, and the caller merges the partial aggregates). The engine's window
  shards do not split (``hot_fraction=inf``): a key's live window state must be in
  one shard, and they move it whole (``gpu_engine.windows.sharded``);
* when Jain's fairness index drops below ``threshold`` or a worker exceeds
  ``(1 + epsilon)`` × the average, keys are moved from the most to the least
  loaded worker, each time the key whose load is closest to half their gap,
  which equalises the pair in as few moves as possible.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

U64 = NDArray[np.uint64]
_MASK = (1 << 64) - 1


def _splitmix64(x: U64) -> U64:
    """A fast, well-mixed 64-bit hash (SplitMix64 finaliser); wraps modulo 2**64."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def key_hash(keys: ArrayLike | Sequence[object]) -> U64:
    """64-bit hashes, one per key: integers by splitmix64 (vectorised for integer arrays),
    any other key (a string, a tuple of a composite key) by BLAKE2b of its type and
    ``repr``. So a key's hash does not depend on the keys beside it, ``1`` and ``"1"``
    are two keys, and a tuple is one key, not a row of several."""
    if isinstance(keys, np.ndarray) and keys.dtype.kind in ("i", "u"):
        return _splitmix64(keys.astype(np.int64).view(np.uint64))
    items = keys.ravel().tolist() if isinstance(keys, np.ndarray) else list(keys)  # type: ignore[arg-type]
    out = np.empty(len(items), dtype=np.uint64)
    for i, key in enumerate(items):
        if isinstance(key, np.generic):
            key = key.item()
        if isinstance(key, int) and not isinstance(key, bool) and -(1 << 63) <= key <= _MASK:
            out[i] = _splitmix64(np.array([key & _MASK], dtype=np.uint64))[0]
        else:
            text = f"{type(key).__qualname__}:{key!r}".encode()
            out[i] = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")
    return out


def jain_index(loads: ArrayLike) -> float:
    """Jain's fairness index (Σx)² / (n·Σx²): 1 when equal, 1/n when one worker has all."""
    x = np.asarray(loads, dtype=np.float64)
    sq = float(x @ x)
    return 1.0 if sq == 0 else float(x.sum() ** 2 / (x.size * sq))


class KeyBalancer:
    """Assign keys to workers; adapt to measured per-key load moving as few keys as possible."""

    def __init__(
        self,
        workers: int,
        vnodes: int = 160,
        epsilon: float = 0.1,
        threshold: float = 0.95,
        hot_fraction: float = 0.5,
        smoothing: float = 1.0,
        seed: int = 0,
    ) -> None:
        if workers < 1:
            raise ValueError("need at least one worker")
        if not 0 < smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")
        self.vnodes, self.epsilon, self.threshold = vnodes, epsilon, threshold
        self.hot_fraction, self.smoothing, self._seed = hot_fraction, smoothing, seed
        self._workers: list[int] = []
        self._next_id = 0
        self._ring_hash = np.empty(0, dtype=np.uint64)
        self._ring_owner = np.empty(0, dtype=np.int64)
        self._key_h = np.empty(0, dtype=np.uint64)  # sorted hashes of observed keys
        self._key_load = np.empty(0, dtype=np.float64)
        self._override: dict[int, int] = {}  # key hash -> worker, where not the ring's choice
        self._split: dict[int, list[int]] = {}  # hot key hash -> replica workers
        self._rr = 0
        self.kept = 0  # keys held after the last keep_only
        for _ in range(workers):
            self._add_ring(self._new_id())

    # ----------------------------------------------------------------- ring
    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _add_ring(self, w: int) -> None:
        pts = _splitmix64(
            np.uint64(self._seed) * np.uint64(1 << 40)
            + np.uint64(w) * np.uint64(1 << 20)
            + np.arange(self.vnodes, dtype=np.uint64)
        )
        h = np.concatenate([self._ring_hash, pts])
        o = np.concatenate([self._ring_owner, np.full(self.vnodes, w, dtype=np.int64)])
        order = np.argsort(h, kind="stable")
        self._ring_hash, self._ring_owner = h[order], o[order]
        self._workers.append(w)

    def _home(self, h: U64) -> NDArray[np.int64]:
        """Ring owner: the first virtual node clockwise from each hash."""
        idx = np.searchsorted(self._ring_hash, h, side="left") % self._ring_hash.size
        return self._ring_owner[idx]

    @property
    def workers(self) -> list[int]:
        """Live worker ids."""
        return list(self._workers)

    # ----------------------------------------------------------- placement
    def _place_hashes(self, h: U64) -> NDArray[np.int64]:
        out = self._home(h)
        if self._override:
            oh = np.fromiter(self._override.keys(), dtype=np.uint64, count=len(self._override))
            ow = np.fromiter(self._override.values(), dtype=np.int64, count=len(self._override))
            order = np.argsort(oh)
            oh, ow = oh[order], ow[order]
            pos = np.clip(np.searchsorted(oh, h), 0, oh.size - 1)
            hit = oh[pos] == h
            out = np.where(hit, ow[pos], out)
        return out

    def placement(self, keys: ArrayLike | Sequence[object]) -> NDArray[np.int64]:
        """Primary worker of each key (the first replica for a split key)."""
        h = key_hash(keys)
        out = self._place_hashes(h)
        for kh, reps in self._split.items():
            out[h == np.uint64(kh)] = reps[0]
        return out

    def assign(self, keys: ArrayLike | Sequence[object]) -> NDArray[np.int64]:
        """Worker for each event's key; events of a split key rotate over its replicas."""
        h = key_hash(keys)
        out = self._place_hashes(h)
        for kh, reps in self._split.items():
            hit = np.flatnonzero(h == np.uint64(kh))
            if hit.size:
                rot = (np.arange(hit.size) + self._rr) % len(reps)
                out[hit] = np.asarray(reps, dtype=np.int64)[rot]
                self._rr += hit.size
        return out

    def split_keys(self) -> dict[int, list[int]]:
        """Hash of each split hot key -> its replica workers (their partials need merging)."""
        return {k: list(v) for k, v in self._split.items()}

    # ----------------------------------------------------------- measuring
    def observe(self, key_loads: Mapping[object, float] | tuple[ArrayLike, ArrayLike]) -> None:
        """Record measured load per key (events/s or any consistent unit).

        Mapping ``{key: load}`` or a pair ``(keys, loads)``. With ``smoothing`` < 1 the
        stored load is an exponential moving average; keys not reported keep theirs.
        """
        if isinstance(key_loads, Mapping):
            h = key_hash(list(key_loads.keys())).ravel()
            loads = np.fromiter(key_loads.values(), dtype=np.float64)
        else:
            h = key_hash(key_loads[0]).ravel()
            loads = np.asarray(key_loads[1], dtype=np.float64)
        if h.size != loads.size:
            raise ValueError("keys and loads differ in length")
        if np.any(loads < 0) or not np.all(np.isfinite(loads)):
            raise ValueError("loads must be finite and non-negative")
        h, inv = np.unique(h, return_inverse=True)
        loads = np.bincount(inv, weights=loads, minlength=h.size).astype(np.float64)
        allh = np.union1d(self._key_h, h)
        merged = np.zeros(allh.size)
        merged[np.searchsorted(allh, self._key_h)] = self._key_load
        pos = np.searchsorted(allh, h)
        merged[pos] = (1 - self.smoothing) * merged[pos] + self.smoothing * loads
        self._key_h, self._key_load = allh, merged

    @property
    def n_keys(self) -> int:
        """Keys whose load is held."""
        return int(self._key_h.size)

    def keep_only(self, keys: ArrayLike | Sequence[object]) -> None:
        """Forget the load, override and split of every key not in ``keys`` (the keys some
        state still holds). On a stream whose keys churn they would grow for ever, and
        the stale loads of keys gone would steer the rebalancing."""
        live = np.unique(key_hash(keys).ravel())
        held = np.isin(self._key_h, live)
        self._key_h, self._key_load = self._key_h[held], self._key_load[held]
        kept = set(live.tolist())
        self._override = {h: w for h, w in self._override.items() if h in kept}
        self._split = {h: r for h, r in self._split.items() if h in kept}
        self.kept = self.n_keys

    def _worker_index(self) -> dict[int, int]:
        return {w: i for i, w in enumerate(self._workers)}

    def worker_loads(self) -> NDArray[np.float64]:
        """Estimated load per live worker (order of ``workers``) from the observed key loads."""
        idx = self._worker_index()
        place = self._place_hashes(self._key_h)
        out = np.zeros(len(self._workers))
        np.add.at(out, np.array([idx[w] for w in place.tolist()], dtype=np.int64), self._key_load)
        for kh, reps in self._split.items():
            i = int(np.searchsorted(self._key_h, np.uint64(kh)))
            if i < self._key_h.size and self._key_h[i] == np.uint64(kh):
                load = self._key_load[i]
                out[idx[int(place[i])]] -= load
                for r in reps:
                    out[idx[r]] += load / len(reps)
        return out

    def fairness(self) -> float:
        return jain_index(self.worker_loads())

    def needs_rebalance(self) -> bool:
        loads = self.worker_loads()
        mean = loads.mean()
        return jain_index(loads) < self.threshold or bool(
            mean > 0 and loads.max() > (1 + self.epsilon) * mean
        )

    def maybe_rebalance(self) -> int:
        """Rebalance only when the fairness threshold (or the load bound) is violated."""
        return self.rebalance() if self.needs_rebalance() else 0

    # ---------------------------------------------------------- rebalancing
    def _set_worker(self, kh: int, w: int) -> None:
        home = int(self._home(np.array([kh], dtype=np.uint64))[0])
        if home == w:
            self._override.pop(kh, None)
        else:
            self._override[kh] = w

    def rebalance(self, max_moves: int | None = None) -> int:
        """Split hot keys, then move keys until every worker is within the load bound and
        the fairness threshold holds (or no single move helps). Returns keys moved."""
        n = len(self._workers)
        total = float(self._key_load.sum())
        if total <= 0 or n == 1:
            return 0
        avg = total / n
        moved = 0
        # hot keys: split across ceil(load / (hot_fraction·avg)) workers
        hot_limit = self.hot_fraction * avg
        for i in np.flatnonzero(self._key_load > hot_limit):
            kh = int(self._key_h[i])
            d = min(n, math.ceil(self._key_load[i] / hot_limit))
            reps = [r for r in self._split.get(kh, []) if r in self._workers]
            if d < 2:
                if kh in self._split:
                    del self._split[kh]
                    moved += 1
                continue
            if len(reps) != d:
                loads = self.worker_loads()
                order = [self._workers[j] for j in np.argsort(loads, kind="stable")]
                reps = (reps + [w for w in order if w not in reps])[:d]
                self._split[kh] = reps
                moved += 1
        for kh in [
            k for k in self._split if k not in set(self._key_h[self._key_load > hot_limit].tolist())
        ]:
            del self._split[kh]
            moved += 1
        loads = self.worker_loads()
        place = self._place_hashes(self._key_h)
        split_mask = np.isin(
            self._key_h, np.fromiter(self._split.keys(), np.uint64, len(self._split))
        )
        cap, floor = (1 + self.epsilon) * avg, (1 - self.epsilon) * avg
        limit = max_moves if max_moves is not None else 10 * n + 100
        for _ in range(limit):
            u, v = int(np.argmax(loads)), int(np.argmin(loads))
            if loads[u] <= cap and loads[v] >= floor and jain_index(loads) >= self.threshold:
                break
            gap = loads[u] - loads[v]
            on_u = np.flatnonzero((place == self._workers[u]) & ~split_mask & (self._key_load > 0))
            cand = on_u[self._key_load[on_u] < gap]
            if cand.size == 0:
                break
            k = int(cand[np.argmin(np.abs(self._key_load[cand] - gap / 2))])
            kh = int(self._key_h[k])
            self._set_worker(kh, self._workers[v])
            place[k] = self._workers[v]
            loads[u] -= self._key_load[k]
            loads[v] += self._key_load[k]
            moved += 1
        return moved

    # ------------------------------------------------------ changing workers
    def add_worker(self) -> int:
        """Add a worker (its ring arcs move to it), rebalance, and return its id."""
        w = self._new_id()
        self._add_ring(w)
        self.rebalance()
        return w

    def remove_worker(self, w: int) -> None:
        """Remove worker ``w``: its keys go to the ring successors, then rebalance."""
        if w not in self._workers:
            raise KeyError(f"no worker {w}")
        if len(self._workers) == 1:
            raise ValueError("cannot remove the last worker")
        keep = self._ring_owner != w
        self._ring_hash, self._ring_owner = self._ring_hash[keep], self._ring_owner[keep]
        self._workers.remove(w)
        for kh in [k for k, v in self._override.items() if v == w]:
            del self._override[kh]
        for kh, reps in list(self._split.items()):
            if w in reps:
                rest = [r for r in reps if r != w]
                if rest:
                    self._split[kh] = rest
                else:
                    del self._split[kh]
        self.rebalance()
