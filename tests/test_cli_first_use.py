"""What a new user meets first (a review that walked the README as one): a synthetic
stream that matches the config, files of another stream refused by name, options that
would do nothing refused, a run that never started leaving nothing behind, default
folders of their own, and ``generate`` keeping an existing file."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import gpu_engine.commands.run as run_command
from gpu_engine.cli import main

NEXMARK = str(Path(run_command.__file__).parents[1] / "examples" / "nexmark_bids.yaml")


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().err.split())


def test_the_synthetic_stream_is_the_configs(tmp_path, capsys) -> None:
    """The Nexmark example run on synthetic data made short-video events: every one was
    quarantined for its missing columns, and the run exited 0."""
    out = tmp_path / "o"
    assert main(["run", "--no-progress", "--config", NEXMARK, "--events", "3000",
                 "--bad-fraction", "0", "--out", str(out)]) == 0  # fmt: skip
    events = json.loads((out / "summary.json").read_text())["events"]
    assert events["quarantined"] == 0 and events["valid"] + events["late"] == 3000


def test_a_stream_without_the_configs_time_field_is_refused(tmp_path, capsys) -> None:
    argv = ["run", "--no-progress", "--config", NEXMARK, "--kind", "short-video",
            "--events", "3000", "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 2
    assert "--kind short-video makes event_time" in (err := _err(capsys))
    assert "without the config's time field 'date_time'; leave --kind out" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".json"])
def test_a_file_of_another_stream_is_refused_by_name(tmp_path, capsys, suffix) -> None:
    """It said "the pushed frame has 65536 rows but no columns" (a CSV named its header)."""
    path = tmp_path / f"bids{suffix}"
    table = pa.table({"auction": [1, 2], "price": [3, 4]})
    if suffix == ".parquet":
        pq.write_table(table, path)
    else:
        rows = [json.dumps(r) for r in table.to_pylist()]
        path.write_text("[" + ",".join(rows) + "]" if suffix == ".json" else "\n".join(rows))
    assert main(["run", "--no-progress", "--input", str(path), "--out", str(tmp_path / "o")]) == 2
    err = _err(capsys)
    assert f"{path}: its" in err and "name none of the schema's fields (event_time" in err


def test_generator_options_with_input_are_refused(tmp_path, capsys) -> None:
    path = tmp_path / "ev.parquet"
    assert main(["generate", "--events", "200", "--out", str(path)]) == 0
    argv = ["run", "--no-progress", "--input", str(path), "--out", str(tmp_path / "o")]
    assert main([*argv, "--events", "10", "--bad-fraction", "0.5"]) == 2
    assert "--events, --bad-fraction shape synthetic events; with --input they do nothing" in (
        _err(capsys)
    )
    assert main(argv) == 0


def test_a_run_that_never_started_can_be_run_again(tmp_path, capsys) -> None:
    """A busy metrics port (or no device for --backend cuda) stopped the run after the
    monitor had written its log: the same command, retried, was refused as an earlier run."""
    out = tmp_path / "o"
    argv = ["run", "--no-progress", "--events", "2000", "--out", str(out)]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main([*argv, "--metrics-port", str(busy.getsockname()[1])]) == 2
    assert sorted(p.name for p in out.iterdir()) == []
    assert main(argv) == 0


def test_runs_without_out_get_folders_of_their_own(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    now = 1_800_000_000.0
    first, second = run_command.new_out_folder(now), run_command.new_out_folder(now)
    assert first != second and second.name == f"{first.name}-2"
    assert first.is_dir() and second.is_dir()


def test_the_results_line_names_what_was_written(tmp_path, capsys) -> None:
    out = tmp_path / "o"
    assert main(["run", "--no-progress", "--events", "2000", "--bad-fraction", "0",
                 "--out", str(out)]) == 0  # fmt: skip
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("results in"))
    assert "quarantine/" not in line and "windows/" in line and "summary.json" in line


def test_generate_keeps_an_existing_file_and_refuses_a_folder(tmp_path, capsys) -> None:
    path = tmp_path / "ev.parquet"
    assert main(["generate", "--events", "300", "--out", str(path)]) == 0
    assert main(["generate", "--events", "10", "--out", str(path)]) == 2
    assert f"--out {path}: exists; pass --overwrite" in _err(capsys)
    assert pq.read_metadata(path).num_rows == 300
    assert main(["generate", "--events", "10", "--out", str(path), "--overwrite"]) == 0
    assert pq.read_metadata(path).num_rows == 10
    assert main(["generate", "--events", "10", "--out", str(tmp_path)]) == 2
    assert "is a folder" in _err(capsys)


def test_json_lines_keep_integer_ids_integers(tmp_path) -> None:
    """Integer columns with nulls (the bad rows) were written as floats: 32199.0."""
    path = tmp_path / "ev.jsonl"
    assert main(["generate", "--events", "3000", "--bad-fraction", "0.05", "--out",
                 str(path)]) == 0  # fmt: skip
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    ids = [r["content_id"] for r in rows]
    assert None in ids and all(isinstance(v, int) for v in ids if v is not None)
    assert os.path.getsize(path) > 0


def test_a_refused_command_leaves_an_earlier_runs_files_alone(tmp_path, capsys) -> None:
    """With --overwrite, a command refused after --out was checked (a bad rules file, a
    --kind the config cannot use) removed a killed run's logs as its own."""
    out = tmp_path / "o"
    (out / "metrics").mkdir(parents=True)
    (out / "alerts.jsonl").write_text('{"event": "monitor_started", "time_s": 1}\n')
    (out / "metrics" / "samples-00000.parquet").write_bytes(b"x")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [{name: R, kind: threshold, expr: 'no_such_metric > 1'}]\n")
    argv = ["run", "--no-progress", "--events", "2000", "--out", str(out), "--overwrite"]
    assert main([*argv, "--monitor-config", str(rules)]) == 2
    assert main([*argv, "--config", NEXMARK, "--kind", "short-video"]) == 2
    assert (out / "alerts.jsonl").exists() and (out / "metrics" / "samples-00000.parquet").exists()


