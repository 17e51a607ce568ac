"""Device arrays pushed in a dict (CuPy, Numba, torch CUDA tensors) give the results of the
same columns pushed as numpy arrays (they are copied to the host once, at the edge)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from cuda_target import CUDA_WARNINGS, SIMULATOR, real_device, require_cuda_target

require_cuda_target()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the core suite's helpers

from engine_testing import window_frame  # noqa: E402
from numba import cuda  # noqa: E402

from gpu_engine.backend.device_frame import DeviceColumn  # noqa: E402
from gpu_engine.config import parse_config  # noqa: E402
from gpu_engine.engine import Engine  # noqa: E402
from gpu_engine.io.sinks import MemorySink  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

FIELDS = {
    "t": {"type": "int64", "required": True},
    "k": {"type": "int64", "required": True},
    "x": {"type": "float64"},
}
WINDOW = {"type": "tumbling", "size": 1000, "keys": ["k"]}
AGGS = [{"name": "n", "op": "count"}, {"name": "x_sum", "op": "sum", "column": "x"}]


def _columns(n: int = 300) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    x = rng.normal(10.0, 3.0, n)
    x[::37] = -1.0  # valid (no minimum); and a NaN row for the quarantine
    x[5] = np.nan
    return {
        "t": np.sort(rng.integers(1_000_000, 1_005_000, n)).astype(np.int64),
        "k": rng.integers(0, 4, n).astype(np.int64),
        "x": x,
    }


def _run(columns: dict) -> tuple[pd.DataFrame, dict]:
    config = parse_config({
        "schema": {"time": "t", "fields": FIELDS},
        "windows": [{"name": "w", "aggregations": AGGS, **WINDOW}],
        "backend": "cpu",
        "workers": 1,
    })  # fmt: skip
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    engine.push(columns)
    summary = engine.close()
    return window_frame(sink).sort_values(["window_start", "k"]).reset_index(drop=True), summary


def test_numba_device_arrays_push_like_numpy() -> None:
    host = _columns()
    want, want_summary = _run(host)
    got, summary = _run({name: cuda.to_device(values) for name, values in host.items()})
    assert len(want) > 0 and want_summary["events"]["quarantined"] == 1
    pd.testing.assert_frame_equal(got, want)
    assert summary["events"] == want_summary["events"]


class CupyLike:
    """CuPy's contract at the edge: ``__cuda_array_interface__``, ``get()`` for a host
    copy, and no implicit conversion (``np.asarray`` raises, as it does for CuPy)."""

    def __init__(self, host: np.ndarray) -> None:
        self._host = host
        self.__cuda_array_interface__ = {"shape": host.shape, "typestr": host.dtype.str,
                                         "data": (0, False), "version": 3}  # fmt: skip

    def get(self) -> np.ndarray:
        return self._host.copy()

    def __array__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise TypeError("Implicit conversion to a NumPy array is not allowed")


def test_cupy_like_arrays_push_like_numpy() -> None:
    host = _columns()
    want, want_summary = _run(host)
    got, summary = _run({name: CupyLike(values) for name, values in host.items()})
    pd.testing.assert_frame_equal(got, want)
    assert summary["events"] == want_summary["events"]


@pytest.mark.gpu
@pytest.mark.skipif(SIMULATOR or not real_device(), reason="needs a real CUDA device")
def test_any_cuda_array_interface_pushes_like_numpy() -> None:
    """Objects that only expose ``__cuda_array_interface__`` (torch CUDA tensors do)."""

    class Exposed:
        def __init__(self, array) -> None:  # type: ignore[no-untyped-def]
            self._array = array
            self.__cuda_array_interface__ = array.__cuda_array_interface__

    host = _columns()
    want, _ = _run(host)
    got, _ = _run({name: Exposed(cuda.to_device(values)) for name, values in host.items()})
    pd.testing.assert_frame_equal(got, want)


def test_device_columns_with_null_flags_push_like_masked_numpy() -> None:
    """``DeviceColumn(values, is_null)`` (README's Embedding section) is read by the CPU
    backend too: copied to the host with its nulls, as the CUDA backend reads it."""
    host = _columns()
    is_null = np.arange(len(host["x"])) % 5 == 0
    want, want_summary = _run({**host, "x": pa.array(host["x"], mask=is_null)})
    pushed: dict = {"t": cuda.to_device(host["t"])}
    pushed["k"] = DeviceColumn(cuda.to_device(host["k"]))  # no flags: no nulls
    pushed["x"] = DeviceColumn(cuda.to_device(host["x"]), cuda.to_device(is_null.view(np.uint8)))
    got, summary = _run(pushed)
    assert want_summary["events"]["quarantined"] > 0  # the null x rows: x is not nullable
    pd.testing.assert_frame_equal(got, want)
    assert summary["events"] == want_summary["events"]
