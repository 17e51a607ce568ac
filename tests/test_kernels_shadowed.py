"""Another top-level ``kernels`` first on ``sys.path`` (PyPI has one) is named at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_gpu_engine(path: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    code = "import gpu_engine, kernels.aggregate; print('imported')"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_a_shadowing_kernels_package_is_named_not_a_missing_submodule(tmp_path) -> None:
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text('"""Another project\'s kernels."""\n')
    result = _import_gpu_engine([tmp_path, ROOT], tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: the package 'kernels' found first is ")
    assert str(tmp_path / "kernels") in last and str(ROOT / "kernels") in last


def test_our_own_kernels_package_imports(tmp_path) -> None:
    result = _import_gpu_engine([ROOT], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"
