"""Backend selection: one place, clear reasons."""

from __future__ import annotations

import pytest

from gpu_engine.backend import CPU, cuda_unavailable_reason, select_backend
from gpu_engine.errors import BackendUnavailableError


def test_cpu_and_auto_run_on_the_cpu_here() -> None:
    assert select_backend("cpu") is CPU
    assert select_backend("auto") is CPU


def test_cuda_without_a_usable_device_says_why() -> None:
    with pytest.raises(BackendUnavailableError, match=r"backend 'cuda' cannot run here: .+"):
        select_backend("cuda")
    reason = cuda_unavailable_reason()
    if reason is not None:  # on this machine: no driver / device
        assert "CUDA" in reason or "CuPy" in reason


def test_unknown_backend() -> None:
    with pytest.raises(BackendUnavailableError, match="unknown backend 'tpu'"):
        select_backend("tpu")
