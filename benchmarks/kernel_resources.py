"""What each shipped kernel asks of a card's multiprocessor, found without a card.

Every registered signature is compiled to LTO-IR and linked for sm_90 by nvJitLink
(the ``nvidia-nvjitlink`` wheel that ``numba-cuda[cu13]`` installs): what Numba
itself does on a card where nvJitLink is present (``lto`` defaults to on there), so
the machine code is the card's. The linker's verbose log says what ptxas gave the
kernel: registers a thread, static shared memory a block, stack and spills. With
the block the engine launches (``THREADS``), the occupancy of an H100's
multiprocessor follows by the rules of CUDA's occupancy calculator.

Why: a kernel that asks a block for more than it may have fails at launch, and only
on a card; a spill to local memory slows a kernel and nothing else in CI shows it;
and occupancy bounds how much memory latency a multiprocessor can hide, which is
what the atomics of the pane aggregation and the hash inserts wait on.

``--device`` (on a card) sets the driver's own figures beside these:
``cuFuncGetAttribute``'s registers, shared and local memory, and
``cuOccupancyMaxActiveBlocksPerMultiprocessor``'s blocks, which check the
calculator below when given the driver's registers and shared memory.

``--sass`` lists each linked kernel with nvdisasm (the ``nvidia-cuda-nvdisasm`` wheel of
the dev extra): its static instruction count and its atomic instructions by opcode, which
show the atomics ptxas had to make loops of. ``--min-blocks N`` compiles under launch
bounds of N resident blocks, to show what bounds would buy and at what spills.

    python -m benchmarks.kernel_resources [--only agg. hash.] [--min-blocks N] [--sass]
                                          [--device]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARCH = "sm_90"


class AssemblyError(RuntimeError):
    """ptxas (through nvJitLink) rejected a kernel."""


@dataclass(frozen=True)
class Usage:
    """What ptxas allotted one kernel."""

    registers: int  # a thread
    shared: int  # static shared memory of a block, bytes
    stack: int  # a thread's stack frame, bytes (spills live there)
    spill_stores: int  # bytes
    spill_loads: int
    instructions: int | None = None  # static SASS instructions, when nvdisasm counted them
    atomics: tuple[tuple[str, int], ...] = ()  # ... and its atomic instructions, by opcode


# ptxas' own lines of the log. (nvJitLink adds a summary line for PTX input, whose
# "bytes smem" also counts the 1 KiB the runtime reserves a block: not read.)
_USED = re.compile(r"ptxas info\s*: Used (\d+) registers[^\n]*?(?:, (\d+) bytes smem)?\n")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def parse_log(log: str) -> Usage:
    """The :class:`Usage` in nvJitLink's verbose log of one kernel."""
    used, frame = _USED.search(log), _FRAME.search(log)
    if used is None or frame is None:
        raise ValueError(f"no resource usage in the linker's log:\n{log}")
    stack, stores, loads = map(int, frame.groups())
    return Usage(int(used.group(1)), int(used.group(2) or 0), stack, stores, loads)


def lto_ir(pyfunc: Callable[..., None], signature: Any, **options: Any) -> bytes:
    """The kernel's LTO-IR for compute capability 9.0, as Numba makes it for a card
    (``options``: ``launch_bounds``, say)."""
    from numba import cuda

    code, _ = cuda.compile(pyfunc, signature, cc=(9, 0), output="ltoir", device=False,
                           abi="numba", **options)  # fmt: skip
    return bytes(code)


def assemble(ltoir: bytes, name: str, arch: str = ARCH, nvdisasm: str | None = None) -> Usage:
    """Link ``ltoir`` (one kernel) for ``arch`` with nvJitLink; what ptxas allotted, and
    with ``nvdisasm`` (its path) the static count of the cubin's instructions."""
    log, cubin = _link(ltoir, name, arch, lto=True)
    usage = parse_log(log)
    if nvdisasm is None:
        return usage
    listing = disassemble(cubin, nvdisasm)
    return dataclasses.replace(usage, instructions=instructions_in(listing),
                               atomics=atomics_in(listing))  # fmt: skip


# an instruction of nvdisasm's listing, "  /*0070*/   @P0 LDG.E R2, desc[UR4][R2.64] ;",
# not a line of data ("  /*0000*/   .byte 0xff, ...") from the cubin's other sections
_INSTRUCTION = re.compile(
    r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([^.\s][^\s;]*)[^\n]*;\s*$", re.MULTILINE
)
# SASS atomics: global (ATOMG, REDG, RED, ATOM) and shared (ATOMS); ATOMS.CAST.SPIN is the
# compare-and-store loop by which ptxas makes a shared atomic that sm_90 lacks (an add of
# float32, int64 or float64: only 32-bit integer adds are native in shared memory)
_ATOMIC = re.compile(r"^(?:ATOMG|ATOMS|ATOM|REDG|RED)\.")


