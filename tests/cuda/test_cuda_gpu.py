"""Device-only checks at sizes the simulator cannot reach (skipped without a real GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, real_device

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not real_device(), reason="needs a real CUDA device"),
    *CUDA_WARNINGS,
]


def test_pipeline_matches_cpu_on_200k_events() -> None:
    from benchmarks.gpu_kernels import GpuPipeline, compare, cpu_run, load_events, to_device

    events = load_events(200_000)
    cpu = cpu_run(events)
    pipe = GpuPipeline(events=1024, groups=1024)  # small: every table grows on the way
    reason, field = pipe.run(to_device(events))
    assert compare(cpu, pipe.result(reason, field)) == []
    assert np.count_nonzero(cpu.reason) > 0


def test_hash_index_under_contention() -> None:
    from kernels.cuda._core import to_host
    from kernels.cuda.hashindex import DeviceHashIndex
    from kernels.hashindex import HashIndex

    rng = np.random.default_rng(0)
    # Zipf-skewed keys: many threads race to claim the same few slots.
    keys = np.c_[rng.zipf(1.3, 2_000_000) % 50_000, rng.integers(0, 3, 2_000_000)]
    keys = keys.astype(np.int64)
    gpu = DeviceHashIndex(2, capacity=1024)
    ids = to_host(gpu.insert(keys))
    cpu = HashIndex.from_keys(keys)
    assert len(gpu) == len(cpu)
    np.testing.assert_array_equal(to_host(gpu.keys)[ids], keys)
    assert len(np.unique(ids)) == len(cpu)


def test_prepared_kernels_match_numbas_launch() -> None:
    """The fast launch path (kernels.cuda.launcher) on a card: the same kernels, launched
    both ways on the same inputs, give the same outputs, including the fallback for a
    CuPy-style foreign array."""
    from kernels.cuda._core import as_device, full, kernel, launch, to_host
    from kernels.cuda.launcher import PreparedKernel

    def numba_kernel(name: str, dtype: str) -> object:
        found = kernel(name, dtype)
        return getattr(found, "dispatcher", found)  # unwraps a PreparedKernel

    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 100.0, 100_000)
    values[::97] = np.nan
    is_null = (rng.random(100_000) < 0.01).astype(np.uint8)
    allowed = np.empty(0, np.float64)
    outputs = []
    for launcher in (lambda k: k, PreparedKernel):
        check = launcher(numba_kernel("validate.check_numeric", "float64"))
        reason, field = full(len(values), 0, np.int8), full(len(values), -1, np.int16)
        found = full(1, 0, np.int64)
        blocks, threads = launch(len(values))
        no_casts = as_device(np.empty(0, np.uint8))
        check[blocks, threads](as_device(values), as_device(is_null), no_casts, np.int64(2),
                               False, False, True, -50.0, 80.0, as_device(allowed), reason,
                               field, found)  # fmt: skip
        outputs.append((to_host(reason), to_host(field), to_host(found)))
    for got, want in zip(outputs[1], outputs[0], strict=True):
        np.testing.assert_array_equal(got, want)
    assert outputs[0][2][0] > 0

    fill = PreparedKernel(numba_kernel("fill", "float64"))
    out = full(1000, 0.0, np.float64)
    fill[4, 256](out, 2.5)
    np.testing.assert_array_equal(to_host(out), np.full(1000, 2.5))
    foreign = pytest.importorskip("cupy").zeros(1000)
    fill[4, 256](foreign, 1.5)  # not a Numba array: Numba's own path
    np.testing.assert_array_equal(foreign.get(), np.full(1000, 1.5))


@pytest.mark.parametrize("tables", [True, False], ids=["tables", "no-tables"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_block_tables_under_contention(
    dtype: str, tables: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocks' shared tables of rows with real parallel threads: 2M events, half of
    them on one row (every thread of a tile racing for its slot), a fifth on rows that all
    hash to one table slot (probes run out, so events add globally beside their row's tile
    totals), the rest spread; both plans, against the CPU kernels."""
    from agg_cases import NARROW, PLAN, update_both

    from kernels.cuda import aggregate as gpu

    monkeypatch.setattr(gpu, "BLOCK_TABLES", tables)
    rng = np.random.default_rng(21)
    n = 2_000_000
    pick = rng.random(n)
    colliding = gpu.TILE_SLOTS * rng.integers(1, 40, n)
    ids = np.where(pick < 0.5, 5, np.where(pick < 0.7, colliding, rng.integers(0, 100_000, n)))
    ids[rng.random(n) < 0.02] = -1
    for plan in (NARROW, PLAN):
        update_both(ids.astype(np.int64), plan, dtype, rng, rtol=1e-7)


