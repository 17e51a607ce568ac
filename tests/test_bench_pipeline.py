"""``benchmarks.pipeline`` checks what a run produced before quoting its throughput."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import pipeline
from benchmarks.windows import dataset

EVENTS = 2_000


def test_a_run_is_checked_against_its_counts_and_an_independent_window(tmp_path: Path) -> None:
    events_path = dataset(EVENTS, 0)
    out = tmp_path / "run"
    run = pipeline.run_once(events_path, out, dict(os.environ), None)
    want_events = pipeline.expected_events(EVENTS, 0)
    want_window = pipeline.oracle_window(events_path)
    assert len(want_window) > 1_000
    pipeline.check_events("test", run, want_events)
    pipeline.check_window("test", out, want_window)

    for key, value in (("late", 1), ("valid", EVENTS - 1), ("quarantined", 3)):
        wrong = {**run, "events": {**run["events"], key: value}}
        with pytest.raises(AssertionError, match="test run counted"):
            pipeline.check_events("test", wrong, want_events)

    (part,) = (out / "windows" / pipeline.CHECKED_WINDOW).iterdir()
    table = pq.read_table(part)
    views = table.column("views").to_numpy().copy()
    views[0] += 1
    index = table.schema.get_field_index("views")
    pq.write_table(table.set_column(index, "views", pa.array(views)), part)
    with pytest.raises(AssertionError, match="views differs"):
        pipeline.check_window("test", out, want_window)
    pq.write_table(table.slice(1), part)  # a row missing
    with pytest.raises(AssertionError, match="rows"):
        pipeline.check_window("test", out, want_window)
