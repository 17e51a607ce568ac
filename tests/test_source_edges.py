"""File sources at their edges: rows longer than Arrow's block, a quote never closed, a
CSV without its header, hidden files and folders that cannot be listed; and the config
limits that keep window arithmetic and batch sizes in range."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from engine_testing import make_config

from gpu_engine.errors import ConfigError, InputError
from gpu_engine.io.sources import LINE_ERROR, read_batches
from kernels.csv_quotes import open_quote_at_end

REPO = Path(__file__).resolve().parents[1]

HEADER = "t,k,s"
COLUMNS = ["t", "k", "s", "x"]


def _rows(path: Path, batch_rows: int = 1000) -> list[dict[str, object]]:
    rows = []
    for table, source, first in read_batches(path, batch_rows, COLUMNS):
        assert source == str(path)
        assert first == len(rows)  # batches follow one another
        rows.extend(table.to_pylist())
    return rows


@pytest.mark.parametrize("batch_rows", [1, 2, 1000])
def test_a_row_longer_than_arrows_block_is_read(tmp_path: Path, batch_rows: int) -> None:
    """A 3 MB cell (Arrow reads 1 MB blocks) failed the whole file: "straddling object
    straddles two block boundaries (try to increase block size?)". The file is read again
    in larger blocks, from the row after the last one given."""
    long = "y" * (3 << 20)
    path = tmp_path / "long.csv"
    path.write_text(f'{HEADER}\n1,1,a\n2,2,"{long}"\n3,3,c\n')
    rows = _rows(path, batch_rows)
    assert [(r["t"], r["k"]) for r in rows] == [("1", "1"), ("2", "2"), ("3", "3")]
    assert [len(str(r["s"])) for r in rows] == [1, len(long), 1]


@pytest.mark.parametrize("megabytes", [3, 20])
def test_a_first_row_longer_than_arrows_block_is_read(tmp_path: Path, megabytes: int) -> None:
    """Opening the file reads its header and first row in one block: a first row over
    about 2 MB stopped the run there ("straddling object"), before any row was read."""
    long = "y" * (megabytes << 20)
    path = tmp_path / "long_first.csv"
    path.write_text(f'{HEADER}\n1,1,"{long}"\n2,2,b\n')
    rows = _rows(path)
    assert [(r["t"], len(str(r["s"]))) for r in rows] == [("1", len(long)), ("2", 1)]


def test_a_quote_never_closed_makes_its_row_unreadable(tmp_path: Path) -> None:
    """Arrow reads the rest of the file into the open value, rows and all, silently: two
    events vanished into a key. Now that row is unreadable, with the reason."""
    path = tmp_path / "open.csv"
    path.write_text(f'{HEADER}\n1,1,a\n2,2,"eu\n3,3,c\n4,4,d\n')
    rows = _rows(path)
    assert len(rows) == 2 and rows[0][LINE_ERROR] is None
    reason = str(rows[1][LINE_ERROR])
    assert reason.startswith("a quote opened in this row is never closed")
    assert "3,3,c" in reason


def test_a_quote_never_closed_in_a_column_no_field_reads_is_found_too(tmp_path: Path) -> None:
    """The file's last column is read for the check even when the schema has no use for
    it (here ``comment``): the rows it swallowed were lost without a word."""
    path = tmp_path / "open.csv"
    path.write_text('t,k,s,comment\n1,1,a,ok\n2,2,b,"oops\n3,3,c,fine\n4,4,d,fine\n')
    rows = _rows(path)
    assert [r["t"] for r in rows] == ["1", "2"] and "comment" not in rows[0]
    assert str(rows[1][LINE_ERROR]).startswith("a quote opened in this row is never closed")


def test_a_quote_inside_an_unquoted_value_is_a_character(tmp_path: Path) -> None:
    """As Arrow reads it (``5" screen``): counting quotes took it for an opening one, and
    a valid last row holding a line break was quarantined."""
    path = tmp_path / "inch.csv"
    path.write_text(f'{HEADER}\n1,1,5" screen\n2,2,"multi\nline"\n')
    rows = _rows(path)
    assert [r["s"] for r in rows] == ['5" screen', "multi\nline"]
    assert all(r.get(LINE_ERROR) is None for r in rows)


def test_quoted_line_breaks_that_close_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "closed.csv"
    path.write_text(f'{HEADER}\n1,1,"a ""quoted""\nword"\n2,2,"last\nrow"\n')
    rows = _rows(path)
    assert [r["s"] for r in rows] == ['a "quoted"\nword', "last\nrow"]
    assert all(LINE_ERROR not in r or r[LINE_ERROR] is None for r in rows)


def test_a_csv_whose_header_names_no_field_is_refused(tmp_path: Path) -> None:
    """Without a header line, Arrow takes the first row for it: that row was lost and
    every other row quarantined as missing the time field, with no word of the header."""
    path = tmp_path / "headless.csv"
    path.write_text("1,1,a\n2,2,b\n")
    with pytest.raises(InputError, match=r"headless.csv: its header '1,1,a' names none of"):
        _rows(path)


def test_hidden_and_writer_files_in_a_folder_are_skipped(tmp_path: Path) -> None:
    """As Arrow's datasets do: macOS' ``._x.csv``, Spark's ``_temporary``, ``.hidden``."""
    (tmp_path / "a.csv").write_text(f"{HEADER}\n1,1,a\n")
    (tmp_path / "._a.csv").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (tmp_path / "_temporary").mkdir()
    (tmp_path / "_temporary" / "b.csv").write_text(f"{HEADER}\n2,2,b\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.csv").write_text(f"{HEADER}\n3,3,c\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.csv").write_text(f"{HEADER}\n4,4,d\n")
    got = [r["t"] for t, _, _ in read_batches(tmp_path, 10, COLUMNS) for r in t.to_pylist()]
    assert got == ["1", "4"]


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv"
)
def test_a_folder_that_cannot_be_listed_is_an_error(request: pytest.FixtureRequest) -> None:
    """``Path.rglob`` skipped it without a word, and its events were missing from the run.
    (Root reads any folder, so the reader runs as nobody.)"""
    folder = Path(tempfile.mkdtemp(prefix="unlistable-"))  # pytest's own is root's alone
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    (folder / "locked").mkdir(parents=True)
    (folder / "a.csv").write_text(f"{HEADER}\n1,1,a\n")
    (folder / "locked" / "b.csv").write_text(f"{HEADER}\n2,2,b\n")
    folder.chmod(0o755)
    (folder / "locked").chmod(0o000)
    script = (
        "from gpu_engine.io.sources import read_batches\n"
        f"list(read_batches({str(folder)!r}, 10, ['t']))\n"
    )
    run = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-c", script],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    (folder / "locked").chmod(0o755)
    assert run.returncode != 0
    assert f"InputError: {folder / 'locked'}: cannot list this folder" in run.stderr