_CACHED_RUN = """
import numpy as np
from kernels.cuda import _core, validate
values = np.arange(-50.0, 50.0)
reason, field = _core.full(100, 0, np.int8), _core.full(100, -1, np.int16)
failed = validate.check_numeric(values, np.empty(0, np.uint8), np.empty(0, np.uint8), 2, False,
                                False, True, 0.0, 1e9, np.empty(0), reason, field)
compiled = _core._COMPILED["validate.check_numeric", "float64"]
stats = getattr(compiled, "dispatcher", compiled).stats
print(failed, int((_core.to_host(field) == 2).sum()), sum(stats.cache_hits.values()),
      sum(stats.cache_misses.values()))
"""


def test_a_new_process_loads_its_kernels_from_the_disk_cache(tmp_path: Path) -> None:
    """The first process compiles the validation kernel into an empty cache; the second
    loads it from there (a hit, no miss) and computes the same."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path),
           "TIKTOKTOE_CUDA_KERNEL_CACHE": "1"}  # fmt: skip
    command = [sys.executable, "-c", _CACHED_RUN]
    runs = [
        subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, env=env)
        for _ in range(2)
    ]
    for done in runs:
        assert done.returncode == 0, done.stderr[-2000:]
    first, second = (done.stdout.split() for done in runs)
    assert first == ["50", "50", "0", "1"]  # the 50 negative values fail field 2
    assert second == ["50", "50", "1", "0"]
    assert any(tmp_path.rglob("*.nbi")) and any(tmp_path.rglob("*.nbc"))


def test_the_occupancy_calculator_agrees_with_the_driver(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The calculator of ``benchmarks.kernel_resources`` against the driver's
    ``cuOccupancyMaxActiveBlocksPerMultiprocessor``, on kernels of 28 to 56 registers
    with and without shared memory (on an sm_90 card; elsewhere its limits are named)."""
    from benchmarks.kernel_resources import main

    code = main(["--device", "--only", "fill", "agg.update", "hash.claim", "win.expand"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "KERNEL_RESOURCES PASS" in out


@pytest.mark.parametrize("background", [False, True])
def test_pushes_from_many_threads_with_a_background_poller_match_the_cpu(
    background: bool,
) -> None:
    """Kernels launched from the pushers' threads and the poller's, one at a time (the
    simulator cannot launch from several threads), or from the engine's own thread with
    ``background=True``: the CUDA backend's windows equal the CPU backend's over the same
    rows."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the core suite's helpers
    from engine_testing import (
        ALL_AGGS,
        assert_frames_match,
        make_config,
        push_from_threads,
        run_engine,
        window_frame,
    )

    from gpu_engine.engine import Engine
    from gpu_engine.io.sinks import MemorySink

    window = {"type": "tumbling", "size": 1000, "keys": ["k"], "allowed_lateness": 3_600_000,
              "aggregations": ALL_AGGS}  # fmt: skip
    batching = {"max_rows": 256, "max_delay": 1}
    sink = MemorySink()
    engine = Engine(make_config(window, batching=batching, backend="cuda"), sinks=[sink],
                    poll_every=0.001, background=background)  # fmt: skip
    frame = push_from_threads(engine, threads=4, pushes=100)
    summary = engine.close()
    assert summary["accounted"] and summary["events"]["valid"] == len(frame)
    cpu, _ = run_engine(make_config(window, batching=batching), frame)
    names = ["window_start", "window_end", "k", *(agg["name"] for agg in ALL_AGGS)]
    assert_frames_match(window_frame(sink), window_frame(cpu), names)
