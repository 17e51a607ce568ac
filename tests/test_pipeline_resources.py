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
