"""File sources: Parquet (file or directory), CSV and JSON lines, read in batches.

A row that a file holds but that cannot be read as a row (a CSV line with more or fewer
fields than the header, text that is not UTF-8, a JSON line that is not an object or not
JSON) neither stops the run nor goes missing: it comes in its place in the batch, its
fields null and the reason in the ``LINE_ERROR`` column, and the validator quarantines
it like any bad row, so its row number and the run's accounting stay right.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from gpu_engine.errors import InputError
from gpu_engine.parsing import utf8_error, utf8_text

SourceBatch = tuple[pa.Table, str, int]  # (rows, source name, index of the first row)
# Why a source could not read a row (null: the row is fine). A name that starts with NUL,
# which no schema field can have and data columns do not use: a pushed column called
# "_line_error" was read as this marker, its rows quarantined with its text as the
# reason and the column dropped. (A pushed column of this very name still would be.)
LINE_ERROR = "\x00line_error"
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "json",
             ".ndjson": "json", ".json": "json"}  # fmt: skip
_SHOWN = 200  # characters of a bad line quoted in its reason


def input_files(path: Path) -> list[Path]:
    """The files an input path names (a file, or the event files of a folder); an
    ``InputError`` that says why where there are none (checked before a run starts)."""
    if path.is_dir():
        files = sorted(p for p in _walk(path) if p.suffix.lower() in _SUFFIXES)
        if not files:
            raise InputError(f"{path}: no {', '.join(_SUFFIXES)} files in this directory")
        return files
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.suffix.lower() not in _SUFFIXES:
        raise InputError(f"{path}: unknown format; use {', '.join(_SUFFIXES)} (Parquet, CSV, JSON)")
    return [path]


def _walk(folder: Path) -> Iterator[Path]:
    """The files under ``folder``, but hidden ones and those a writer marks as its own
    (names starting with "." or "_", as Arrow's datasets skip: ``_SUCCESS``, a Spark
    ``_temporary`` folder, macOS ``._x.parquet``). A folder that cannot be listed is an
    error, not a silent gap in the input (``Path.rglob`` skips it)."""

    def refuse(error: OSError) -> None:
        raise InputError(f"{error.filename}: cannot list this folder ({error.strerror})")

    for root, folders, names in os.walk(folder, onerror=refuse):
        folders[:] = [f for f in folders if not f.startswith((".", "_"))]
        yield from (Path(root) / n for n in names if not n.startswith((".", "_")))


def read_batches(path: str | Path, batch_rows: int, columns: list[str]) -> Iterator[SourceBatch]:
    """Batches of at most ``batch_rows`` rows from a file or a directory of files."""
    for file in input_files(Path(path)):
        kind = _SUFFIXES[file.suffix.lower()]
        reader = {"parquet": _parquet, "csv": _csv, "json": _json}[kind]
        row = 0
        try:
            for table in reader(file, batch_rows, columns):
                yield table, str(file), row
                row += table.num_rows
        except (pa.ArrowInvalid, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{file}: cannot read near row {row}: {exc}") from exc


def _check_unique(file: Path, names: list[str], columns: list[str]) -> None:
    """A wanted column that a file names twice: which of the two is meant is unknown."""
    for name in columns:
        count = names.count(name)
        if count > 1:
            raise InputError(
                f"{file}: column {name!r} appears {count} times; rename or drop the duplicates"
            )


def _parquet(file: Path, batch_rows: int, columns: list[str]) -> Iterator[pa.Table]:
    # pre_buffer=False: with pre-buffering, the reader caches the raw column
    # chunks of every row group it has read until it is closed, so memory grows
    # with the file (about the whole compressed file by the end).
    with pq.ParquetFile(file, pre_buffer=False) as handle:
        names = handle.schema_arrow.names
        _check_unique(file, names, columns)
        present = [c for c in columns if c in names]
        if columns and not present and handle.metadata.num_rows:
            _refuse_foreign(file, f"its columns {_shown(','.join(names))}", columns)
        for batch in handle.iter_batches(batch_size=batch_rows, columns=present):
            yield pa.Table.from_batches([batch])


_CSV_BLOCK = 1 << 20  # Arrow's default block: where a row ends is found within one


def _csv(file: Path, batch_rows: int, columns: list[str]) -> Iterator[pa.Table]:
    """The rows of a CSV file (:func:`_csv_blocks`). A row longer than Arrow's block
    (a cell of a few MB, say) fails the read with "straddling object"; the file is then
    read again in blocks eight times larger, from the row after the last one given."""
    if not _first_byte(file):  # no header, no rows: a writer that had nothing to write
        return
    lone = _lone_header(file)
    if lone is not None:  # Arrow cannot read a header with no line break after it
        _check_header(file, next(csv.reader([lone])), columns)
        return
    # Arrow decodes a line it cannot split (for the handler that quarantines it) as UTF-8
    # first, and fails the whole file where that line holds other bytes. Such a file is
    # read again through Latin-1, which decodes any byte, and its values turned back into
    # the file's bytes (:func:`_latin1_undone`): so each fault still quarantines its row.
    encoding: str | None = None
    try:
        header, block = _csv_header(file)
    except pa.ArrowInvalid as exc:
        if _PARSE_ERROR not in str(exc):
            raise
        encoding = "latin-1"
        header, block = _csv_header(file, encoding)
    _check_header(file, header, columns)
    # The file's last column is read too, if the schema has no use for it: a quote never
    # closed in it swallows the rest of the file, and only its value shows that.
    last = header[-1] if header and header[-1] not in columns else None
    read = [*columns, last] if last is not None else columns
    given = 0
    held: pa.Table | None = None  # the last table read, kept back to check its last row
    while True:
        seen = 0
        try:
            for table in _csv_blocks(file, batch_rows, read, header, block, last, encoding):
                skip = min(max(given - seen, 0), table.num_rows)
                seen += table.num_rows
                if skip < table.num_rows:
                    given += table.num_rows - skip
                    if held is not None:
                        yield _without(held, last)
                    held = table.slice(skip)
            break
        except pa.ArrowInvalid as exc:
            if encoding is None and _PARSE_ERROR in str(exc):
                encoding = "latin-1"  # again, from the row after the last one given
                continue
            block = _larger_block(exc, block, file)
    if held is not None:
        yield _without(_unclosed_quote(file, held, header[-1]), last)


def _refuse_foreign(file: Path, holding: str, columns: list[str]) -> None:
    """A file none of whose columns is a schema field: another stream's data (every row
    would be quarantined for its missing fields), or another file than meant."""
    raise InputError(
        f"{file}: {holding} name none of the schema's fields ({', '.join(columns)});"
        " is it another stream's data, or the config another stream's?"
    )


def _check_header(file: Path, header: list[str], columns: list[str]) -> None:
    _check_unique(file, header, columns)
    if columns and header and not set(header) & set(columns):
        raise InputError(
            f"{file}: its header {_shown(','.join(header))} names none of the schema's fields"
            f" ({', '.join(columns)}); is the header line missing, or the delimiter not a comma?"
        )


def _without(table: pa.Table, column: str | None) -> pa.Table:
    return table if column is None else table.drop_columns([column])


def _unclosed_quote(file: Path, table: pa.Table, last_column: str) -> pa.Table:
    """``table`` (the file's last rows), its last row unreadable where the file ends
    inside a quoted value: Arrow reads the rest of the file into that value of the last
    column, rows and all, without a word. Looked for (a scan of the file,
    :func:`kernels.csv_quotes.open_quote_at_end`) only when that value holds a line break."""
    value = table.column(last_column)[table.num_rows - 1].as_py()
    if value is None or not any(b in _as_raw(value) for b in (b"\n", b"\r")):
        return table
    from kernels.csv_quotes import open_quote_at_end

    data = np.memmap(file, dtype=np.uint8, mode="r")
    opened = int(open_quote_at_end(data, ord(","), ord('"')))
    if opened < 0:
        return table
    reason = (
        "a quote opened in this row is never closed, so the rest of the file was read"
        f" into one value: {_shown(bytes(data[opened : opened + _SHOWN + 1]))}"
    )
    reasons: list[str | None] = [None] * table.num_rows
    if LINE_ERROR in table.column_names:
        reasons = table.column(LINE_ERROR).to_pylist()
        table = table.drop_columns([LINE_ERROR])
    reasons[-1] = reason if reasons[-1] is None else f"{reasons[-1]}; {reason}"
    return table.append_column(LINE_ERROR, pa.array(reasons, pa.string()))


def _as_raw(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


_PARSE_ERROR = "CSV parse error"
_BOM = b"\xef\xbb\xbf"


class _QuietUndecodableRows:
    """Silences what Arrow prints ("Exception ignored in ...") when it cannot decode a
    line it cannot split for the invalid-row handler; the read then fails and is done
    again through Latin-1 (see :func:`_csv`). The hook is put in place by the first
    thread to enter and taken out by the last to leave (a swap per read, under threads,
    left it muted for good); meanwhile other unraisable errors still print."""

    _lock = threading.Lock()
    _inside = 0
    _previous: Callable[[Any], Any] | None = None

    def __enter__(self) -> None:
        cls = type(self)
        with cls._lock:
            if cls._inside == 0:
                previous = cls._previous = sys.unraisablehook

                def hook(unraisable: Any) -> None:
                    if not isinstance(unraisable.exc_value, UnicodeDecodeError):
                        previous(unraisable)

                sys.unraisablehook = hook
            cls._inside += 1

    def __exit__(self, *exc: object) -> None:
        cls = type(self)
        with cls._lock:
            cls._inside -= 1
            if cls._inside == 0 and cls._previous is not None:
                sys.unraisablehook = cls._previous
                cls._previous = None


def _latin1(name: str) -> str:
    """A name as Arrow reads it from the file through Latin-1."""
    return name.encode("utf-8").decode("latin-1")


def _latin1_undone(table: pa.Table, names: dict[str, str]) -> pa.Table:
    """A table read through Latin-1 (binary columns: the UTF-8 of each byte's Latin-1
    character) with the file's own bytes and column names (``names``: Arrow's to the
    header's) again."""
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_binary(column.type):
            values = [None if v is None else v.decode("utf-8").encode("latin-1")
                      for v in column.to_pylist()]  # fmt: skip
            column = pa.chunked_array([pa.array(values, pa.binary())])
        columns[names.get(name, name)] = column
    return pa.table(columns)


def _csv_blocks(
    file: Path,
    batch_rows: int,
    columns: list[str],
    header: list[str],
    block: int,
    raw: str | None = None,
    encoding: str | None = None,
) -> Iterator[pa.Table]:
    """Every column is read as text and parsed by the validator, so one bad cell
    quarantines its row instead of failing the whole file; so does a line that does not
    split into the header's fields, or text that is not UTF-8 (an unreadable row).

    Arrow parses on one thread here: only then does it know a bad line's row number.
    """
    bad: list[tuple[int, str]] = []  # (data row, reason), in file order

    def unreadable(row: pacsv.InvalidRow) -> str:
        if row.number is None:  # unknown place: fail (named file) rather than misnumber
            return "error"
        # ``number`` counts records from 1 with the header, so data row = number - 2.
        counts = f"expected {row.expected_columns} columns, got {row.actual_columns}"
        text = row.text.encode("latin-1") if encoding else row.text
        bad.append((row.number - 2, f"{_PARSE_ERROR}: {counts}: {_shown(text)}"))
        return "skip"

    arrow_names = {name: _latin1(name) if encoding else name for name in header}
    if encoding and header:
        with open(file, "rb") as fh:  # through Latin-1 a byte-order mark stays in the name
            if fh.read(3) == _BOM:
                arrow_names[header[0]] = _latin1("\ufeff" + header[0])

    with _QuietUndecodableRows():
        reader = pacsv.open_csv(
            file,
            read_options=pacsv.ReadOptions(
                use_threads=False, block_size=block, encoding=encoding or "utf8"
            ),
            # Quoted values may hold line breaks (RFC 4180, Excel), even across blocks.
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=unreadable
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={arrow_names[name]: pa.binary() for name in header},  # UTF-8 checked
                # Only an empty, unquoted cell is null (as in DuckDB): Arrow's default list
                # would make the text NA (North America), "null" or "nan" a null.
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                include_columns=[arrow_names[c] for c in columns if c in header],
            ),
        )
    names = {arrow: name for name, arrow in arrow_names.items()}
    text_schema = pa.schema([(names[name], pa.string()) for name in reader.schema.names])
    good = placed = 0  # good rows read, unreadable rows put in place
    pending: list[pa.Table] = []
    rows = 0
    batches = iter(reader)
    while True:
        with _QuietUndecodableRows():
            batch = next(batches, None)
        if batch is None:
            break
        read = pa.Table.from_batches([batch])
        table = _utf8(_latin1_undone(read, names) if encoding else read, raw)
        take = placed
        # An unreadable row goes in this table if the good rows before it end here.
        while take < len(bad) and bad[take][0] - take <= good + table.num_rows:
            take += 1
        table = _with_unreadable(table, bad[placed:take], good + placed)
        good += batch.num_rows
        placed = take
        pending.append(table)
        rows += table.num_rows
        while rows >= batch_rows:
            whole = pa.concat_tables(pending, promote_options="permissive")
            yield whole.slice(0, batch_rows)
            rest = whole.slice(batch_rows)
            pending, rows = [rest], rest.num_rows
    if placed < len(bad):  # after the last good row
        pending.append(_with_unreadable(text_schema.empty_table(), bad[placed:], good + placed))
        rows += len(bad) - placed
    if rows:
        yield pa.concat_tables(pending, promote_options="permissive")


