"""The occupancy calculator and the reports of ``benchmarks.kernel_resources``.

The kernels' own usage comes from ptxas (the PTX suite assembles every kernel); here,
the arithmetic that turns usage into resident blocks, against figures worked outside
the code: NVIDIA's CUDA C++ Best Practices Guide ("Calculating Occupancy", compute
capability 7.0) and sm_90 cases worked by hand from the occupancy calculator's rules.
On a card, ``--device`` checks it against the driver's
``cuOccupancyMaxActiveBlocksPerMultiprocessor``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks import kernel_resources as kr
from benchmarks.kernel_resources import SM90, Multiprocessor, Usage, occupancy

# compute capability 7.0: sm_90's register file and warps, 96 KiB of shared memory, and
# no shared memory reserved by the runtime (that came with 8.0)
SM70 = Multiprocessor("sm_70", shared=98_304, shared_reserved=0)


def test_the_best_practices_guides_figures() -> None:
    # "on a device of compute capability 7.0, a kernel with 128-thread blocks using 37
    # registers per thread results in an occupancy of 75% with 12 active 128-thread blocks
    # per multi-processor, whereas a kernel with 320-thread blocks using the same 37
    # registers per thread results in an occupancy of 63% because only four 320-thread
    # blocks can reside on a multiprocessor"
    small = occupancy(37, 0, 128, SM70)
    assert (small.blocks, small.fraction, small.limiter) == (12, 0.75, "registers")
    large = occupancy(37, 0, 320, SM70)
    assert (large.blocks, large.warps) == (4, 40)
    assert large.fraction == 40 / 64  # the guide's "63%"


@pytest.mark.parametrize(
    ("registers", "shared", "threads", "blocks", "limiter"),
    [
        # 30 registers: 1,024 a warp, 64 warps' worth; 8 blocks of 8 warps fill the SM
        (30, 0, 256, 8, "warps"),
        # 51 registers: 1,792 a warp, 36 warps' worth, 4 whole blocks (agg.update's case)
        (51, 31_744, 256, 4, "registers"),
        # 40 registers: 1,280 a warp, 51 warps, rounded down to 48 (groups of 4): 6 blocks
        (40, 0, 256, 6, "registers"),
        # 32 registers leave 8 blocks, but 31,744 + 1,024 reserved B a block allow 7
        (32, 31_744, 256, 7, "shared memory"),
        # 16 registers, 64 threads: 32 blocks of 2 warps, the cap on blocks
        (16, 0, 64, 32, "blocks"),
        # 48 threads take 2 whole warps: 32 blocks, 64 warps
        (16, 0, 48, 32, "blocks"),
        # 50,000 B round up to 50,048, plus 1,024 reserved: 4 blocks in 233,472
        (16, 50_000, 256, 4, "shared memory"),
        # the most one block may have: 232,448 B and the reserved 1,024
        (16, 232_448, 256, 1, "shared memory"),
    ],
)
def test_sm90_blocks_worked_by_hand(
    registers: int, shared: int, threads: int, blocks: int, limiter: str
) -> None:
    found = occupancy(registers, shared, threads)
    assert (found.blocks, found.limiter) == (blocks, limiter)
    assert found.warps == blocks * -(-threads // 32)
    assert found.fraction == found.warps / 64


@pytest.mark.parametrize(
    ("registers", "shared", "threads", "limiter"),
    [
        (255, 0, 1024, "registers"),  # 8,192 registers a warp: 8 warps, not 32
        (256, 0, 32, "registers"),  # more than a thread may have
        (16, 232_449, 256, "shared memory"),  # one byte more rounds past the SM
    ],
)
def test_a_block_that_cannot_launch(
    registers: int, shared: int, threads: int, limiter: str
) -> None:
    found = occupancy(registers, shared, threads)
    assert (found.blocks, found.warps, found.fraction) == (0, 0, 0.0)
    assert found.limiter == f"does not fit ({limiter})"


# nvJitLink's verbose log of linking one kernel's LTO-IR, as it prints it (name shortened)
LOG = """INFO: NVVM70 LTOIR Container created (44172 bytes)
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_ZN6kernel' for 'sm_90'
ptxas info    : Function properties for _ZN6kernel
ptxas         .     24 bytes stack frame, 44 bytes spill stores, 52 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 30720 bytes smem
ptxas info    : Compile time = 105.691 ms
"""
# ... and of one without shared memory, linked from PTX: nvJitLink's own summary line
# counts the 1 KiB the runtime reserves a block, which is not the kernel's
PTX_LOG = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_ZN6kernel' for 'sm_90'
ptxas info    : Function properties for _ZN6kernel
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 28 registers, used 0 barriers
ptxas info    : Compile time = 12.542 ms
info    : 0 bytes gmem
info    : Function properties for '_ZN6kernel':
info    : used 28 registers, used 0 barriers, 0 stack, 1024 bytes smem, 640 bytes cmem[0], \
0 bytes lmem
"""


