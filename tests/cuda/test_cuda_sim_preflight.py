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
