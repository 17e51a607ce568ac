"""Meet the ``cuda`` extra on an image that already has cuDF and CuPy (Dockerfile.cuda).

The extra names PyPI's wheels, ``cudf-cu13`` and ``cupy-cuda13x``. A RAPIDS image
installs the same libraries with conda, as ``cudf`` and ``cupy``, which pip does not
count as those: ``pip install ".[cuda]"`` there laid a second cuDF and CuPy over the
image's (and CuPy warns at import when two of its packages are installed). So this
reads the extra from the installed package's metadata, counts a conda build as its
wheel, installs with pip only what no package meets, and checks the result.

    python scripts/cuda_extra.py            # check; exit 1 names what is missing
    python scripts/cuda_extra.py --install  # pip install what is missing, then check
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PACKAGE = "tiktoktoe"
EXTRA = "cuda"
# A wheel's name and the conda build's that provides the same modules.
SAME_AS = {"cudf-cu13": ("cudf-cu13", "cudf"), "cupy-cuda13x": ("cupy-cuda13x", "cupy")}


def extra_requirements(requires: Iterable[str], extra: str = EXTRA) -> list[Requirement]:
    """The requirements of ``extra`` among a package's ``Requires-Dist`` lines."""
    wanted = []
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is not None and requirement.marker.evaluate({"extra": extra}):
            requirement.marker = None
            wanted.append(requirement)
    return wanted


def plan(
    requirements: list[Requirement], version_of: Callable[[str], str | None]
) -> tuple[list[str], list[str], list[str]]:
    """(met, to install, problems): each requirement met by a package already there (its
    wheel or the conda build of the same modules), missing (pip may install it), or a
    problem pip must not paper over: a conda build outside the range (a wheel beside it
    would be a second copy), or both builds installed at once."""
    met, install, problems = [], [], []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        present = [(d, v) for d in SAME_AS.get(name, (name,)) if (v := version_of(d)) is not None]
        if len(present) > 1:
            problems.append(f"{requirement}: both {' and '.join(d for d, _ in present)} installed")
        elif not present:
            install.append(str(requirement))
        elif requirement.specifier.contains(present[0][1], prereleases=True):
            met.append(f"{requirement}: {present[0][0]} {present[0][1]}")
        elif present[0][0] != name:
            problems.append(f"{requirement}: {present[0][0]} {present[0][1]} installed")
        else:
            install.append(str(requirement))  # pip upgrades (or downgrades) its own wheel
    return met, install, problems


def _version_of(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str]) -> int:
    requirements = extra_requirements(metadata.requires(PACKAGE) or [])
    met, install, problems = plan(requirements, _version_of)
    if install and "--install" in argv and not problems:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", *install],
                       check=True)  # fmt: skip
        met, install, problems = plan(requirements, _version_of)
    for line in met:
        print(f"met       {line}")
    for line in install:
        print(f"missing   {line}")
    for line in problems:
        print(f"PROBLEM   {line}")
    return 1 if install or problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
