"""The device top-k (:func:`kernels.cuda.topk.top_k_rows`) against ``WindowOperator.apply_top_k``.

Random groups ordered by window, with many ties in ``by`` and in the keys, nulls
and NaN, in both directions and for several ``k``: the device must keep exactly
the rows the CPU keeps, in the same order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from gpu_engine.backend.topk import top_k_host  # noqa: E402
from gpu_engine.config.models import TopKSpec  # noqa: E402
from kernels.cuda import _core  # noqa: E402
from kernels.cuda._core import as_device  # noqa: E402
from kernels.cuda.topk import top_k_rows  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]


def _cpu_top_k(table: pa.Table, keys: list[str], k: int, descending: bool) -> pa.Table:
    return top_k_host(table, TopKSpec(by="v", k=k, descending=descending), keys)


def _groups(rng: np.random.Generator, n: int, integer: bool) -> pa.Table:
    windows = np.sort(rng.integers(0, 5, n)) * 1000
    if integer:
        v = pa.array(rng.integers(0, 4, n), pa.int64(), mask=rng.random(n) < 0.2)
    else:
        x = rng.integers(0, 4, n).astype(np.float64) / 2
        x[rng.random(n) < 0.1] = np.nan
        v = pa.array(x, pa.float64(), mask=rng.random(n) < 0.2)
    return pa.table(
        {
            "window_start": pa.array(windows, pa.int64()),
            "a": pa.array(rng.integers(0, 3, n), pa.int64()),
            "b": pa.array(rng.integers(-2, 2, n), pa.int64()),
            "v": v,
        }
    )


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("integer", [True, False])
def test_top_k_matches_apply_top_k(descending: bool, integer: bool) -> None:
    rng = np.random.default_rng(17 + 2 * descending + integer)
    table = _groups(rng, 70, integer)
    v = table.column("v")
    by = v.cast(pa.float64()).fill_null(0.0).to_numpy()
    valid = v.is_valid().to_numpy()
    atoms = np.c_[table.column("a").to_numpy(), table.column("b").to_numpy()]
    window = table.column("window_start").to_numpy()
    numbered = table.append_column("row", pa.array(np.arange(len(table)), pa.int64()))
    for k in (1, 2, 5, 100):
        expected = _cpu_top_k(numbered, ["a", "b"], k, descending).column("row").to_numpy()
        # Host windows: the kept count comes from the host (no wait); device windows: from
        # the device's scan.
        waits = sum(_core.WAITS.values())
        kept = top_k_rows(window, by, valid, atoms, k, descending)
        assert sum(_core.WAITS.values()) == waits + 1  # the result's read only
        np.testing.assert_array_equal(kept, expected, err_msg=f"k={k}")
        on_device = top_k_rows(as_device(window), by, valid, atoms, k, descending)
        np.testing.assert_array_equal(on_device, expected, err_msg=f"k={k}, device windows")


def test_top_k_edge_cases() -> None:
    empty = np.empty(0, dtype=np.int64)
    assert len(top_k_rows(empty, empty.astype(float), empty.astype(bool), empty, 3)) == 0
    window = np.array([7, 7, 7])
    by = np.array([1.0, 3.0, 2.0])
    valid = np.array([True, True, True])
    np.testing.assert_array_equal(top_k_rows(window, by, valid, np.zeros(3, np.int64), 2), [1, 2])
    np.testing.assert_array_equal(
        top_k_rows(window, by, valid, np.zeros((3, 0), np.int64), 5, descending=False), [0, 2, 1]
    )


def test_backend_top_k_on_unordered_windows() -> None:
    """Workers' outputs arrive concatenated, windows out of order: ranked like the host."""
    from gpu_engine.backend.topk import top_k_device

    rng = np.random.default_rng(5)
    table = _groups(rng, 60, integer=True)
    shuffled = table.take(pa.array(rng.permutation(table.num_rows)))
    top = TopKSpec(by="v", k=2, descending=True)
    got = top_k_device(shuffled, top, ["a", "b"])
    want = top_k_host(shuffled, top, ["a", "b"])
    assert got.num_rows == want.num_rows > 0
    for name in ("window_start", "v", "a", "b"):
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name


@pytest.mark.parametrize("kind", ["int64", "timestamp"])
@pytest.mark.parametrize("descending", [True, False])
def test_top_k_device_ranks_integers_past_2_to_the_53_and_timestamps(kind, descending) -> None:
    """``by`` values that a float64 cannot tell apart (2^53 and 2^53 + 1), or cannot hold at
    all (a timestamp column: the cast failed), ranked as on the host."""
    from gpu_engine.backend.topk import top_k_device

    rng = np.random.default_rng(5)
    n = 40
    values = 2**53 + rng.integers(0, 4, n)
    by = pa.array(values, pa.int64(), mask=rng.random(n) < 0.1)
    if kind == "timestamp":
        by = pa.array(values - 2**53 + 1_700_000_000_000, mask=rng.random(n) < 0.1).cast(
            pa.timestamp("ms")
        )
    table = pa.table({"window_start": pa.array(np.sort(rng.integers(0, 3, n)) * 1000),
                      "a": pa.array(rng.integers(0, 5, n)), "v": by})  # fmt: skip
    for k in (1, 2, 3):
        spec = TopKSpec(by="v", k=k, descending=descending)
        assert top_k_device(table, spec, ["a"]).equals(top_k_host(table, spec, ["a"]))
