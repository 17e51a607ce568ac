"""Device-only checks at sizes the simulator cannot reach (skipped without a real GPU)."""

from __future__ import annotations

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
