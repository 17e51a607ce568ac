"""The GPU benchmarks without a device, and their defaults and verdicts on the simulator.

Without a device (and the simulator off) they stop before any work with one line and
exit status 2: they used to run their CPU part first, then end in the driver's traceback
(``preflight``: 39 lines of it inside a MISMATCH line). Under the simulator their defaults
are a smoke test's, and ``gpu_kernels`` judges no goal there, nor when its results differ.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from benchmarks import device_timing, gpu_engine, gpu_kernels, launches, preflight
from benchmarks.windows import COLUMNS, engine_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as one with no CUDA device or driver, and the simulator off."""
    monkeypatch.setattr(device_timing, "SIMULATOR", False)
    monkeypatch.setattr(device_timing.cuda, "is_available", lambda: False)


def _refused(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    out, err = capsys.readouterr()
    assert out == ""  # nothing run, nothing printed
    assert err.splitlines() == [
        f"python -m benchmarks.{prog} needs a CUDA device, and there is no CUDA device or "
        "driver here (numba.cuda.is_available() is False); NUMBA_ENABLE_CUDASIM=1 runs it "
        "on Numba's simulator"
    ]


@pytest.mark.usefixtures("no_device")
@pytest.mark.parametrize(
    ("module", "args"),
    [
        (gpu_engine, ["--events", "1000", "--full-events", "1000", "--repeat", "1",
                      "--large-batch", "0", "--cpu-workers", "1"]),
        (gpu_kernels, ["--events", "1000"]),
        (gpu_kernels, ["--events", "100k"]),  # a count, as the other benchmarks take
        (launches, ["--events", "2048", "--batch", "1024"]),
        (launches, ["--costs"]),
    ],
)  # fmt: skip
def test_without_a_device_a_gpu_benchmark_says_so_before_any_work(
    capsys: pytest.CaptureFixture[str], module: Any, args: list[str]
) -> None:
    """``gpu_engine`` ran its CPU engines, then raised BackendUnavailableError; the others
    raised CudaSupportError (or the same) with a traceback."""
    assert module.main(args) == 2
    _refused(capsys, module.__name__.split(".")[-1])


@pytest.mark.usefixtures("no_device")
def test_without_a_device_preflight_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """It printed the driver's traceback inside a MISMATCH line; gpu_check.sh only reads
    its exit status (nonzero: try the next setting), which stays nonzero."""
    assert preflight.main([]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "no CUDA device or driver here (numba.cuda.is_available() is False): no kernel to check",
        "PREFLIGHT FAIL",
    ]
    assert err == ""


@pytest.mark.usefixtures("no_device")
def test_preflight_main_reads_no_command_line_of_its_callers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``main()`` parsed ``sys.argv``: under ``pytest tests/cuda -m ...`` (gpu_check.sh's
    tests step, on the card) pytest's, so the simulator suite's ``preflight.main()`` ended
    in "unrecognized arguments" (SystemExit 2) before checking anything."""
    monkeypatch.setattr(sys, "argv", ["pytest", "tests/cuda", "-m", "gpu or cudasim", "-q"])
    assert preflight.main() == 2  # returned: no device here, not refused arguments
    assert capsys.readouterr().out.splitlines()[-1] == "PREFLIGHT FAIL"


def _has_device() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or device_timing.no_device() is None


@pytest.mark.skipif(_has_device(), reason="here a device (or the simulator) runs it")
def test_python_m_gpu_kernels_without_a_device_exits_2_in_one_line() -> None:
    """As run: ``--events 100k`` taken (it was refused: type=int), then one line, no
    traceback."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_kernels", "--events", "100k"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert "gpu_kernels needs a CUDA device" in done.stderr


def _on_simulator(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` in a fresh process under the simulator (chosen before numba loads)."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


# Prints the options a benchmark's main() parses with no arguments, then stops it.
_DEFAULTS = """
import argparse, json, sys
parse = argparse.ArgumentParser.parse_args
def defaults(self, *args, **kwargs):
    print(json.dumps(vars(parse(self, *args, **kwargs))))
    sys.exit(0)
argparse.ArgumentParser.parse_args = defaults
from benchmarks import {module}
{module}.main([])
"""


def _simulator_defaults(module: str) -> dict[str, int]:
    done = _on_simulator(_DEFAULTS.format(module=module))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_gpu_engine_keeps_to_tiny_inputs_on_the_simulator() -> None:
    """Its docstring promised a smoke test there, and it kept 10M and 1M events over 10
    minutes: a run of the full config on 1,000 of them took over 2 minutes."""
    got = _simulator_defaults("gpu_engine")
    assert got["events"] <= 2_000 and got["full_events"] <= 1_000
    assert got["repeat"] == 1 and got["large_batch"] == 0
    assert got["duration_ms"] <= 20_000


def test_launches_keeps_to_one_small_batch_a_workload_on_the_simulator() -> None:
    """``NUMBA_ENABLE_CUDASIM=1 python -m benchmarks.launches`` (as the README gives it) ran
    for minutes: 2,048 events in batches of 1,024 took 3.5; one batch of 256 events over
    2 s a workload takes about 30 s of CPU."""
    got = _simulator_defaults("launches")
    assert got["events"] <= 256 and got["batch"] >= got["events"]
    assert got["duration_ms"] <= 2_000


# gpu_kernels on 100 events, data on the device only: on the simulator as it is, then as
# if on a card (the simulator's flag off) with a result that differs from the CPU's.
_VERDICTS = """
from benchmarks import gpu_kernels as g
args = ["--events", "100", "--device-only"]
print("status", g.main(args))
print("-- as on a card, results differing")
g.SIMULATOR = False
g.cuda.get_current_device = lambda: type("Card", (), {"name": "a card"})()
g.settle = lambda: None  # a card's deferred frees: none on the simulator
g.compare = lambda cpu, gpu: ["validation: a made-up difference"]
print("status", g.main(args))
"""


def test_gpu_kernels_judges_no_goal_on_the_simulator_nor_when_results_differ() -> None:
    """It printed ``goal MISSED`` under the simulator (then PASS, exit 0), and MET or
    MISSED before ``GPU_KERNELS FAIL``: a wrong answer met or missed nothing."""
    done = _on_simulator(_VERDICTS)
    assert done.returncode == 0, done.stderr
    simulated, differing = done.stdout.split("-- as on a card, results differing")
    for out in (simulated, differing):
        assert "goal MET" not in out and "goal MISSED" not in out
    goals = [line for line in simulated.splitlines() if line.startswith("goal ")]
    assert len(goals) == 3
    assert goals[1].startswith("goal not measured (--device-only)")
    for line in goals[0], goals[2]:
        assert line.startswith("goal not judged (the simulator's times are not a card's)")
    assert "GPU_KERNELS PASS\nstatus 0" in simulated
    goals = [line for line in differing.splitlines() if line.startswith("goal ")]
    assert [line.split(")")[0] for line in goals] == [
        "goal not judged (the results differ from the CPU's: GPU_KERNELS FAIL",
        "goal not measured (--device-only",
        "goal not judged (the results differ from the CPU's: GPU_KERNELS FAIL",
    ]
    assert "GPU_KERNELS FAIL\nstatus 1" in differing


def test_the_large_allocation_is_described_at_its_size() -> None:
    """Its comment said 480 MB for 1 << 25 int64s: 256 MiB, as the figure's label says."""
    source = (ROOT / "benchmarks" / "launches.py").read_text()
    (function,) = (node for node in ast.walk(ast.parse(source))
                   if getattr(node, "name", None) == "allocate_large")  # fmt: skip
    lines = source.splitlines()[function.lineno - 1 : function.end_lineno]
    assert "_core.empty(1 << 25, np.int64)" in lines[-1]
    assert (1 << 25) * 8 == 256 * 2**20
    assert "256 MiB" in lines[0] and "480 MB" not in lines[0]
    assert "allocation of 256 MiB" in source


def _spoilt_if(spoil: Callable[[int], bool], real: Callable[..., tuple]) -> Callable[..., tuple]:
    """``gpu_engine.run`` whose calls (counted from 0) that ``spoil`` names come out 1,000 s
    slower, so never the fastest, with one count of their first output 1 more (its last
    integer column, which keys and window bounds come before, in its first row)."""
    calls = itertools.count()

    def run(config: Any, data: Any) -> tuple:
        seconds, outputs, summary = real(config, data)
        if not spoil(next(calls)):
            return seconds, outputs, summary
        kind = sorted(outputs)[0]
        frame = outputs[kind].copy()
        column = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])][-1]
        frame.loc[0, column] += 1
        return seconds + 1_000.0, {**outputs, kind: frame}, summary

    return run


def test_every_run_of_a_best_of_is_checked_not_only_the_fastest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``best`` returned the fastest run alone, so a run that differed but was slower than
    another passed unseen (on a card the float sums differ from run to run)."""
    table = gpu_engine.events(2_000, 20_000).select(COLUMNS)
    config = gpu_engine.configured(engine_config(1), "cpu", 1)
    reference = gpu_engine.run(config, table)
    # Calls: the warm-up, then three timed runs, the second of them spoilt.
    monkeypatch.setattr(gpu_engine, "run", _spoilt_if(lambda call: call == 2, gpu_engine.run))
    result = gpu_engine.best(config, table, 3)
    assert result[0] < 1_000.0  # the time quoted is the fastest run's
    assert len(result[3]) == 3
    assert gpu_engine.check("cpu", result, reference) == ["cpu run 2 of 3 windows/w: likes differs"]
    assert gpu_engine.check("cpu", result, result) == ["cpu run 2 of 3 windows/w: likes differs"]
    monkeypatch.undo()
    assert gpu_engine.check("cpu", gpu_engine.best(config, table, 2), reference) == []


@pytest.mark.parametrize("spoilt", [False, True])
def test_the_benchmark_fails_when_any_run_of_any_engine_differs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], spoilt: bool
) -> None:
    """``main`` with the CPU engine standing in for the CUDA one (no device needed): with
    ``--repeat 2`` every best-of makes three runs (a warm-up, two timed); the second timed
    run of each, spoilt and slowest, must fail the benchmark, whichever engine made it."""
    real = gpu_engine.configured
    monkeypatch.setattr(gpu_engine, "SIMULATOR", False)  # as on a card: two CUDA worker counts
    monkeypatch.setattr(gpu_engine, "device_missing", lambda prog: False)
    monkeypatch.setattr(gpu_engine, "on_device", lambda table: table)
    monkeypatch.setattr(gpu_engine, "configured",
                        lambda *a: real(*a).model_copy(update={"backend": "cpu"}))  # fmt: skip
    spoil = (lambda call: call % 3 == 2) if spoilt else (lambda call: False)
    monkeypatch.setattr(gpu_engine, "run", _spoilt_if(spoil, gpu_engine.run))
    args = ["--events", "2000", "--full-events", "1000", "--duration-ms", "20000",
            "--repeat", "2", "--cpu-workers", "1", "2", "--large-batch", "512"]  # fmt: skip
    status = gpu_engine.main(args)
    lines = capsys.readouterr().out.splitlines()
    if not spoilt:
        assert status == 0 and lines[-1] == "GPU_ENGINE PASS"
        assert not [line for line in lines if line.startswith("MISMATCH")]
        return
    assert status == 1 and lines[-1] == "GPU_ENGINE FAIL"
    failed = {line.split(" run 2 of 2 ")[0] for line in lines if line.startswith("MISMATCH")}
    cpu = failed & {"MISMATCH full cpu-1w", "MISMATCH full cpu-2w"}  # the faster count
    assert len(cpu) == 1
    workers = next(iter(cpu)).split("-")[-1]
    assert failed == {
        "MISMATCH sliding cpu-1w",
        "MISMATCH sliding cpu-2w",
        "MISMATCH sliding cuda-1w",
        "MISMATCH sliding cuda-1w host-prepared",
        "MISMATCH sliding cuda-1w device columns",
        f"MISMATCH sliding cpu-{workers} batches of 512",
        "MISMATCH sliding cuda-1w batches of 512",
        f"MISMATCH full cpu-{workers}",
        "MISMATCH full cuda-1w",
        "MISMATCH full cuda-2w",
        f"MISMATCH full cpu-{workers} batches of 512",
        "MISMATCH full cuda-1w batches of 512",
    }
