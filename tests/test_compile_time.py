"""A run's summary reports its compiling of kernels apart (``compile_s``): a machine's
first run compiles them, a later one loads them from the disk cache, and the first one's
throughput alone would understate the engine by an order of magnitude."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_testing import make_config, random_events
from rich.console import Console

from gpu_engine.commands.run import summary_table
from gpu_engine.engine import Engine
from gpu_engine.io.sinks import MemorySink
from kernels import compile_time
from kernels.compile_time import compile_seconds

FRESH = """
from numba import njit

@njit
def helper(x):
    return x * {k} + 1.0

@njit
def kernel(values):
    total = 0.0
    for v in values:
        total += helper(v)
    return total
"""


def _fresh_kernel(k: int) -> Any:
    """A kernel and its helper no process has compiled (their source is new)."""
    namespace: dict[str, Any] = {}
    exec(FRESH.format(k=k), namespace)  # our own source, made new for each test
    return namespace["kernel"]


def test_a_compile_counts_once_with_the_helpers_it_compiles() -> None:
    kernel = _fresh_kernel(int(time.time_ns() % 1_000_003))
    before = compile_seconds()
    started = time.perf_counter()
    kernel(np.arange(5.0))  # compiles kernel, and helper inside it (a nested event)
    wall = time.perf_counter() - started
    counted = compile_seconds() - before
    assert 0.3 * wall <= counted <= wall  # nested compiles not added twice
    before = compile_seconds()
    kernel(np.arange(5.0))  # compiled already
    assert compile_seconds() == before


def test_a_kernel_loaded_from_the_disk_cache_is_not_counted(tmp_path: Path) -> None:
    (tmp_path / "cached_probe.py").write_text(
        "from numba import njit\n\n\n@njit(cache=True)\ndef probe(x):\n    return x + 1\n"
    )
    code = ("from kernels.compile_time import compile_seconds; start = compile_seconds(); "
            "import cached_probe; cached_probe.probe(1); "
            "print(compile_seconds() - start)")  # fmt: skip
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}  # fmt: skip
    seconds = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        seconds.append(float(done.stdout.strip().splitlines()[-1]))
    assert seconds[0] > 0.0 and seconds[1] == 0.0


def test_the_summary_counts_what_compiles_during_the_run() -> None:
    """A listener compiles a fresh kernel during the first batch: the run's compile_s
    takes it in, within elapsed_s."""
    config = make_config({"type": "tumbling", "size": "2s", "keys": ["k"]})
    kernel = _fresh_kernel(int(time.time_ns() % 1_000_033))
    spent: list[float] = []

    def compile_in_a_batch(_report: object) -> None:
        if not spent:
            started = time.perf_counter()
            kernel(np.arange(3.0))
            spent.append(time.perf_counter() - started)

    engine = Engine(config, sinks=[MemorySink()], listeners=[compile_in_a_batch])
    engine.push(random_events(np.random.default_rng(1), 2_000))
    summary = engine.close()
    assert spent and 0.3 * spent[0] <= summary["compile_s"] <= summary["elapsed_s"]
    json.dumps(summary)  # summary.json takes it as it is


def _rendered(summary: dict[str, Any]) -> str:
    console = Console(width=100, record=True)
    console.print(summary_table(summary))
    return console.export_text()


def test_the_summary_table_shows_compiling_and_the_throughput_aside_from_it() -> None:
    summary = {
        "events": {"in": 500_000, "valid": 500_000, "quarantined": 0, "late": 0,
                   "dead_lettered": 0},
        "windows": {}, "throughput_events_per_s": 500_000 / 13.0, "elapsed_s": 13.0,
        "compile_s": 12.0, "latency_ms": {"p50": None}, "backend": "cpu", "accounted": True,
    }  # fmt: skip
    shown = _rendered(summary)
    assert "compiling kernels" in shown and "12.0 s of 13.0 s" in shown
    assert "throughput, compiling aside" in shown and "500,000 events/s" in shown
    warm = _rendered({**summary, "compile_s": 0.0})
    assert "compiling" not in warm


def test_a_compile_under_way_when_the_timer_started_is_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its end comes without a start (the listener is registered on import, perhaps
    while another thread compiles): ignored, and later compiles are timed as before."""
    monkeypatch.setattr(compile_time, "_TOTAL", [0.0])
    timer = compile_time._CompileTimer()
    timer.on_end(None)  # began before: no error, nothing added
    timer.on_start(None)
    timer.on_start(None)  # a helper compiled inside it
    time.sleep(0.02)
    timer.on_end(None)
    assert compile_time._TOTAL[0] == 0.0  # the outer compile is still going
    timer.on_end(None)
    assert 0.02 <= compile_time._TOTAL[0] < 1.0
