"""Resources of the streamed pipeline: input read in bounded memory, state that stays bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gpu_engine.io.sources import read_batches


def _incompressible_parquet(path: Path, row_groups: int, rows: int) -> int:
    """A file of ``row_groups`` row groups of random int64 columns; its size in bytes."""
    rng = np.random.default_rng(7)
    schema = pa.schema([(name, pa.int64()) for name in ("a", "b", "c", "d")])
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for _ in range(row_groups):
            columns = {name: rng.integers(0, 2**62, rows) for name in schema.names}
            writer.write_table(pa.table(columns, schema=schema))
    return path.stat().st_size


def test_parquet_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """Reading a file batch by batch holds about one row group, not what was read so far."""
    path = tmp_path / "events.parquet"
    rows = 32_768
    size = _incompressible_parquet(path, row_groups=24, rows=rows)
    row_group_bytes = size // 24
    before = pa.total_allocated_bytes()
    peak = 0
    seen = 0
    for table, _source, first_row in read_batches(path, 10_000, ["a", "b", "c", "d"]):
        assert first_row == seen and table.num_rows <= 10_000
        seen += table.num_rows
        del table
        peak = max(peak, pa.total_allocated_bytes() - before)
    assert seen == 24 * rows
    # A cache of the raw column chunks would grow to the whole file (~25 MB here).
    assert peak < 4 * row_group_bytes, (peak, row_group_bytes, size)


def test_session_rows_stay_at_the_open_sessions() -> None:
    """Sessions that go on are extended in place: no new row per batch, no hash index of rows."""
    from engine_testing import make_config

    from gpu_engine.engine import Engine
    from gpu_engine.io.sinks import MemorySink
    from gpu_engine.windows.operator import SessionWindows

    keys = 2_000
    config = make_config(
        {"type": "session", "gap": 30_000, "keys": ["k"]},
        workers=1,
        batching={"max_rows": keys, "max_delay": "1h"},
    )
    sink = MemorySink()
    engine = Engine(config, sinks=[sink])
    operator = engine.operators[0]
    assert isinstance(operator, SessionWindows)
    rng = np.random.default_rng(3)
    for second in range(40):  # one event per key and second: every session stays open
        k = rng.permutation(keys).astype(np.int64)
        engine.push(
            {
                "t": np.full(keys, 1_000 * second, dtype=np.int64),
                "k": k,
                "e": np.zeros(keys, dtype=np.int8),
                "x": np.ones(keys),
                "u": (k + second) % 7,
            }
        )
        assert len(operator.sessions) == keys
    # Per open session: aggregate state, distinct-count entries (7 values), key
    # index and bounds; not a row per batch nor a hash table of row numbers.
    assert operator.state_bytes < keys * 2_000
    summary = engine.close()
    out = sink.result("windows/w")
    assert out is not None and out.num_rows == keys and summary["accounted"]
    assert out.column("n").to_pylist() == [40] * keys
    assert out.column("u_distinct").to_pylist() == [7] * keys


def test_run_start_up_skips_pandas_and_scipy_linalg() -> None:
    """The run command's start-up imports neither, and both still work when asked for."""
    import subprocess
    import sys

    code = """
import sys
from gpu_engine.commands.startup import lighten_startup
lighten_startup()
import numpy as np, pyarrow as pa
from kernels.aggregate import AggState
AggState(np.array([0]), 16)  # Numba's first kernel (its registries loaded)
pa.array(np.arange(3)).fill_null(0)  # pyarrow's first numpy conversion
assert "pandas" not in sys.modules and "scipy.linalg" not in sys.modules, "imported"
import pandas as pd
assert type(pa.table({"a": [1, 2]}).to_pandas()) is pd.DataFrame
assert pa.array(pd.Series([1, 2], dtype="category")).type.value_type == pa.int64()
import scipy.linalg
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
