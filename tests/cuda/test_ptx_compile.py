"""Every shipped CUDA kernel signature compiles to PTX for compute capability 9.0, and
that PTX assembles for sm_90 into a kernel that launches the engine's blocks.

No device is needed (numba-cuda with NVVM from the ``cuda-toolkit`` wheels,
``pip install "numba-cuda[cu13]"``, and ptxas through the ``nvidia-nvjitlink`` wheel),
so typing errors that the simulator would not notice (it runs kernels as Python) fail
here, and so do kernels that ptxas rejects, that ask a block for more registers or
shared memory than it may have, or that spill to local memory. Skips cleanly when
numba-cuda, NVVM or nvJitLink is missing, and under the simulator (which has no
compiler).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys

import pytest

from benchmarks.kernel_resources import nvjitlink_missing

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")


def _signatures() -> list[tuple[str, str, object, object]]:
    try:
        from numba import cuda

        from benchmarks.kernel_resources import shipped_signatures
    except Exception as exc:  # pragma: no cover - numba without a CUDA target
        pytest.skip(f"numba.cuda unavailable: {exc}", allow_module_level=True)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or not hasattr(cuda, "compile_ptx"):
        pytest.skip("no PTX compiler under the CUDA simulator", allow_module_level=True)
    try:
        cuda.compile_ptx(lambda a: None, "void(float64[::1])", cc=(9, 0))
    except Exception as exc:
        pytest.skip(f"NVVM is unavailable ({type(exc).__name__}: {exc})", allow_module_level=True)
    return shipped_signatures()


SIGNATURES = _signatures()


def _min_blocks(name: str) -> int | None:
    from kernels.cuda import _core

    return _core._REGISTRY[name].min_blocks


_BY_NAME = {(name, dtype): (pyfunc, signature) for name, dtype, pyfunc, signature in SIGNATURES}


@functools.cache
def _ptx(name: str, dtype: str) -> str:
    """The sm_90 PTX of one shipped signature (compiled once for both tests below)."""
    from numba import cuda

    from kernels.cuda._core import compile_options

    pyfunc, signature = _BY_NAME[name, dtype]
    ptx, _ = cuda.compile_ptx(pyfunc, signature, cc=(9, 0), **compile_options(name))
    return str(ptx)


def test_every_module_ships_kernels() -> None:
    names = {name.split(".")[0] for name, *_ in SIGNATURES}
    assert names >= {
        "validate",
        "hash",
        "agg",
        "sketch",
        "session",
        "scan",
        "win",
        "topk",
        "ingest",
        "sketch_state",
        "sort",
    }


@pytest.mark.parametrize(
    ("name", "dtype", "pyfunc", "signature"),
    SIGNATURES,
    ids=[f"{name}[{dtype}]" for name, dtype, *_ in SIGNATURES],
)
def test_compiles_to_sm90_ptx(name: str, dtype: str, pyfunc: object, signature: object) -> None:
    ptx = _ptx(name, dtype)
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
    if name == "agg.update":
        # ... counting in int32, the one shared add sm_90 has natively
        assert "atom.shared.add.u32" in ptx
    if name == "hash.claim":
        assert "atom.global.cas.b64" in atomics
        # new ids come from a scan, not from one counter every new key adds to
        assert not any(a.startswith("atom.global.add") for a in atomics), atomics


NVJITLINK_MISSING = nvjitlink_missing()
needs_nvjitlink = pytest.mark.skipif(bool(NVJITLINK_MISSING),
                                     reason=f"no nvJitLink: {NVJITLINK_MISSING}")  # fmt: skip


@needs_nvjitlink
@pytest.mark.parametrize(
    ("name", "dtype"),
    [(name, dtype) for name, dtype, *_ in SIGNATURES],
    ids=[f"{name}[{dtype}]" for name, dtype, *_ in SIGNATURES],
)
def test_assembles_for_sm90_and_launches_the_engines_blocks(name: str, dtype: str) -> None:
    from benchmarks.kernel_resources import KernelReport, assembled_usage, problems
    from kernels.cuda._core import THREADS

    usage = assembled_usage(name, dtype, *_BY_NAME[name, dtype])  # as Numba links on a card
    report = KernelReport(name, dtype, usage, THREADS)
    # a block of THREADS fits, and nothing spills: problems() names what does not
    assert problems([report]) == []
    assert report.occupancy.blocks >= 1


@needs_nvjitlink
def test_ptxas_catches_what_ptx_does_not() -> None:
    """60,000 B of static shared memory compile to LTO-IR but not for sm_90 (48 KiB at
    most without opting in at launch): the assembly step names the kernel and ptxas'
    reason."""
    from numba import cuda, float64

    from benchmarks.kernel_resources import AssemblyError, assemble, lto_ir

    def too_much_shared(out):  # pragma: no cover - compiled
        table = cuda.shared.array(7_500, float64)
        table[cuda.threadIdx.x] = 1.0
        cuda.syncthreads()
        out[0] = table[7_499 - cuda.threadIdx.x]

    code = lto_ir(too_much_shared, "void(float64[::1])")
    with pytest.raises(AssemblyError, match=r"(?s)too_much_shared: ptxas.*too much shared data"):
        assemble(code, "too_much_shared")


@needs_nvjitlink
def test_the_report_runs_whole(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.kernel_resources import main

    assert main(["--only", "fill", "agg.update"]) == 0
    out = capsys.readouterr().out
    assert "KERNEL_RESOURCES PASS" in out
    # fill has 7 dtypes, agg.update 2 and agg.update_m2 2 (a prefix match)
    assert out.startswith("11 kernel signatures assembled for sm_90")
    assert main(["--only", "no.such.kernel"]) == 1
    capsys.readouterr()
    # what launch bounds would buy: every selected kernel compiled for 8 blocks of 256
    assert main(["--only", "hash.claim", "--min-blocks", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "under launch bounds (256, 8)" in lines[0]
    assert lines[2].split()[:2] == ["hash.claim", "int64"]
    assert int(lines[2].split()[2]) <= 32  # 8 blocks of 256 threads: 32 registers at most
    with pytest.raises(SystemExit):  # the driver's figures are for the engine's compile
        main(["--min-blocks", "6", "--device"])


BOUNDED = [(name, dtype) for name, dtype, *_ in SIGNATURES if _min_blocks(name)]


@needs_nvjitlink
@pytest.mark.parametrize(("name", "dtype"), BOUNDED, ids=[f"{n}[{d}]" for n, d in BOUNDED])
def test_launch_bounds_buy_blocks_without_spills(
    monkeypatch: pytest.MonkeyPatch, name: str, dtype: str
) -> None:
    """TIKTOKTOE_LAUNCH_BOUNDS=1 compiles the kernels that name ``min_blocks`` for that
    many blocks of 256 threads: ptxas must then fit them without spilling, and the blocks
    must be more than without the bounds, or the switch gains nothing."""
    from benchmarks.kernel_resources import assembled_usage, occupancy
    from kernels.cuda import _core

    min_blocks = _min_blocks(name)
    assert _core.compile_options(name) == {}  # off by default
    plain = assembled_usage(name, dtype, *_BY_NAME[name, dtype])
    monkeypatch.setattr(_core, "LAUNCH_BOUNDS", True)
    assert _core.compile_options(name) == {"launch_bounds": (_core.THREADS, min_blocks)}
    bounded = assembled_usage(name, dtype, *_BY_NAME[name, dtype])
    assert (bounded.stack, bounded.spill_stores, bounded.spill_loads) == (0, 0, 0)
    blocks = occupancy(bounded.registers, bounded.shared, _core.THREADS).blocks
    assert blocks >= min_blocks > occupancy(plain.registers, plain.shared, _core.THREADS).blocks


def test_the_pane_aggregation_is_bounded() -> None:
    # agg.update spills under (256, 6) since its tile counts in int32, and agg.fold under
    # (256, 4) since it keeps a mean in two parts (16 B of stack): they take no bounds
    assert BOUNDED == [("agg.update_m2", "float64"), ("agg.update_m2", "float32")]


@needs_nvjitlink
def test_the_report_counts_instructions(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.kernel_resources import find_nvdisasm, main

    if find_nvdisasm() is None:
        pytest.skip("no nvdisasm (the nvidia-cuda-nvdisasm wheel of the dev extra)")
    assert main(["--only", "fill", "--sass"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    fill = next(row for row in rows if row[:2] == ["fill", "int64"])
    # a grid-stride loop of stores (unrolled, with Numba's index checks): some hundreds of
    # instructions, where agg.update has over 2,000
    assert 100 < int(fill[-2].replace(",", "")) < 1_000


@needs_nvjitlink
def test_the_pane_aggregation_counts_with_native_shared_atomics() -> None:
    """On sm_90 a shared float64 add is a compare-and-store loop (ATOMS.CAST.SPIN); the
    tile's int32 counts must assemble to native shared adds instead, leaving loops only
    for the 64-bit sums (one for float sums, one for integer sums; four with float64
    counts)."""
    from benchmarks.kernel_resources import find_nvdisasm, linked_usage

    nvdisasm = find_nvdisasm()
    if nvdisasm is None:
        pytest.skip("no nvdisasm (the nvidia-cuda-nvdisasm wheel of the dev extra)")
    usage = linked_usage(nvdisasm=nvdisasm)("agg.update", "float64",
                                            *_BY_NAME["agg.update", "float64"])  # fmt: skip
    atomics = dict(usage.atomics)
    shared = [op for op in atomics if op.startswith("ATOMS.")]
    native = [op for op in shared if not op.startswith(("ATOMS.CAS", "ATOMS.CAST"))]
    assert native and all(".32" in op for op in native), atomics
    assert atomics.get("ATOMS.CAST.SPIN.64") == 2, atomics
    # TIKTOKTOE_TILE_COUNTS=float64 (what a card compares): the counts' loops are back
    env = {**os.environ, "TIKTOKTOE_TILE_COUNTS": "float64"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.kernel_resources", "--only",
                           "agg.update", "--sass"], capture_output=True, text=True,
                          timeout=300, check=False, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if "agg.update[float64]:" in x)
    assert "ATOMS.CAST.SPIN.64 x4" in line and "ATOMS.POPC" not in line, line