def disassemble(cubin: bytes, nvdisasm: str) -> str:
    """nvdisasm's listing of ``cubin``."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        return subprocess.run([nvdisasm, file.name], capture_output=True, text=True,
                              check=True, timeout=60).stdout  # fmt: skip


def instructions_in(listing: str) -> int:
    """The instructions of an nvdisasm listing (its data lines are not counted)."""
    return len(_INSTRUCTION.findall(listing))


def atomics_in(listing: str) -> tuple[tuple[str, int], ...]:
    """The atomic instructions of an nvdisasm listing, by opcode (with its modifiers)."""
    found = Counter(op for op in _INSTRUCTION.findall(listing) if _ATOMIC.match(op))
    return tuple(sorted(found.items()))


def find_nvdisasm() -> str | None:
    """nvdisasm on PATH, or from the ``nvidia-cuda-nvdisasm`` wheel (a dev dependency)."""
    found = shutil.which("nvdisasm")
    if found:
        return found
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for toolkit in ("cu13", "cu12"):
            candidate = Path(root) / toolkit / "bin" / "nvdisasm"
            if candidate.is_file():
                return str(candidate)
    return None


def _link(code: bytes, name: str, arch: str, lto: bool) -> tuple[str, bytes]:
    """nvJitLink's verbose log of linking ``code`` (LTO-IR, or PTX), and the cubin."""
    from cuda.bindings import nvjitlink

    options = [f"-arch={arch}", "-verbose"] + (["-lto"] if lto else [])
    handle = nvjitlink.create(len(options), options)
    try:
        kind = nvjitlink.InputType.LTOIR if lto else nvjitlink.InputType.PTX
        try:
            nvjitlink.add_data(handle, kind, code, len(code), name)
            nvjitlink.complete(handle)
        except nvjitlink.nvJitLinkError as exc:
            raise AssemblyError(f"{name}: ptxas for {arch} failed ({exc}):\n"
                                f"{_log(handle, error=True)}") from exc  # fmt: skip
        cubin = bytearray(nvjitlink.get_linked_cubin_size(handle))
        nvjitlink.get_linked_cubin(handle, cubin)
        return _log(handle, error=False), bytes(cubin)
    finally:
        nvjitlink.destroy(handle)


def _log(handle: int, error: bool) -> str:
    from cuda.bindings import nvjitlink

    size = (nvjitlink.get_error_log_size if error else nvjitlink.get_info_log_size)(handle)
    buffer = bytearray(size)
    (nvjitlink.get_error_log if error else nvjitlink.get_info_log)(handle, buffer)
    return buffer.decode(errors="replace").rstrip("\x00")


@dataclass(frozen=True)
class Multiprocessor:
    """A multiprocessor's limits, as CUDA's occupancy calculator states them."""

    name: str
    warp: int = 32
    max_warps: int = 64
    max_blocks: int = 32
    registers: int = 65_536
    registers_per_block: int = 65_536
    max_registers_per_thread: int = 255
    register_unit: int = 256  # registers are given to a warp in units of this many
    warp_granularity: int = 4  # ... and to whole groups of this many warps
    shared: int = 233_472  # bytes a multiprocessor has for blocks (228 KiB)
    shared_unit: int = 128  # a block's shared memory is rounded up to this
    shared_reserved: int = 1_024  # the runtime's own, per block (compute capability 8.0+)


SM90 = Multiprocessor("sm_90 (H100, H200)")


@dataclass(frozen=True)
class Occupancy:
    blocks: int  # resident blocks a multiprocessor
    warps: int
    fraction: float  # of the multiprocessor's warps
    limiter: str  # what stops one more block


