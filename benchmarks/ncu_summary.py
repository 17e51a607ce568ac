"""Hardware counters of one run of the kernels benchmark, by kernel, from Nsight Compute.

    ncu --profile-from-start off --clock-control none --print-kernel-base mangled \\
        --print-units base --csv --page raw --log-file ncu.csv \\
        --metrics $(python -m benchmarks.ncu_summary --metrics) --section WarpStateStats \\
        python -m benchmarks.gpu_kernels --profile-only
    python -m benchmarks.ncu_summary ncu.csv

Why: CUDA events say how long each kernel took, not why. A card's counters say whether
a kernel was held by DRAM, by L2 or by its multiprocessors, at what occupancy, how many
instructions it executed, and what its warps waited on (atomics, memory, barriers); the
sessions without a card then know which of those to work on. ``gpu_check.sh profile``
runs both commands (informational: ncu needs access to the counters, which some runtimes
refuse).

Kernel names come mangled (Itanium, as Numba names them): each is mapped back to the
name it is registered under in :mod:`kernels.cuda` (``agg.update``) by its module and
function, and launches of one kernel are summed.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# (metric, column heading, how a kernel's launches combine: "sum" or a duration-weighted
# "mean"); all in ncu's SpeedOfLight, Occupancy and instruction statistics for sm_70+
METRICS = (
    ("gpu__time_duration.sum", "ms", "sum"),
    ("dram__throughput.avg.pct_of_peak_sustained_elapsed", "DRAM %", "mean"),
    ("lts__throughput.avg.pct_of_peak_sustained_elapsed", "L2 %", "mean"),
    ("sm__throughput.avg.pct_of_peak_sustained_elapsed", "SM %", "mean"),
    ("sm__warps_active.avg.pct_of_peak_sustained_active", "occup. %", "mean"),
    ("smsp__inst_executed.sum", "Minstr", "sum"),
    ("dram__bytes_read.sum", "MB read", "sum"),
    ("dram__bytes_write.sum", "MB written", "sum"),
)
_SCALE = {"ms": 1e-6, "Minstr": 1e-6, "MB read": 1e-6, "MB written": 1e-6}  # from ns, 1, B
_DURATION = METRICS[0][0]
# What warps waited on, in cycles per issued instruction, from ncu's WarpStateStats section
# (``--section WarpStateStats``): one column a reason, whatever reasons this ncu knows
_STALL = re.compile(r"^smsp__average_warps_issue_stalled_(\w+?)_per_issue_active\.ratio$")
TOP_STALLS = 3


@dataclass
class KernelCounters:
    """One kernel's launches in the profiled run, their metrics combined."""

    name: str
    launches: int = 0
    sums: dict[str, float] = field(default_factory=dict)  # sums, or duration-weighted sums
    stalls: dict[str, float] = field(default_factory=dict)  # by reason, duration-weighted

    def add(self, values: dict[str, float], stalls: dict[str, float]) -> None:
        self.launches += 1
        weight = values.get(_DURATION, 0.0)
        for metric, _, how in METRICS:
            if metric in values:
                v = values[metric] * (weight if how == "mean" else 1.0)
                self.sums[metric] = self.sums.get(metric, 0.0) + v
        for reason, v in stalls.items():
            self.stalls[reason] = self.stalls.get(reason, 0.0) + v * weight

    def top_stalls(self) -> list[tuple[str, float]]:
        """The reasons warps waited longest for, in cycles per issued instruction."""
        weight = self.sums.get(_DURATION, 0.0)
        if weight <= 0:
            return []
        ranked = sorted(self.stalls.items(), key=lambda item: -item[1])[:TOP_STALLS]
        return [(reason, v / weight) for reason, v in ranked]

    def value(self, metric: str, how: str) -> float | None:
        if metric not in self.sums:
            return None
        if how == "sum":
            return self.sums[metric]
        weight = self.sums.get(_DURATION, 0.0)
        return self.sums[metric] / weight if weight > 0 else None


def registered_names() -> dict[tuple[str, str], str]:
    """(module's last part, function name) of each registered kernel -> its name."""
    from benchmarks.kernel_resources import shipped_signatures

    return {(pyfunc.__module__.rsplit(".", 1)[-1], pyfunc.__name__): name
            for name, _, pyfunc, _ in shipped_signatures()}  # fmt: skip


_SEGMENT = re.compile(r"(\d+)")