def test_the_linkers_log_is_read() -> None:
    assert kr.parse_log(LOG) == Usage(registers=40, shared=30_720, stack=24, spill_stores=44,
                                      spill_loads=52)  # fmt: skip
    assert kr.parse_log(PTX_LOG) == Usage(28, 0, 0, 0, 0)


def test_a_log_without_usage_is_an_error() -> None:
    with pytest.raises(ValueError, match="no resource usage"):
        kr.parse_log("ptxas info    : 0 bytes gmem\n")


def _report(name: str, usage: Usage, threads: int = 256) -> kr.KernelReport:
    return kr.KernelReport(name, "int64", usage, threads)


CLEAN = Usage(30, 0, 0, 0, 0)


def test_problems_name_spills_stacks_and_blocks_that_cannot_launch() -> None:
    reports = [
        _report("clean", CLEAN),
        _report("spills", Usage(40, 0, 24, 44, 52)),
        _report("stack", Usage(30, 0, 64, 0, 0)),  # a local array: a stack, no spills
        _report("too_big", Usage(255, 0, 0, 0, 0), threads=1024),
    ]
    assert kr.problems(reports) == [
        "spills[int64] uses local memory: 44 B spill stores, 52 B spill loads, 24 B stack",
        "stack[int64] uses local memory: 0 B spill stores, 0 B spill loads, 64 B stack",
        "too_big[int64] cannot launch 1024 threads a block: does not fit (registers)",
    ]
    assert kr.problems(reports[:1]) == []


def test_the_table_puts_the_lowest_occupancy_first() -> None:
    lines = kr.table([_report("full", CLEAN), _report("half", Usage(51, 31_744, 0, 0, 0))])
    assert lines[0].split()[:3] == ["kernel", "dtype", "regs"]
    assert lines[1].split() == ["half", "int64", "51", "31744", "0", "4", "50.0%", "registers"]
    assert lines[2].split()[0] == "full"


def test_the_driver_is_the_calculators_oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    # stand-in driver figures: the first kernel as the calculator says, the second not
    figures = {
        "agrees": kr.DeviceFigures(registers=51, shared=31_744, local=0, blocks=4),
        "differs": kr.DeviceFigures(registers=32, shared=0, local=8, blocks=7),
    }
    monkeypatch.setattr(kr, "device_figures", lambda name, dtype, threads: figures[name])
    lines, found = kr.compare_with_device([_report("agrees", CLEAN), _report("differs", CLEAN)])
    assert len(lines) == 3
    assert found == [
        "differs[int64]: the calculator gives 8 blocks of 256 threads from the driver's "
        "32 registers and 0 B, the driver 7",
        "differs[int64] uses 8 B of local memory on the card",
    ]


