"""Outputs that cannot be written: the run says which file failed and how many rows each
output lacks, leaves no unreadable part and no half-written summary, and exits 2.

Why: after one failed write the Parquet sink dropped every later table while the summary
counted them as processed (5 quarantined, 0 on disk); a part left without its footer made
the whole folder unreadable; a full disk left a 0-byte summary.json; a failure in the
monitor's last write ended the CLI with a traceback and exit 1; Ctrl-C left an empty error.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from engine_testing import make_config, random_events

import gpu_engine.commands.run as run_command
import gpu_engine.io.sinks as sinks
from gpu_engine.cli import main
from gpu_engine.engine import Engine
from gpu_engine.io.sinks import CallbackSink, MemorySink, ParquetSink

WINDOW = {"type": "tumbling", "size": 2000, "keys": ["k"], "allowed_lateness": 500}
RUN = ["run", "--no-progress", "--events", "3000"]


def _events() -> pd.DataFrame:
    frame = random_events(np.random.default_rng(5), 600, span_ms=12_000, disorder_ms=3000)
    frame.loc[::25, "e"] = 9  # quarantined rows
    return frame


def _rows_on_disk(out: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in sorted(out.rglob("part-*.parquet")):
        output = part.parent.relative_to(out).as_posix()
        found[output] = found.get(output, 0) + pq.read_table(part).num_rows  # every part reads
    return found


def _rows_given(memory: MemorySink) -> dict[str, int]:
    return {name: sum(t.num_rows for t in tables) for name, tables in memory.tables.items()}


def _run_failing(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, fail: str) -> tuple[Any, Any]:
    """Push batches through a Parquet sink (and a memory sink, the oracle of what was
    handed on) whose ``fail`` ("write": the first quarantine write; "close": finishing the
    first window part) raises ENOSPC; returns the output folder and the error raised."""
    if fail == "write":
        write = sinks._PartWriter.write

        def failing_write(self: Any, table: Any) -> None:
            if self.folder.name == "quarantine" and not getattr(failing_write, "done", False):
                failing_write.done = True  # type: ignore[attr-defined]
                raise OSError(28, "No space left on device")
            write(self, table)

        monkeypatch.setattr(sinks._PartWriter, "write", failing_write)
    else:
        close = pq.ParquetWriter.close

        def failing_close(self: Any) -> None:
            close(self)
            if "windows" in str(self.where) and not getattr(failing_close, "done", False):
                failing_close.done = True  # type: ignore[attr-defined]
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(pq.ParquetWriter, "close", failing_close)
    out, memory = tmp_path / "out", MemorySink()
    engine = Engine(
        make_config(WINDOW, batching={"max_rows": 50}), sinks=[memory, ParquetSink(out)]
    )
    frame = _events()
    errors = []  # the push whose batch met the failure (or close) raises it
    for start in range(0, len(frame), 50):
        try:
            engine.push(frame.iloc[start : start + 50])
        except OSError as error:
            errors.append(error)
    with pytest.raises(OSError) as raised:
        engine.close()
    return out, memory, (errors or [raised.value])[0]


@pytest.mark.parametrize("fail", ["write", "close"])
def test_what_a_failed_sink_did_not_write_is_counted_per_output(tmp_path, monkeypatch, fail):
    out, memory, error = _run_failing(tmp_path, monkeypatch, fail)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] is True
    folder = "quarantine" if fail == "write" else "windows/w"
    assert f"{out / folder}/part-00000.parquet failed" in str(error)  # names the file
    given, on_disk = _rows_given(memory), _rows_on_disk(out)  # every part on disk is readable
    missing = {name: rows - on_disk.get(name, 0) for name, rows in given.items()}
    assert summary["unwritten"] == {name: rows for name, rows in missing.items() if rows}
    assert summary["unwritten"][folder] > 0
    events = summary["events"]
    assert given["quarantine"] == events["quarantined"]  # counted what was handed on


def test_a_summary_that_cannot_be_written_leaves_no_empty_file(tmp_path, monkeypatch) -> None:
    write_text = type(tmp_path).write_text

    def full_disk(self: Any, *args: Any, **kwargs: Any) -> int:
        if self.name.startswith("summary.json"):
            write_text(self, "{")  # a part of it, then the disk is full
            raise OSError(28, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "write_text", full_disk)
    engine = Engine(make_config(WINDOW), sinks=[ParquetSink(tmp_path)])
    engine.push(_events())
    with pytest.raises(OSError, match=f"{tmp_path / 'summary.json'} failed: .*No space left"):
        engine.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == []


def test_a_run_whose_monitor_cannot_write_exits_2_without_a_traceback(
    tmp_path, monkeypatch, capsys
) -> None:
    def full_disk(self: Any) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "out" / "metrics"))

    monkeypatch.setattr(run_command.EngineMonitoring, "stop", full_disk)
    assert main([*RUN, "--out", str(tmp_path / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "gpu-engine run: [Errno 28] No space left on device" in err and "metrics" in err
    assert "Traceback" not in err


def test_a_killed_runs_logs_are_not_mixed_with_the_next_runs(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "alerts.jsonl").write_text('{"event": "monitor_started", "time_s": 1.0}\n')
    assert main([*RUN, "--out", str(out)]) == 2
    assert "earlier run (alerts.jsonl)" in " ".join(capsys.readouterr().err.split())
    assert main([*RUN, "--out", str(out), "--overwrite"]) == 0
    started = (out / "alerts.jsonl").read_text().count("monitor_started")
    assert started == 1


def test_an_interrupted_run_says_so_and_exits_130(tmp_path, monkeypatch, capsys) -> None:
    real = run_command.run_pipeline

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        def progress(n: int) -> None:
            raise KeyboardInterrupt

        return real(*args, **{**kwargs, "progress": progress})

    monkeypatch.setattr(run_command, "run_pipeline", interrupted)
    out = tmp_path / "out"
    assert main(["run", "--no-progress", "--events", "200000", "--out", str(out)]) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert "gpu-engine run: interrupted" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] is True and summary["error"] == "KeyboardInterrupt"
    events = summary["events"]
    done = events["valid"] + events["quarantined"] + events["late"] + events["dead_lettered"]
    assert f"{done:,} of the {events['in']:,} events read were processed before it" in err


def test_a_batch_whose_outputs_were_handed_on_counts_as_processed() -> None:
    """A sink raising an interrupt on the windows of a batch whose late rows it already
    has: the batch is counted processed (valid and late), not buffered."""

    def interrupt(name: str, table: Any) -> None:
        raise KeyboardInterrupt

    config = make_config({"type": "tumbling", "size": 1000, "keys": ["k"]},
                         batching={"max_rows": 3})  # fmt: skip
    memory = MemorySink()
    engine = Engine(config, sinks=[memory, CallbackSink(interrupt)])
    first = pd.DataFrame({"t": [5000, 5001, 5002], "k": [1, 1, 1], "e": [1, 1, 1]})
    engine.push(first)
    with pytest.raises(KeyboardInterrupt):
        engine.push(first.assign(t=[100, 5500, 7000]))
    events = memory.summary["events"]
    late = memory.result("late/w").num_rows
    in_windows = sum(memory.result("windows/w").column("n").to_pylist())
    assert (late, in_windows) == (1, 4)
    assert events["late"] == late and events["valid"] == 5 and events["buffered"] == 0
    assert events["in"] == 6 == events["valid"] + events["late"]


def test_the_abort_error_of_an_interrupt_is_its_name() -> None:
    engine = Engine(make_config(WINDOW), sinks=[MemorySink()])
    assert engine.abort(KeyboardInterrupt())["error"] == "KeyboardInterrupt"
