"""Bad files and arguments: a clear message naming the file, line or option, no traceback.

Why: each case here used to end in a traceback (a YAML file saved as Latin-1, a
damaged ``alerts.jsonl``, ``generate --content 10B``), in a message that named no file
(``run --config``), or in a run that quietly did something else than asked
(``optimize --iterations -5``, ``generate --duration`` past int64 writing INT64_MIN
event times).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpu_engine.cli import main
from gpu_engine.config.models import DEFAULT_MAX_EVENT_TIME_MS
from gpu_engine.generator import MAX_CONTENT, GeneratorSpec

PROBLEM = "arrival_rate: 1000\nbudget: 1\nsla: 50ms\nstages:\n  - {name: a, a: 0.001, c: 0.00001}\n"


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    """Run ``argv`` in-process; expect exit ``code`` (returned or argparse's), return stderr."""
    try:
        got: object = main(argv)
    except SystemExit as exc:
        got = exc.code
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    return err


# -- YAML files that are not UTF-8 -------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "what"),
    [
        (["run", "--no-progress", "--events", "10", "--config"], 2, "configuration"),
        (["optimize", "--problem"], 2, "problem file"),
        (["alerts", "check-rules"], 1, "monitor configuration"),  # check-rules: 1 = invalid
    ],
)
def test_yaml_that_is_not_utf8_names_the_file_and_byte(
    argv: list[str], code: int, what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"# settings\n# caf\xe9 (saved as Latin-1)\n")
    out = ["--out", str(tmp_path / "out")] if argv[0] == "run" else []
    err = _fails([*argv, str(path), *out], capsys, code)
    assert f"cannot read {what} {path}: byte 0xe9 on line 2 (offset 16) is not UTF-8" in err
    assert not (tmp_path / "out").exists()


# -- a damaged alerts.jsonl ----------------------------------------------------------------

STARTED = json.dumps({"event": "monitor_started", "time_s": 1.0})
GOOD = json.dumps({"event": "state", "alert_id": "Hot-1", "state": "firing", "severity": "critical",
                   "annotations": {"summary": "too hot"}})  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [
        b"42",  # valid JSON, not an object
        b'{"alert_id": "x", "state": null, "severity": "warning"}',
        b'{"alert_id": "x", "state": "firing", "annotations": "oops"}',
        b'{"alert_id": 7, "state": "firing"}',
        b"\xff\xfe",  # not UTF-8
        b'{"alert_id": "x", "st',  # torn, but not the last line
    ],
)
@pytest.mark.parametrize("action", ["list", "ack"])
def test_bad_alert_lines_are_skipped_and_named(
    bad: bytes, action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"\n".join([STARTED.encode(), bad, GOOD.encode(), b""]))
    argv = ["list", "--all"] if action == "list" else ["ack", "Hot-1"]
    assert main(["alerts", *argv, "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "Hot-1" in captured.out  # the good record after the bad line still counts
    assert (
        f"gpu-engine alerts {action}: warning: skipped 1 line that is not an alert record"
        f" (line 2) in {path}" in captured.err
    )


def test_a_torn_last_line_is_tolerated_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The engine may be writing the last line: cut mid-way through a 2-byte character."""
    torn = json.dumps({"alert_id": "Hot-2", "summary": "é"}, ensure_ascii=False).encode()
    (tmp_path / "alerts.jsonl").write_bytes(
        b"\n".join([STARTED.encode(), GOOD.encode(), torn[: torn.index(b"\xc3") + 1]])
    )
    assert main(["alerts", "list", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "Hot-1" in captured.out and "too hot" in captured.out
    assert captured.err == ""


@pytest.mark.parametrize("action", [["list"], ["ack", "Hot-1"]])
def test_alerts_file_that_is_a_folder_is_an_error(
    action: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "alerts.jsonl").mkdir()
    err = _fails(["alerts", *action, "--out", str(tmp_path)], capsys)
    assert f"cannot read {tmp_path / 'alerts.jsonl'}: Is a directory" in err
    assert not (tmp_path / "alerts_acks.jsonl").exists()


# -- optimize options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--iterations", "-5"], "argument --iterations: '-5' is below 1"),
        (["--iterations", "0"], "argument --iterations: '0' is below 1"),
        (["--max-workers", "0"], "argument --max-workers: '0' is below 1"),
        (["--max-workers", "5000"], "argument --max-workers: '5000' is above 4096"),
        (["--max-batch", "0"], "argument --max-batch: '0' is below 1"),
        (["--recent", "-1"], "argument --recent: '-1' is below 1"),
        (["--recent", "many"], "argument --recent: 'many' is not a whole number"),
    ],
)
def test_optimize_refuses_counts_out_of_range(
    option: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = tmp_path / "p.yaml"
    problem.write_text(PROBLEM)
    argv = ["optimize", "--problem", str(problem), "--iterations", "50", *option]
    assert message in _fails(argv, capsys)


# -- generate: sizes and spans ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--duration", "100000000000000d"],
         "argument --duration: '100000000000000d' is longer than 27,806d: a longer stream "
         "from 2023-11-14 22:13 UTC would end after 2100-01-01"),
        (["run", "--events", "1000", "--duration", "60000d"],
         "argument --duration: '60000d' is longer than"),
        (["generate", "--disorder", "1" + "0" * 400 + "d"], "is too long a duration"),
        (["generate", "--content", "10B"],
         f"argument --content: '10B' is above {MAX_CONTENT:,}, the most supported"),
        (["run", "--events", "1000", "--content", "10B"], "argument --content: '10B' is above"),
        (["generate", "--events", "1" + "0" * 400], "argument --events: '1000"),
    ],
)  # fmt: skip
def test_generator_sizes_are_bounded(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / ("x.parquet" if argv[0] == "generate" else "out")
    assert message in _fails([*argv, "--out", str(out)], capsys)
    assert not out.exists()


def test_longest_duration_keeps_event_times_in_bounds(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    assert main(["generate", "--events", "1000", "--duration", "27806d", "--out", str(out)]) == 0
    times = pq.read_table(out).column("event_time")
    assert pc.min(times).as_py() >= GeneratorSpec.start_ms
    assert pc.max(times).as_py() <= DEFAULT_MAX_EVENT_TIME_MS


def test_generator_spec_refuses_what_leaves_bounds_or_memory() -> None:
    with pytest.raises(ValueError, match=r"start_ms \+ duration_ms = .* is after"):
        GeneratorSpec(duration_ms=DEFAULT_MAX_EVENT_TIME_MS)
    with pytest.raises(ValueError, match="start_ms = -1 is before 0"):
        GeneratorSpec(start_ms=-1)
    with pytest.raises(ValueError, match="n_content = 10000000000 is above 100,000,000"):
        GeneratorSpec(n_content=10_000_000_000)
    with pytest.raises(ValueError, match="events = 9007199254740993 is above"):
        GeneratorSpec(events=2**53 + 1)  # float64 arrival positions lose whole events
