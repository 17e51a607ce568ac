"""ParquetSink writes on its own thread: same files, in order, and failures are not lost."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpu_engine.io import sinks
from gpu_engine.io.sinks import ParquetSink


def _table(start: int, rows: int) -> pa.Table:
    return pa.table({"k": pa.array(range(start, start + rows), pa.int64())})


def test_tables_land_in_order_and_flush_waits_for_them(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, queued=2)  # fewer slots than tables: the queue must turn over
    for i in range(10):
        sink.windows("w", _table(100 * i, 7))
    sink.quarantine(_table(-5, 5))
    sink.flush()  # every table is on disk now, though the file is still open
    assert (tmp_path / "windows" / "w" / "part-00000.parquet").exists()
    sink.close({"events": 75})
    got = pq.read_table(tmp_path / "windows" / "w").column("k").to_pylist()
    assert got == [100 * i + j for i in range(10) for j in range(7)]
    assert pq.read_table(tmp_path / "quarantine").column("k").to_pylist() == list(range(-5, 0))
    assert json.loads((tmp_path / "summary.json").read_text()) == {"events": 75}


def test_a_failed_write_is_raised_and_no_summary_claims_success(tmp_path: Path) -> None:
    (tmp_path / "windows").write_text("a file where a folder should go")
    sink = ParquetSink(tmp_path)
    sink.windows("w", _table(0, 3))  # fails on the writer's thread
    part = tmp_path / "windows" / "w" / "part-00000.parquet"  # named in the error
    with pytest.raises(OSError, match=re.escape(f"writing results to {part} failed")):
        sink.flush()
    with pytest.raises(OSError, match="failed"):
        sink.windows("w", _table(3, 3))
    with pytest.raises(OSError, match="failed"):
        sink.close({"events": 6})
    assert not (tmp_path / "summary.json").exists()


def test_a_slow_disk_holds_the_engine_back_instead_of_queueing_without_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    written: list[int] = []

    def slow_write(self: sinks._PartWriter, table: pa.Table) -> None:
        release.wait()
        written.append(table.num_rows)

    monkeypatch.setattr(sinks._PartWriter, "write", slow_write)
    sink = ParquetSink(tmp_path, queued=3)
    done = threading.Event()

    def produce() -> None:
        for i in range(8):
            sink.windows("w", _table(0, i + 1))
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert not done.wait(0.3)  # blocked: 1 table being written, 3 queued
    assert sink._queue.qsize() == 3 and written == []
    release.set()
    producer.join(5)
    sink.close({})
    assert written == list(range(1, 9))


def test_an_aborted_engine_leaves_readable_files_and_a_failed_summary(tmp_path: Path) -> None:
    """Engine.abort (what gpu-engine run calls when a run stops part-way) closes the sinks:
    every Parquet file has its footer, and summary.json says failed, with the counts."""
    import numpy as np
    from engine_testing import make_config, random_events

    from gpu_engine.engine import Engine

    config = make_config({"type": "tumbling", "size": 1000, "keys": ["k"]},
                         batching={"max_rows": 100})  # fmt: skip
    engine = Engine(config, sinks=[ParquetSink(tmp_path)])
    frame = random_events(np.random.default_rng(1), 450, span_ms=20_000)
    frame.loc[::50, "e"] = 9  # quarantined rows too
    engine.push(frame)
    summary = engine.abort(OSError("disk gone"))
    assert summary is not None and summary["failed"] and summary["error"] == "disk gone"
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["events"] == summary["events"]
    events = written["events"]
    assert events["valid"] + events["quarantined"] == 400 and events["buffered"] == 50
    assert pq.read_table(tmp_path / "windows" / "w").num_rows > 0
    assert pq.read_table(tmp_path / "quarantine").num_rows == events["quarantined"] > 0
    assert engine.abort(OSError("again")) is not None  # idempotent: closes nothing twice


def test_flush_after_close_returns(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path)
    sink.windows("w", _table(0, 3))
    sink.close({"events": 3})
    done = threading.Event()
    threading.Thread(target=lambda: (sink.flush(), done.set()), daemon=True).start()
    assert done.wait(5), "flush after close waited forever"