def test_durations_past_two_to_the_61_ms_are_refused() -> None:
    """A 1e20-day size raised OverflowError in the operator; 1e11 days (8.6e18 ms) ran and
    emitted nothing, past the watermark's sentinels at ±2^62."""
    make_config({"type": "tumbling", "size": 2**61})  # the widest allowed
    for size in (2**61 + 1, "100000000000d", "100000000000000000000d"):
        with pytest.raises(ConfigError, match=r"beyond 2\^61 ms"):
            make_config({"type": "tumbling", "size": size})
    with pytest.raises(ConfigError, match="less than or equal to 2147483647"):
        make_config({"type": "tumbling", "size": 10}, batching={"max_rows": 2**31})


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff \n"])
def test_an_empty_csv_holds_no_rows(tmp_path: Path, text: str) -> None:
    """As an empty JSON-lines file does; it was an error ("Empty CSV file")."""
    path = tmp_path / "empty.csv"
    path.write_text(text)
    assert _rows(path) == []


def test_a_where_with_an_empty_list_is_refused() -> None:
    """It matches no row, so its count was 0 in every window without a word."""
    agg = {"name": "n", "op": "count", "where": {"e": []}}
    with pytest.raises(ConfigError, match=r"where.e: an empty list matches no row"):
        make_config({"type": "tumbling", "size": 10, "aggregations": [agg]})


def test_a_json_object_or_array_as_a_value_makes_its_row_unreadable(tmp_path: Path) -> None:
    """Where Arrow cannot read the file (types mixed across lines), such a value was read
    as its JSON text, and a string field took it as valid."""
    path = tmp_path / "nested.jsonl"
    path.write_text(
        '{"t": 1, "k": 1, "s": "a"}\n{"t": 2, "k": 2, "s": {"name": "b"}}\n'
        '{"t": 3, "k": [3, 4], "s": "c"}\n{"t": 4, "k": "5", "s": "d"}\n'
    )
    reasons = [r[LINE_ERROR] for r in _rows(path)]
    assert reasons == [
        None,
        """column 's' holds a JSON object, not a value: '{"name": "b"}'""",
        "column 'k' holds a JSON array, not a value: '[3, 4]'",
        None,
    ]


def test_the_open_quote_scan_agrees_with_pythons_csv_module() -> None:
    """On random text of quotes, delimiters, line breaks and letters: a file ends inside
    a quoted value exactly when Python's strict reader says "unexpected end of data"
    (texts it refuses for another reason, a quote after a closing one, are skipped)."""
    rng = np.random.default_rng(5)
    compared = 0
    for _ in range(3000):
        text = "".join(rng.choice(list('ab,"\n\r'), size=int(rng.integers(0, 30))))
        try:
            list(csv.reader(io.StringIO(text, newline=""), strict=True))
            expected = False
        except csv.Error as error:
            if "unexpected end of data" not in str(error):
                continue
            expected = True
        data = np.frombuffer(text.encode(), np.uint8)
        opened = int(open_quote_at_end(data, ord(","), ord('"')))
        assert (opened >= 0) == expected, repr(text)
        assert opened < 0 or text[opened] == '"'
        compared += 1
    assert compared > 1500