def mangled_path(name: str) -> list[str]:
    """The name segments of an Itanium-mangled nested name (``_ZN6cudapy7kernels...E``);
    [] for anything else."""
    if not name.startswith("_ZN"):
        return []
    parts, i = [], 3
    while i < len(name):
        m = _SEGMENT.match(name, i)
        if m is None:  # an ABI tag (B2v1...) or the end of the nested name
            if name.startswith("B", i):  # skip the tag: B<len><chars>
                tag = _SEGMENT.match(name, i + 1)
                if tag is None:
                    break
                i = tag.end() + int(tag.group(1))
                continue
            break
        size = int(m.group(1))
        parts.append(name[m.end() : m.end() + size])
        i = m.end() + size
    return parts


def kernel_name(raw: str, names: dict[tuple[str, str], str]) -> str:
    """The registered name of a kernel that ncu reports as ``raw`` (mangled or
    demangled), or ``raw`` itself when it is none of ours."""
    path = mangled_path(raw) or re.split(r"::", raw.split("(")[0].split("[")[0])
    for module, function in itertools.pairwise(path):
        found = names.get((module, function))
        if found is not None:
            return found
    return raw


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def parse(lines: Iterable[str], names: dict[tuple[str, str], str]) -> list[KernelCounters]:
    """ncu's ``--csv --page raw`` output (a header, a row of units, a row a launch; lines
    before the header, such as ncu's own ``==PROF==`` ones, are skipped), by kernel,
    longest first."""
    rows = [line for line in lines if line.startswith('"')]
    if not rows:
        raise ValueError("no CSV rows in ncu's output")
    reader = csv.DictReader(rows)
    if reader.fieldnames is None or "Kernel Name" not in reader.fieldnames:
        raise ValueError(f"no 'Kernel Name' column in ncu's header: {reader.fieldnames}")
    stall_columns = {c: m.group(1) for c in reader.fieldnames if (m := _STALL.match(c))}
    kernels: dict[str, KernelCounters] = {}
    for row in reader:
        if not row.get("ID", "").strip().isdigit():  # the units row
            continue
        name = kernel_name(row["Kernel Name"], names)
        values = {m: v for m, *_ in METRICS if (v := _number(row.get(m, ""))) is not None}
        stalls = {reason: v for column, reason in stall_columns.items()
                  if (v := _number(row.get(column, ""))) is not None}  # fmt: skip
        kernels.setdefault(name, KernelCounters(name)).add(values, stalls)
    return sorted(kernels.values(), key=lambda k: -(k.value(_DURATION, "sum") or 0.0))


def table(kernels: Sequence[KernelCounters]) -> list[str]:
    lines = [f"{'kernel':<28}{'launches':>9}" + "".join(f"{h:>11}" for _, h, _ in METRICS)]
    for k in kernels:
        cells = []
        for metric, heading, how in METRICS:
            v = k.value(metric, how)
            cells.append(f"{'n/a':>11}" if v is None else f"{v * _SCALE.get(heading, 1):>11.2f}")
        lines.append(f"{k.name[:27]:<28}{k.launches:>9}" + "".join(cells))
    total = sum(k.value(_DURATION, "sum") or 0.0 for k in kernels) * 1e-6
    lines.append(f"{'all kernels':<28}{sum(k.launches for k in kernels):>9}{total:>11.2f}")
    waits = [(k.name, k.top_stalls()) for k in kernels]
    if any(top for _, top in waits):
        lines.append("what warps waited on most, cycles per issued instruction:")
        lines += [f"  {name[:26]:<26}" + ", ".join(f"{reason} {v:.1f}" for reason, v in top)
                  for name, top in waits if top]  # fmt: skip
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ncu_summary",
                                 description=__doc__.split("\n\n")[0])  # fmt: skip
    ap.add_argument("csv", nargs="?", help="ncu's --csv --page raw output")
    ap.add_argument("--metrics", action="store_true", help="print the metrics to ask ncu for")
    args = ap.parse_args(argv)
    if args.metrics:
        print(",".join(m for m, *_ in METRICS))
        return 0
    if args.csv is None:
        ap.error("give ncu's CSV output (or --metrics)")
    try:
        file = open(args.csv, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as exc:  # a missing CSV: ncu failed before writing it
        ap.error(f"cannot read {args.csv}: {exc.strerror or exc}")
    with file:
        try:
            kernels = parse(file, registered_names())
        except ValueError as exc:
            print(f"NCU_SUMMARY FAIL: {exc}")
            return 1
    print("hardware counters by kernel (ncu; percentages of the device's peak, weighted by "
          "each launch's duration):")  # fmt: skip
    print("\n".join(table(kernels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