def test_the_devices_limits_are_the_calculators() -> None:
    h100 = SimpleNamespace(name="H100", compute_capability=(9, 0),
                           **dict(kr._DEVICE_LIMITS))  # fmt: skip
    assert kr.compare_limits(h100) == []
    h100.RESERVED_SHARED_MEMORY_PER_BLOCK = 0
    assert kr.compare_limits(h100) == [
        "the device's RESERVED_SHARED_MEMORY_PER_BLOCK is 0, the calculator's 1024"
    ]
    a100 = SimpleNamespace(name="A100", compute_capability=(8, 0))
    assert "not 9.0" in kr.compare_limits(a100)[0]
    assert SM90.max_warps * SM90.warp == 2048


def test_a_missing_nvjitlink_is_a_reason_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(code: bytes, name: str, arch: str, lto: bool) -> str:
        raise OSError("libnvJitLink.so.13: cannot open shared object file")

    monkeypatch.setattr(kr, "_link", no_library)
    assert kr.nvjitlink_missing() == "OSError: libnvJitLink.so.13: cannot open shared object file"


def test_the_report_says_when_nvjitlink_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(kr, "nvjitlink_missing", lambda: "OSError: no libnvJitLink.so.13")
    assert kr.main(["--only", "fill"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "nvJitLink cannot link here (OSError: no libnvJitLink.so.13): install numba-cuda[cu13]",
        "KERNEL_RESOURCES FAIL",
    ]


# nvdisasm's listing of a cubin, shortened: data of the info sections, then a kernel
LISTING = """\t.headerflags\t@"EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
\t.section\t.nv.info._Z4fill,"",@"SHT_CUDA_INFO"
        /*0000*/ \t.byte\t0x04, 0x2f
        /*0004*/ \t.word\t0x0000001e
\t.section\t.text._Z4fill,"ax",@progbits
.text._Z4fill:
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0010*/                   S2R R0, SR_TID.X ;
        /*0020*/                   ISETP.GE.AND P0, PT, R0, UR4, PT ;
        /*0030*/               @P0 EXIT ;
.L_x_0:
        /*0040*/              @!P0 STG.E.64 desc[UR4][R2.64], R4 ;
        /*0050*/                   REDG.E.ADD.F64.RN.STRONG.GPU desc[UR4][R2.64], R6 ;
        /*0060*/               @P1 ATOMS.CAST.SPIN.64 P0, [R3], R4, R6 ;
        /*0070*/                   ATOMS.ADD RZ, [R3], R8 ;
        /*0080*/                   ATOMS.ADD RZ, [R3+0x8], R8 ;
        /*0090*/                   BRA `(.L_x_1) ;
"""


def test_the_listings_instructions_are_counted_not_its_data() -> None:
    assert kr.instructions_in(LISTING) == 10


def test_the_listings_atomics_are_counted_by_opcode() -> None:
    assert kr.atomics_in(LISTING) == (
        ("ATOMS.ADD", 2),
        ("ATOMS.CAST.SPIN.64", 1),
        ("REDG.E.ADD.F64.RN.STRONG.GPU", 1),
    )
    report = _report("k", Usage(30, 0, 0, 0, 0, 10, kr.atomics_in(LISTING)))
    assert kr.atomics_lines([report, _report("none", CLEAN)]) == [
        "  k[int64]: ATOMS.ADD x2, ATOMS.CAST.SPIN.64 x1, REDG.E.ADD.F64.RN.STRONG.GPU x1"
    ]


def test_the_table_has_instructions_when_counted() -> None:
    counted = Usage(30, 0, 0, 0, 0, instructions=1_234)
    lines = kr.table([_report("fill", counted), _report("other", Usage(31, 0, 0, 0, 0))])
    assert lines[0].split()[-3:] == ["instructions", "limited", "by"]
    assert [line.split()[-2:] for line in lines[1:]] == [["-", "warps"], ["1,234", "warps"]]
    assert "instructions" not in kr.table([_report("fill", CLEAN)])[0]
