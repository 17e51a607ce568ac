"""The engine: a thin composition of batcher, validator, window operators and sinks.

Usage::

    engine = Engine(config, sinks=[MemorySink()])
    engine.push(frame)      # pandas / Arrow / dict of arrays / cuDF
    engine.poll()           # let time-based rules act (batch timeout, idle watermark)
    summary = engine.close()

or ``Engine(config, poll_every=0.01)`` to have a background thread poll. The engine is
safe to push to from several threads: its calls take one lock, so batches are processed
one at a time, in the order their rows were pushed.

Every event that enters is counted exactly once as valid (windowed),
quarantined, late (for every window) or dead-lettered.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from functools import partial, wraps
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gpu_engine.accounting import BatchListener, BatchReport, BatchTimings, Counts
from gpu_engine.backend import select_backend
from gpu_engine.batching import Batch, MicroBatcher, own_buffers
from gpu_engine.config.loading import check_config
from gpu_engine.config.models import MAX_BATCH_ROWS, EngineConfig, FieldSpec, WindowSpec
from gpu_engine.dead_letters import dead_letter_table
from gpu_engine.errors import EngineError
from gpu_engine.intake import Intake, Pushed
from gpu_engine.io.frames import to_arrow
from gpu_engine.io.sinks import MemorySink, Sink
from gpu_engine.poller import BackgroundPoller
from gpu_engine.validation import ValidatedBatch, Validator, arrow_type
from gpu_engine.windows.operator import NEVER, WindowOperator, make_operator
from gpu_engine.windows.sharded import ShardedWindows
from kernels.compile_time import compile_seconds

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _serialised(
    method: Callable[Concatenate[Engine, _P], _R],
) -> Callable[Concatenate[Engine, _P], _R]:
    """Run an engine call under the engine's lock: one call at a time, from any thread.

    A call made from a sink or listener while the engine is in a call of its own (on the
    same thread: the lock is re-entrant) is refused: it would run in the middle of a
    batch, which is neither counted nor fully written yet. A sink or listener that
    raised during the call has its error raised once the call is done (see
    :meth:`Engine._hand_on`)."""

    @wraps(method)
    def locked(self: Engine, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            if self._in_call:
                self._refuse_reentry(method.__name__.lstrip("_").removesuffix("_now"))
            self._in_call, self._call_thread = True, threading.get_ident()
            try:
                result = method(self, *args, **kwargs)
            except BaseException as error:
                if self._failed_output is not None:  # its own error: the sink's goes with it
                    error.add_note(f"a sink or listener also raised: {self._failed_output!r}")
                    self._failed_output = None
                if self._broken:  # a batch half done: the run cannot go on
                    self._broken = False
                    self._abort(error)  # its summary counts what the call put back
                raise
            finally:
                self._in_call, self._call_thread = False, None
                self._settle()
            self._raise_handed_on_failure()
            return result

    return locked


THREAD_JOIN_S = 5.0  # how long close/abort wait for the engine's background thread to end
ROWS_PER_WORKER = 16_384


def _flush(sink: Sink) -> None:
    """Wait for a sink that writes in the background (its optional ``flush``)."""
    flush = getattr(sink, "flush", None)
    if flush is not None:
        flush()


def _as_aggregated(fields: dict[str, FieldSpec], mode: str) -> dict[str, FieldSpec]:
    """The fields as the windows see their values: with validation ``off`` a float
    field's NaN passes whatever its ``allow_nan`` says (min and max must skip it)."""
    if mode != "off":
        return fields
    floats = ("float32", "float64")
    return {
        name: spec.model_copy(update={"allow_nan": True}) if spec.type in floats else spec
        for name, spec in fields.items()
    }


