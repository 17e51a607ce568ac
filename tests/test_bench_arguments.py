"""The benchmarks' command lines: named as they are run, edge arguments refused up front.

Each benchmark runs as ``python -m benchmarks.NAME``: its usage says so (argparse named
most of them after the file, ``push.py``), and no docstring tells to run a file in
``benchmarks/`` (there ``benchmarks/gpu_engine.py`` hides the ``gpu_engine`` package).
Arguments that left nothing to measure ended in a traceback (or printed ``inf``); argparse
refuses them now, with status 2 and a line naming the argument.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import atomics, monitor_overhead, monitor_soak, ncu_summary, push, stages, windows

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# Every benchmark with a command line (benchmarks.optimizer names itself too; it loads
# torch, seconds of import for this).
COMMANDS = ["atomics", "gpu_engine", "gpu_kernels", "kernel_resources", "launch_cost",
            "launches", "monitor_overhead", "monitor_soak", "ncu_summary", "pipeline",
            "preflight", "push", "stages", "windows"]  # fmt: skip


@pytest.mark.parametrize("name", COMMANDS)
def test_the_usage_names_the_command_that_runs_it(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m benchmarks.{name} ")


def test_no_docstring_runs_a_benchmark_as_a_file() -> None:
    """``stages`` said ``PYTHONPATH=../old python benchmarks/stages.py engine``, which fails
    before it starts; and the A/B it meant needs the other checkout first on sys.path."""
    for path in BENCHMARKS.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"python3? +(\./)?benchmarks/\w+\.py", text), path.name
    doc = stages.__doc__ or ""
    assert "cd ../old && python -m benchmarks.stages engine" in doc
    assert "PYTHONPATH=../old python -P -m benchmarks.stages engine" in doc


def _refused(
    capsys: pytest.CaptureFixture[str],
    main: Callable[[list[str]], int],
    args: list[str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_monitor_overhead_needs_a_tick_past_the_warm_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--ticks 5`` skipped all five as warm-up, then took the mean of none
    (StatisticsError)."""
    _refused(capsys, monitor_overhead.main, ["--ticks", "5"], "argument --ticks: '5' is below 6")
    assert monitor_overhead.main(["--ticks", "6"]) in (0, 1)  # the goal's verdict
    assert "--ticks 6" in capsys.readouterr().out


def test_monitor_soak_reports_every_tick_or_more(capsys: pytest.CaptureFixture[str]) -> None:
    """``--every 0`` divided by zero after the first tick."""
    _refused(capsys, monitor_soak.main, ["--ticks", "10", "--every", "0"],
             "argument --every: '0' is below 1")  # fmt: skip
    assert monitor_soak.main(["--ticks", "4", "--every", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4  # heading, columns, 2 reports


@pytest.mark.parametrize(
    ("main", "args", "message"),
    [
        # StatisticsError: the median of no runs
        (windows.main, ["--repeat", "0"], "argument --repeat: '0' is below 1"),
        # ArrowInvalid: no events to push
        (push.main, ["--events", "0"], "argument --events: '0' is below 1"),
        # printed "wall inf s, CPU inf s", exit 0
        (stages.main, ["engine", "--events", "2k", "--repeat", "0"],
         "argument --repeat: '0' is below 1"),
        (atomics.main, ["--events", "0"], "argument --events: '0' is below 1"),
    ],
    ids=["windows", "push", "stages", "atomics"],
)  # fmt: skip
def test_nothing_to_measure_is_refused(
    capsys: pytest.CaptureFixture[str],
    main: Callable[[list[str]], int],
    args: list[str],
    message: str,
) -> None:
    _refused(capsys, main, args, message)


def test_ncu_summary_of_a_missing_csv_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """It raised FileNotFoundError (gpu_check.sh calls it on a CSV that ncu may not have
    written)."""
    _refused(capsys, ncu_summary.main, ["/nonexistent.csv"],
             "cannot read /nonexistent.csv: No such file or directory")  # fmt: skip


def test_atomics_takes_counts_like_the_other_benchmarks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--events 100k`` was refused (type=int) where the others take 100k and 10M."""
    assert atomics.main(["--events", "2k"]) == 0
    assert capsys.readouterr().out.startswith("2,000 events")
