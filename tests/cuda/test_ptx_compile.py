"""Every shipped CUDA kernel signature compiles to PTX for compute capability 9.0.

No device is needed (numba-cuda with NVVM from the ``cuda-toolkit`` wheels,
``pip install "numba-cuda[cu13]"``), so typing errors that the simulator would
not notice (it runs kernels as Python) fail here. Skips cleanly when numba-cuda
or NVVM is missing, and under the simulator (which has no compiler).
"""

from __future__ import annotations

import os
import re

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")


def _signatures() -> list[tuple[str, str, object, object]]:
    try:
        from numba import cuda

        import benchmarks.gpu_kernels  # noqa: F401  (the benchmark's own kernel, registered)
        from kernels.cuda import all_signatures
    except Exception as exc:  # pragma: no cover - numba without a CUDA target
        pytest.skip(f"numba.cuda unavailable: {exc}", allow_module_level=True)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or not hasattr(cuda, "compile_ptx"):
        pytest.skip("no PTX compiler under the CUDA simulator", allow_module_level=True)
    try:
        cuda.compile_ptx(lambda a: None, "void(float64[::1])", cc=(9, 0))
    except Exception as exc:
        pytest.skip(f"NVVM is unavailable ({type(exc).__name__}: {exc})", allow_module_level=True)
    return list(all_signatures())


SIGNATURES = _signatures()


def test_every_module_ships_kernels() -> None:
    names = {name.split(".")[0] for name, *_ in SIGNATURES}
    assert names >= {"validate", "hash", "agg", "sketch", "session", "scan", "win", "topk",
                     "ingest", "sketch_state", "sort"}


@pytest.mark.parametrize(
    ("name", "dtype", "pyfunc", "signature"),
    SIGNATURES,
    ids=[f"{name}[{dtype}]" for name, dtype, *_ in SIGNATURES],
)
def test_compiles_to_sm90_ptx(name: str, dtype: str, pyfunc: object, signature: object) -> None:
    from numba import cuda

    ptx, _ = cuda.compile_ptx(pyfunc, signature, cc=(9, 0))
    assert ".target sm_90" in ptx
    assert re.search(r"\.entry\s+\S+", ptx)
    atomics = set(re.findall(r"(?:atom|red)\.global\.[\w.]+", ptx))
    # static shared memory must fit the 48 KiB a block gets without opting in to more
    shared = sum(int(size) for size in re.findall(r"\.shared\s.*\[(\d+)\];", ptx))
    assert shared <= 48 * 1024, shared
    if name == "agg.update":
        # counts and float sums use the native atomics of sm_60+, not CAS loops
        assert "atom.global.add.f64" in atomics
        assert "atom.global.add.u64" in atomics
    if name in ("agg.update", "agg.update_m2"):
        # events add into the block's shared table first (native shared atomics)
        assert "atom.shared.add.f64" in ptx and "atom.shared.cas.b64" in ptx
    if name == "hash.claim":
        assert "atom.global.cas.b64" in atomics
        # new ids come from a scan, not from one counter every new key adds to
        assert not any(a.startswith("atom.global.add") for a in atomics), atomics
