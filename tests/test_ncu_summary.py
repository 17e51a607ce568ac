"""``benchmarks.ncu_summary``: ncu's raw CSV of a profiled run, by registered kernel.

The CSV here is written by hand in the shape ncu gives with ``--csv --page raw`` (a header,
a row of units, a row a launch), with Numba's mangled kernel names as PTX names them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.ncu_summary import (
    METRICS,
    kernel_name,
    main,
    mangled_path,
    parse,
    registered_names,
)

# as numba-cuda 0.30 names them in PTX (`.entry`), abridged after the argument types begin
UPDATE = (
    "_ZN7kernels4cuda9aggregate7_updateB2v2B104cw51cXTLSUwv1sDUaKthqaNgoKmjgEhasCBDCg1b"
    "cEADwxst6m1ByRAiDEllSAKoKQcmgeQT22p1WPiqWylALVUHSgJ5xrWaAA_3d_3dE5ArrayIxLi1E1C7mut"
)
CLAIM = (
    "_ZN7kernels4cuda9hashindex6_claimB3v14B104cw51cXTLSUwv1sDUaKthqaNgoKmjgEhasCBDCg1bcEA"
    "Dwxst6m1ByRAiDEllSAKoKQcmgeQT22p1WPiqWylALVUHSgJ5xrWaAA_3d_3dE5ArrayIxLi1E1C7mutable"
)
NAMES = registered_names()


def test_mangled_names_give_their_path() -> None:
    assert mangled_path(UPDATE) == ["kernels", "cuda", "aggregate", "_update"]
    assert mangled_path(CLAIM) == ["kernels", "cuda", "hashindex", "_claim"]
    assert mangled_path("void cub::DeviceScan(int)") == []


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (UPDATE, "agg.update"),
        (CLAIM, "hash.claim"),
        ("kernels::cuda::aggregate::_update[abi:v2](Array<long long, 1>)", "agg.update"),
        ("kernels::cuda::validate::_check_numeric", "validate.check_numeric"),
        ("void thrust::fill_kernel<int>(int*)", "void thrust::fill_kernel<int>(int*)"),
    ],
)
def test_kernel_names_map_to_registered_ones(raw: str, name: str) -> None:
    assert kernel_name(raw, NAMES) == name


def _csv(rows: list[tuple[str, ...]]) -> list[str]:
    metrics = [m for m, *_ in METRICS]
    header = ["ID", "Process ID", "Kernel Name", *metrics]
    units = ["", "", "", "nsecond", "%", "%", "%", "%", "inst", "byte", "byte"]
    lines = ["==PROF== Connected to process 1 (python3)\n"]
    for row in [header, units, *rows]:
        lines.append(",".join(f'"{cell}"' for cell in row) + "\n")
    return lines


def test_launches_of_a_kernel_are_summed_and_weighted_by_duration() -> None:
    rows = [
        # ID, pid, name, ns, DRAM, L2, SM, occupancy, instructions, read, written
        ("0", "1", UPDATE, "1,000", "80", "40", "10", "50", "2,000,000", "300", "100"),
        ("1", "1", CLAIM, "500", "20", "20", "20", "90", "1000", "10", "0"),
        ("2", "1", UPDATE, "3,000", "40", "60", "30", "70", "6,000,000", "700", "300"),
    ]
    update, claim = parse(_csv(rows), NAMES)  # longest first
    assert (update.name, update.launches, claim.name, claim.launches) == (
        "agg.update", 2, "hash.claim", 1)  # fmt: skip
    assert update.value("gpu__time_duration.sum", "sum") == 4000
    # 1 us at 80 % and 3 us at 40 %: 50 % over the 4 us, not the plain mean's 60 %
    assert update.value("dram__throughput.avg.pct_of_peak_sustained_elapsed", "mean") == 50
    assert update.value("smsp__inst_executed.sum", "sum") == 8_000_000
    assert update.value("dram__bytes_write.sum", "sum") == 400
    assert claim.value("sm__warps_active.avg.pct_of_peak_sustained_active", "mean") == 90


def test_the_table_and_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [("0", "1", UPDATE, "2000000", "50", "50", "50", "50", "3000000", "1e6", "n/a")]
    report = tmp_path / "ncu.csv"
    report.write_text("".join(_csv(rows)))
    assert main([str(report)]) == 0
    out = capsys.readouterr().out.splitlines()
    update = next(line.split() for line in out if line.startswith("agg.update"))
    # launches, ms, DRAM, L2, SM, occupancy, Minstr, MB read, MB written (not a number)
    assert update[1:] == ["1", "2.00", "50.00", "50.00", "50.00", "50.00", "3.00", "1.00", "n/a"]
    assert out[-1].split()[-2:] == ["1", "2.00"]  # all kernels: launches, ms
    assert main(["--metrics"]) == 0
    assert capsys.readouterr().out.strip().split(",") == [m for m, *_ in METRICS]


def test_output_without_kernels_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "ncu.csv"
    report.write_text("==ERROR== ERR_NVGPUCTRPERM - The user does not have permission\n")
    assert main([str(report)]) == 1
    assert "NCU_SUMMARY FAIL: no CSV rows" in capsys.readouterr().out
    report.write_text('"ID","Name"\n"0","x"\n')
    assert main([str(report)]) == 1
    assert "no 'Kernel Name' column" in capsys.readouterr().out


def test_what_warps_waited_on_is_weighted_and_ranked(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:  # fmt: skip
    """WarpStateStats' columns (whichever reasons this ncu knows), per kernel: the top
    reasons, weighted by each launch's duration."""
    stall = "smsp__average_warps_issue_stalled_{}_per_issue_active.ratio"
    reasons = ["long_scoreboard", "mio_throttle", "barrier", "wait"]
    lines = _csv([])
    header = lines[1].rstrip("\n") + "," + ",".join(f'"{stall.format(r)}"' for r in reasons)
    units = lines[2].rstrip("\n") + "," + ",".join('"cycle/inst"' for _ in reasons)
    row = '"{}","1","{}","{}","1","1","1","1","1","1","1",{}'
    launches = [
        row.format(0, UPDATE, 1000, '"10","2","0","1"'),  # long_scoreboard first
        row.format(1, UPDATE, 3000, '"2","6","1","1"'),  # mio_throttle first
    ]
    update = parse([lines[0], header, units, *launches], NAMES)[0]
    # (10 * 1 + 2 * 3) / 4 = 4, (2 * 1 + 6 * 3) / 4 = 5, barrier 0.75, wait 1
    assert update.top_stalls() == [("mio_throttle", 5.0), ("long_scoreboard", 4.0), ("wait", 1.0)]
    report = tmp_path / "ncu.csv"
    report.write_text("\n".join([lines[0].rstrip("\n"), header, units, *launches]) + "\n")
    assert main([str(report)]) == 0
    out = capsys.readouterr().out
    assert "agg.update                mio_throttle 5.0, long_scoreboard 4.0, wait 1.0" in out
