"""File sources: Parquet (file or directory), CSV and JSON lines, read in batches."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from gpu_engine.errors import InputError

SourceBatch = tuple[pa.Table, str, int]  # (rows, source name, index of the first row)
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "json",
             ".ndjson": "json", ".json": "json"}  # fmt: skip


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in _SUFFIXES)
        if not files:
            raise InputError(f"{path}: no .parquet, .csv or .jsonl files in this directory")
        return files
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.suffix.lower() not in _SUFFIXES:
        raise InputError(f"{path}: unknown format; use .parquet, .csv or .jsonl")
    return [path]


def read_batches(path: str | Path, batch_rows: int, columns: list[str]) -> Iterator[SourceBatch]:
    """Batches of at most ``batch_rows`` rows from a file or a directory of files."""
    for file in _files(Path(path)):
        kind = _SUFFIXES[file.suffix.lower()]
        reader = {"parquet": _parquet, "csv": _csv, "json": _json}[kind]
        row = 0
        try:
            for table in reader(file, batch_rows, columns):
                yield table, str(file), row
                row += table.num_rows
        except (pa.ArrowInvalid, OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{file}: cannot read near row {row}: {exc}") from exc


def _parquet(file: Path, batch_rows: int, columns: list[str]) -> Iterator[pa.Table]:
    # pre_buffer=False: with pre-buffering, the reader caches the raw column
    # chunks of every row group it has read until it is closed, so memory grows
    # with the file (about the whole compressed file by the end).
    with pq.ParquetFile(file, pre_buffer=False) as handle:
        present = [c for c in columns if c in handle.schema_arrow.names]
        for batch in handle.iter_batches(batch_size=batch_rows, columns=present):
            yield pa.Table.from_batches([batch])


def _csv(file: Path, batch_rows: int, columns: list[str]) -> Iterator[pa.Table]:
    # Every column is read as text and parsed by the validator, so one bad cell
    # quarantines its row instead of failing the whole file.
    with file.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header},
        strings_can_be_null=True,
        include_columns=[c for c in columns if c in header],
    )
    reader = pacsv.open_csv(file, convert_options=convert)
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in reader:
        pending.append(batch)
        rows += batch.num_rows
        while rows >= batch_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, batch_rows)
            rest = table.slice(batch_rows)
            pending, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield pa.Table.from_batches(pending)


def _json(file: Path, batch_rows: int, columns: list[str]) -> Iterator[pa.Table]:
    try:
        table = pajson.read_json(file)
    except pa.ArrowInvalid:
        # Mixed types in a column (a string among numbers): read the values as
        # they are and let the validator quarantine the rows that do not parse.
        with file.open() as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        names = [c for c in columns if any(c in r for r in records)]
        table = pa.table(
            {n: pa.array([_text(r.get(n)) for r in records], pa.string()) for n in names}
        )
    table = table.select([c for c in columns if c in table.column_names])
    for start in range(0, table.num_rows, batch_rows):
        yield table.slice(start, batch_rows)


def _text(value: object) -> str | None:
    return None if value is None else str(value)
