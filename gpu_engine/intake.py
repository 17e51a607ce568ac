"""Pushes queued for a background thread, so that a push never waits for a batch.

Why: a push that fills a batch processes it before returning, and a push made while
another thread (or the poller) processes one waits for the engine's lock. An inference
host that pushes from its request threads would add a batch's processing time (tens to
hundreds of milliseconds) to the unlucky request. With ``Engine(..., background=True)``
a push only queues its rows; this module's thread feeds them to the engine in the order
they were queued, and polls the engine when the queue is empty, like
:class:`gpu_engine.poller.BackgroundPoller`.

The queue is bounded in rows: a push that would take it past ``capacity_rows`` waits for room
(backpressure, as a full buffer in Flink stops its source), unless the queue is empty, so
that a push larger than the bound is still taken. The thread holds the engine weakly; a
failure in it is raised by the engine's next call, and the rows still queued are counted
as such in the summary.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from gpu_engine.poller import EngineThread, call_weakly, poll_interval


@dataclass
class Pushed:
    """One push waiting for the engine: its rows (owned: the caller may reuse its
    buffers), and where and when they came from."""

    table: Any  # a pyarrow Table, or a device frame
    source: str
    first_row: int
    at: float  # the engine's clock when it was queued (set by Intake.put)
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = int(self.table.num_rows)


class Intake(EngineThread):
    """A bounded queue of pushes and the thread that feeds them to an engine.

    ``feed_once`` (the engine's) takes runs of pushes with :meth:`take` and processes
    them, and polls once there are none; it returns False once the engine is closed.
    """

    def __init__(self, feed_once: Callable[[], bool], every_s: float, capacity_rows: int) -> None:
        if (
            isinstance(capacity_rows, bool)
            or not isinstance(capacity_rows, int)
            or capacity_rows < 1
        ):
            raise ValueError(f"max_queued_rows must be a positive integer, not {capacity_rows!r}")
        super().__init__("tiktoktoe-intake")
        self.every_s = poll_interval(every_s)
        self.capacity_rows = capacity_rows
        self.lock = threading.RLock()  # guards everything below, and the engine's
        # snapshot of its counts at rest (see Engine._settle)
        self._room = threading.Condition(self.lock)  # pushes wait here for their turn
        self._work = threading.Condition(self.lock)  # the thread waits here for rows
        self._items: deque[Pushed] = deque()
        self.queued_rows = 0
        self.in_flight_rows = 0  # taken by the engine since its counts at rest were taken
        self._closed = False
        self._tickets = 0  # pushes that asked to queue, and the first not yet served
        self._serving = 0
        self._skipped: set[int] = set()  # asked, then refused before their turn
        self._waiting = 0  # pushes waiting for their turn or for room
        self._feed_once = weakref.WeakMethod(feed_once)

    def put(self, item: Pushed, check: Callable[[], None], clock: Callable[[], float]) -> None:
        """Queue ``item``, waiting while the queue is full, behind the pushes that were
        waiting already (in the order of their calls), and date it by ``clock`` as it is
        queued (as the engine without the queue dates a push once it has the engine's
        lock). ``check`` raises (under the queue's lock) if the engine
        can take no more input: closed, or failed."""
        with self.lock:
            ticket = self._tickets
            self._tickets += 1
            try:
                check()
                while ticket != self._serving or (
                    self.queued_rows and self.queued_rows + item.rows > self.capacity_rows
                ):
                    self._waiting += 1
                    try:
                        self._room.wait()
                    finally:
                        self._waiting -= 1
                    check()
                item.at = clock()
                self._items.append(item)
                self.queued_rows += item.rows
                self._work.notify()
            finally:  # queued, or refused: the next in line may go
                if ticket == self._serving:
                    self._serving += 1
                else:  # refused while waiting its turn (the engine closed, or failed)
                    self._skipped.add(ticket)
                while self._serving in self._skipped:
                    self._skipped.remove(self._serving)
                    self._serving += 1
                if self._waiting:
                    self._room.notify_all()  # the next in line

    def take(
        self, room: float, since: float | None = None, delay: float = math.inf
    ) -> Pushed | None:
        """The oldest push, with the Arrow pushes after it that continue it (same source,
        the next rows, same schema) as one, now in flight (the caller holds the engine's
        lock, so pushes are processed in the order they were queued); None when there is
        none. A push joins the run while the run stays within ``room`` rows (what the
        batch being filled has left) and it came within ``delay`` of ``since`` (when that
        batch's first row came; the run's first push's time if None), before the batch
        is due: so a run is batched as its pushes would be one by one. One push of a row
        each would otherwise cost the engine a batcher call each."""
        with self.lock:
            if not self._items:
                return None
            run = [self._items.popleft()]
            rows = run[0].rows
            since = run[0].at if since is None else since
            while self._items and _joins(run[-1], self._items[0], room - rows, since, delay):
                run.append(self._items.popleft())
                rows += run[-1].rows
            self.queued_rows -= rows
            self.in_flight_rows += rows
            if self._waiting:
                self._room.notify_all()  # room for a waiting push
        if len(run) == 1:
            return run[0]
        first = run[0]
        table = pa.concat_tables([item.table for item in run])  # no copy: cannot fail
        # One chunk a column (a run of a thousand one-row pushes validates slowly), where
        # Arrow can: not for dictionary columns whose chunks have their own dictionaries.
        with suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            table = table.combine_chunks()
        return Pushed(table, first.source, first.first_row, first.at)

    def give_back(self, item: Pushed) -> None:
        """A push taken that the engine failed before it could process: queued again, at
        the front, so the run's summary counts it as queued rather than losing it."""
        with self.lock:
            self._items.appendleft(item)
            self.queued_rows += item.rows
            self.in_flight_rows -= item.rows

    def close(self) -> None:
        """No more pushes: waiting and later ones fail; the thread ends at its next turn
        (not joined: the caller may hold the engine's lock, which the thread may be
        waiting for)."""
        with self.lock:
            self._closed = True
            self._wake_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def set_every(self, every_s: float) -> None:
        """Poll every ``every_s`` from now: the thread is woken, so a wait begun with the
        old interval (half a long ``max_delay``) does not hold buffered rows back."""
        with self.lock:
            self.every_s = poll_interval(every_s)
            self._work.notify_all()

    def dated_now(self, clock: Callable[[], float]) -> float | None:
        """``clock()`` if no push is queued, else None: a push queued later is dated no
        earlier, so a poll at that time cannot cut a batch before a push that came first."""
        with self.lock:
            return None if self._items else clock()

    def _wake_all(self) -> None:
        self._room.notify_all()
        self._work.notify_all()

    def _run(self) -> None:
        while True:
            with self.lock:
                if not self._items and not self._closed:
                    self._work.wait(self.every_s)
                if self._closed:
                    return
            go_on, error = call_weakly(self._feed_once)
            if error is not None:
                with self.lock:
                    self.error = error
                    self._closed = True  # nothing more is fed: pushes now fail
                    self._wake_all()
            if not go_on:
                return


def _joins(last: Pushed, item: Pushed, room: float, since: float, delay: float) -> bool:
    """Whether ``item`` takes up where ``last`` left off, as Arrow of the same schema, with
    ``room`` for its rows, and before the batch that began at ``since`` is due (the test
    of ``MicroBatcher.due``, written the same way so that rounding agrees)."""
    return (
        item.rows <= room
        and not item.at - since >= delay
        and isinstance(item.table, pa.Table)
        and isinstance(last.table, pa.Table)
        and item.source == last.source
        and item.first_row == last.first_row + last.rows
        and item.table.schema.equals(last.table.schema)
    )
