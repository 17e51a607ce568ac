"""CSV files read in batches by Arrow, every row accounted for: a line with more or
fewer fields than the header, or with text that is not UTF-8, comes in its place with
the reason in ``LINE_ERROR`` (see :mod:`gpu_engine.io.sources`)."""

from __future__ import annotations

import csv
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from gpu_engine.errors import InputError
from gpu_engine.io.source_rows import (
    LINE_ERROR,
    SHOWN,
    check_unique,
    first_byte,
    shown,
)
from gpu_engine.parsing import utf8_error, utf8_text

_CSV_BLOCK = 1 << 20  # Arrow's default block: where a row ends is found within one


def read_csv(file: Path, batch_rows: int, columns: list[str]) -> Iterator[pa.Table]:
    """The rows of a CSV file (:func:`_csv_blocks`). A row longer than Arrow's block
    (a cell of a few MB, say) fails the read with "straddling object"; the file is then
    read again in blocks eight times larger, from the row after the last one given."""
    if not first_byte(file):  # no header, no rows: a writer that had nothing to write
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


def _check_header(file: Path, header: list[str], columns: list[str]) -> None:
    check_unique(file, header, columns)
    if columns and header and not set(header) & set(columns):
        raise InputError(
            f"{file}: its header {shown(','.join(header))} names none of the schema's fields"
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
        f" into one value: {shown(bytes(data[opened : opened + SHOWN + 1]))}"
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
    again through Latin-1 (see :func:`read_csv`). The hook is put in place by the first
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
        bad.append((row.number - 2, f"{_PARSE_ERROR}: {counts}: {shown(text)}"))
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
