"""``benchmarks.launch_cost`` checks that the launch paths and array ways it compares do
the same thing before it prints their figures.

No device is needed (it stubs the driver), but it patches Numba, so each run is a process
of its own; the simulator has neither Numba's launch path nor its device arrays, so these
run in the PTX process. Each break below is of our side only, as a regression would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("launch_cost times Numba's real launch path", allow_module_level=True)
cuda = pytest.importorskip("numba.cuda")
try:
    import kernels.cuda.launcher  # noqa: F401
except ImportError as exc:  # a numba-cuda older than the launcher (see kernels.cuda._core)
    pytest.skip(f"no kernels.cuda.launcher with this numba-cuda: {exc}", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
LAUNCHES = ["--kernels", "3", "--repeat", "5", "--fresh", "5"]


@pytest.fixture
def nvvm() -> None:
    """The launch timings compile every kernel for sm_90, as the PTX tests do."""
    try:
        cuda.compile_ptx(lambda a: None, "void(float64[::1])", cc=(9, 0))
    except Exception as exc:  # no NVVM: nothing compiles, as in test_ptx_compile
        pytest.skip(f"NVVM is unavailable ({type(exc).__name__})")


def _main(args: list[str], breaking: str = "") -> tuple[int, list[str]]:
    """``launch_cost.main(args)`` in a fresh process after the code ``breaking``."""
    run = f"from benchmarks import launch_cost\nprint('status', launch_cost.main({args!r}))"
    script = f"{breaking}\n{run}\n"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    *lines, status = done.stdout.splitlines()
    return int(status.removeprefix("status ")), lines


@pytest.mark.usefixtures("nvvm")
def test_the_launch_figures_come_after_the_paths_launched_alike() -> None:
    status, lines = _main(LAUNCHES)
    assert status == 0
    assert lines[-2:] == [
        "checked: both paths handed the driver the same launches, every argument set",
        "LAUNCH_COST PASS",
    ]
    assert lines[-3].startswith("all 3 kernels, median µs a launch: Numba ")


# The prepared path's array parameters read one item past the array's start.
_SHIFTED_ARRAYS = """
from kernels.cuda import launcher
real = launcher.array_params
def shifted(array):
    dtype, ndim, c_layout, params = real(array)
    return dtype, ndim, c_layout, (*params[:4], params[4] + array.dtype.itemsize, *params[5:])
launcher.array_params = shifted
"""


@pytest.mark.usefixtures("nvvm")
def test_launches_that_differ_fail_the_benchmark_without_its_figures() -> None:
    status, lines = _main(LAUNCHES, breaking=_SHIFTED_ARRAYS)
    assert status == 1
    assert lines[-1] == "LAUNCH_COST FAIL"
    mismatches = lines[:-1]
    assert mismatches and all(line.startswith("MISMATCH kernel ") for line in mismatches)
    # every argument set of every kernel (each has arrays): the known one, the untouched
    # one and the five new ones
    assert len(mismatches) == 3 * 7
    assert "µs" not in "\n".join(lines)


def test_the_array_figures_come_after_each_way_gave_what_numbas_gives() -> None:
    status, lines = _main(["--arrays", "--repeat", "20"])
    assert status == 0
    assert lines[-2:] == [
        "checked: each of our ways gives what the Numba way before it gives",
        "LAUNCH_COST PASS",
    ]
    assert sum(" µs  ours: " in line for line in lines) == 7


# Our span one item short, our copy none.
_WRONG_WAYS = """
from kernels.cuda import _core
span = _core.span
_core.span = lambda array, start, stop: span(array, start, stop - 1)
_core.copy = lambda dst, src, stream=0: None
"""


def test_array_ways_that_differ_fail_the_benchmark_without_its_figures() -> None:
    status, lines = _main(["--arrays", "--repeat", "20"], breaking=_WRONG_WAYS)
    assert status == 1
    assert lines[-1] == "LAUNCH_COST FAIL"
    ways = [line.split("'")[1] for line in lines[:-1]]
    assert ways == ["ours: span(a, 0, 1000)", "ours: span(a, 500, 1500)",
                    "ours: copy(a, b)", "ours: copy(a, h)"]  # fmt: skip
    assert all(line.startswith("MISMATCH 'ours: ") for line in lines[:-1])
