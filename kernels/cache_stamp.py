"""Numba's disk cache of a kernel renewed when any source of ``kernels/`` changes.

Numba stamps a cache entry with its function's own source file only, so a kernel that
compiles in a helper from another module (``ingest_panes`` calls
``kernels.aggregate.update_row``; the CUDA kernels call ``kernels.aggregate``'s moments)
would load its old machine code after that helper changed: a fix that seems not to
work, or a new version that computes with an old one's code. A kernel defined under
``kernels/`` is stamped here with a digest of every ``kernels/**/*.py`` as well, so any
edit there compiles its kernels afresh on the next run, and nothing else does. A CUDA
kernel registered with ``kernels.cuda._core.register`` from elsewhere (the benchmarks'
kernels call ``kernels.cuda.hashindex``) is marked by :func:`stamp_with_package` and
stamped the same way.

The locator goes in front of one cache implementation's own list (the CPU dispatcher's
and the CUDA dispatcher's, never Numba's shared base list) and answers only for files of
this package, so other code's caching is untouched. ``NUMBA_CACHE_LOCATOR_CLASSES``, where
a user sets it (Numba 0.64 on), replaces the CPU dispatcher's list and takes precedence
there; numba-cuda does not read it. The package's sources are read through
``importlib.resources``, so a package imported from a zip file is covered too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE_ROOT: Any = resources.files(__package__ or "kernels")  # a folder, or inside a zip
_MARK = "_stamped_with_kernels_sources"


def _sources(folder: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(relative name, entry) of every ``.py`` file under ``folder``, in name order; hidden
    names (an editor's lock file, a dangling link) and ``__pycache__`` are not sources."""
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            yield from _sources(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".py") and entry.is_file():
            yield prefix + entry.name, entry


@cache
def sources_digest() -> str:
    """A digest of every Python source of the package (names and contents), once a process."""
    digest = hashlib.sha256()
    for name, entry in _sources(PACKAGE_ROOT):
        try:
            content = entry.read_bytes()
        except OSError:  # gone since it was listed: an editor's temporary file, say
            continue
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:32]


def in_package(py_file: str) -> bool:
    return Path(os.path.realpath(py_file)).is_relative_to(PACKAGE_DIR)


def stamp_with_package(pyfunc: Any) -> None:
    """Stamp ``pyfunc``'s cache entries with the package's sources wherever it is defined."""
    setattr(pyfunc, _MARK, True)


class PackageStampedLocator:
    """Numba's own locator for a ``kernels/`` function (the cache goes where it would have
    gone), whose source stamp also carries :func:`sources_digest`."""

    fallbacks: tuple[Any, ...] = ()  # the cache implementation's own locators, in order

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> PackageStampedLocator | None:
        if not (in_package(py_file) or getattr(py_func, _MARK, False)):
            return None
        for fallback in cls.fallbacks:
            inner = fallback.from_function(py_func, py_file)
            if inner is not None:
                return cls(inner)
        return None

    def get_source_stamp(self) -> Any:
        return (self._inner.get_source_stamp(), sources_digest())

    def __getattr__(self, name: str) -> Any:  # the rest as the inner locator has it
        return getattr(self._inner, name)


def stamp_package_sources(impl_class: Any) -> None:
    """Put the package's locator in front of ``impl_class``'s own (once)."""
    own = list(impl_class._locator_classes)
    if own and isinstance(own[0], type) and issubclass(own[0], PackageStampedLocator):
        return
    locator = type(
        f"PackageStampedLocator_{impl_class.__name__}",
        (PackageStampedLocator,),
        {"fallbacks": tuple(own)},
    )
    impl_class._locator_classes = [locator, *own]