def _csv_header(file: Path, encoding: str | None = None) -> tuple[list[str], int]:
    """The column names as Arrow's CSV reader sees them (a UTF-8 byte-order mark, which
    Excel writes, is dropped; Python's csv module would keep it in the first name), and
    the block that opening the file took: Arrow reads the header and first row in one.
    Through Latin-1 (``encoding``), the names are the header's UTF-8 text again."""
    block = _CSV_BLOCK
    while True:
        try:
            with _QuietUndecodableRows():
                probe = pacsv.open_csv(
                    file,
                    read_options=pacsv.ReadOptions(
                        use_threads=False, block_size=block, encoding=encoding or "utf8"
                    ),
                    parse_options=pacsv.ParseOptions(invalid_row_handler=lambda row: "skip"),
                )
            break
        except pa.ArrowInvalid as exc:
            block = _larger_block(exc, block, file)
    try:
        names = list(probe.schema.names)
    finally:
        probe.close()
    if encoding:
        try:  # as the header read as UTF-8 (its error names the file, as it did there)
            names = [n.encode("latin-1").decode("utf-8") for n in names]
        except UnicodeDecodeError as exc:
            raise InputError(f"{file}: its header line is not UTF-8 text ({exc})") from None
        names = [n.removeprefix("\ufeff") for n in names[:1]] + names[1:]
    return names, block


