"""Device columns the CPU backend reads that the kernels cannot (float16, strided views,
null flags of bool or int32), and a device batch that cannot be validated: on backend
cuda they give the CPU's results, and the failed batch is dead-lettered with its values."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the core suite's helpers

from engine_testing import validation_failing_at, window_frame  # noqa: E402
from numba import cuda  # noqa: E402

from gpu_engine.backend.device_frame import DeviceColumn  # noqa: E402
from gpu_engine.config import parse_config  # noqa: E402
from gpu_engine.engine import Engine  # noqa: E402
from gpu_engine.io.sinks import MemorySink  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

FIELDS = {
    "t": {"type": "int64", "required": True},
    "k": {"type": "int64"},
    "x": {"type": "float32", "nullable": True},
}
AGGS = [
    {"name": "n", "op": "count"},
    {"name": "x_sum", "op": "sum", "column": "x"},
    {"name": "x_max", "op": "max", "column": "x"},
]


def _run(backend: str, parts: list[dict[str, Any]]) -> tuple[MemorySink, dict]:
    config = parse_config({
        "schema": {"time": "t", "fields": FIELDS},
        "windows": [{"name": "w", "type": "tumbling", "size": 1000, "keys": ["k"],
                     "aggregations": AGGS}],
        "backend": backend,
        "workers": 1,
        "batching": {"max_rows": 32},
    })  # fmt: skip
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    for part in parts:
        engine.push(part)
    return sink, engine.close()


def _host(n: int = 60, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "t": np.sort(rng.integers(1_000_000, 1_004_000, n)).astype(np.int64),
        "k": rng.integers(0, 3, n).astype(np.int64),
        "x": rng.normal(0.0, 10.0, n),
    }


def _same(parts_cpu: list[dict], parts_cuda: list[dict]) -> None:
    want_sink, want = _run("cpu", parts_cpu)
    got_sink, got = _run("cuda", parts_cuda)
    assert got["events"] == want["events"] and got["accounted"]
    keys = ["window_start", "k"]
    expected = window_frame(want_sink).sort_values(keys).reset_index(drop=True)
    assert len(expected) > 3
    actual = window_frame(got_sink).sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=1e-6)


def test_float16_device_columns_are_cast_as_on_the_cpu() -> None:
    """No device cast kernel takes float16 (torch.half): such a column is cast on the host
    (it raised an AttributeError from the dead-letter path before)."""
    host = _host()
    host["x"] = host["x"].astype(np.float16)
    _same([host], [{name: cuda.to_device(v) for name, v in host.items()}])


def test_strided_device_views_are_read_as_on_the_cpu() -> None:
    """Columns of a row-major device matrix (``matrix[:, i]``): the kernels read
    contiguous arrays, so these are copied to the host and read as the CPU reads them."""
    host = _host()
    matrix = np.stack([host["t"], host["k"], host["x"].astype(np.int64)], axis=1)
    device = cuda.to_device(matrix)
    parts_cuda = [{"t": device[:, 0], "k": device[:, 1], "x": device[:, 2]}]
    _same([{"t": matrix[:, 0], "k": matrix[:, 1], "x": matrix[:, 2]}], parts_cuda)


@pytest.mark.parametrize("flag_type", ["bool", "int32", "uint8"])
def test_null_flags_of_any_integer_or_bool_type(flag_type: str) -> None:
    """What CuPy's comparisons give (bool), or int32: as the CPU reads them (the device
    path refused them with Numba's 'incompatible dtype')."""
    host = _host(70, seed=1)
    is_null = np.random.default_rng(2).random(70) < 0.25
    flags = is_null.astype(flag_type)
    parts_cpu, parts_cuda = [], []
    for lo in range(0, 70, 25):  # pushes that are buffered and joined
        part = slice(lo, lo + 25)
        x = pa.array(host["x"][part], mask=is_null[part])
        parts_cpu.append({"t": host["t"][part], "k": host["k"][part], "x": x})
        parts_cuda.append({
            "t": cuda.to_device(host["t"][part]),
            "k": cuda.to_device(host["k"][part]),
            "x": DeviceColumn(cuda.to_device(host["x"][part]), cuda.to_device(flags[part])),
        })  # fmt: skip
    _same(parts_cpu, parts_cuda)


def test_a_device_batch_that_cannot_be_validated_is_dead_lettered_with_its_values() -> None:
    """The dead-letter path read the batch's rows as an Arrow table; a device batch has
    none, so the run broke with an AttributeError and the sink got nothing."""
    host = _host(20, seed=3)
    with validation_failing_at(1, "disk on fire"):
        sink, summary = _run("cuda", [{name: cuda.to_device(v) for name, v in host.items()}])
    assert summary["events"]["dead_lettered"] == 20 and summary["accounted"]
    dead = sink.result("dead_letter").to_pandas()
    assert dead["_row"].tolist() == list(range(20))
    assert dead["_error"].str.contains("disk on fire").all()
    assert dead["_values"].iloc[0] == str(
        {"t": int(host["t"][0]), "k": int(host["k"][0]), "x": float(host["x"][0])}
    )


def test_a_device_push_after_max_rows_was_lowered_below_the_buffered_rows() -> None:
    """80 host rows wait for a batch of 100; the size drops to 10 (a monitor action); a
    device push then joins them. The join sliced the device rows at ``max_rows`` minus the
    rows buffered, a negative count: frames of -70 and 100 rows over 30."""
    host = _host(110, seed=4)

    def run(backend: str, device: bool) -> tuple[MemorySink, dict]:
        config = parse_config({
            "schema": {"time": "t", "fields": FIELDS},
            "windows": [{"name": "w", "type": "tumbling", "size": 1000, "keys": ["k"],
                         "aggregations": AGGS}],
            "backend": backend, "workers": 1, "batching": {"max_rows": 100},
        })  # fmt: skip
        sink = MemorySink()
        engine = Engine(config, sinks=[sink])
        engine.push({name: v[:80] for name, v in host.items()})
        engine.set_batching(max_rows=10)
        rest = {name: v[80:] for name, v in host.items()}
        engine.push({name: cuda.to_device(v) for name, v in rest.items()} if device else rest)
        return sink, engine.close()

    want_sink, want = run("cpu", False)
    got_sink, got = run("cuda", True)
    assert got["events"] == want["events"] and got["events"]["valid"] == 110
    keys = ["window_start", "k"]
    pd.testing.assert_frame_equal(
        window_frame(got_sink).sort_values(keys).reset_index(drop=True),
        window_frame(want_sink).sort_values(keys).reset_index(drop=True),
        check_exact=False, rtol=1e-6,
    )  # fmt: skip


def test_a_staged_batch_is_waited_for_even_when_it_is_never_validated_on_the_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Host batches are staged (their copies queued) a batch ahead. One whose validation
    fails before the device reads it is dropped: the default stream must still wait for
    its copies, or the device pool hands its blocks out while the copies write them."""
    from gpu_engine.backend.device_frame import DeviceFrame

    waited: list[int] = []
    original = DeviceFrame.await_copies

    def await_copies(self: DeviceFrame) -> None:
        if self.copies is not None:
            waited.append(self.num_rows)
        original(self)

    monkeypatch.setattr(DeviceFrame, "await_copies", await_copies)
    host = _host(64, seed=5)
    with validation_failing_at(1, "disk on fire"):
        _, summary = _run("cuda", [pd.DataFrame(host)])  # two host batches of 32
    assert summary["events"]["dead_lettered"] == 32 and summary["events"]["valid"] == 32
    assert waited == [32, 32]
