"""Where results go: Parquet folders, memory (for tests and embedding), callbacks."""

from __future__ import annotations

import json
import os
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpu_engine.arrow_layout import contiguous
from gpu_engine.io.frames import ResultFrame, from_arrow
from gpu_engine.parsing import value_of


class Sink(Protocol):
    """Receives every output of the engine; the engine calls these in order.

    A sink that writes in the background may also have ``flush()``: the engine calls it
    at the end, before it times the run's summary (:class:`ParquetSink`).
    """

    def windows(self, name: str, table: pa.Table) -> None: ...
    def quarantine(self, table: pa.Table) -> None: ...
    def late(self, name: str, table: pa.Table) -> None: ...
    def dead_letter(self, table: pa.Table) -> None: ...
    def close(self, summary: dict[str, Any]) -> None: ...


class _PartWriter:
    """Appends tables to ``DIR/part-NNNNN.parquet``, starting a new part when the schema changes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.part = 0
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None
        self.rows_in_part = 0  # written to the open part (lost with it if it cannot close)
        self.lost = 0  # rows written to parts that could not be finished

    @property
    def path(self) -> Path:
        return self.folder / f"part-{self.part:05d}.parquet"

    def write(self, table: pa.Table) -> None:
        if self.writer is not None and not table.schema.equals(self.schema):
            self.close()
            self.part += 1
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, table.schema)
            self.schema = table.schema
        self.writer.write_table(table)
        self.rows_in_part += table.num_rows

    def close(self) -> None:
        """Finish the open part. One that cannot be finished is removed (a part without
        its footer is unreadable, and fails a reader of the whole folder too), its rows
        counted in ``lost``, and the error raised."""
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        rows, self.rows_in_part = self.rows_in_part, 0
        try:
            writer.close()
        except Exception:
            self.lost += rows
            self.path.unlink(missing_ok=True)
            raise


class ParquetSink:
    """``OUT/windows/<name>/``, ``OUT/quarantine/``, ``OUT/late/<name>/``, ``OUT/summary.json``.

    Tables are encoded and written on a thread of their own, in the order they came, so
    the engine's next batch runs while Parquet encodes the last one's results (pyarrow
    releases the GIL). At most ``queued`` tables wait; a full queue holds the engine back
    rather than growing memory. A failed write is raised by the next call or by
    ``close``, which writes ``summary.json`` only after every table is on disk. After a
    failed write nothing more is written; a failed run's summary then counts, per output
    (``windows/<name>``, ``quarantine``, ...), the rows its files lack (``unwritten``).
    """

    # What a run leaves under OUT (``gpu-engine run`` refuses to mix two runs' results).
    OUTPUTS = ("summary.json", "windows", "quarantine", "late", "dead_letter")

    def __init__(self, out_dir: str | Path, queued: int = 8) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._writers: dict[Path, _PartWriter] = {}
        self._queue: queue.Queue[tuple[tuple[str, ...], pa.Table] | None] = queue.Queue(queued)
        self._error: BaseException | None = None
        self._failed_at: Path | None = None  # the file a write failed in
        self._unwritten: dict[str, int] = defaultdict(int)  # rows of each output not on disk
        self._unwritten_lock = threading.Lock()  # counted by both threads
        self._thread = threading.Thread(target=self._write_all, name="parquet-sink", daemon=True)
        self._thread.start()

    def _writer(self, *parts: str) -> _PartWriter:
        folder = self.out_dir.joinpath(*parts)
        if folder not in self._writers:
            self._writers[folder] = _PartWriter(folder)
        return self._writers[folder]

    def _write_all(self) -> None:
        while (item := self._queue.get()) is not None:
            parts, table = item
            if self._error is None:  # after a failure, count what is not written
                writer = self._writer(*parts)
                try:
                    writer.write(table)
                except BaseException as exc:  # re-raised on the engine's thread
                    self._error, self._failed_at = exc, writer.path
                    self._not_written(parts, table)
                    with suppress(Exception):  # the part's rows so far, if it can be
                        writer.close()
            else:
                self._not_written(parts, table)
            self._queue.task_done()
        self._queue.task_done()  # the closing None too, so a flush after close returns

    def _not_written(self, parts: tuple[str, ...], table: pa.Table) -> None:
        with self._unwritten_lock:
            self._unwritten["/".join(parts)] += table.num_rows

    def _put(self, table: pa.Table, *parts: str) -> None:
        if self._error is not None:
            self._not_written(parts, table)
            self._raise_failure()
        self._queue.put((parts, table))

    def _raise_failure(self) -> None:
        if self._error is not None:
            where = self._failed_at or self.out_dir
            raise OSError(f"writing results to {where} failed: {self._error}") from self._error

    def windows(self, name: str, table: pa.Table) -> None:
        self._put(table, "windows", name)

    def quarantine(self, table: pa.Table) -> None:
        self._put(table, "quarantine")

    def late(self, name: str, table: pa.Table) -> None:
        self._put(table, "late", name)

    def dead_letter(self, table: pa.Table) -> None:
        self._put(table, "dead_letter")

    def flush(self) -> None:
        """Wait until every table given so far is written (the engine's summary times this)."""
        self._queue.join()
        self._raise_failure()

    def close(self, summary: dict[str, Any]) -> None:
        """Finish every file, then write ``summary.json``: after a failed write only for a
        run marked failed (``Engine.abort``), whose summary says so; the failure is raised."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        for writer in self._writers.values():  # each, though another fails
            try:
                writer.close()
            except Exception as exc:
                if self._error is None:
                    self._error, self._failed_at = exc, writer.path
        if self._error is None or summary.get("failed"):
            unwritten = self._rows_unwritten()
            if unwritten:
                summary = {**summary, "unwritten": unwritten}
            self._write_summary(summary)
        self._raise_failure()

    def _rows_unwritten(self) -> dict[str, int]:
        """Rows of each output that its files lack: tables not written after a failure,
        and the rows of parts that could not be finished (and were removed)."""
        with self._unwritten_lock:
            rows = dict(self._unwritten)
        for folder, writer in self._writers.items():
            if writer.lost:
                output = folder.relative_to(self.out_dir).as_posix()
                rows[output] = rows.get(output, 0) + writer.lost
        return dict(sorted(rows.items()))

    def _write_summary(self, summary: dict[str, Any]) -> None:
        """``summary.json`` whole or not at all (a full disk leaves no empty file)."""
        path = self.out_dir / "summary.json"
        temporary = path.with_name(path.name + ".tmp")
        try:
            temporary.write_text(json.dumps(summary, indent=2) + "\n")
            os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            if self._error is None:
                self._error, self._failed_at = exc, path


class MemorySink:
    """Keeps every output in memory; ``result(name)`` concatenates a window's tables."""

    def __init__(self) -> None:
        self.tables: dict[str, list[pa.Table]] = defaultdict(list)
        self.summary: dict[str, Any] | None = None

    def windows(self, name: str, table: pa.Table) -> None:
        self.tables[f"windows/{name}"].append(table)

    def quarantine(self, table: pa.Table) -> None:
        self.tables["quarantine"].append(table)

    def late(self, name: str, table: pa.Table) -> None:
        self.tables[f"late/{name}"].append(table)

    def dead_letter(self, table: pa.Table) -> None:
        self.tables["dead_letter"].append(table)

    def close(self, summary: dict[str, Any]) -> None:
        self.summary = summary

    def result(self, kind: str, frame: ResultFrame = "arrow") -> Any:
        """``windows/<name>``, ``late/<name>``, ``quarantine`` or ``dead_letter``; None if empty.

        ``frame``: an Arrow table (default), a pandas or cuDF frame, or ``auto`` (cuDF
        when installed, else Arrow).
        """
        tables = self.tables.get(kind)
        if not tables:
            return None
        return from_arrow(_concatenated(tables), frame)


def _concatenated(tables: list[pa.Table]) -> pa.Table:
    """``tables`` as one. Quarantined rows keep their columns' input types, which may
    clash from one push to the next (a list, then a struct): such a column is given as
    the text of its values (as ``ParquetSink`` starts a new part instead)."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    types: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for field in table.schema:
            types.setdefault(field.name, set()).add(field.type)
    clash = {name for name, kinds in types.items() if len(kinds) > 1}

    def as_text(table: pa.Table) -> pa.Table:
        for index, name in enumerate(table.column_names):
            if name in clash:
                table = table.set_column(index, name, _text_of(table.column(index)))
        return table

    return pa.concat_tables([as_text(t) for t in tables], promote_options="permissive")


class CallbackSink:
    """Calls ``on_windows(name, frame)`` for every emitted set of windows (for embedding).

    The other outputs go to their own callbacks where given: ``on_quarantine(frame)``,
    ``on_late(name, frame)`` (the schema's fields, then the ``_source`` and ``_row`` each
    came from), ``on_dead_letter(frame)`` (a batch that could not be
    processed: ``_source``, ``_row``, ``_error``, ``_values``) and ``on_close(summary)``
    (the run's summary, also after ``abort``, then marked failed; called a second time,
    with the failed summary, when another sink's close raised). ``frame`` picks what
    the callbacks receive: Arrow tables (default), pandas frames, cuDF frames, or
    ``auto`` (cuDF when installed, else Arrow).
    """

    def __init__(
        self,
        on_windows: Callable[[str, Any], None],
        on_quarantine: Callable[[Any], None] | None = None,
        on_late: Callable[[str, Any], None] | None = None,
        frame: ResultFrame = "arrow",
        on_dead_letter: Callable[[Any], None] | None = None,
        on_close: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.on_windows = on_windows
        self.on_quarantine = on_quarantine
        self.on_late = on_late
        self.on_dead_letter = on_dead_letter
        self.on_close = on_close
        self.frame = frame
        from_arrow(pa.table({}), frame)  # an unknown or unavailable frame fails here, early

    def windows(self, name: str, table: pa.Table) -> None:
        self.on_windows(name, from_arrow(table, self.frame))

    def quarantine(self, table: pa.Table) -> None:
        if self.on_quarantine:
            self.on_quarantine(from_arrow(table, self.frame))

    def late(self, name: str, table: pa.Table) -> None:
        if self.on_late:
            self.on_late(name, from_arrow(table, self.frame))

    def dead_letter(self, table: pa.Table) -> None:
        if self.on_dead_letter:
            self.on_dead_letter(from_arrow(table, self.frame))

    def close(self, summary: dict[str, Any]) -> None:
        if self.on_close:
            self.on_close(summary)


def _text_of(column: pa.ChunkedArray) -> pa.Array:
    """A column's values as text: Arrow's cast where it has one (times in any zone, past
    Python's ``datetime`` too), else Python's spelling (a list, a struct)."""
    try:
        return pc.cast(contiguous(column), pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = (value_of(column, i) for i in range(len(column)))
    return pa.array([None if v is None else str(v) for v in values], pa.string())