def _larger_block(error: pa.ArrowInvalid, block: int, file: Path) -> int:
    """The next block to try after ``error``: eight times ``block`` where a row was longer
    than it ("straddling object"); else, or past the file's size, ``error`` is raised."""
    if "straddl" not in str(error) or block > file.stat().st_size:
        raise error
    return block * 8


def _utf8(table: pa.Table, raw: str | None = None) -> pa.Table:
    """Binary CSV columns as text. A value that is not UTF-8 makes its row unreadable
    (that value null, the reason in ``LINE_ERROR``). Column ``raw`` (read for no field)
    stays bytes, unchecked."""
    columns: dict[str, pa.Array] = {}
    reasons: list[str | None] | None = None
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if name == raw:
            columns[name] = column
            continue
        columns[name], broken = utf8_text(column)
        if broken is None:
            continue
        reasons = reasons if reasons is not None else [None] * table.num_rows
        for i in np.flatnonzero(broken):
            value = column[int(i)].as_py()
            reason = f"column {name!r} is not UTF-8 text ({utf8_error(value)}): {value!r}"
            reasons[i] = reason if reasons[i] is None else f"{reasons[i]}; {reason}"
    text = pa.table(columns) if columns else table
    if reasons is not None:
        text = text.append_column(LINE_ERROR, pa.array(reasons, pa.string()))
    return text


