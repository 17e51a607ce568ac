"""What every file reader shares: the marker column of rows a file holds but cannot give
as rows, how a bad value is quoted in a reason, and the checks of a file's columns."""

from __future__ import annotations

import json
from pathlib import Path

from gpu_engine.errors import InputError

# Why a source could not read a row (null: the row is fine). A name that starts with NUL,
# which no schema field can have and data columns do not use: a pushed column called
# "_line_error" was read as this marker, its rows quarantined with its text as the
# reason and the column dropped. (A pushed column of this very name still would be.)
LINE_ERROR = "\x00line_error"
SHOWN = 200  # characters of a bad line quoted in its reason


def check_unique(file: Path, names: list[str], columns: list[str]) -> None:
    """A wanted column that a file names twice: which of the two is meant is unknown."""
    for name in columns:
        count = names.count(name)
        if count > 1:
            raise InputError(
                f"{file}: column {name!r} appears {count} times; rename or drop the duplicates"
            )


def refuse_foreign(file: Path, holding: str, columns: list[str]) -> None:
    """A file none of whose columns is a schema field: another stream's data (every row
    would be quarantined for its missing fields), or another file than meant."""
    raise InputError(
        f"{file}: {holding} name none of the schema's fields ({', '.join(columns)});"
        " is it another stream's data, or the config another stream's?"
    )


def first_byte(file: Path) -> bytes:
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


def shown(value: object) -> str:
    """A bad line or value for a reason: as text, cut to ``SHOWN`` characters."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    text = value.rstrip("\r\n") if isinstance(value, str) else json.dumps(value)
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")
