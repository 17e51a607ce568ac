"""The kernels benchmark's device floors (:mod:`benchmarks.floors`) on the simulator.

The simulator cannot time them (its events give -1 ms; the wall clock stands in), so
this checks what they are made of: the read pairs and table sizes a measurement
reports, that the read kernel follows a slot to the key row it names (its sum reaches
``out`` only when it equals the number of reads), and how the lines read with and
without a time.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()

from benchmarks.floors import INSERTS_PER_EVENT, Floors, measure  # noqa: E402
from kernels.cuda._core import as_device, kernel, to_host  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]


def test_measure_reports_the_reads_and_tables_it_used() -> None:
    floors = measure(events=50, column_bytes=1000, slots=64, key_rows=40, repeats=1)
    assert floors.reads == INSERTS_PER_EVENT * 50
    assert (floors.stream_bytes, floors.slots_bytes, floors.keys_bytes) == (1000, 512, 960)


@pytest.mark.parametrize(("key", "written"), [(1, True), (2, False)])
def test_a_read_goes_from_a_slot_to_its_key_row(key: int, written: bool) -> None:
    slots = as_device(np.arange(16, dtype=np.int64) * 7)
    keys_host = np.full((5, 3), 99, np.int64)
    keys_host[:, 0] = key  # every row's first key: a sum of one read is `key`
    keys = as_device(keys_host)
    out = as_device(np.array([-5], np.int64))
    kernel("bench.random_reads")[1, 1](slots, keys, np.int64(1), out)
    assert to_host(out)[0] == (1 if written else -5)


def test_lines_give_rates_only_for_real_times() -> None:
    timed = Floors(stream_ms=2.0, stream_bytes=350_000_000, random_ms=5.0, reads=30_000_000,
                   slots_bytes=512_000_000, keys_bytes=480_000_000)  # fmt: skip
    stream, random = timed.lines(events=10_000_000)
    assert "350 MB" in stream and "5,000,000,000 events/s" in stream
    assert "30,000,000 slot-then-key read pairs" in random and "2,000,000,000 events/s" in random
    assert "512 and 480 MB" in random
    simulated = Floors(-1.0, 10, -1.0, 3, 8, 24)
    assert all("n/a" in line for line in simulated.lines(events=1))
