"""A kernel's disk-cache entry is renewed when a helper it calls from another module of
``kernels/`` changes (Numba alone stamps the entry with the kernel's own file only), is
loaded when nothing changed, and other code's caching is left to Numba."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import ClassVar

import numba
import pytest

import kernels
from kernels import cache_stamp

HELPER = "from numba import njit\n\n\n@njit(cache=True)\ndef helper():\n    return {value}\n"
CALLER = (
    "from numba import njit\n\nfrom kernels._probe_helper import helper\n\n\n"
    "@njit(cache=True)\ndef caller():\n    return helper()\n"
)
OUTSIDE = "from numba import njit\n\n\n@njit(cache=True)\ndef outside():\n    return 7\n"
REPORT = (
    "import json, sys; sys.path.insert(0, {root!r}); "
    "import kernels._probe as p; import outside_probe as o; "
    "value = p.caller(); o.outside(); "
    "print(json.dumps({{'value': value, "
    "'hits': sum(p.caller.stats.cache_hits.values()), "
    "'misses': sum(p.caller.stats.cache_misses.values()), "
    "'outside_locator': type(o.outside._cache._impl.locator).__name__, "
    "'kernels_locator': type(p.caller._cache._impl.locator).__name__}}))"
)


def _copy_package(root: Path, helper_value: int) -> None:
    shutil.copytree(Path(kernels.__file__).parent, root / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (root / "kernels" / "_probe_helper.py").write_text(HELPER.format(value=helper_value))
    (root / "kernels" / "_probe.py").write_text(CALLER)
    (root / "outside_probe.py").write_text(OUTSIDE)


def _run(root: Path, cache: Path, locators: str | None = None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_LOCATOR_CLASSES"}
    # root first, then the caller's path (scripts/test.sh puts numba 0.64 there)
    path = [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(NUMBA_CACHE_DIR=str(cache), PYTHONPATH=os.pathsep.join(path))
    if locators is not None:
        env["NUMBA_CACHE_LOCATOR_CLASSES"] = locators
    done = subprocess.run([sys.executable, "-c", REPORT.format(root=str(root))],
                          capture_output=True, text=True, timeout=300, check=False,
                          env=env, cwd=cache.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_a_helper_edit_renews_its_caller_and_an_unchanged_package_loads(
    tmp_path: Path,
) -> None:
    root, cache = tmp_path / "src", tmp_path / "numba-cache"
    _copy_package(root, helper_value=1)
    first = _run(root, cache)
    assert first["value"] == 1 and first["misses"] == 1 and first["hits"] == 0
    assert str(first["kernels_locator"]).startswith("PackageStampedLocator")
    # Numba's own (named _UserProvidedCacheLocator before 0.64)
    assert str(first["outside_locator"]).endswith("UserProvidedCacheLocator")
    again = _run(root, cache)
    assert again["value"] == 1 and again["hits"] == 1 and again["misses"] == 0
    # only the helper's module changes: Numba's own stamp of caller's file is the same
    (root / "kernels" / "_probe_helper.py").write_text(HELPER.format(value=2))
    edited = _run(root, cache)
    assert edited["value"] == 2 and edited["misses"] == 1 and edited["hits"] == 0
    # an edit anywhere in the package renews too (a kernel's inlined constant, say)
    with (root / "kernels" / "aggregate.py").open("a") as f:
        f.write("\n# an edit\n")
    assert _run(root, cache)["misses"] == 1


@pytest.mark.skipif(not hasattr(numba.config, "CACHE_LOCATOR_CLASSES"),
                    reason="NUMBA_CACHE_LOCATOR_CLASSES came in numba 0.64")  # fmt: skip
def _zipped(root: Path, archive: Path) -> Path:
    archive.unlink(missing_ok=True)
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(root.rglob("*.py")):
            zipped.write(path, path.relative_to(root).as_posix())
    return archive


def test_a_package_imported_from_a_zip_is_stamped_too(tmp_path: Path) -> None:
    """Numba stamps a zipped kernel with the zip's own file; the package's sources are
    read from inside the zip (by importlib.resources), so a helper's edit renews there."""
    root, cache = tmp_path / "src", tmp_path / "numba-cache"
    _copy_package(root, helper_value=1)
    archive = _zipped(root, tmp_path / "lib.zip")
    first = _run(archive, cache)
    assert first["value"] == 1 and first["misses"] == 1
    assert _run(archive, cache)["hits"] == 1
    (root / "kernels" / "_probe_helper.py").write_text(HELPER.format(value=2))
    stat = archive.stat()
    _zipped(root, archive)
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # Numba's own stamp alike
    assert _run(archive, cache)["value"] == 2