def test_json_nested_past_the_readers_depth_is_a_bad_line_or_a_named_refusal(
    tmp_path: Path,
) -> None:
    """``json.loads`` raises RecursionError past about a thousand levels: it escaped as a
    raw traceback, with no summary of the file's rows."""
    deep = "[" * 100_000 + "]" * 100_000
    lines = tmp_path / "deep.jsonl"
    lines.write_text(f'{{"t": 1, "k": 2}}\n{deep}\n{{"t": 3, "k": {deep}}}\n{{"t": 4, "k": 5}}\n')
    rows = _rows(lines)
    assert [row["t"] for row in rows] == ["1", None, None, "4"]
    assert [str(row[LINE_ERROR])[:40] for row in rows[1:3]] == [
        "line 2 nests deeper than the reader foll",
        "line 3 nests deeper than the reader foll",
    ]
    # Nested just under the parser's depth: parsed, but its JSON text could not be
    # written for the reason (a RecursionError at 988-990 levels in a review). Which
    # depth does that depends on the stack in use, so a range of them is read.
    near = tmp_path / "near.jsonl"
    for depth in range(940, 1000, 2):
        nested = "[" * depth + "]" * depth
        near.write_text(f'{{"t": 1, "k": 2}}\n{{"t": 3, "k": {nested}}}\n{{"t": 4, "k": 5}}\n')
        rows = _rows(near)
        assert len(rows) == 3 and (rows[0]["t"], rows[2]["t"]) == ("1", "4")
        reason = str(rows[1][LINE_ERROR])  # too deep to parse, or to show: unreadable
        assert "nests deeper than the reader follows" in reason or "holds a JSON" in reason
    array = tmp_path / "deep.json"
    array.write_text(f'[{{"t": 1}}, {deep}]')
    with pytest.raises(InputError, match=r"deep\.json: its JSON nests deeper than the reader"):
        _rows(array)


@pytest.mark.parametrize("text", [b"t,k,s", b"t,k,s  ", b"\xef\xbb\xbft,k,s"])
def test_a_csv_of_a_header_with_no_line_break_has_no_rows(tmp_path: Path, text: bytes) -> None:
    """Arrow cannot tell its columns ("Empty CSV file or block"): the run failed, where
    the same header with a line break after it reads as no rows."""
    path = tmp_path / "header.csv"
    path.write_bytes(text)
    assert _rows(path) == []
    path.write_bytes(text.replace(b",", b";"))  # the header check still runs
    with pytest.raises(InputError, match="names none of the schema's fields"):
        _rows(path)


def test_a_header_that_is_not_utf8_in_a_file_read_through_latin1_is_named(
    tmp_path: Path,
) -> None:
    """A ragged line that is not UTF-8 has the file read again through Latin-1; a header
    name that is not UTF-8 then crashed in Arrow (no such column in include_columns)."""
    path = tmp_path / "bad.csv"
    path.write_bytes(b"t,k,s\xff\n1,2,a\n3,\xff4\n")
    with pytest.raises(InputError, match=r"bad\.csv: its header line is not UTF-8 text"):
        _rows(path)


def test_reading_a_faulty_csv_from_threads_keeps_other_unraisable_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrow's reports for such a line are silenced during the read; swapping the hook in
    and out per read lost it under threads (another thread's swap left it muted)."""
    import threading

    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))
    path = tmp_path / "faulty.csv"
    path.write_bytes(b"t,k,s\n" + b"1,2,a\n" * 2000 + b"3,\xff4\n" + b"5,6,b\n" * 2000)
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(len(_rows(path, 100))))
               for _ in range(4)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == [4001] * 4 and seen == []

    class Broken:
        def __del__(self) -> None:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "elsewhere")

    Broken()  # reported, outside any read
    assert [type(e) for e in seen] == [UnicodeDecodeError]


def test_values_nested_past_pythons_depth_are_quarantined_not_a_crash(tmp_path: Path) -> None:
    """Arrow reads JSON nested 960+ levels as lists: the quarantine's reason (its repr),
    then the dead-letter path (its str), raised RecursionError and the run crashed."""
    from gpu_engine.cli import main

    nested = "[" * 970 + "1" + "]" * 970
    path = tmp_path / "deep.jsonl"
    path.write_text("".join(f'{{"event_time": {1_700_000_000_000 + i}, "content_id": {nested}}}\n'
                            for i in range(3)))  # fmt: skip
    out = tmp_path / "out"
    assert main(["run", "--input", str(path), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"]["in"] == 3 == summary["events"]["quarantined"]
