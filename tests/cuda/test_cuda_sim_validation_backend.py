"""Validation rules on the backend's device: the numeric check's reason codes and the engine.

The CUDA backend must quarantine exactly the rows the CPU backend does, with the same
first reason, field and message. Run under the simulator (``NUMBA_ENABLE_CUDASIM=1``)
or on a GPU; one worker, since the simulator cannot launch kernels from worker threads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the core suite's helpers

from engine_testing import make_config, run_engine, window_frame  # noqa: E402

from gpu_engine.backend.reason_codes import DeviceReasonCodes, HostReasonCodes  # noqa: E402
from kernels import validate as codes  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

N = 131


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int16", "uint8", "uint32"])
@pytest.mark.parametrize("nulls", [True, False])
def test_backend_check_numeric_matches_cpu(dtype: str, nulls: bool) -> None:
    rng = np.random.default_rng(len(dtype) + 10 * nulls)
    if dtype.startswith("float"):
        values = rng.normal(40.0, 40.0, N)
        special = rng.random(N)
        values[special < 0.08] = np.nan
        values[(special >= 0.08) & (special < 0.12)] = np.inf
        values[(special >= 0.2) & (special < 0.4)] = 2.0
        values = values.astype(dtype)
    else:
        values = rng.integers(0, 120, N).astype(dtype)
    is_null = rng.random(N) < 0.1 if nulls else np.empty(0, np.uint8)
    cast_failed = rng.random(N) < 0.05 if not nulls else np.empty(0, np.uint8)
    allowed = np.arange(0.0, 100.0, 2.0) if dtype != "float32" else np.empty(0, np.float64)
    reason = np.zeros(N, dtype=np.int8)
    reason[rng.random(N) < 0.15] = codes.NAN  # failed on an earlier column: first wins
    failed_field = np.where(reason != 0, 0, -1).astype(np.int16)
    results = []
    for kind in (HostReasonCodes, DeviceReasonCodes.upload):
        reason_codes = kind(reason.copy(), failed_field.copy())
        reason_codes.check_numeric(
            values, is_null, cast_failed, 2, False, False, True, 1.0, 90.0, allowed
        )
        results.append((reason_codes.failures(), *reason_codes.to_host()))
    (cpu_found, cpu_r, cpu_f), (gpu_found, gpu_r, gpu_f) = results
    np.testing.assert_array_equal(gpu_r, cpu_r)
    np.testing.assert_array_equal(gpu_f, cpu_f)
    assert gpu_found == cpu_found > np.count_nonzero(reason)
    assert np.all(cpu_r[reason != 0] == codes.NAN)  # earlier failures were kept
    assert np.all(cpu_f[reason != 0] == 0)


def test_backend_check_numeric_empty_column() -> None:
    empty = np.empty(0, np.uint8)
    for kind in (HostReasonCodes, DeviceReasonCodes.upload):
        reason_codes = kind(np.zeros(0, np.int8), np.zeros(0, np.int16))
        reason_codes.check_numeric(
            np.empty(0, np.float64), empty, empty, 0, False, False, True, 0.0, 1.0,
            np.empty(0, np.float64),
        )  # fmt: skip
        assert reason_codes.failures() == 0


FIELDS = {
    "t": {"type": "int64", "required": True},
    "k": {"type": "int64", "required": True},
    "s": {"type": "string", "nullable": True, "allowed": ["a", "b", "c"]},
    "e": {"type": "int8", "allowed": [0, 1, 2, 3, 4]},
    "x": {"type": "float64", "nullable": True, "min": -1000.0, "max": 1000.0},
    "u": {"type": "int64", "nullable": True},
    "q": {"type": "uint8", "nullable": True, "max": 200},
}
AGGS = [
    {"name": "n", "op": "count"},
    {"name": "likes", "op": "count", "where": {"e": 1}},
    {"name": "x_sum", "op": "sum", "column": "x"},
    {"name": "x_max", "op": "max", "column": "x"},
    {"name": "u_sum", "op": "sum", "column": "u"},
    {"name": "q_sum", "op": "sum", "column": "q"},
]


def _events_with_bad_rows(n: int = 150) -> tuple[pa.Table, dict[int, tuple[int, str]]]:
    rng = np.random.default_rng(21)
    t = np.sort(rng.integers(0, 6000, n)) + 1_000_000
    k = rng.integers(0, 4, n).astype(np.int64)
    s = rng.choice(["a", "b", "c"], n).astype(object)
    e = rng.integers(0, 5, n).astype(np.int64)  # read as int8: the cast is checked
    x = rng.normal(100.0, 30.0, n)
    u = rng.integers(0, 40, n).astype(str).astype(object)  # text, parsed to int64
    q = rng.integers(0, 200, n).astype(np.int64)
    k_null = np.zeros(n, bool)
    x_null = rng.random(n) < 0.1
    expected: dict[int, tuple[int, str]] = {}

    def bad(row: int, code: int, field: str) -> None:
        expected[row] = (code, field)

    k_null[5] = True
    bad(5, codes.NULL, "k")
    t[9] = -7
    bad(9, codes.BELOW_MIN, "t")
    x[12], x_null[12] = np.nan, False
    bad(12, codes.NAN, "x")
    x[20], x_null[20] = np.inf, False
    bad(20, codes.INFINITE, "x")
    x[33], x_null[33] = -5000.0, False
    bad(33, codes.BELOW_MIN, "x")
    x[41], x_null[41] = 5000.0, False
    bad(41, codes.ABOVE_MAX, "x")
    e[50] = 7
    bad(50, codes.NOT_ALLOWED, "e")
    e[61] = 300  # does not fit int8
    bad(61, codes.UNPARSEABLE, "e")
    u[70] = "abc"
    bad(70, codes.UNPARSEABLE, "u")
    u[77] = "1e30"  # a number, but not an int64
    bad(77, codes.UNPARSEABLE, "u")
    q[88] = 250
    bad(88, codes.ABOVE_MAX, "q")
    s[95] = "z"
    bad(95, codes.NOT_ALLOWED, "s")
    e[101], x[101], x_null[101] = 9, np.nan, False  # two failures: the first field wins
    bad(101, codes.NOT_ALLOWED, "e")
    k_null[120], q[120] = True, 255
    bad(120, codes.NULL, "k")
    table = pa.table(
        {
            "t": pa.array(t, pa.int64()),
            "k": pa.array(k, pa.int64(), mask=k_null),
            "s": pa.array(s, pa.string()),
            "e": pa.array(e, pa.int64()),
            "x": pa.array(x, pa.float64(), mask=x_null),
            "u": pa.array(u, pa.string()),
            "q": pa.array(q, pa.int64()),
        }
    )
    return table, expected


def test_cuda_backend_quarantines_like_cpu() -> None:
    table, expected = _events_with_bad_rows()
    window = {"type": "tumbling", "size": 1000, "keys": ["k"], "aggregations": AGGS}
    quarantine: dict[str, pd.DataFrame] = {}
    windows: dict[str, pd.DataFrame] = {}
    for backend in ("cpu", "cuda"):
        config = make_config(
            window,
            schema={"time": "t", "fields": FIELDS},
            backend=backend,
            workers=1,
            batching={"max_rows": 40},
        )
        sink, summary = run_engine(config, table, chunk=40)
        assert summary["backend"] == backend
        assert summary["events"]["quarantined"] == len(expected)
        quarantine[backend] = sink.result("quarantine").to_pandas()
        windows[backend] = window_frame(sink).sort_values(["window_start", "k"])
    cpu, gpu = quarantine["cpu"], quarantine["cuda"]
    pd.testing.assert_frame_equal(cpu, gpu)
    rows = zip(cpu["_row"], cpu["_reason_code"], cpu["_field"], strict=True)
    got = {int(r): (int(c), f) for r, c, f in rows}
    assert got == expected
    assert len(windows["cpu"]) > 0
    pd.testing.assert_frame_equal(
        windows["cpu"].reset_index(drop=True), windows["cuda"].reset_index(drop=True)
    )
