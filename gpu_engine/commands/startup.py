"""Start-up of a ``gpu-engine run`` process: two third-party imports it does not need.

Of the ~2.4 s from process start to the first processed batch (warm Numba
cache, 2-core development machine), ``python -X importtime`` puts 0.28 s on
``scipy.linalg`` and 0.30 s on ``pandas``, neither used by the run:

* Numba, when it first compiles or loads a kernel, imports its array-math
  registry, which imports ``scipy.linalg.cython_blas`` only to learn whether
  BLAS is there for ``np.dot`` and ``np.linalg`` in kernels. The engine's
  kernels use neither.
* pyarrow, the first time it converts any numpy array (``pa.array``,
  ``fill_null``, ``pa.table``), imports pandas to ask whether the array is a
  pandas Series. That question can be answered "no pandas" once: pyarrow
  still imports pandas itself when it is really needed (``to_pandas``,
  ``Table.from_pandas``), and the engine imports it for text input.

Both act on this process only and leave the modules importable afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class _Refuse:
    """A meta path finder refusing to import one top-level module."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == self.name:
            raise ModuleNotFoundError(f"{name} is not imported during start-up", name=name)


@contextmanager
def _unimportable(name: str) -> Iterator[None]:
    """``import name`` raises ImportError inside the block (a module imported already stays).

    A dotted name is marked absent in ``sys.modules`` (so its packages are not
    imported either); a top-level one is refused by a finder, since compiled
    (Cython) imports would take a ``None`` there for the module.
    """
    if name in sys.modules:
        yield
        return
    if "." in name:
        sys.modules[name] = None  # type: ignore[assignment]
        try:
            yield
        finally:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
        return
    finder = _Refuse(name)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def skip_numba_blas_probe() -> bool:
    """Load Numba's array-math registry without probing scipy for BLAS; False if too late."""
    if "numba.np.arraymath" in sys.modules:
        return False
    with _unimportable("scipy.linalg.cython_blas"):
        import numba.np.arraymath  # noqa: F401
    return True


def defer_pandas() -> bool:
    """Have pyarrow's first numpy conversion skip pandas; False if pandas is loaded already."""
    import pyarrow as pa

    shim = getattr(pa.lib, "_pandas_api", None)
    if shim is None or "pandas" in sys.modules:
        return False
    with _unimportable("pandas"):
        shim.have_pandas  # noqa: B018 - pyarrow's one probe, answered "no pandas"
    return True


def lighten_startup() -> None:
    skip_numba_blas_probe()
    defer_pandas()