def test_a_run_that_started_keeps_its_files_though_its_summary_failed(
    tmp_path, capsys, monkeypatch
) -> None:
    """Whether a run started is whether its engine was made, not which files exist: one
    whose failed summary could not be written (a full disk) lost its logs and folder."""
    from gpu_engine.io.sinks import ParquetSink

    close = ParquetSink.close

    def full_disk(self, summary):  # type: ignore[no-untyped-def]
        if summary.get("failed"):
            raise OSError(28, "No space left on device")
        close(self, summary)

    monkeypatch.setattr(ParquetSink, "close", full_disk)
    folder = tmp_path / "in"
    folder.mkdir()
    assert main(["generate", "--events", "500", "--out", str(folder / "a.parquet")]) == 0
    pq.write_table(pa.table({"x": [1]}), folder / "b.parquet")  # another stream's file
    out = tmp_path / "o"
    assert main(["run", "--no-progress", "--input", str(folder), "--out", str(out)]) == 2
    assert (out / "alerts.jsonl").exists()


def test_a_json_file_of_another_stream_read_as_text_is_refused(tmp_path, capsys) -> None:
    """Arrow cannot type ``x`` (a number, then text): the file is read row by row, whose
    table always has the unreadable-row column, and the refusal was skipped."""
    path = tmp_path / "other.jsonl"
    path.write_text('{"x": 1}\n{"x": "a"}\n')
    assert main(["run", "--no-progress", "--input", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "its objects name none of the schema's fields" in _err(capsys)


@pytest.mark.parametrize(
    "option", [["--seed", "0"], ["--disorder", "2s"], ["--kind", "short-video"]]
)
def test_generator_options_with_input_are_refused_at_their_defaults_too(
    tmp_path, capsys, option
) -> None:
    path = tmp_path / "ev.parquet"
    assert main(["generate", "--events", "200", "--out", str(path)]) == 0
    argv = ["run", "--no-progress", "--input", str(path), "--out", str(tmp_path / "o"), *option]
    assert main(argv) == 2
    assert f"{option[0]} shape synthetic events" in _err(capsys)


def test_a_mistyped_option_is_named_by_its_commands_parser(capsys) -> None:
    """``run --confg`` got the top level's usage (``gpu-engine [-h] COMMAND``)."""
    with pytest.raises(SystemExit) as raised:
        main(["run", "--confg", "x.yaml"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "usage: gpu-engine run" in err
    assert (
        "gpu-engine run: error: unrecognized arguments: --confg x.yaml (did you mean --config?)"
        in (" ".join(err.split()))
    )


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["run", "--gpu"], "gpu-engine run: error: unrecognized arguments: --gpu"),
        (["--bogus", "run"], "gpu-engine: error: unrecognized arguments: --bogus"),
        (["alerts", "--bogus", "list"], "gpu-engine alerts: error: unrecognized arguments"),
    ],
)
def test_no_far_fetched_hint_and_the_parser_the_option_came_to(argv, said, capsys) -> None:
    """``run --gpu`` was asked whether it meant --input (the shared dashes made them
    close), and an option before the command was blamed on the command."""
    with pytest.raises(SystemExit):
        main(argv)
    err = " ".join(capsys.readouterr().err.split())
    assert said in err and "did you mean" not in err