def occupancy(registers: int, shared: int, threads: int, sm: Multiprocessor = SM90) -> Occupancy:
    """Resident blocks of ``threads`` threads using ``registers`` a thread and ``shared``
    bytes a block (static plus dynamic) on one multiprocessor of ``sm``. 0 blocks: the
    block cannot launch at all."""
    warps = math.ceil(threads / sm.warp)
    by_warps = min(sm.max_blocks, sm.max_warps // warps)
    if registers > sm.max_registers_per_thread:
        by_registers = 0
    elif registers > 0:
        per_warp = _round_up(registers * sm.warp, sm.register_unit)
        warp_limit = sm.registers_per_block // per_warp // sm.warp_granularity * sm.warp_granularity
        by_registers = warp_limit // warps * (sm.registers // sm.registers_per_block)
    else:
        by_registers = sm.max_blocks
    per_block = _round_up(shared, sm.shared_unit) + sm.shared_reserved
    by_shared = sm.shared // per_block if per_block else sm.max_blocks
    threads_limit = "blocks" if sm.max_blocks <= sm.max_warps // warps else "warps"
    limits = {threads_limit: by_warps, "registers": by_registers, "shared memory": by_shared}
    blocks = min(limits.values())
    limiter = min(limits, key=limits.__getitem__)  # the first of equal limits, in this order
    return Occupancy(blocks, blocks * warps, blocks * warps / sm.max_warps,
                     limiter if blocks else f"does not fit ({limiter})")  # fmt: skip


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


@dataclass(frozen=True)
class KernelReport:
    name: str
    dtype: str
    usage: Usage
    threads: int  # a block

    @property
    def occupancy(self) -> Occupancy:
        """The kernel's blocks on an sm_90 multiprocessor (the module's calculator)."""
        return occupancy(self.usage.registers, self.usage.shared, self.threads)


UsageOf = Callable[[str, str, Callable[..., None], Any], Usage]


def linked_usage(
    min_blocks: int | None = None, threads: int | None = None, nvdisasm: str | None = None
) -> UsageOf:
    """What ptxas gives each kernel for sm_90, compiled and linked as Numba does it for the
    engine (its launch bounds included, when on), with no device. With ``min_blocks``,
    under launch bounds of that many blocks of ``threads`` (the engine's by default)
    instead: what bounds would buy, and at what spills. ``nvdisasm`` (a path) counts the
    instructions too."""
    from kernels.cuda._core import THREADS, compile_options

    def usage_of(name: str, dtype: str, pyfunc: Callable[..., None], signature: Any) -> Usage:
        options = (compile_options(name) if min_blocks is None
                   else {"launch_bounds": (threads or THREADS, min_blocks)})  # fmt: skip
        code = lto_ir(pyfunc, signature, **options)
        return assemble(code, f"{name}[{dtype}]", nvdisasm=nvdisasm)

    return usage_of


def assembled_usage(name: str, dtype: str, pyfunc: Callable[..., None], signature: Any) -> Usage:
    """:func:`linked_usage`'s default: the kernel as the engine compiles it."""
    return linked_usage()(name, dtype, pyfunc, signature)


def survey(
    only: Sequence[str] = (), threads: int | None = None, usage_of: UsageOf = assembled_usage
) -> list[KernelReport]:
    """Every shipped signature (whose name starts with one of ``only``, if given), with its
    usage (assembled for sm_90 by default) placed on a multiprocessor at ``threads`` a
    block (the engine's ``THREADS`` by default)."""
    from kernels.cuda._core import THREADS

    block = threads or THREADS
    return [KernelReport(name, dtype, usage_of(name, dtype, pyfunc, signature), block)
            for name, dtype, pyfunc, signature in shipped_signatures()
            if not only or name.startswith(tuple(only))]  # fmt: skip


_PROBE = b".version 8.0\n.target sm_90\n.address_size 64\n.visible .entry probe()\n{\n\tret;\n}\n"


def nvjitlink_missing() -> str:
    """Why nvJitLink cannot link here ("" when it can)."""
    try:
        _link(_PROBE, "probe", ARCH, lto=False)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def shipped_signatures() -> list[tuple[str, str, Callable[..., None], Any]]:
    """(name, dtype, python function, signature) of every registered kernel: those of
    ``kernels.cuda`` and the benchmarks' own (``benchmarks.gpu_kernels`` registers its
    kernel and, through ``benchmarks.floors``, the floors')."""
    import benchmarks.gpu_kernels  # noqa: F401
    from kernels.cuda import all_signatures

    return list(all_signatures())


def table(reports: Iterable[KernelReport]) -> list[str]:
    """One line a kernel, lowest occupancy first (with static instructions, if counted)."""
    reports = list(reports)
    counted = any(r.usage.instructions is not None for r in reports)
    lines = [f"{'kernel':<28} {'dtype':<8} {'regs':>4} {'smem B':>7} {'spill B':>7} "
             f"{'blocks':>6} {'occupancy':>9}  " + ("instructions  " if counted else "")
             + "limited by"]  # fmt: skip
    for r in sorted(reports, key=lambda r: (r.occupancy.fraction, -r.usage.registers, r.name)):
        spills = r.usage.spill_stores + r.usage.spill_loads
        n = r.usage.instructions
        count = f"{'-' if n is None else f'{n:,}':>12}  " if counted else ""
        lines.append(f"{r.name:<28} {r.dtype:<8} {r.usage.registers:>4} {r.usage.shared:>7} "
                     f"{spills:>7} {r.occupancy.blocks:>6} {r.occupancy.fraction:>9.1%}  "
                     f"{count}{r.occupancy.limiter}")  # fmt: skip
    return lines


def atomics_lines(reports: Iterable[KernelReport]) -> list[str]:
    """One line a kernel with atomic instructions: each opcode and its static count."""
    return [f"  {r.name}[{r.dtype}]: " + ", ".join(f"{op} x{n}" for op, n in r.usage.atomics)
            for r in reports if r.usage.atomics]  # fmt: skip


def problems(reports: Iterable[KernelReport]) -> list[str]:
    """Kernels that cannot launch at their block, or that spill or use a stack."""
    found = []
    for r in reports:
        u = r.usage
        if r.occupancy.blocks == 0:
            found.append(f"{r.name}[{r.dtype}] cannot launch {r.threads} threads a block: "
                         f"{r.occupancy.limiter}")  # fmt: skip
        if u.spill_stores or u.spill_loads or u.stack:
            found.append(f"{r.name}[{r.dtype}] uses local memory: {u.spill_stores} B spill "
                         f"stores, {u.spill_loads} B spill loads, {u.stack} B stack")  # fmt: skip
    return found


@dataclass(frozen=True)
class DeviceFigures:
    """The driver's own figures for a loaded kernel."""

    registers: int
    shared: int
    local: int
    blocks: int  # cuOccupancyMaxActiveBlocksPerMultiprocessor at the report's block


def device_figures(name: str, dtype: str, threads: int) -> DeviceFigures:
    """Load kernel ``name`` for ``dtype`` on the current device (through the engine's own
    compile cache) and ask the driver what it uses and how many blocks fit."""
    from numba import cuda

    from kernels.cuda._core import compiled_kernel

    found = compiled_kernel(name, dtype)
    dispatcher = getattr(found, "dispatcher", found)  # the fast launcher wraps Numba's
    (compiled,) = dispatcher.overloads.values()
    function = compiled._codelibrary.get_cufunc()
    blocks = cuda.current_context().get_active_blocks_per_multiprocessor(function, threads, 0)
    return DeviceFigures(compiled.regs_per_thread, compiled.shared_mem_per_block,
                         compiled.local_mem_per_thread, int(blocks))  # fmt: skip


# SM90's limits by the names of the driver's device attributes (CU_DEVICE_ATTRIBUTE_*)
_DEVICE_LIMITS = {
    "WARP_SIZE": SM90.warp,
    "MAX_THREADS_PER_MULTIPROCESSOR": SM90.max_warps * SM90.warp,
    "MAX_BLOCKS_PER_MULTIPROCESSOR": SM90.max_blocks,
    "MAX_REGISTERS_PER_MULTIPROCESSOR": SM90.registers,
    "MAX_REGISTERS_PER_BLOCK": SM90.registers_per_block,
    "MAX_SHARED_MEMORY_PER_MULTIPROCESSOR": SM90.shared,
    "RESERVED_SHARED_MEMORY_PER_BLOCK": SM90.shared_reserved,
}


def compare_limits(device: Any) -> list[str]:
    """Where ``device`` (a Numba device) differs from :data:`SM90`'s limits."""
    if tuple(device.compute_capability) != (9, 0):
        return [f"{device.name} is compute capability {device.compute_capability}, not 9.0: "
                "the calculator's limits are sm_90's"]  # fmt: skip
    found = []
    for attribute, expected in _DEVICE_LIMITS.items():
        actual = int(getattr(device, attribute))
        if actual != expected:
            found.append(f"the device's {attribute} is {actual}, the calculator's {expected}")
    return found


def driver_usage(name: str, dtype: str, pyfunc: Callable[..., None], signature: Any) -> Usage:
    """The driver's figures as a :class:`Usage` (a spill shows only as local memory)."""
    d = device_figures(name, dtype, 32)
    return Usage(d.registers, d.shared, d.local, 0, 0)


def compare_with_device(reports: Iterable[KernelReport]) -> tuple[list[str], list[str]]:
    """(lines, problems): each kernel's driver figures beside the assembled ones. The
    calculator must give the driver's blocks from the driver's registers and shared
    memory; registers assembled here may differ from the driver's (another ptxas)."""
    lines = [f"{'kernel':<28} {'dtype':<8} {'regs here/card':>14} {'smem here/card':>15} "
             f"{'blocks calc/card':>16}"]  # fmt: skip
    found = []
    for r in reports:
        d = device_figures(r.name, r.dtype, r.threads)
        calculated = occupancy(d.registers, d.shared, r.threads).blocks
        lines.append(f"{r.name:<28} {r.dtype:<8} {r.usage.registers:>6}/{d.registers:<7} "
                     f"{r.usage.shared:>7}/{d.shared:<7} {calculated:>8}/{d.blocks}")  # fmt: skip
        if calculated != d.blocks:
            found.append(f"{r.name}[{r.dtype}]: the calculator gives {calculated} blocks of "
                         f"{r.threads} threads from the driver's {d.registers} registers and "
                         f"{d.shared} B, the driver {d.blocks}")  # fmt: skip
        if d.local:
            found.append(f"{r.name}[{r.dtype}] uses {d.local} B of local memory on the card")
    return lines, found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernel_resources",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--only", nargs="*", default=[],
                        help="kernel name prefixes (agg. hash. ...): only these")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None,
                        help="threads a block (default: the engine's)")  # fmt: skip
    parser.add_argument("--min-blocks", type=int, default=None,
                        help="compile every kernel for this many resident blocks (launch "
                             "bounds) rather than as the engine does")  # fmt: skip
    parser.add_argument("--sass", action="store_true",
                        help="count each kernel's static instructions too (nvdisasm, from "
                             "the nvidia-cuda-nvdisasm wheel or PATH)")  # fmt: skip
    parser.add_argument("--device", action="store_true",
                        help="also ask the driver of the current device (a card)")  # fmt: skip
    args = parser.parse_args(argv)
    nvdisasm = find_nvdisasm() if args.sass else None
    if args.sass and nvdisasm is None:
        print("--sass needs nvdisasm: pip install nvidia-cuda-nvdisasm (or put it on PATH)")
        print("KERNEL_RESOURCES FAIL")
        return 1
    if args.min_blocks and args.device:
        parser.error("--device reports the kernels as the engine compiles them, so not with "
                     "--min-blocks")  # fmt: skip
    if args.device:
        from numba import cuda

        if not cuda.is_available():
            print("--device needs a CUDA device, and numba finds none here")
            print("KERNEL_RESOURCES FAIL")
            return 1
    start = time.perf_counter()
    usage_of = linked_usage(args.min_blocks, args.threads, nvdisasm)
    source = f"assembled for {ARCH} by nvJitLink"
    missing = nvjitlink_missing()
    if missing and not args.device:
        print(f"nvJitLink cannot link here ({missing}): install numba-cuda[cu13]")
        print("KERNEL_RESOURCES FAIL")
        return 1
    if missing:  # a card's own figures still check the calculator
        print(f"nvJitLink cannot link here ({missing}): the driver's figures alone")
        usage_of, source = driver_usage, "loaded on this device"
    if args.min_blocks:
        from kernels.cuda._core import THREADS

        source += f" under launch bounds {(args.threads or THREADS, args.min_blocks)}"
    try:
        reports = survey(args.only, args.threads, usage_of)
    except AssemblyError as exc:
        print(exc)
        print("KERNEL_RESOURCES FAIL")
        return 1
    if not reports:
        print(f"no shipped kernel starts with {' or '.join(args.only)}")
        print("KERNEL_RESOURCES FAIL")
        return 1
    print(f"{len(reports)} kernel signatures {source} in {time.perf_counter() - start:.1f} s; "
          f"occupancy of one {SM90.name} multiprocessor at {reports[0].threads} threads a "
          "block:")  # fmt: skip
    print("\n".join(table(reports)))
    if nvdisasm is not None:
        print("atomic instructions, by kernel (ATOMS.CAST.SPIN: a shared atomic made a loop):")
        print("\n".join(atomics_lines(reports)) or "  none")
    found = problems(reports)
    if args.device:
        device = cuda.get_current_device()
        lines, on_card = compare_with_device(reports)
        print(f"\nthe driver's figures for the same kernels, on {device.name}:")
        print("\n".join(lines))
        found += compare_limits(device) + on_card
    if found:
        print("\n".join(found))
    print("KERNEL_RESOURCES " + ("FAIL" if found else "PASS"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
