"""JSON lines and JSON arrays of objects read as tables: a line that is not JSON, or an
item that is not an object, comes in its place with the reason in ``LINE_ERROR``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from gpu_engine.errors import InputError
from gpu_engine.io.source_rows import (
    LINE_ERROR,
    first_byte,
    refuse_foreign,
    shown,
)


def read_json(file: Path, batch_rows: int, columns: list[str]) -> Iterator[pa.Table]:
    """JSON lines, or one JSON array of objects.

    Arrow reads well-formed lines with their types, and the objects of an array too,
    written again as JSON lines (:func:`_array_lines`): they get the types the same rows
    have in a ``.jsonl`` file. A file it cannot read (a column of mixed types, a line
    or an item that is not an object, a line that is not JSON) is read row by row here,
    every value as text for the validator to parse (and quarantine), each bad line or
    item an unreadable row in its place. So is a file where Arrow made a column of
    numbers float64 (one line wrote ``1.0``) and a value reaches 2^53: float64 may have
    rounded it, and an integer field must get it exactly.
    """
    items = _json_array(file) if first_byte(file) == b"[" else None
    if items is not None:
        table = _typed_json(_array_lines(items), columns)
        if table is None:
            table = _records_table(_array_records(items), columns)
    else:
        table = _typed_json(file, columns)
        if table is None:
            table = _records_table(_line_records(file), columns)
    if columns and table.num_rows and not set(table.column_names) & set(columns):
        unreadable = table.column(LINE_ERROR) if LINE_ERROR in table.column_names else None
        if unreadable is None or unreadable.null_count:  # objects, not only unreadable lines
            refuse_foreign(file, "its objects", columns)
    for start in range(0, table.num_rows, batch_rows):
        yield table.slice(start, batch_rows)


def _typed_json(lines: Path | pa.BufferReader | None, columns: list[str]) -> pa.Table | None:
    """The wanted columns of JSON lines, as Arrow reads and types them; None where it
    cannot (``lines`` None too), or where a float64 column may have rounded an integer
    (:func:`_past_exact_doubles`): the caller then reads every value as text."""
    if lines is None:
        return None
    try:
        table = pajson.read_json(lines)
    except pa.ArrowInvalid:
        return None
    table = table.select([c for c in columns if c in table.column_names])
    if any(_past_exact_doubles(column) for column in table.columns):
        return None
    return table


def _array_lines(items: list[object]) -> pa.BufferReader | None:
    """The items of a JSON array as JSON lines, for Arrow to read with the types it
    gives the same rows in a ``.jsonl`` file; None where there are none, or an item is
    not an object (its row is unreadable, as such a line makes Arrow's read fail) or
    nests too deeply to be written again."""
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    try:
        text = "\n".join(json.dumps(item) for item in items)  # ASCII: \u escapes
    except RecursionError:
        return None
    return pa.BufferReader(text.encode("ascii"))


def _past_exact_doubles(column: pa.ChunkedArray) -> bool:
    """Whether a float64 column read from JSON holds a value of 2^53 or more in size,
    past which float64 no longer holds every integer (Arrow parsed the text into it)."""
    if not pa.types.is_floating(column.type):
        return False
    finite = pc.filter(column, pc.is_finite(column))
    largest = pc.max(pc.abs(finite)).as_py()
    return largest is not None and largest >= 2.0**53


_Record = tuple[dict[str, object] | None, str | None]  # (the object, or why there is none)


def _json_array(file: Path) -> list[object] | None:
    """The items of a file that is one JSON array; None where the array is only the
    first of several lines (JSON lines whose first line is a list: a bad line)."""
    try:
        items = json.loads(file.read_bytes())
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            return None
        raise
    except RecursionError:
        raise InputError(
            f"{file}: its JSON nests deeper than the reader follows ({sys.getrecursionlimit()}"
            " levels); no row of it was read"
        ) from None
    assert isinstance(items, list)  # the file starts with "["
    return items


def _array_records(items: list[object]) -> Iterator[_Record]:
    for index, item in enumerate(items):
        if isinstance(item, dict):
            yield item, None
        else:
            text = shown(json.dumps(item))
            yield None, f"item {index} of the JSON array is not an object: {text}"


def _line_records(file: Path) -> Iterator[_Record]:
    with file.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue  # blank lines hold no row (as Arrow reads them)
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield None, f"line {number} is not valid JSON ({exc}): {shown(line)}"
                continue
            except RecursionError:
                yield (
                    None,
                    (
                        f"line {number} nests deeper than the reader follows"
                        f" ({sys.getrecursionlimit()} levels): {shown(line)}"
                    ),
                )
                continue
            if isinstance(value, dict):
                yield value, None
            else:
                yield None, f"line {number} is not a JSON object: {shown(line)}"


def _records_table(records: Iterable[_Record], columns: list[str]) -> pa.Table:
    """The wanted columns of ``records`` as text (exact: Python keeps big integers), and
    ``LINE_ERROR`` (always there, so a table of unreadable rows alone has its rows).

    A JSON object or array where a field's value should be makes its row unreadable, as
    such a column does when Arrow reads the file (a struct or list no field takes):
    read as its JSON text, it passed as a string."""
    objects: list[dict[str, object]] = []
    reasons: list[str | None] = []
    for record, reason in records:
        objects.append(record if record is not None else {})
        try:  # a value nested nearly to the parser's depth has no JSON text within it
            nested = [
                f"column {name!r} holds a JSON"
                f" {'object' if isinstance(value, dict) else 'array'}, not a value:"
                f" {shown(value)}"
                for name in columns
                if isinstance(value := objects[-1].get(name), dict | list)
            ]
        except RecursionError:  # its nested values are not kept (no text of them is)
            nested = [f"a value nests deeper than the reader follows ({sys.getrecursionlimit()})"]
            objects[-1] = {k: v for k, v in objects[-1].items() if not isinstance(v, dict | list)}
        reasons.append("; ".join(nested) if nested and reason is None else reason)
    names = [c for c in columns if any(c in r for r in objects)]
    data = {n: pa.array([_text(r.get(n)) for r in objects], pa.string()) for n in names}
    data[LINE_ERROR] = pa.array(reasons, pa.string())
    return pa.table(data)


def _text(value: object) -> str | None:
    """A JSON value as text in its JSON spelling (``true``, not Python's ``True``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | dict | list):
        return json.dumps(value)
    return str(value)
