"""Micro-batching: cut the input into batches of ``max_rows`` rows or ``max_delay`` of waiting.

Frames are Arrow tables, or device frames (``DeviceFrame`` of the CUDA backend), which
bring their own ``slice(lo, hi)``, ``concat(parts)``, ``layout``, ``owned()`` and
``to_arrow()``: a device batch is buffered, cut and merged on the device like a host one,
and batched with host rows (or device rows of another layout) as the CPU backend would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from gpu_engine.arrow_layout import contiguous_table


@dataclass
class Batch:
    """Rows of one source, ready to process."""

    table: Any  # a pyarrow Table, or a device frame
    source: str
    first_row: int
    arrived_at: float  # processing time (s) when its first row arrived


@dataclass
class _Pending:
    parts: list[Any] = field(default_factory=list)
    rows: int = 0
    source: str = ""
    first_row: int = 0
    since: float = 0.0
    owned: int = 0  # parts[:owned] hold their own buffers (see MicroBatcher.add)
    schema: pa.Schema | None = None  # of Arrow parts: the one every part casts to exactly


class MicroBatcher:
    """Buffers pushed rows; a batch never mixes sources, so row numbers stay meaningful."""

    def __init__(self, max_rows: int, max_delay_ms: int) -> None:
        self.max_rows = max_rows
        self.max_delay_s = max_delay_ms / 1000.0
        self._pending = _Pending()

    @property
    def buffered_rows(self) -> int:
        return self._pending.rows

    def add(self, table: Any, source: str, first_row: int, now: float) -> list[Batch]:
        """Buffer ``table``; return the batches that are full."""
        ready = self._full_batches(self._pending.since)  # buffered before max_rows fell
        pending = self._pending
        if pending.rows:
            joins = pending.source == source and pending.first_row + pending.rows == first_row
            if joins and _layout(pending.parts[-1]) != _layout(table):
                self._buffered_as_arrow()
                table, rest = self._arrow_head(table)
                if rest is not None:  # the device rows after this batch's stay there
                    head = self.add(table, source, first_row, now)
                    return head + self.add(rest, source, first_row + table.num_rows, now)
            joins = joins and _layout(pending.parts[-1]) == _layout(table)
            schema = _shared_schema(pending, table) if joins else None
            if joins and (schema is not None or not isinstance(table, pa.Table)):
                pending.schema = schema
            else:
                ready.extend(self._cut_all())
                pending = self._pending
        if not pending.rows:
            pending.source, pending.first_row, pending.since = source, first_row, now
            pending.schema = table.schema if isinstance(table, pa.Table) else None
        if table.num_rows:
            pending.parts.append(table)
            pending.rows += table.num_rows
        ready.extend(self._full_batches(now))
        # Rows left waiting must not change if the caller reuses its (device) buffers; each
        # part is made to own them once (not every part at every push: pushes of a row
        # each made that quadratic).
        pending = self._pending
        for i in range(pending.owned, len(pending.parts)):
            pending.parts[i] = own_buffers(pending.parts[i])
        pending.owned = len(pending.parts)
        return ready

    def _buffered_as_arrow(self) -> None:
        """The buffered parts as Arrow tables, as the CPU backend reads them, where a push
        of another layout joins them (a host push after device ones, a column of another
        dtype), so that both backends cut the same batches; the batch is staged on the
        device again when it is processed."""
        pending = self._pending
        if not isinstance(pending.parts[0], pa.Table):
            pending.parts = [part.to_arrow() for part in pending.parts]
            pending.owned = len(pending.parts)  # host copies
            pending.schema = pa.unify_schemas(
                [part.schema for part in pending.parts], promote_options="permissive"
            )

    def _arrow_head(self, table: Any) -> tuple[pa.Table, Any]:
        """``table``, joining Arrow buffered rows, as Arrow, and None; for a device frame
        longer than the batch needs, only the rows that fill it, and the rest left on the
        device (to start the next batch there) where the batch keeps the rest's types. The
        CPU backend's rest of that batch has the batch's schema and decides later joins by
        it, so where the batch widens a type (int32 to int64, int64 to float64) the whole
        frame joins as Arrow."""
        if isinstance(table, pa.Table):
            return table, None
        need = self.max_rows - self._pending.rows
        if need < table.num_rows:
            head = _slice(table, 0, need).to_arrow()
            merged = _shared_schema(self._pending, head)
            if merged is not None and merged.equals(table.arrow_schema):
                return head, _slice(table, need, table.num_rows)
        return table.to_arrow(), None

    @property
    def waiting_since(self) -> float | None:
        """When the oldest buffered row arrived; None when none is buffered."""
        return self._pending.since if self._pending.rows else None

    def overdue_s(self, now: float) -> float:
        """How far the oldest buffered row is past ``max_delay`` (0 when none is): rows
        stuck because nothing polls (see ``Engine(poll_every=...)``)."""
        pending = self._pending
        if not pending.rows:
            return 0.0
        return max(0.0, now - pending.since - self.max_delay_s)

    def due(self, now: float) -> list[Batch]:
        """The buffered rows as batches if they have waited ``max_delay``; else the full
        batches among them (rows buffered before ``max_rows`` was made smaller)."""
        pending = self._pending
        if pending.rows and now - pending.since >= self.max_delay_s:
            return self._cut_all()
        return self._full_batches(pending.since)

    def _full_batches(self, since: float) -> list[Batch]:
        """Batches of ``max_rows`` while that many are buffered; the rest waits from
        ``since``."""
        ready = []
        while self._pending.rows >= self.max_rows:
            ready.append(self._cut(self.max_rows, since))
        return ready

    def drain(self) -> list[Batch]:
        """Everything buffered (end of input)."""
        return self._cut_all()

    def _cut_all(self) -> list[Batch]:
        """The buffered rows as batches of at most ``max_rows`` (which a running engine
        may have made smaller since they came)."""
        since = self._pending.since
        ready = []
        while self._pending.rows:
            ready.append(self._cut(min(self._pending.rows, self.max_rows), since))
        return ready

    def _cut(self, rows: int, rest_since: float) -> Batch:
        """The first ``rows`` pending rows as a batch; the rest wait from ``rest_since``."""
        pending = self._pending
        table = _concat(pending.parts)
        batch = Batch(_slice(table, 0, rows), pending.source, pending.first_row, pending.since)
        rest = _slice(table, rows, table.num_rows)
        self._pending = _Pending(
            parts=[rest] if rest.num_rows else [],
            rows=rest.num_rows,
            source=pending.source,
            first_row=pending.first_row + rows,
            since=rest_since,
            schema=rest.schema if isinstance(rest, pa.Table) else None,
        )
        return batch


def _layout(frame: Any) -> Any:
    """What must match for frames to share a batch (Arrow tables promote their types)."""
    return "arrow" if isinstance(frame, pa.Table) else frame.layout


def _shared_schema(pending: _Pending, table: Any) -> pa.Schema | None:
    """The schema an Arrow ``table`` shares with the buffered parts: theirs promoted to
    one that holds every value of each exactly; None where there is none (and for device
    frames, which bring no schema).

    Pushes of one column as integers, then as strings, are validated as batches of
    their own (each cast, or quarantined, by the schema) rather than failing to concat;
    so are pandas' int64 column (no nulls) and float64 one (a null in the chunk) when
    the int64 values do not all fit a float64 exactly (past 2^53). The buffered parts are
    read again only when the schema widens, so a push costs the same however many wait.
    """
    current = pending.schema
    if not isinstance(table, pa.Table) or current is None:
        return None
    if table.schema == current:
        return current
    try:
        unified = pa.unify_schemas([current, table.schema], promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return None
    widened = unified != current
    if not _casts_exactly(table, unified) or (
        widened and not all(_casts_exactly(part, unified) for part in pending.parts)
    ):
        return None
    return unified


def _casts_exactly(table: pa.Table, schema: pa.Schema) -> bool:
    """Whether every column of ``table`` casts to its type in ``schema`` with Arrow's safe
    cast (which refuses a value it would change: 2^63 - 1 as a float64, say), as
    ``pa.concat_tables`` casts them."""
    try:
        for field in table.schema:
            target = schema.field(field.name).type
            if field.type != target:
                table.column(field.name).cast(target, safe=True)
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False
    return True


def _concat(parts: list[Any]) -> Any:
    if not isinstance(parts[0], pa.Table):
        return type(parts[0]).concat(parts)
    table = pa.concat_tables(parts, promote_options="permissive")
    return contiguous_table(table) if len(parts) > 1 else table


def _slice(frame: Any, lo: int, hi: int) -> Any:
    return frame.slice(lo, hi - lo) if isinstance(frame, pa.Table) else frame.slice(lo, hi)


def own_buffers(frame: Any) -> Any:
    """``frame`` in buffers that the caller cannot change: a device frame is copied on the
    device; an Arrow table is taken as it is (Arrow's buffers are immutable, and
    :func:`gpu_engine.io.frames.to_arrow` copies the numpy and pandas columns it would
    otherwise share with the caller)."""
    return frame if isinstance(frame, pa.Table) else frame.owned()