def _with_unreadable(table: pa.Table, lines: list[tuple[int, str]], start: int) -> pa.Table:
    """``table`` with a row for each of ``lines`` (data row, reason) in its place;
    ``start`` is the data row of the first row of the result."""
    if not lines:
        return table
    m, k = table.num_rows, len(lines)
    at = np.array([row - start for row, _ in lines], dtype=np.int64)
    is_line = np.zeros(m + k, dtype=bool)
    is_line[at] = True
    order = np.empty(m + k, dtype=np.int64)
    order[at] = m + np.arange(k)
    order[~is_line] = np.arange(m)
    fill = {
        field.name: pa.nulls(k, field.type) for field in table.schema if field.name != LINE_ERROR
    }
    fill[LINE_ERROR] = pa.array([reason for _, reason in lines], pa.string())
    both = pa.concat_tables([table, pa.table(fill)], promote_options="permissive")
    return both.take(pa.array(order))


def _json(file: Path, batch_rows: int, columns: list[str]) -> Iterator[pa.Table]:
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
    items = _json_array(file) if _first_byte(file) == b"[" else None
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
            _refuse_foreign(file, "its objects", columns)
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


def _first_byte(file: Path) -> bytes:
    """The first byte that is not white space (nor a UTF-8 byte-order mark)."""
    with file.open("rb") as handle:
        head = handle.read(3)
        if head != b"\xef\xbb\xbf":
            handle.seek(0)
        while chunk := handle.read(1 << 16):
            stripped = chunk.lstrip()
            if stripped:
                return stripped[:1]
    return b""


