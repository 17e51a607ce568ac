"""The batch-scoped reason codes (``Backend.reason_codes``) agree on CPU and CUDA.

Every rule kind goes through them: numeric checks, the null and allowed-set masks of
string/bool fields and missing columns (``mark_rows``); the first failure of a row wins.
On CUDA ``reason``/``failed_field`` live on the device and are read back by ``to_host()``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from gpu_engine.backend import CPU, CUDA  # noqa: E402
from gpu_engine.backend.reason_codes import (  # noqa: E402
    DeviceReasonCodes,
    HostReasonCodes,
    ReasonCodes,
)
from gpu_engine.config.models import SchemaConfig, ValidationConfig  # noqa: E402
from gpu_engine.validation import Validator  # noqa: E402
from kernels import validate as codes  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

N = 97


def _apply_rules(backend_codes: ReasonCodes, rng: np.random.Generator) -> list[int]:
    """All rule kinds, in validator order, on random data; the rows failed after each step
    (``failures()``: on the device, the one read of the kernels' counter)."""
    total = []
    # rows that failed earlier (first failure wins from here on)
    backend_codes.mark_rows(rng.random(N) < 0.1, codes.UNPARSEABLE, 0)
    total.append(backend_codes.failures())
    values = rng.normal(0.0, 50.0, N)
    values[rng.random(N) < 0.05] = np.nan
    no_cast, any_value = np.empty(0, np.uint8), np.empty(0, np.float64)
    is_null = rng.random(N) < 0.1
    backend_codes.check_numeric(
        values, is_null, no_cast, 1, False, False, True, -80.0, 80.0, any_value
    )
    total.append(backend_codes.failures())
    backend_codes.mark_rows(rng.random(N) < 0.1, codes.NULL, 2)  # string nulls
    total.append(backend_codes.failures())
    # string allowed set, as a uint8 mask
    backend_codes.mark_rows((rng.random(N) < 0.15).astype(np.uint8), codes.NOT_ALLOWED, 2)
    total.append(backend_codes.failures())
    backend_codes.mark_rows(np.ones(N, np.uint8), codes.MISSING_COLUMN, 3)
    total.append(backend_codes.failures())
    backend_codes.mark_rows(np.ones(N, bool), codes.NULL, 4)  # all taken now
    total.append(backend_codes.failures())
    return list(np.diff([0, *total]))


def test_reason_codes_match_on_cpu_and_cuda() -> None:
    results = []
    for backend in (CPU, CUDA):
        batch = backend.reason_codes(N)
        found = _apply_rules(batch, np.random.default_rng(5))
        results.append((found, *batch.to_host()))
    assert isinstance(CPU.reason_codes(1), HostReasonCodes)
    assert isinstance(CUDA.reason_codes(1), DeviceReasonCodes)
    (cpu_found, cpu_r, cpu_f), (gpu_found, gpu_r, gpu_f) = results
    np.testing.assert_array_equal(gpu_r, cpu_r)
    np.testing.assert_array_equal(gpu_f, cpu_f)
    assert gpu_found == cpu_found
    assert cpu_r.dtype == np.int8 and cpu_f.dtype == np.int16
    assert all(count > 0 for count in cpu_found[:5]) and cpu_found[5] == 0
    assert np.all(cpu_r != 0) and sum(cpu_found) == N
    assert set(np.unique(cpu_r)) == {
        codes.UNPARSEABLE, codes.NULL, codes.NAN, codes.BELOW_MIN, codes.ABOVE_MAX,
        codes.NOT_ALLOWED, codes.MISSING_COLUMN,
    }  # fmt: skip
    np.testing.assert_array_equal(cpu_f[cpu_r == codes.MISSING_COLUMN], 3)


def test_host_reason_codes_wrap_without_copies() -> None:
    reason, field = np.zeros(N, np.int8), np.full(N, -1, np.int16)
    batch = HostReasonCodes(reason, field)
    bad = np.zeros(N, bool)
    bad[[3, 7]] = True
    assert batch.mark_rows(bad, codes.NULL, 1) == 2
    out_r, out_f = batch.to_host()
    assert out_r is reason and out_f is field
    assert reason[3] == codes.NULL and field[7] == 1 and field[0] == -1


def test_clean_and_empty_device_batches() -> None:
    for backend in (CPU, CUDA):
        clean = backend.reason_codes(N)
        clean.mark_rows(np.zeros(N, np.uint8), codes.NULL, 0)
        assert clean.failures() == 0
        r, f = clean.to_host()
        np.testing.assert_array_equal(r, 0)
        np.testing.assert_array_equal(f, -1)
        empty = backend.reason_codes(0)
        empty.mark_rows(np.zeros(0, np.uint8), codes.NULL, 0)
        assert empty.failures() == 0
        r, f = empty.to_host()
        assert r.shape == f.shape == (0,)


def test_mark_rows_keeps_earlier_failures() -> None:
    rng = np.random.default_rng(8)
    reason = np.where(rng.random(N) < 0.2, codes.NAN, 0).astype(np.int8)
    field = np.where(reason != 0, 0, -1).astype(np.int16)
    bad = rng.random(N) < 0.4
    results = []
    for kind in (HostReasonCodes, DeviceReasonCodes.upload):
        reason_codes = kind(reason.copy(), field.copy())
        reason_codes.mark_rows(bad, codes.NOT_ALLOWED, 5)
        results.append((reason_codes.failures(), *reason_codes.to_host()))
    (cpu_n, cpu_r, cpu_f), (gpu_n, gpu_r, gpu_f) = results
    assert cpu_n == gpu_n == int(np.count_nonzero(bad | (reason != 0)))
    assert np.all(cpu_r[reason != 0] == codes.NAN)
    np.testing.assert_array_equal(gpu_r, cpu_r)
    np.testing.assert_array_equal(gpu_f, cpu_f)


FIELDS = {
    "t": {"type": "int64"},
    "s": {"type": "string", "allowed": ["a", "b"]},
    "b": {"type": "bool", "allowed": [True]},
    "x": {"type": "float64", "nullable": True, "max": 10.0},
    "m": {"type": "int64"},  # missing from the input: every row fails here first
    "z": {"type": "string", "nullable": True},
}


def test_validator_uses_the_backend_for_every_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    downloads = []
    original = DeviceReasonCodes.to_host

    def counted(self: DeviceReasonCodes) -> tuple[np.ndarray, np.ndarray]:
        downloads.append(self.n)
        return original(self)

    def no_upload(*args: object) -> None:
        raise AssertionError("the batch's reason codes must never be uploaded")

    monkeypatch.setattr(DeviceReasonCodes, "to_host", counted)
    monkeypatch.setattr(DeviceReasonCodes, "upload", no_upload)
    rng = np.random.default_rng(13)
    s = rng.choice(["a", "b", "c"], N).astype(object)
    s[rng.random(N) < 0.1] = None
    b = rng.random(N) < 0.7
    b_mask = rng.random(N) < 0.1
    x = rng.normal(5.0, 5.0, N)
    table = pa.table(
        {
            "t": pa.array(np.arange(N, dtype=np.int64) + 1_000_000),
            "s": pa.array(s, pa.string()),
            "b": pa.array(b, pa.bool_(), mask=b_mask),
            "x": pa.array(x, pa.float64()),
        }
    )
    schema = SchemaConfig.model_validate({"time": "t", "fields": FIELDS})
    config = ValidationConfig.model_validate({"on_error": "quarantine", "mode": "strict"})
    out = {}
    for backend in (CPU, CUDA):
        out[backend.name] = Validator(schema, config, backend).validate(table, "mem", 0)
    assert downloads == [N]  # one read-back for the whole batch
    cpu, gpu = out["cpu"], out["cuda"]
    assert cpu.quarantine is not None and gpu.quarantine is not None
    assert cpu.quarantine.equals(gpu.quarantine)
    assert cpu.n_quarantined == N  # the missing column fails every row
    quarantine = cpu.quarantine.to_pandas()
    fields = quarantine["_field"].to_numpy()
    reasons = quarantine["_reason_code"].to_numpy()
    s_bad = np.array([v is None or v == "c" for v in s])
    b_bad = b_mask | ~b
    x_bad = x > 10.0
    expect_field = np.where(s_bad, "s", np.where(b_bad, "b", np.where(x_bad, "x", "m")))
    np.testing.assert_array_equal(fields, expect_field)
    s_code = np.where(np.array([v is None for v in s]), codes.NULL, codes.NOT_ALLOWED)
    b_code = np.where(b_mask, codes.NULL, codes.NOT_ALLOWED)
    x_code = np.where(x_bad, codes.ABOVE_MAX, codes.MISSING_COLUMN)
    expect_code = np.where(s_bad, s_code, np.where(b_bad, b_code, x_code))
    np.testing.assert_array_equal(reasons, expect_code)