def test_a_user_list_of_locators_takes_precedence(tmp_path: Path) -> None:
    root, cache = tmp_path / "src", tmp_path / "numba-cache"
    _copy_package(root, helper_value=1)
    report = _run(root, cache, locators="UserProvidedCacheLocator")
    assert report["value"] == 1 and report["kernels_locator"] == "UserProvidedCacheLocator"


def test_the_digest_covers_names_and_contents_of_every_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "kernels"
    (package / "cuda").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "cuda" / "b.py").write_text("y = 2\n")
    (package / "notes.txt").write_text("not a source\n")

    def digest() -> str:
        cache_stamp.sources_digest.cache_clear()
        return cache_stamp.sources_digest()

    monkeypatch.setattr(cache_stamp, "PACKAGE_ROOT", package)
    try:
        base = digest()
        (package / "notes.txt").write_text("still not a source\n")
        # an editor's lock file (a dangling link) and compiled files are not sources
        (package / ".#a.py").symlink_to(tmp_path / "nowhere")
        (package / "__pycache__").mkdir()
        (package / "__pycache__" / "a.py").write_text("not a source either\n")
        assert digest() == base
        (package / "cuda" / "b.py").write_text("y = 3\n")
        changed = digest()
        assert changed != base
        (package / "cuda" / "b.py").rename(package / "cuda" / "c.py")
        assert digest() != changed
    finally:
        cache_stamp.sources_digest.cache_clear()


def test_only_files_of_the_package_are_stamped(tmp_path: Path) -> None:
    assert cache_stamp.in_package(cache_stamp.__file__)
    assert cache_stamp.in_package(str(cache_stamp.PACKAGE_DIR / "cuda" / "_core.py"))
    assert not cache_stamp.in_package(str(tmp_path / "kernels" / "panes.py"))
    assert not cache_stamp.in_package(str(cache_stamp.PACKAGE_DIR.parent / "kernels_x.py"))


def test_registering_twice_keeps_one_locator() -> None:
    class Impl:
        _locator_classes: ClassVar[list[type]] = [object]

    cache_stamp.stamp_package_sources(Impl)
    cache_stamp.stamp_package_sources(Impl)
    assert len(Impl._locator_classes) == 2 and Impl._locator_classes[1] is object
    assert Impl._locator_classes[0].fallbacks == (object,)


def _kernel_defined_outside() -> int:  # pragma: no cover - only located, never compiled
    return 0


def test_a_registered_kernel_outside_the_package_is_stamped() -> None:
    """kernels.cuda._core.register marks its kernels (the benchmarks' call kernels/
    helpers), so they are stamped wherever their file is."""
    from numba.core.caching import FunctionCache

    locator_class = FunctionCache._impl_class._locator_classes[0]
    assert issubclass(locator_class, cache_stamp.PackageStampedLocator)
    func = _kernel_defined_outside
    assert locator_class.from_function(func, __file__) is None
    cache_stamp.stamp_with_package(func)
    located = locator_class.from_function(func, __file__)
    assert located is not None
    assert located.get_source_stamp()[1] == cache_stamp.sources_digest()
    assert located.get_cache_path() and located._py_file == __file__
