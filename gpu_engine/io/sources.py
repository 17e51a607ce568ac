"""File sources: Parquet (file or directory), CSV and JSON lines, read in batches.

A row that a file holds but that cannot be read as a row (a CSV line with more or fewer
fields than the header, text that is not UTF-8, a JSON line that is not an object or not
JSON) neither stops the run nor goes missing: it comes in its place in the batch, its
fields null and the reason in the ``LINE_ERROR`` column, and the validator quarantines
it like any bad row, so its row number and the run's accounting stay right.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gpu_engine.errors import InputError
from gpu_engine.io.csv_source import read_csv
from gpu_engine.io.json_source import read_json
from gpu_engine.io.source_rows import LINE_ERROR, check_unique, refuse_foreign, shown

SourceBatch = tuple[pa.Table, str, int]  # (rows, source name, index of the first row)


_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "json",
             ".ndjson": "json", ".json": "json"}  # fmt: skip


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
        reader = {"parquet": _parquet, "csv": read_csv, "json": read_json}[kind]
        row = 0
        try:
            for table in reader(file, batch_rows, columns):
                yield table, str(file), row
                row += table.num_rows
        except (pa.ArrowInvalid, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{file}: cannot read near row {row}: {exc}") from exc


def _parquet(file: Path, batch_rows: int, columns: list[str]) -> Iterator[pa.Table]:
    # pre_buffer=False: with pre-buffering, the reader caches the raw column
    # chunks of every row group it has read until it is closed, so memory grows
    # with the file (about the whole compressed file by the end).
    with pq.ParquetFile(file, pre_buffer=False) as handle:
        names = handle.schema_arrow.names
        check_unique(file, names, columns)
        present = [c for c in columns if c in names]
        if columns and not present and handle.metadata.num_rows:
            refuse_foreign(file, f"its columns {shown(','.join(names))}", columns)
        for batch in handle.iter_batches(batch_size=batch_rows, columns=present):
            yield pa.Table.from_batches([batch])


__all__ = ["LINE_ERROR", "SourceBatch", "input_files", "read_batches"]
