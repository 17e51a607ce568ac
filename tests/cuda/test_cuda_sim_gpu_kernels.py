"""The kernels benchmark's repeated runs with the data on the device, on the simulator.

A card times them; here they are checked for what they report: one time per run, each
run compared with the CPU (a difference in a later run is named by its run), the goals'
figure taken from the runs after the first, and ``--device-only`` reaching its verdict
without the runs from host memory. Also the overlapped runs from host memory, one a chunk
size.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from benchmarks.gpu_kernels import (  # noqa: E402
    DeviceRuns,
    cpu_run,
    device_runs,
    load_events,
    main,
    to_device,
)

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]


def test_every_run_is_timed_and_checked() -> None:
    events = load_events(300)
    cpu = cpu_run(events)
    runs = device_runs(cpu, to_device(events), groups=64, repeat=2)
    assert len(runs.seconds) == 2 and all(t > 0 for t in runs.seconds)
    assert runs.problems == []
    assert runs.sketch_rows >= len(cpu.entries) and runs.sketch_slots >= 2 * len(cpu.entries)


def test_a_difference_is_reported_for_each_run() -> None:
    events = load_events(300)
    cpu = cpu_run(events)
    wrong = dataclasses.replace(cpu, reason=np.roll(cpu.reason, 1))
    assert np.any(wrong.reason != cpu.reason)
    problems = device_runs(wrong, to_device(events), groups=64, repeat=2).problems
    assert [p.split(":")[0] for p in problems] == ["validation", "run 2"]


def test_the_goals_take_the_median_of_the_runs_after_the_first() -> None:
    runs = DeviceRuns([9.0, 1.0, 3.0, 2.0], [], 0, 0)
    assert runs.warm == [1.0, 3.0, 2.0] and runs.typical == 2.0
    assert "first 9000.00 ms, best 1000.00 ms" in runs.line(10)
    single = DeviceRuns([4.0], [], 0, 0)
    assert single.typical == 4.0 and "one run" in single.line(10)


def test_device_only_skips_the_host_memory_goal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--events", "400", "--device-only", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "goal not measured (--device-only) end to end" in out
    assert "from pinned host" not in out and "floors" not in out
    assert "median of runs 2..2" in out and out.rstrip().endswith("GPU_KERNELS PASS")


def test_each_chunk_size_is_a_run_of_its_own() -> None:
    """The overlapped runs from pinned memory, one a ``--chunk-rows`` size, each checked
    against the CPU: a difference names the run's chunk size."""
    from benchmarks.gpu_kernels import host_memory_runs

    events = load_events(300)
    cpu = cpu_run(events)
    problems: list[str] = []
    share = host_memory_runs(events, cpu, 64, [100, 300], 1 << 16, problems)
    assert problems == [] and share > 0
    wrong = dataclasses.replace(cpu, reason=np.roll(cpu.reason, 1))
    host_memory_runs(events, wrong, 64, [100, 300], 1 << 16, problems)
    assert [p.split(":")[0] for p in problems] == ["overlapped run in chunks of 100",
                                                   "overlapped run in chunks of 300"]  # fmt: skip


def test_profile_only_makes_one_checked_run(capsys: pytest.CaptureFixture[str]) -> None:
    """``--profile-only`` (for ncu): one run, checked, and nothing after it."""
    assert main(["--events", "300", "--profile-only"]) == 0
    out = capsys.readouterr().out
    assert "(one run) (simulator: not profiled)" in out
    assert "from pinned host" not in out and "by kernel" not in out and "goal" not in out
    assert out.rstrip().endswith("GPU_KERNELS PASS")