def default_workers(batch_rows: int, cores: int | None = None) -> int:
    """One worker per ``ROWS_PER_WORKER`` rows of a batch, at most one per core.

    Each shard costs some GIL-held Python per batch, so shards of a few thousand
    rows lose more to that than they gain: on a 16-core machine 16 workers took
    3.4x as long as 4 on 64k-row batches (benchmarks/RESULTS.md, 2026-11-27).
    """
    cores = cores or os.cpu_count() or 1
    return max(1, min(cores, batch_rows // ROWS_PER_WORKER))


class Engine:
    """Validated, keyed event-time windows over a stream of pushed batches."""

    def __init__(
        self,
        config: EngineConfig,
        sinks: Iterable[Sink] | None = None,
        clock: Callable[[], float] = time.monotonic,
        listeners: Iterable[BatchListener] = (),
        metrics_dir: str | Path | None = None,
        poll_every: float | None = None,
        background: bool = False,
        max_queued_rows: int | None = None,
    ) -> None:
        """``poll_every``: seconds between polls by a background thread (see
        :mod:`gpu_engine.poller`); None leaves polling to the caller.

        ``background``: a push only queues its rows, and a thread of the engine's
        processes them and polls (every ``poll_every`` seconds, by default half of
        ``max_delay``); see :mod:`gpu_engine.intake`. ``max_queued_rows`` bounds the
        queue (by default four batches): a push that would pass it waits for room.
        """
        check_config(config)
        self._lock = threading.RLock()
        self._in_call = False  # inside a serialised call (see _serialised)
        self._failed_output: Exception | None = None  # a sink's or listener's (see _hand_on)
        self._in_output = False  # in a sink or listener (see _counts_now)
        self._stranded_rows = 0  # of batches a failure left unprocessed (see _process_all)
        self._broken = False  # a batch failed half done: the call ends the run
        self._call_thread: int | None = None  # the thread in that call
        self._poller: BackgroundPoller | None = None
        self._intake: Intake | None = None
        self._poll_follows_delay = poll_every is None  # see set_batching
        if background:
            every = max(config.batching.max_delay, 2) / 2000 if poll_every is None else poll_every
            queued = 4 * config.batching.max_rows if max_queued_rows is None else max_queued_rows
            self._intake = Intake(self._feed_once, every, queued)
        elif max_queued_rows is not None:
            raise ValueError("max_queued_rows bounds the queue of Engine(background=True)")
        elif poll_every is not None:
            self._poller = BackgroundPoller(self._poll_once, poll_every)
        self.config = config
        self.backend = select_backend(config.backend, config.device_memory_limit)
        self.sinks: list[Sink] = list(sinks) if sinks is not None else [MemorySink()]
        self.clock = clock
        self.listeners = list(listeners)
        self.metrics_dir = Path(metrics_dir) if metrics_dir is not None else None
        schema = config.event_schema
        self.validator = Validator(schema, config.validation, self.backend)
        self.batcher = MicroBatcher(config.batching.max_rows, config.batching.max_delay)
        time_type = arrow_type(schema.fields[schema.time])  # int64, or ms in the field's tz
        key_types = {name: arrow_type(spec) for name, spec in schema.fields.items()}
        # Device state: one worker by default, as the device is one (on an H100, two CUDA
        # workers were no faster than one; benchmarks/RESULTS.md, 2026-11-27).
        self.workers = config.workers or (
            default_workers(config.batching.max_rows) if self.backend.host_state else 1
        )
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tiktoktoe-worker")

        fields = _as_aggregated(schema.fields, config.validation.mode)

        def build(spec: WindowSpec) -> WindowOperator | ShardedWindows:
            if self.workers == 1 or not spec.keys:
                return make_operator(spec, fields, key_types, time_type, self.backend)
            shards = [
                make_operator(spec, fields, key_types, time_type, self.backend)
                for _ in range(self.workers)
            ]
            return ShardedWindows(shards, self._pool, config.key_balancing == "adaptive")

        self.operators = [build(spec) for spec in config.windows]
        # Host batches to the device (None: they stay host tables; see cuda_host_frames).
        self._stage = self.backend.frame_stager(schema.fields, config.cuda_host_frames)
        self.counts = Counts()
        # The counts, buffered rows and queued rows (those in flight included) as the last
        # call left them (see _counts_now): one tuple, read without a lock.
        self._at_rest: tuple[Counts, int, int] = (Counts(), 0, 0)
        self._pushed: dict[str, int] = {}
        self._timings = BatchTimings()
        self._started = clock()
        self._compile_s_before = compile_seconds()  # the summary's compile_s, in elapsed_s
        self._busy_s = 0.0
        self._closed = False
        self.summary_data: dict[str, Any] | None = None
        self.summary_extra: dict[str, Any] = {}  # added to the summary by embedders
        self._polled_at = clock()
        if self._poller is not None:
            self._poller.start()
        if self._intake is not None:
            self._intake.start()

    # -- input --------------------------------------------------------------------------
    def push(
        self, frame: Any, source: str | os.PathLike[str] = "push", first_row: int | None = None
    ) -> None:
        """Add rows; full batches are processed before this returns (with
        ``background=True``, the rows are queued and this returns at once).

        Device columns on the CUDA backend (a cuDF DataFrame, a dict of CuPy, Numba or
        torch CUDA arrays) stay on the device, where they are batched like host rows
        (a batch's rows copied there, device to device). Rows kept for later (waiting for
        the next push, or queued) are copied, on the host or the device, so the caller
        may reuse its buffers once this returns.

        ``source`` names where the rows come from (a file, a stream), for the row numbers
        of quarantined and dead-lettered rows: ``first_row``, else after that source's
        last push. The engine keeps one number per source for the run, so use a few
        names, not one per request. Sources share each window's watermark (the largest
        event time from any of them): one behind another's progress has its events late.
        """
        if type(source) is not str or not source.isascii():  # the usual name, as it is
            source = _source_name(source)
        if self._intake is None:
            self._push_now(frame, source, first_row)
            return
        if self._in_call and self._call_thread == threading.get_ident():
            self._refuse_reentry("push")  # a full queue would wait for this very thread
        table = own_buffers(self._table_of(frame))
        intake = self._intake
        with intake.lock:  # rows are numbered in the order their pushes are queued
            if first_row is None:
                first_row = self._pushed.get(source, 0)
            self._pushed[source] = first_row + table.num_rows
            intake.put(Pushed(table, source, first_row, at=0.0), self._check_intake, self.clock)
            counts, buffered, pending = self._at_rest
            self._at_rest = (counts, buffered, pending + table.num_rows)

    def _table_of(self, frame: Any) -> Any:
        device = self.backend.device_frame(frame)
        return device if device is not None else to_arrow(frame)

    @_serialised
    def _push_now(self, frame: Any, source: str, first_row: int | None) -> None:
        self._check_open()
        table = self._table_of(frame)
        if first_row is None:
            first_row = self._pushed.get(source, 0)
        self._pushed[source] = first_row + table.num_rows
        self._add(table, source, first_row, self.clock())

    def _add(self, table: Any, source: str, first_row: int, at: float) -> None:
        self.counts.received += table.num_rows
        self._process_all(self.batcher.add(table, source, first_row, at))

    @_serialised
    def _feed_once(self) -> bool:
        """The intake thread's turn: process the oldest queued pushes (about a batch of
        rows), then, once the queue is empty, poll if there were none or ``poll_every``
        has passed; False once the engine is closed."""
        if self._closed:
            return False
        assert self._intake is not None
        fed = self._feed_all(self.batcher.max_rows)
        now = self._intake.dated_now(self.clock)  # None while pushes are still queued
        if now is not None and (not fed or now - self._polled_at >= self._intake.every_s):
            self._poll(now)
        return True

    def _feed_all(self, budget_rows: float = math.inf) -> int:
        """Process queued pushes in order, in this thread, until about ``budget_rows`` rows
        (by default all: flush and close); the rows processed.

        Each push is batched as if the engine had been polled when it came: the batch
        waiting for it is cut first if its ``max_delay`` had passed by then. So the
        batches do not depend on when this thread gets to the queue."""
        fed = 0
        batcher = self.batcher
        while fed < budget_rows and self._intake is not None:
            room = batcher.max_rows - batcher.buffered_rows
            item = self._intake.take(room, batcher.waiting_since, batcher.max_delay_s)
            if item is None:
                break
            try:
                self._process_all(batcher.due(item.at))
            except BaseException:  # the run ends: the push is still queued, not lost
                self._intake.give_back(item)
                raise
            self._add(item.table, item.source, item.first_row, item.at)
            fed += item.rows
        return fed

    @_serialised
    def poll(self, now: float | None = None) -> None:
        """Apply the time-based rules: cut a batch after ``max_delay``, advance idle watermarks."""
        self._check_open()
        self._poll(self.clock() if now is None else now)

    def _poll(self, now: float) -> None:
        self._polled_at = now
        self._process_all(self.batcher.due(now))
        if not self.waiting_rows:  # rows waiting for a batch are input: not idle
            for operator in self.operators:
                operator.poll(now)
        self._emit_ready()

    def set_batching(
        self, *, max_rows: int | None = None, max_delay_s: float | None = None
    ) -> None:
        """Change the micro-batch size and timeout of the running engine (an optimizer's
        or a monitor action's allocation), from any thread, without waiting for a batch in
        progress: the batcher reads them at its next push or poll. Rows already buffered
        past a smaller ``max_rows`` are cut into batches of it then, without waiting for
        ``max_delay``. With ``background=True`` and no ``poll_every``, the thread's polls
        follow the new ``max_delay`` (half of it)."""
        if max_rows is not None and (
            isinstance(max_rows, bool)
            or not isinstance(max_rows, int)
            or not 1 <= max_rows <= MAX_BATCH_ROWS
        ):
            raise ValueError(
                f"max_rows must be an integer in [1, {MAX_BATCH_ROWS}], not {max_rows!r}"
            )
        if max_delay_s is not None and (
            isinstance(max_delay_s, bool)
            or not isinstance(max_delay_s, int | float)
            or not (math.isfinite(max_delay_s) and max_delay_s > 0)
        ):
            raise ValueError(
                f"max_delay_s must be a positive number of seconds, not {max_delay_s!r}"
            )
        if max_rows is not None:  # a closed engine's batcher is never read again
            self.batcher.max_rows = max_rows
        if max_delay_s is not None:
            self.batcher.max_delay_s = float(max_delay_s)
            if self._intake is not None and self._poll_follows_delay:
                self._intake.set_every(max(max_delay_s, 0.002) / 2)

    @_serialised
    def flush(self) -> None:
        """Process everything buffered and queued (the windows stay open): what was
        queued when it was called, so that pushes that go on do not keep it from
        returning (nor a ``close`` from another thread waiting behind it)."""
        self._check_open()
        self._feed_all(self._intake.queued_rows if self._intake is not None else 0)
        self._process_all(self.batcher.drain())

    def close(self) -> dict[str, Any]:
        """End of input: process the rest, emit every open window, close sinks, return summary.

        The background thread is stopped first, so that this call does not wait behind
        it while pushes go on (then refused); the rows queued are processed here."""
        self._stop_threads_for("close")
        try:
            return self._close_now()
        finally:
            self._join_threads()

    @_serialised
    def _close_now(self) -> dict[str, Any]:
        if self._closed:  # a failure of the engine's own thread ended it: said here too
            self._check_threads()
            assert self.summary_data is not None
            return self.summary_data
        try:
            return self._close()
        except BaseException as error:  # the sinks still get a footer and a summary
            self._abort(error)
            raise

    @_serialised
    def _poll_once(self) -> bool:
        """The background thread's poll; False once the engine is closed."""
        if self._closed:
            return False
        self._poll(self.clock())
        return True

    def _join_threads(self) -> None:
        """Wait for the poller or intake, told to stop, to end: the lock is free now, and
        once the thread has it, it sees the engine closed and returns. So no thread of the
        engine's outlives ``close``/``abort`` (bounded, in case a sink holds it up)."""
        for thread in (self._poller, self._intake):
            if thread is not None:
                thread.join(THREAD_JOIN_S)

    def _stop_background_thread(self) -> None:
        """Ask the background poller or intake to stop (the intake refuses pushes from
        then on). Not joined: it may be waiting for the lock this thread holds; once it
        has it, it sees the engine closed and ends."""
        if self._poller is not None:
            self._poller.stop()
        if self._intake is not None:
            self._intake.close()  # pushes from now on fail; the queued ones are fed here

    def _close(self) -> dict[str, Any]:
        self._check_open()
        self._feed_all()
        self._process_all(self.batcher.drain())
        for operator in self.operators:
            table = operator.close()
            if table is not None:
                self._write_windows(operator, table)
        self._raise_handed_on_failure()  # close then aborts: the sinks get a failed summary
        self._closed = True
        self._pool.shutdown(wait=True)
        for sink in self.sinks:  # sinks that write in the background finish first
            _flush(sink)
        summary = self.summary()
        # Every sink is closed (its files finished) though another fails; the first
        # failure is raised, and ``close`` then aborts with it (a failed summary).
        failures: list[Exception] = []
        finishers: list[Callable[[], None]] = [self._write_batch_metrics]
        finishers += [partial(sink.close, summary) for sink in self.sinks]
        for finish in finishers:
            try:
                finish()
            except Exception as error:  # each must run
                failures.append(error)
        if failures:  # ``close`` aborts: every sink closed again, with a failed summary
            raise failures[0]
        self.summary_data = summary
        return summary

    def abort(self, error: BaseException) -> dict[str, Any] | None:
        """The run stopped part-way: close the sinks and give them a failed summary.

        Why: an open Parquet writer has no footer, so without this every file of the run
        is unreadable and the events processed so far are unaccounted for. The summary
        is the counts so far with ``failed: true`` and the error (rows still waiting for
        a batch are ``buffered``). None when the engine had already closed cleanly.
        From another thread, it waits for a call in progress (a push, say) to return.
        """
        self._stop_threads_for("abort")
        try:
            return self._abort_now(error)
        finally:
            self._join_threads()

    @_serialised
    def _abort_now(self, error: BaseException) -> dict[str, Any] | None:
        return self._abort(error)

    def _stop_threads_for(self, call: str) -> None:
        """Stop the poller or intake (pushes from now on are refused), unless ``call`` is
        made from a sink or listener on the engine's own thread, which is refused."""
        if self._in_call and self._call_thread == threading.get_ident():
            self._refuse_reentry(call)
        self._stop_background_thread()

    def _abort(self, error: BaseException) -> dict[str, Any] | None:
        if self.summary_data is not None:  # closed, or aborted already: nothing to close
            return self.summary_data if self.summary_data.get("failed") else None
        self._closed = True
        self._stop_background_thread()  # pushes are refused from now on, whoever ended the run
        self._failed_output = None  # abort reports its own error, and must not raise
        self._pool.shutdown(wait=True)
        # An interrupt has no message: its name is the error.
        summary = {**self.summary(), "failed": True, "error": str(error) or type(error).__name__}
        self.summary_data = summary
        for sink in self.sinks:
            # A sink that fails here failed before: that is the error being reported.
            with suppress(Exception):
                _flush(sink)
            with suppress(Exception):
                sink.close(summary)
        with suppress(OSError):
            self._write_batch_metrics()
        return summary

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        """End of the ``with`` block: the end of the input, or (an exception escaping it)
        a run that stopped part-way, whose summary says failed (see :meth:`abort`)."""
        if error is not None:
            self.abort(error)
        else:  # closed already: returns its summary, or raises a thread's failure
            self.close()

    # -- the batch path -----------------------------------------------------------------
    def _process_all(self, batches: list[Batch]) -> None:
        """Process ``batches`` in order; where host batches go to a device, batch n + 1 is
        staged (its copy queued) before batch n is processed, so the two overlap."""
        staged = self._staged(batches[0]) if batches and self._stage is not None else None
        for i, batch in enumerate(batches):
            accounted = self.counts.accounted  # to tell whether batch i was counted
            try:
                if self._stage is None:
                    self._process(batch, batch.table, {})
                    continue
                current = staged
                staged = self._staged(batches[i + 1]) if i + 1 < len(batches) else None
                assert current is not None
                self._process(batch, *current)
            except BaseException:  # a batch half done: the call ends the run (_serialised)
                # Its rows and those of the batches after it were taken from the batcher:
                # counted as buffered (never processed) in the failed summary, but for
                # the rows of batch i already counted (an interrupt in its listener).
                left = sum(b.table.num_rows for b in batches[i:])
                self._stranded_rows += left - (self.counts.accounted - accounted)
                self._broken = True
                raise

    def _staged(self, batch: Batch) -> tuple[Any, dict[str, float]]:
        """The batch's frame on the device (or the error that stopped it) and its seconds."""
        if not isinstance(batch.table, pa.Table):  # pushed on the device already
            return batch.table, {}
        assert self._stage is not None
        start = self.clock()
        try:
            frame = self._stage(batch.table)
        except Exception as exc:  # never lose the rows: the batch is dead-lettered
            frame = exc
        return frame, {"ingest": self.clock() - start}

    def _process(self, batch: Batch, frame: Any, stage: dict[str, float]) -> None:
        start = self.clock()
        rows = batch.table.num_rows
        # A frame staged ahead (its copies queued on the copy stream) is waited for now,
        # whichever path reads it or drops it: the device pool reuses a dropped frame's
        # blocks behind the default stream, which must be past the copies into them.
        getattr(frame, "await_copies", _no_wait)()
        try:
            if isinstance(frame, Exception):
                raise frame
            validated = self.validator.validate(frame, batch.source, batch.first_row)
        except EngineError:
            raise
        except Exception as exc:  # a bug or unreadable data: never lose the rows
            self._dead_letter(batch, exc)
            return
        t1 = self.clock()
        stage["validate"] = t1 - start
        late_everywhere, late_rows = self._aggregate(validated, t1)
        t2 = self.clock()
        stage["aggregate"] = t2 - t1
        # Counted before any of its outputs is handed on: a sink that raises an interrupt
        # then leaves a batch counted as processed whose outputs are partly written, not
        # one counted as never processed whose late rows and windows were written.
        n_late = int(late_everywhere.sum())
        valid = validated.valid.num_rows - n_late
        self.counts.valid += valid
        self.counts.late += n_late
        self.counts.quarantined += validated.n_quarantined
        if validated.quarantine is not None and self.config.validation.on_error == "quarantine":
            for sink in self.sinks:
                self._hand_on(sink.quarantine, validated.quarantine)
        for name, rows_late in late_rows:
            for sink in self.sinks:
                self._hand_on(sink.late, name, rows_late)
        self._emit_ready()
        finished = self.clock()
        stage["emit"] = finished - t2  # the batch's outputs handed on
        self._record(batch, rows, valid, validated, n_late, stage, finished)
        done = self.clock()
        for operator in self.operators:
            operator.busy_until(done)

    def _aggregate(
        self, validated: ValidatedBatch, now: float
    ) -> tuple[np.ndarray, list[tuple[str, pa.Table]]]:
        """Each operator's aggregation of the batch: where rows were late in every window,
        and each window's late rows (to hand on once the batch is counted)."""
        late_everywhere = np.ones(validated.valid.num_rows, dtype=bool)
        late_rows = []
        for operator in self.operators:
            late = operator.process(validated.valid, validated.times, now)
            late_everywhere &= late
            if late.any():
                late_rows.append((operator.spec.name, validated.traced_rows(late)))
        return late_everywhere, late_rows

    def _emit_ready(self) -> None:
        for operator in self.operators:
            table = operator.emit_ready()
            if table is not None:
                self._write_windows(operator, table)
            operator.forget_dead_keys()

    def _write_windows(self, operator: WindowOperator | ShardedWindows, table: pa.Table) -> None:
        for sink in self.sinks:
            self._hand_on(sink.windows, operator.spec.name, table)

    def _hand_on(self, output: Callable[..., None], *args: Any) -> None:
        """Give a sink or listener its output. One that raises keeps neither the other
        sinks from theirs nor the call from processing and counting its batches (rows
        handed to the batcher would be lost): its error, the first of the call, is
        raised when the call ends, or by ``close`` before the sinks are closed."""
        self._in_output = True
        try:
            output(*args)
        except Exception as error:
            if self._failed_output is None:
                note = f"(raised by {self._output_name(output, args)})"
                if note not in getattr(error, "__notes__", ()):  # an error raised again
                    error.add_note(note)
                self._failed_output = error
        finally:
            self._in_output = False

    def _output_name(self, output: Callable[..., Any], args: tuple[Any, ...]) -> str:
        """Which sink's which output (and window), or which listener, an error came from:
        ``ParquetSink.windows('region')``, ``listener EngineMonitoring.on_batch``."""
        owner = getattr(output, "__self__", None)
        name = getattr(output, "__name__", None) or type(output).__name__  # a callable object
        if owner is not None:
            name = f"{type(owner).__name__}.{name}"
        if not any(owner is sink for sink in self.sinks):
            return f"listener {name}"
        window = f"({args[0]!r})" if args and isinstance(args[0], str) else ""
        return f"{name}{window}"

    def _raise_handed_on_failure(self) -> None:
        error, self._failed_output = self._failed_output, None
        if error is not None:
            raise error

    def _dead_letter(self, batch: Batch, exc: Exception) -> None:
        rows = batch.table.num_rows
        self.counts.dead_lettered += rows
        table = dead_letter_table(batch, exc)
        for sink in self.sinks:
            self._hand_on(sink.dead_letter, table)
        now = self.clock()
        report = BatchReport(
            rows=rows,
            valid=0,
            quarantined=0,
            late=0,
            dead_lettered=rows,
            stage_seconds={},
            latency_s=now - batch.arrived_at,
            finished_at=now,
            worker_rows={},
            watermark_ms=self._lowest_watermark(),
            source=batch.source,
        )
        for listener in self.listeners:
            self._hand_on(listener, report)

    def _record(
        self,
        batch: Batch,
        rows: int,
        valid: int,
        validated: ValidatedBatch,
        n_late: int,
        stage: dict[str, float],
        finished: float,
    ) -> None:
        latency = finished - batch.arrived_at
        self._busy_s += sum(stage.values())
        self._timings.add(time.time(), rows, stage, latency)
        if self.listeners:
            times = validated.times
            report = BatchReport(
                rows=rows,
                valid=valid,
                quarantined=validated.n_quarantined,
                late=n_late,
                dead_lettered=0,
                stage_seconds=stage,
                latency_s=latency,
                finished_at=finished,
                worker_rows=self._worker_rows(validated.valid.num_rows),
                watermark_ms=self._lowest_watermark(),
                event_times_ms=times,
                source=batch.source,
            )
            for listener in self.listeners:
                self._hand_on(listener, report)

    def _worker_rows(self, valid: int) -> dict[str, int]:
        """The valid rows each shard of the first sharded window took; all of them to
        worker 0 where no window is sharded."""
        for operator in self.operators:
            if isinstance(operator, ShardedWindows):
                return {str(i): n for i, n in enumerate(operator.last_shard_rows)}
        return {"0": valid}

    def _lowest_watermark(self) -> int | None:
        marks = [op.watermark for op in self.operators if op.watermark > NEVER]
        return min(marks) if marks else None

    # -- reporting ----------------------------------------------------------------------
    @property
    def watermarks(self) -> dict[str, int]:
        return {op.spec.name: op.watermark for op in self.operators}

    def summary(self) -> dict[str, Any]:
        elapsed = max(self.clock() - self._started, 1e-9)
        c, buffered, queued = self._counts_now()
        return {
            "events": {
                "in": c.received,
                "valid": c.valid,
                "quarantined": c.quarantined,
                "late": c.late,
                "dead_lettered": c.dead_lettered,
                "buffered": buffered,
                "queued": queued,
            },
            "accounted": c.accounted + buffered + queued == c.received,
            "windows_emitted": sum(op.windows_emitted for op in self.operators),
            "windows": {
                op.spec.name: {
                    "emitted": op.windows_emitted,
                    "late_events": op.late_events,
                    "state_bytes": op.state_bytes,
                    "keys_moved": getattr(op, "keys_moved", 0),
                }
                for op in self.operators
            },
            "batches": self._timings.batches,
            "elapsed_s": elapsed,
            "busy_s": self._busy_s,
            "stage_s": dict(self._timings.seconds_by_stage),
            "throughput_events_per_s": c.received / elapsed,
            "processing_events_per_s": c.received / self._busy_s if self._busy_s else 0.0,
            # Compiling kernels, inside elapsed_s: a machine's first run pays it, a later
            # run loads them from the disk cache (with the process's other compiles).
            "compile_s": compile_seconds() - self._compile_s_before,
            "latency_ms": self._timings.latency_ms(),
            "backend": self.backend.name,
            "workers": self.workers,
            "quarantine_written": self.config.validation.on_error == "quarantine",
            **self.summary_extra,
        }

    def _counts_now(self) -> tuple[Counts, int, int]:
        """(counts, rows buffered for a batch, rows queued) now: live within the engine's
        own call (its close, its sinks); from any other thread, as the last call left
        them, which add up (mid-batch, the rows in are counted before their outcomes).
        Queued rows count as in; a queued push taken by a call in progress is queued
        until that call ends."""
        if not self._lock.acquire(blocking=False):  # another thread is in a call
            return self._rest_counts()
        try:  # this thread holds it now, and held it already if it is in a call
            if not self._in_call or self._in_output:  # mid-batch, a sink's view: at rest
                return self._rest_counts()
            queued = self._intake.queued_rows if self._intake is not None else 0
            counts = replace(self.counts, received=self.counts.received + queued)
            return counts, self._buffered_rows, queued
        finally:
            self._lock.release()

    def _rest_counts(self) -> tuple[Counts, int, int]:
        counts, buffered, queued = self._at_rest  # one snapshot (see _settle)
        return replace(counts, received=counts.received + queued), buffered, queued

    def _settle(self) -> None:
        """Take the counts at rest (for other threads' summaries) at the end of a call or
        of a queued push: with the intake, under its lock (as pushes add to the queued
        rows), in the same snapshot as the push they now count stops being queued."""
        counts, buffered = replace(self.counts), self._buffered_rows
        if self._intake is None:
            self._at_rest = (counts, buffered, 0)
            return
        with self._intake.lock:
            queued = self._at_rest[2] - self._intake.in_flight_rows
            self._at_rest = (counts, buffered, queued)
            self._intake.in_flight_rows = 0

    @property
    def _buffered_rows(self) -> int:
        return self.batcher.buffered_rows + self._stranded_rows

    @property
    def waiting_rows(self) -> int:
        """Rows in, not yet in a processed batch: buffered for one, or queued."""
        queued = self._intake.queued_rows if self._intake is not None else 0
        return self._buffered_rows + queued

    @staticmethod
    def _refuse_reentry(call: str) -> None:
        raise EngineError(
            f"Engine.{call}() was called from a sink or listener while the engine was"
            " processing; call it once the engine's own call has returned"
        )

    def batch_metrics(self) -> pa.Table:
        """Per batch and stage: time_s, stage, rows, seconds, workers (the optimizer's input).
        Not under the lock: the monitor's thread reads it while a batch is processed."""
        return self._timings.metrics_table(self.workers)

    def _write_batch_metrics(self) -> None:
        if self.metrics_dir is None or not self._timings.batches:
            return
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.batch_metrics(), self.metrics_dir / "batches.parquet")

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        self._check_threads()  # first: a thread's failure is why the engine closed
        if self._closed:
            _refuse_closed()

    def _check_intake(self) -> None:
        """Whether a push may be queued (called under the intake's lock): the intake closes
        when the engine does, and when its thread fails (that failure is the reason)."""
        assert self._intake is not None
        self._check_threads()
        if self._intake.closed:
            _refuse_closed()

    def _check_threads(self) -> None:
        for thread in (self._poller, self._intake):
            if thread is not None and thread.error is not None:
                # The background thread failed: the run cannot go on.
                raise _raised_again(thread.error) from thread.error


def _raised_again(error: BaseException) -> BaseException:
    """A new exception like ``error`` (its type, message and notes) for another call to
    raise: raising the one object at every call grew its traceback by each call's
    frames, which kept what they held (every refused push's rows) alive."""
    kind = type(error)
    try:  # not through __init__, which may format its message again
        again = kind.__new__(kind)
        again.args = error.args
        again.__dict__.update(error.__dict__)
        if hasattr(error, "__notes__"):
            again.__notes__ = list(error.__notes__)  # its own: notes added to it stay there
    except Exception:  # a type that cannot be made so
        return EngineError(f"the engine's background thread failed: {error!r}")
    return again


def _refuse_closed() -> None:
    raise EngineError("the engine is closed; create a new Engine for more input")


def _no_wait() -> None:
    """A frame with nothing in flight (Arrow, or a device push)."""


def _source_name(source: object) -> str:
    """A push's ``source`` as text every output can store: a path (``Path``, bytes) as its
    text, any other object as ``str``, and lone surrogates (an undecodable file name's
    bytes, from ``os.fsdecode``) as backslash escapes, which UTF-8 cannot hold."""
    is_path = isinstance(source, (bytes, os.PathLike))
    text = os.fsdecode(source) if is_path else str(source)  # type: ignore[arg-type]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
