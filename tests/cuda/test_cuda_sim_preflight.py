"""``benchmarks.preflight``: passes on kernels that work, and names the one that does not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from benchmarks import preflight  # noqa: E402
from kernels.cuda import _core, validate  # noqa: E402
from kernels.cuda.hashindex import DeviceHashIndex  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]


def test_working_kernels_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert preflight.main() == 0
    assert capsys.readouterr().out.splitlines()[-1] == "PREFLIGHT PASS"


def test_a_validation_that_marks_nothing_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "check_numeric", lambda *args, **kwargs: 0)
    found = preflight.problems()
    assert any(p.startswith("validate.check_numeric: reason codes") for p in found)
    assert any("failures counted" in p for p in found)


def test_ids_that_name_other_keys_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    insert = DeviceHashIndex.insert

    def shifted(self: DeviceHashIndex, keys: Any, skip: Any = None) -> Any:
        ids = _core.to_host(insert(self, keys, skip))
        return _core.as_device(np.where(ids > 0, ids - 1, ids))

    monkeypatch.setattr(DeviceHashIndex, "insert", shifted)
    assert preflight.problems() == ["hash insert: ids do not name their keys"]


def test_a_kernel_that_raises_fails_the_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("launch failed")

    monkeypatch.setattr(_core, "fill", broken)
    assert preflight.main() == 1
    out = capsys.readouterr().out
    assert "launch failed" in out and out.splitlines()[-1] == "PREFLIGHT FAIL"


def test_the_aggregation_rows_load_one_row_and_one_table_slot() -> None:
    from kernels.cuda.aggregate import TILE_PROBES, TILE_SLOTS

    ids = preflight.aggregation_rows(np.random.default_rng(0))
    assert len(ids) == preflight.ROWS and ids.max() < preflight.AGG_ROWS
    assert np.mean(ids == 5) > 0.3  # the hot row
    shared = ids[(ids >= 0) & (ids % TILE_SLOTS == 7)]
    assert len(np.unique(shared)) > TILE_PROBES and len(shared) > 0.15 * len(ids)
    assert 0 < np.mean(ids == -1) < 0.05


def test_an_aggregation_that_loses_events_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernels.cuda import aggregate

    update = aggregate.update_events

    def hot_row_lost(ids: Any, *args: Any) -> None:
        update(np.where(ids == 5, -1, ids), *args)

    monkeypatch.setattr(aggregate, "update_events", hot_row_lost)
    found = preflight.aggregation_problems(np.random.default_rng(0), events=1_000)
    assert "agg.update: state rows differs from the CPU's" in found


def test_an_aggregation_off_by_rounding_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernels.cuda import aggregate

    update = aggregate.update_events

    def nudged(ids: Any, ops: Any, col_of: Any, mask_of: Any, is_int: Any, fcols: Any,
               *args: Any) -> None:  # fmt: skip
        update(ids, ops, col_of, mask_of, is_int, fcols * (1 + 1e-7), *args)

    monkeypatch.setattr(aggregate, "update_events", nudged)
    found = preflight.aggregation_problems(np.random.default_rng(0), events=1_000)
    assert found and all(p.startswith("agg.update: state f") for p in found)
