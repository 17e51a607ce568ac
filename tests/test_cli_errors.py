"""Bad command-line arguments and failed runs: a clear message and exit code 2.

Why: each case here used to end in a traceback, in a run that quietly did something
else than asked (negative counts, a fraction of 2), in stale results from an earlier
run, or in unreadable Parquet files after a failure part-way through.
"""

from __future__ import annotations

import json
import socket

import pyarrow.parquet as pq
import pytest

from gpu_engine.cli import main
from gpu_engine.generator import GeneratorSpec

RUN = ["run", "--no-progress", "--events", "3000"]


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``argv``, expect argparse's exit code 2, return its message."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--events", "10", "--content", "0"], "argument --content: '0' is below 1"),
        (["generate", "--events", "10", "--content", "-3"], "argument --content: '-3' is negative"),
        (["run", "--content", "0"], "argument --content: '0' is below 1"),
        (["generate", "--events", "-5"], "argument --events: '-5' is negative"),
        (["run", "--events", "-5"], "argument --events: '-5' is negative"),
        (["run", "--events", "0"], "argument --events: '0' is below 1"),
        (["generate", "--events", "infk"], "argument --events: 'infk' is not a count"),
        (["generate", "--bad-fraction", "2"], "--bad-fraction: '2' is not between 0 and 1"),
        (["run", "--bad-fraction", "-0.5"], "argument --bad-fraction: '-0.5' is not between"),
        (["run", "--bad-fraction", "nan"], "argument --bad-fraction: 'nan' is not between"),
        (["generate", "--seed", "-1"], "argument --seed: '-1' is negative"),
        (["generate", "--disorder=-2s"], "argument --disorder: '-2s' is negative"),
        (["generate", "--duration", "soon"], "argument --duration: 'soon' is not a duration"),
        (["run", "--metrics-port", "70000"], "argument --metrics-port: 70000 is not a port"),
        (["run", "--metrics-port", "-1"], "argument --metrics-port: -1 is not a port"),
        (["run", "--metrics-port", "http"], "argument --metrics-port: 'http' is not a port"),
    ],
)
def test_bad_argument_is_named(argv, message, capsys, tmp_path) -> None:
    out = tmp_path / ("x.parquet" if argv[0] == "generate" else "out")
    assert message in _usage_error([*argv, "--out", str(out)], capsys)
    assert not out.exists()


def test_generator_spec_refuses_what_it_cannot_sample() -> None:
    with pytest.raises(ValueError, match="n_content = 0 is below 1"):
        GeneratorSpec(n_content=0)
    with pytest.raises(ValueError, match="bad_fraction = nan is not between 0 and 1"):
        GeneratorSpec(bad_fraction=float("nan"))


