"""Compiled kernels go to Numba's disk cache (``TIKTOKTOE_CUDA_KERNEL_CACHE``), so a new
process loads them instead of compiling them again.

Loading from the cache needs a device (``test_cuda_gpu`` runs two processes on one);
here: that compiling asks Numba to cache exactly when the switch is on, that the switch
reads the environment, and that Numba can place a cache for every registered kernel (a
nested function or one without a source file could not have one). Runs in the PTX
process: the simulator compiles nothing.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("the simulator compiles nothing to cache", allow_module_level=True)
try:
    from numba.cuda.dispatcher import CUDACache

    from kernels.cache_stamp import PackageStampedLocator, sources_digest
    from kernels.cuda import _core, aggregate  # noqa: F401  (aggregate registers agg.update_m2)
except Exception as exc:  # pragma: no cover - numba without a CUDA target
    pytest.skip(f"numba.cuda unavailable: {exc}", allow_module_level=True)


@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize("bounded", [True, False])
def test_compiling_asks_numba_to_cache_when_switched_on(
    monkeypatch: pytest.MonkeyPatch, cached: bool, bounded: bool
) -> None:
    """... and for launch bounds when those are switched on (TIKTOKTOE_LAUNCH_BOUNDS),
    for the kernels that name them, which are then never cached: Numba's cache index does
    not key on launch bounds, so a bounded kernel would load an unbounded entry."""
    asked: list[dict[str, Any]] = []

    def jit(signature: Any, **options: Any) -> Any:
        asked.append(options)
        return lambda pyfunc: SimpleNamespace(pyfunc=pyfunc, signature=signature)

    monkeypatch.setattr(_core, "cuda", SimpleNamespace(jit=jit))
    monkeypatch.setattr(_core, "FAST_LAUNCH", False)
    monkeypatch.setattr(_core, "KERNEL_CACHE", cached)
    monkeypatch.setattr(_core, "LAUNCH_BOUNDS", bounded)
    monkeypatch.setattr(_core, "_COMPILED", {})
    monkeypatch.setattr(_core, "_LAUNCHABLE", {})
    compiled = _core.kernel("fill", "int32")
    assert compiled.pyfunc is _core._REGISTRY["fill"].pyfunc
    _core.kernel("agg.update_m2", "float64")
    if bounded:
        bounded_options = {"cache": False, "launch_bounds": (_core.THREADS, 5)}
        assert asked[:2] == [{"cache": cached}, bounded_options]
    else:
        assert asked[:2] == [{"cache": cached}, {"cache": cached}]
    # a kernel registered uncached (a setting changed its code) is never cached
    spec = _core._REGISTRY["agg.update"]
    monkeypatch.setitem(_core._REGISTRY, "agg.update", dataclasses.replace(spec, cached=False))
    _core.kernel("agg.update", "float64")
    assert asked[2] == {"cache": False}


@pytest.mark.parametrize(
    ("switch", "variable", "setting", "expected"),
    [
        ("KERNEL_CACHE", "TIKTOKTOE_CUDA_KERNEL_CACHE", None, "True"),
        ("KERNEL_CACHE", "TIKTOKTOE_CUDA_KERNEL_CACHE", "0", "False"),
        ("KERNEL_CACHE", "TIKTOKTOE_CUDA_KERNEL_CACHE", "1", "True"),
        # the CPU kernels' folder (kernels.specialize) is another variable, not this switch
        ("KERNEL_CACHE", "TIKTOKTOE_KERNEL_CACHE", "0", "True"),
        ("LAUNCH_BOUNDS", "TIKTOKTOE_LAUNCH_BOUNDS", None, "False"),
        ("LAUNCH_BOUNDS", "TIKTOKTOE_LAUNCH_BOUNDS", "0", "False"),
        ("LAUNCH_BOUNDS", "TIKTOKTOE_LAUNCH_BOUNDS", "1", "True"),
    ],
)
def test_the_switch_reads_the_environment(
    switch: str, variable: str, setting: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != variable}
    if setting is not None:
        env[variable] = setting
    done = subprocess.run(
        [sys.executable, "-c", f"from kernels.cuda import _core; print(_core.{switch})"],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == expected


@pytest.mark.parametrize(("setting", "dtype", "cached"),
                         [(None, "int32", True), ("int32", "int32", True),
                          ("float64", "float64", False)])  # fmt: skip
def test_float64_tile_counts_are_compiled_afresh(setting: str | None, dtype: str,
                                                 cached: bool) -> None:  # fmt: skip
    """TIKTOKTOE_TILE_COUNTS=float64 changes agg.update's code through a global that
    Numba's cache index does not see, so that kernel must not be cached (or a later run
    of either setting would load the other's)."""
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKTOE_TILE_COUNTS"}
    if setting is not None:
        env["TIKTOKTOE_TILE_COUNTS"] = setting
    code = ("from kernels.cuda import _core, aggregate; "
            "print(aggregate.TILE_COUNT_DTYPE, _core._REGISTRY['agg.update'].cached, "
            "_core._REGISTRY['agg.update_m2'].cached)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [dtype, str(cached), "True"]


def test_a_wrong_tile_count_setting_is_named() -> None:
    env = {**os.environ, "TIKTOKTOE_TILE_COUNTS": "int64"}
    done = subprocess.run([sys.executable, "-c", "import kernels.cuda.aggregate"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env=env)  # fmt: skip
    assert "TIKTOKTOE_TILE_COUNTS='int64': expected int32 or float64" in done.stderr


def test_numba_can_place_a_cache_for_every_registered_kernel() -> None:
    from benchmarks.kernel_resources import shipped_signatures

    kernels = {pyfunc for _, _, pyfunc, _ in shipped_signatures()}
    assert len(kernels) > 50
    for pyfunc in kernels:
        assert pyfunc.__closure__ is None and "<locals>" not in pyfunc.__qualname__
        cache = CUDACache(pyfunc)  # raises when Numba finds no place for the cache
        assert cache.cache_path
        # stamped with every kernels/ source, so a helper's edit renews the kernel
        # (tests/test_kernel_cache_stamp.py shows that on the CPU's cache)
        locator = cache._impl.locator
        assert isinstance(locator, PackageStampedLocator), (pyfunc, locator)
        assert locator.get_source_stamp()[1] == sources_digest()


@pytest.mark.parametrize("misses", [1, 0])
def test_compiling_a_kernel_is_timed_and_loading_it_from_the_cache_is_not(
    monkeypatch: pytest.MonkeyPatch, misses: int
) -> None:
    """COMPILE_SECONDS (a run summary's compile_s on the CUDA backend) takes the time of
    a compile, which Numba counts as a cache miss, not of a load from the disk cache."""
    import time

    def jit(signature: Any, **options: Any) -> Any:
        def build(pyfunc: Any) -> Any:
            time.sleep(0.05)
            stats = SimpleNamespace(cache_misses={signature: misses} if misses else {})
            return SimpleNamespace(pyfunc=pyfunc, stats=stats)

        return build

    monkeypatch.setattr(_core, "cuda", SimpleNamespace(jit=jit))
    monkeypatch.setattr(_core, "FAST_LAUNCH", False)
    monkeypatch.setattr(_core, "_COMPILED", {})
    monkeypatch.setattr(_core, "_LAUNCHABLE", {})
    monkeypatch.setattr(_core, "COMPILE_SECONDS", [0.0])
    from kernels.compile_time import compile_seconds

    before = compile_seconds()
    _core.compiled_kernel("fill", "int32")
    _core.compiled_kernel("fill", "int32")  # compiled already: not built again
    if misses:
        assert 0.05 <= _core.COMPILE_SECONDS[0] < 1.0
    else:
        assert _core.COMPILE_SECONDS[0] == 0.0
    assert compile_seconds() - before == pytest.approx(_core.COMPILE_SECONDS[0])
