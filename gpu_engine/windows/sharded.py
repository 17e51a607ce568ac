"""Key-partitioned windows: one operator per worker, run in parallel threads.

Each batch is split by a hash of the key columns, so every key's state lives
in exactly one shard and shards never share data. The kernels release the
GIL (``nogil=True``), so shards aggregate and emit on separate cores. All
shards keep one watermark (the largest event time any of them saw), so they
close the same windows at the same time and agree on which events are late.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import numpy as np
import pyarrow as pa

from gpu_engine.optimizer.balance import KeyBalancer
from gpu_engine.windows.keys import outgrown
from gpu_engine.windows.operator import PaneWindows, WindowOperator
from kernels.partition import split_by_shard
from kernels.sketches import hash_int64

# Batches of fewer rows run their shards one after the other: on the pool, a 2-worker
# engine took 3.7 ms a 100-row batch of the full short-video config (one worker: 1.7 ms),
# and about as long as one after the other at 2,000 rows (benchmarks/RESULTS.md).
PARALLEL_ROWS = 2048
_T = TypeVar("_T")


def atom_hashes(atoms: np.ndarray, nullable: list[bool]) -> np.ndarray:
    """A 64-bit hash of each row's key from its atoms (a null key hashes like 0).

    Decides a key's worker; the is-null atoms are left out, so a key's hash does
    not depend on whether its column is nullable.
    """
    combined = np.zeros(len(atoms), dtype=np.uint64)
    col = 0
    for is_nullable in nullable:
        hashes = np.empty(len(atoms), dtype=np.int64)
        hash_int64(np.ascontiguousarray(atoms[:, col]), hashes)
        combined = combined * np.uint64(31) + hashes.view(np.uint64)
        col += 2 if is_nullable else 1
    return combined


class ShardedWindows:
    """The operator interface over ``len(shards)`` key-partitioned operators."""

    def __init__(
        self, shards: list[WindowOperator], pool: ThreadPoolExecutor, adaptive: bool = False
    ) -> None:
        for op in shards[1:]:
            # One encoder: a batch is encoded once, and string codes mean the same in every shard.
            op.encoder = shards[0].encoder
        self.shards = shards
        self.pool = pool
        self.spec = shards[0].spec
        self.windows_emitted = 0
        self.keys_moved = 0
        # Adaptive placement needs pane state it can move between shards on the host
        # (string keys are portable: all shards share one encoder).
        self.balancer: KeyBalancer | None = None
        portable = all(isinstance(op, PaneWindows) for op in shards)
        if adaptive and portable and shards[0].backend.host_state:
            # hot keys are never split: each key's state must live in exactly one shard
            self.balancer = KeyBalancer(len(shards), hot_fraction=math.inf)
        self.last_shard_rows: list[int] = [0] * len(shards)  # rows each shard took last batch
        encoder = shards[0].encoder
        self._nullable = [encoder.nullable[k] for k in self.spec.keys]

    @property
    def watermark(self) -> int:
        return self.shards[0].watermark

    @property
    def late_events(self) -> int:
        return sum(s.late_events for s in self.shards)

    @property
    def state_bytes(self) -> int:
        return sum(s.state_bytes for s in self.shards)

    def process(self, table: pa.Table, times: np.ndarray, now: float) -> np.ndarray:
        batch = self.shards[0].prepare(table, times)
        hashes = atom_hashes(batch.host_atoms(), self._nullable)
        if self.balancer is None:
            shard = (hashes % np.uint64(len(self.shards))).astype(np.int64)
        else:
            shard = self.balancer.placement(hashes.view(np.int64))
            unique, counts = np.unique(hashes, return_counts=True)
            self.balancer.observe((unique.view(np.int64), counts.astype(np.float64)))
        parts = split_by_shard(shard, len(self.shards))
        self.last_shard_rows = [len(events) for events in parts]
        shard_late = self._each(
            [partial(op.process_prepared, batch, events, now)
             for op, events in zip(self.shards, parts, strict=True)],
            parallel=len(times) >= PARALLEL_ROWS,
        )  # fmt: skip
        late = np.zeros(len(times), dtype=bool)
        for events, shard in zip(parts, shard_late, strict=True):
            late[events] = shard
        self._sync(now)
        return late

    def busy_until(self, now: float) -> None:
        for op in self.shards:
            op.busy_until(now)

    def poll(self, now: float) -> None:
        for op in self.shards:
            op.poll(now)
        self._sync(None)

    def _sync(self, now: float | None) -> None:
        """One watermark for all: the largest any shard reached."""
        max_time = max(op.max_event_time for op in self.shards)
        watermark = max(op.watermark for op in self.shards)
        for op in self.shards:
            op.max_event_time = max_time
            op.watermark = watermark
            if now is not None:
                op.last_input_at = now

    def emit_ready(self) -> pa.Table | None:
        parallel = sum(self.last_shard_rows) >= PARALLEL_ROWS  # as the batch before
        table = self._gather(self._each([op.emit_ready for op in self.shards], parallel))
        if self.balancer is not None and self.balancer.maybe_rebalance():
            self._migrate()
        return table

    def forget_dead_keys(self) -> None:
        """The shards' shared encoder forgets strings, and the balancer keys, that no shard
        holds state for, each once it has doubled since it last did (one snapshot of the
        shards' keys serves both)."""
        encoder, balancer = self.shards[0].encoder, self.balancer
        strings_due = encoder.crowded()
        balancer_due = balancer is not None and outgrown(balancer.n_keys, balancer.kept)
        if not (strings_due or balancer_due):
            return
        live = [op.key_atoms() for op in self.shards]
        if strings_due:
            encoder.forget_unused(live)
        if balancer is not None and balancer_due:
            balancer.keep_only(
                np.concatenate([atom_hashes(a, self._nullable) for a in live]).view(np.int64)
            )

    def _migrate(self) -> None:
        """Move the live pane rows of keys whose placement changed to their new shard."""
        assert self.balancer is not None
        for s, op in enumerate(self.shards):
            assert isinstance(op, PaneWindows)
            keys = op.panes.keys
            if len(keys) == 0:
                continue
            target = self.balancer.placement(
                atom_hashes(keys[:, 1:], self._nullable).view(np.int64)
            )
            leaving = target != s
            if not leaving.any():
                continue
            for d in np.unique(target[leaving]):
                rows = np.flatnonzero(target == d)
                dest = self.shards[int(d)]
                assert isinstance(dest, PaneWindows)
                dest.panes.merge_from(op.panes, rows, keys[rows])
            self.keys_moved += len(np.unique(keys[leaving, 1:], axis=0))
            stay = np.flatnonzero(~leaving)
            op.panes = op.panes.regroup(stay, keys[stay], keys.shape[1])

    def close(self) -> pa.Table | None:
        return self._gather(self._each([op.close for op in self.shards], parallel=True))

    def _each(self, calls: list[Callable[[], _T]], parallel: bool) -> list[_T]:
        """One call per shard, their results in shard order: on the pool's threads, or one
        after the other on this one (for a batch under ``PARALLEL_ROWS``, where handing
        work to a thread and back costs more than the work)."""
        if not parallel:
            return [call() for call in calls]
        futures = [self.pool.submit(call) for call in calls]
        return [future.result() for future in futures]

    def _gather(self, results: list[pa.Table | None]) -> pa.Table | None:
        tables = [t for t in results if t is not None]
        if not tables:
            return None
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if len(tables) > 1:
            # Each shard kept its own top k; the top k of their union is the global one.
            table = self.shards[0].apply_top_k(table)
        self.windows_emitted += table.num_rows
        return table
