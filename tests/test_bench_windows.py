"""``benchmarks.windows``: results compared whoever runs, and a crashed contender reported."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from benchmarks import windows

EVENTS = 2_000


def test_without_the_engine_the_first_contender_is_the_reference(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--only polars duckdb`` compares DuckDB with Polars (it compared nothing, then
    said "all results equal"): a wrong DuckDB answer fails the run."""
    measured = windows.measure

    def wrong_duckdb(name: str, path: Path, repeat: int) -> dict[str, Any]:
        info = measured(name, path, repeat)
        if name == "duckdb":
            info["result"].loc[0, "views"] += 1
        return info

    args = ["--events", str(EVENTS), "--repeat", "1", "--only", "polars", "duckdb"]
    assert windows.main(args) == 0
    assert "all results equal (duckdb checked against polars)" in capsys.readouterr().out
    monkeypatch.setattr(windows, "measure", wrong_duckdb)
    with pytest.raises(AssertionError, match="duckdb: views differs"):
        windows.main(args)


def test_a_single_contender_says_nothing_was_compared(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = windows.run_pandas(windows.pq.read_table(windows.dataset(EVENTS, 0)))
    fake = {"times": [1.0], "read_s": 0.1, "peak_bytes": 2**20, "result": frame}
    monkeypatch.setattr(windows, "measure", lambda name, path, repeat: dict(fake))
    assert windows.main(["--events", str(EVENTS), "--only", "pandas"]) == 0
    out = capsys.readouterr().out
    assert "all results equal" not in out
    assert "nothing compared" in out and f"rows out of pandas: {len(frame):,}" in out


def test_a_crashed_contender_raises_instead_of_hanging() -> None:
    """A child that dies before putting its result (here: an unknown contender, a
    KeyError in the child) is reported by name and exit code; it used to block forever
    in ``queue.get()``."""
    path = windows.dataset(EVENTS, 0)
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            windows.measure("no-such-contender", path, 1)
        except BaseException as error:  # handed to the test thread
            outcome.append(error)
        else:
            outcome.append(None)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "measure() still waiting on a dead contender after 60 s"
    (error,) = outcome
    assert isinstance(error, RuntimeError)
    assert "'no-such-contender' exited with code 1 without a result" in str(error)