def _lone_header(file: Path) -> str | None:
    """The text of a file that is one line with no line break (a header and no rows);
    None for any other. (Looked for in files of up to 1 MiB; a longer header line is
    left to Arrow.)"""
    if file.stat().st_size > 1 << 20:
        return None
    data = file.read_bytes().strip(b" \t")
    if b"\n" in data or b"\r" in data:
        return None
    return data.decode("utf-8", "replace").removeprefix("\ufeff")


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
            shown = _shown(json.dumps(item))
            yield None, f"item {index} of the JSON array is not an object: {shown}"


def _line_records(file: Path) -> Iterator[_Record]:
    with file.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue  # blank lines hold no row (as Arrow reads them)
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield None, f"line {number} is not valid JSON ({exc}): {_shown(line)}"
                continue
            except RecursionError:
                yield (
                    None,
                    (
                        f"line {number} nests deeper than the reader follows"
                        f" ({sys.getrecursionlimit()} levels): {_shown(line)}"
                    ),
                )
                continue
            if isinstance(value, dict):
                yield value, None
            else:
                yield None, f"line {number} is not a JSON object: {_shown(line)}"


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
                f" {_shown(value)}"
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


def _shown(value: object) -> str:
    """A bad line or value for a reason: as text, cut to ``_SHOWN`` characters."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    text = value.rstrip("\r\n") if isinstance(value, str) else json.dumps(value)
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")
