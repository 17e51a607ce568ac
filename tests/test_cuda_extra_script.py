"""``scripts/cuda_extra.py``: the cuda extra met on an image that has cuDF and CuPy from
conda, without a second copy from pip (Dockerfile.cuda's install step)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cuda_extra.py"
spec = importlib.util.spec_from_file_location("cuda_extra", SCRIPT)
assert spec is not None and spec.loader is not None
cuda_extra = importlib.util.module_from_spec(spec)
sys.modules["cuda_extra"] = cuda_extra
spec.loader.exec_module(cuda_extra)

REQUIRES = [
    "numba<0.69,>=0.61",
    'cudf-cu13>=26.10; extra == "cuda"',
    'cupy-cuda13x>=13; extra == "cuda"',
    'numba-cuda[cu13]>=0.22.2; extra == "cuda"',
    'torch>=2.12; extra == "cuda"',
    'pytest>=8; extra == "dev"',
]


def _plan(installed: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    requirements = cuda_extra.extra_requirements(REQUIRES)
    return cuda_extra.plan(requirements, installed.get)


def test_only_the_extras_requirements_are_read() -> None:
    names = [r.name for r in cuda_extra.extra_requirements(REQUIRES)]
    assert names == ["cudf-cu13", "cupy-cuda13x", "numba-cuda", "torch"]


def test_a_rapids_image_keeps_its_conda_cudf_and_cupy() -> None:
    """pip counted neither conda build and installed the wheels over them."""
    met, install, problems = _plan({"cudf": "26.10.02", "cupy": "14.2.0", "numba-cuda": "0.30.4"})
    assert [line.split(":")[1].split()[0] for line in met] == ["cudf", "cupy", "numba-cuda"]
    assert install == ["torch>=2.12"] and problems == []


def test_a_plain_host_installs_the_wheels() -> None:
    met, install, problems = _plan({"torch": "2.13.0"})
    assert install == ["cudf-cu13>=26.10", "cupy-cuda13x>=13", "numba-cuda[cu13]>=0.22.2"]
    assert problems == [] and len(met) == 1


@pytest.mark.parametrize(
    "installed, problem",
    [
        ({"cudf": "25.12.00"}, "cudf-cu13>=26.10: cudf 25.12.00 installed"),
        ({"cupy": "14.2.0", "cupy-cuda13x": "14.2.0"}, "both cupy-cuda13x and cupy installed"),
    ],
    ids=["old-conda-build", "two-copies"],
)
def test_what_pip_must_not_paper_over_is_a_problem(installed: dict, problem: str) -> None:
    _, install, problems = _plan(installed)
    assert any(problem in line for line in problems), problems
    library = next(iter(installed)).split("-")[0]
    assert not any(line.startswith(library) for line in install)  # no second copy
