"""The device casts of :mod:`kernels.cuda.ingest` against the host path's casts.

The oracle is ``Validator.cast`` (Arrow and numpy): the same values, the same rows
failing the cast, for every source dtype into integer, float and bool fields,
with nulls, NaN, infinities, fractions, values outside the target's range and the
int64 edges; where the device would not match exactly (integers a float cannot
hold exactly, uint64 beyond 2^62), it hands the column to the host path.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from numba import cuda  # noqa: E402

from gpu_engine.backend.device_frame import DeviceColumn, DeviceFrame  # noqa: E402
from gpu_engine.backend.device_validation import _widen  # noqa: E402
from gpu_engine.config.models import FieldSpec, SchemaConfig, ValidationConfig  # noqa: E402
from gpu_engine.validation import Validator  # noqa: E402
from kernels.cuda import ingest  # noqa: E402
from kernels.cuda._core import as_device, to_host  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

N = 64
SOURCES = ["int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "float32", "float64"]


def _values(dtype: str, rng: np.random.Generator) -> np.ndarray:
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, N, dtype=dtype, endpoint=True)
        values[2:4] = info.max, info.min
        return values
    values = rng.normal(0.0, 2e4, N)
    values[::7] = np.round(values[::7])  # whole numbers that fit small integers
    values[1::9] = [np.nan, np.inf, -np.inf, 0.5, -0.0, 3e9, 127.0, -128.0][: len(values[1::9])]
    values[2:5] = [2.0**63, -(2.0**63), 2.0**63 - 1024]  # just past, at and below int64's edges
    return values.astype(dtype)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("target", ["int8", "uint16", "int64", "bool", "float32", "float64"])
def test_device_casts_match_the_host(source: str, target: str) -> None:
    rng = np.random.default_rng(abs(hash((source, target))) % 2**32)
    values = _values(source, rng)
    is_null = rng.random(N) < 0.15
    spec = FieldSpec.model_validate({"type": target, "nullable": True})
    schema = SchemaConfig.model_validate({"time": "t", "fields": {"t": {"type": "int64"}}})
    validator = Validator(schema, ValidationConfig())
    column = DeviceColumn(cuda.to_device(values), cuda.to_device(is_null.view(np.uint8)))
    widened = _widen(spec, column)
    host = validator.cast(pa.array(values, mask=is_null), spec, "v")
    if widened is None:  # the host path casts this column: it is the oracle itself
        wide_into_float = np.dtype(source).kind in "iu" and target.startswith("float")
        assert wide_into_float or source == "uint64", (source, target)
        return
    got = to_host(widened[0])
    failed = np.zeros(N, bool) if widened[1] is None else to_host(widened[1]).astype(bool)
    want_failed = host.failed if host.failed is not None else np.zeros(N, bool)
    np.testing.assert_array_equal(failed, want_failed)
    ok = ~host.array.is_null().to_numpy(zero_copy_only=False)  # nulls, failed casts: 0 here
    want = host.array.to_numpy(zero_copy_only=False)[ok].astype(np.float64)
    np.testing.assert_array_equal(got[ok].astype(np.float64), want)
    np.testing.assert_array_equal(got[~ok], 0)


def test_select_take_and_pane_keys() -> None:
    rng = np.random.default_rng(3)
    flags = (rng.random(N) < 0.4).astype(np.uint8)
    rows = to_host(ingest.select(cuda.to_device(flags)))
    np.testing.assert_array_equal(rows, np.flatnonzero(flags))
    values = rng.normal(size=(3, N))
    np.testing.assert_array_equal(to_host(ingest.take(cuda.to_device(values), rows)),
                                  values[:, rows])  # fmt: skip
    times = rng.integers(-5000, 5000, N)
    atoms = rng.integers(0, 9, (N, 2))
    keys = to_host(ingest.pane_keys(cuda.to_device(times), cuda.to_device(atoms), rows, 300))
    np.testing.assert_array_equal(keys[:, 0], np.floor_divide(times[rows], 300))
    np.testing.assert_array_equal(keys[:, 1:], atoms[rows])


def test_count_beyond_counts_every_value_past_the_limit() -> None:
    """More values than threads, most of them beyond: each thread's count is added once."""
    values = np.random.default_rng(3).integers(-(2**60), 2**60, 1000)
    is_null = (np.arange(1000) % 7 == 0).astype(np.uint8)
    limit = 2.0**53
    expected = int(np.sum((np.abs(values.astype(np.float64)) > limit) & (is_null == 0)))
    assert ingest.count_beyond(cuda.to_device(values), cuda.to_device(is_null), limit) == expected
    assert expected > 500


def test_uncompacted_event_index_and_take() -> None:
    """``index_where`` keeps every row (-1 where the flag is unset); the 1-D ``take`` gives
    its ``missing`` value (-1, or 0 by default) for -1 rows, as a numpy oracle does."""
    rng = np.random.default_rng(8)
    flags = (rng.random(N) < 0.6).astype(np.uint8)
    flags[:2] = [0, 1]
    index = to_host(ingest.index_where(cuda.to_device(flags)))
    np.testing.assert_array_equal(index, np.where(flags == 1, np.arange(N), -1))
    table = rng.integers(-1, 40, N)  # a renumbering: -1 for rows outside a subset
    got = to_host(ingest.take(cuda.to_device(table), cuda.to_device(index), missing=-1))
    np.testing.assert_array_equal(got, np.where(index >= 0, table[np.maximum(index, 0)], -1))
    values = rng.normal(size=N)
    taken = to_host(ingest.take(cuda.to_device(values), cuda.to_device(index)))
    np.testing.assert_array_equal(taken, np.where(index >= 0, values[np.maximum(index, 0)], 0))


def test_flag_logic() -> None:
    rng = np.random.default_rng(10)
    a, b = (rng.integers(0, 3, N).astype(np.uint8) for _ in range(2))  # any nonzero is set
    for negate_b in (False, True):
        got = to_host(ingest.both(cuda.to_device(a), cuda.to_device(b), negate_b=negate_b))
        np.testing.assert_array_equal(got, (a != 0) & ((b == 0) if negate_b else (b != 0)))
    np.testing.assert_array_equal(to_host(ingest.not_flags(cuda.to_device(b))), b == 0)


def test_a_take_of_no_rows_uploads_an_empty_index() -> None:
    """Every row of a batch quarantined: the valid frame is a take of no rows, whose index
    (a 0-length host array) is uploaded and gathered like any other."""
    rows = np.flatnonzero(np.zeros(3, bool))
    assert to_host(as_device(rows, np.int64)).shape == (0,)
    values = DeviceColumn(cuda.to_device(np.arange(3.0)), cuda.to_device(np.zeros(3, np.uint8)))
    frame = DeviceFrame({"v": values, "s": pa.array(["a", "b", "c"])}, 3)
    part = frame.take(rows)
    assert part.num_rows == 0 and part.columns["s"].to_pylist() == []
    taken = part.columns["v"]
    assert isinstance(taken, DeviceColumn)
    assert to_host(taken.values).shape == (0,) and to_host(taken.is_null).shape == (0,)