def test_generate_zero_events_writes_an_empty_file(tmp_path) -> None:
    out = tmp_path / "none.parquet"
    assert main(["generate", "--events", "0", "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 0


def test_metrics_port_in_use_is_named(tmp_path, capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main([*RUN, "--metrics-port", str(port), "--out", str(tmp_path / "o")])
    assert code == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in (
        capsys.readouterr().err.replace("\n", "")
    )


def test_metrics_port_zero_picks_a_free_port(tmp_path, capsys) -> None:
    assert main([*RUN, "--metrics-port", "0", "--out", str(tmp_path / "o")]) == 0
    assert "metrics at http://127.0.0.1:" in capsys.readouterr().err


def test_out_that_is_a_file_is_refused(tmp_path, capsys) -> None:
    target = tmp_path / "events.parquet"
    target.write_bytes(b"not a folder")
    assert main([*RUN, "--out", str(target)]) == 2
    assert f"--out {target}: is a file, not a folder" in capsys.readouterr().err
    assert target.read_bytes() == b"not a folder"


@pytest.mark.parametrize("given", ["missing.parquet", "events.txt", "empty-folder"])
def test_a_bad_input_path_is_refused_before_out_is_touched(tmp_path, capsys, given) -> None:
    """With --overwrite, a mistyped --input removed the earlier results and then failed;
    without it, it left a failed summary.json that refused the next, right run."""
    out = tmp_path / "d"
    assert main([*RUN, "--bad-fraction", "0.02", "--out", str(out)]) == 0
    before = sorted(p.name for p in out.iterdir())
    (tmp_path / "events.txt").write_text("t\n1\n")
    (tmp_path / "empty-folder").mkdir()
    for extra in ([], ["--overwrite"]):
        argv = ["run", "--no-progress", "--input", str(tmp_path / given), "--out", str(out)]
        assert main([*argv, *extra]) == 2
        assert str(tmp_path / given) in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == before
        assert json.loads((out / "summary.json").read_text())["events"]["in"] == 3000
    fresh = tmp_path / "fresh"
    argv = ["run", "--no-progress", "--input", str(tmp_path / given), "--out", str(fresh)]
    assert main(argv) == 2
    assert not fresh.exists()


def test_earlier_results_are_kept_unless_overwrite(tmp_path, capsys) -> None:
    out = tmp_path / "d"
    assert main([*RUN, "--bad-fraction", "0.02", "--out", str(out)]) == 0
    stale = pq.read_table(out / "quarantine").num_rows
    assert stale > 0
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()

    assert main([*RUN, "--bad-fraction", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert f"--out {out}: holds the results of an earlier run (summary.json, windows" in err
    assert "--overwrite" in err
    assert pq.read_table(out / "quarantine").num_rows == stale  # untouched

    assert main([*RUN, "--bad-fraction", "0", "--out", str(out), "--overwrite"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"]["quarantined"] == 0
    assert not (out / "quarantine").exists()
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files go


def test_alerts_list_of_a_missing_folder_says_so(tmp_path, capsys) -> None:
    missing = tmp_path / "nope"
    assert main(["alerts", "list", "--out", str(missing)]) == 2
    assert f"--out {missing} does not exist" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("")
    for action in (["list"], ["ack", "Some-0000"]):
        assert main(["alerts", *action, "--out", str(afile)]) == 2
        assert f"--out {afile} is not a folder" in capsys.readouterr().err


CONFIG = """
schema:
  time: event_time
  fields:
    event_time: {type: int64, required: true}
    content_id: {type: int64, required: true, min: 0}
    watch_ms:   {type: float32, min: 0}
validation: {mode: strict, on_error: ON_ERROR}
batching: {max_rows: 2048}
windows:
  - {name: content, type: tumbling, size: 10s, keys: [content_id],
     aggregations: [{name: views, op: count}]}
  - {name: sessions, type: session, gap: 5s, keys: [content_id],
     aggregations: [{name: views, op: count}]}
"""


@pytest.mark.parametrize("failure", ["unreadable file", "invalid row, on_error: fail"])
def test_run_failing_part_way_leaves_readable_results(failure, tmp_path, capsys) -> None:
    """The second of two input files stops the run after the first was processed."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    first = GeneratorSpec(events=10_000, duration_ms=60_000, disorder_ms=0)
    assert main(["generate", "--events", "10000", "--duration", "1m", "--disorder", "0",
                 "--out", str(inputs / "a.parquet")]) == 0  # fmt: skip
    if failure == "unreadable file":
        (inputs / "b.parquet").write_bytes((inputs / "a.parquet").read_bytes()[:1000])
    else:
        assert main(["generate", "--events", "3000", "--bad-fraction", "0.5", "--seed", "1",
                     "--out", str(inputs / "b.parquet")]) == 0  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace("ON_ERROR", "quarantine" if "file" in failure else "fail"))
    out = tmp_path / "out"
    capsys.readouterr()

    code = main(["run", "--no-progress", "--config", str(config), "--input", str(inputs),
                 "--out", str(out)])  # fmt: skip

    assert code == 2
    err = capsys.readouterr().err
    errors = [x for x in err.splitlines() if x.startswith("gpu-engine run:")]
    assert len(errors) == 1 and "b.parquet" in errors[0]  # one line, naming the file
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] is True and "b.parquet" in summary["error"]
    events = summary["events"]
    done = events["valid"] + events["quarantined"] + events["late"] + events["dead_lettered"]
    # What was processed, not every event read (the failing batch was not).
    note = " ".join(err.split())
    assert f"{done:,} of the {events['in']:,} events read were processed before it" in note
    assert (f"the other {events['in'] - done:,}" in note) == (events["in"] > done)
    assert events["in"] >= first.events
    assert events["valid"] + events["buffered"] + events["quarantined"] >= first.events
    parts = sorted(out.rglob("*.parquet"))
    assert any("windows" in p.parts for p in parts)
    for part in parts:  # every file has its footer
        pq.read_table(part)
    assert pq.read_table(out / "windows" / "content").num_rows > 0


def test_a_refused_out_does_not_report_an_earlier_failed_run(tmp_path, capsys) -> None:
    """--out holding an earlier run's failed summary: refused, naming --overwrite only."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"failed": True, "events": {"in": 7}}))
    assert main([*RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "events read before it" not in err
