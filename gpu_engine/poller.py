"""A background thread that applies an engine's time-based rules on its own.

Why: the batch timeout (``max_delay``) and the idle watermark act only when something
polls the engine. A file run polls after every batch, but an embedder that pushes when
requests arrive may not push again for a long while, and rows would wait in the buffer,
and windows stay open, until it did. Flink's buffer timeout fires by itself; this gives
the push API the same.

The thread holds the engine weakly, so an engine dropped without ``close`` does not live
on through it; it stops when the engine closes, or at the first error, which the
engine's next call raises. Its polls take the engine's lock like any call, so they wait
for a push in progress and a push waits for them.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable


def poll_interval(every_s: object) -> float:
    """``poll_every`` as seconds, or the error that says what it must be."""
    if isinstance(every_s, bool) or not isinstance(every_s, int | float):
        raise TypeError(f"poll_every must be a number of seconds, not {every_s!r}")
    if not (math.isfinite(every_s) and every_s > 0):
        raise ValueError(f"poll_every must be a positive number of seconds, not {every_s!r}")
    return float(every_s)


def call_weakly(
    method: weakref.WeakMethod[Callable[[], bool]],
) -> tuple[bool, BaseException | None]:
    """Call an engine's method held weakly, for a thread of the engine's: (go on, the error
    it raised, to hand to the engine's caller). Not going on once the engine is gone, the
    method says so, or it failed. The engine is held only during the call."""
    bound = method()
    if bound is None:  # the engine is gone
        return False, None
    try:
        return bool(bound()), None
    except BaseException as error:
        return False, error
    finally:
        del bound  # the error's traceback keeps this frame: it must not keep the engine


class EngineThread:
    """A daemon thread of an engine's (the poller, the intake): its start, whether it
    runs, and the failure that ended it (raised by the engine's next call)."""

    def __init__(self, name: str) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the thread to end (told to stop already); not from
        the thread itself."""
        if self._thread is not threading.current_thread() and self._thread.ident is not None:
            self._thread.join(timeout_s)


class BackgroundPoller(EngineThread):
    """Calls ``poll_once`` every ``every_s`` seconds until it returns False or fails."""

    def __init__(self, poll_once: Callable[[], bool], every_s: float) -> None:
        super().__init__("tiktoktoe-poll")
        self.every_s = poll_interval(every_s)
        self._poll_once = weakref.WeakMethod(poll_once)
        self._stopping = threading.Event()

    def _run(self) -> None:
        while not self._stopping.wait(self.every_s):
            go_on, self.error = call_weakly(self._poll_once)
            if not go_on:
                return

    def stop(self) -> None:
        """Ask the thread to stop; it ends at its next wake-up, or at once if it is waiting
        for the engine's lock (the engine is closed by then). Not joined, since the caller
        may hold that lock."""
        self._stopping.set()
